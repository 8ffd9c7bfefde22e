//! What the MPI launcher said about the first process that failed.
//!
//! Open MPI's `mpirun` names it when a job is aborted ("The first process to
//! do so was: Process name: `[[J,1],R]` / Exit code: C", or "mpirun noticed
//! that process rank R with PID P on node N exited on signal S"); MPICH's
//! Hydra names it by PID when one dies by a signal ("BAD TERMINATION ... PID
//! P RUNNING AT N / EXIT CODE: C" and "EXIT STRING: Killed (signal 9)"),
//! and says nothing about a plain non-zero exit. This module owns picking
//! those lines out ([`is_note`], used by `relay`) and reading them into a
//! [`Culprit`]; naming the rank in the summary is `summary`'s job. Pure.

/// How the first failing process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// It exited with this non-zero status.
    Exited(i32),
    /// It was killed by this signal.
    Signalled(i32),
}

/// The first process of the job that failed, as the MPI launcher named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Culprit {
    /// Its rank, when the MPI launcher said it.
    pub rank: Option<u32>,
    /// Its pid, when the MPI launcher said it (Open MPI may say 0: unknown).
    pub pid: Option<u32>,
    /// How it ended.
    pub how: How,
}

/// Whether `line` is one the verdict reads.
pub fn is_note(line: &str) -> bool {
    let banner = in_banner(line);
    let line = strip_banner(line);
    line.starts_with("Process name:")
        || line.starts_with("Exit code:")
        || line.starts_with("mpirun noticed that process rank")
        || (banner && (line.starts_with("PID ") || line.starts_with("EXIT CODE:")))
        || line.starts_with("YOUR APPLICATION TERMINATED WITH THE EXIT STRING:")
}

/// Whether `line` is inside Hydra's `=` banner.
fn in_banner(line: &str) -> bool {
    line.trim_start().starts_with('=')
}

/// Reads the first failing process from the kept lines, if they name one.
pub fn culprit(lines: &[String]) -> Option<Culprit> {
    let mut rank = None;
    let mut pid = None;
    let mut code = None;
    let mut signal = None;
    for raw in lines {
        let banner = in_banner(raw);
        let line = strip_banner(raw);
        if let Some(rest) = line.strip_prefix("mpirun noticed that process rank") {
            // "R with PID P on node N exited on signal S (Name)."
            let words: Vec<&str> = rest.split_whitespace().collect();
            let rank = words.first().and_then(|w| w.parse().ok());
            let pid = word_after(&words, "PID").filter(|&p| p != 0);
            if let Some(signal) = word_after(&words, "signal") {
                return Some(Culprit {
                    rank,
                    pid,
                    how: How::Signalled(signal as i32),
                });
            }
        } else if let Some(name) = line.strip_prefix("Process name:") {
            // "[[jobid,1],R]": the rank is the last number.
            rank = name
                .trim()
                .trim_end_matches(']')
                .rsplit(',')
                .next()
                .and_then(|r| r.trim().parse().ok());
        } else if let Some(value) = line
            .strip_prefix("Exit code:")
            .or_else(|| line.strip_prefix("EXIT CODE:").filter(|_| banner))
        {
            code = value.trim().parse::<i32>().ok();
        } else if let Some(rest) = line.strip_prefix("PID ").filter(|_| banner) {
            pid = rest.split_whitespace().next().and_then(|p| p.parse().ok());
        } else if let Some(text) =
            line.strip_prefix("YOUR APPLICATION TERMINATED WITH THE EXIT STRING:")
        {
            // "Killed (signal 9)"
            signal = text
                .split("(signal")
                .nth(1)
                .and_then(|s| s.trim().trim_end_matches(')').trim().parse::<i32>().ok());
        }
    }
    let how = match (signal, code) {
        (Some(signal), _) => How::Signalled(signal),
        (None, Some(code)) if code != 0 => How::Exited(code),
        _ => return None,
    };
    if rank.is_none() && pid.is_none() {
        return None;
    }
    Some(Culprit { rank, pid, how })
}

/// The line without Hydra's `=   ` banner margin and surrounding space.
fn strip_banner(line: &str) -> &str {
    line.trim().trim_start_matches('=').trim()
}

/// The number right after `word` in `words`.
fn word_after(words: &[&str], word: &str) -> Option<u32> {
    let at = words.iter().position(|w| *w == word)?;
    words
        .get(at + 1)?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(text: &str) -> Vec<String> {
        text.lines()
            .filter(|l| is_note(l))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn open_mpi_names_the_first_exit() {
        let text = "--------------------------------------------------------------------------
mpirun detected that one or more processes exited with non-zero status, thus causing
the job to be terminated. The first process to do so was:

  Process name: [[23223,1],2]
  Exit code:    3
--------------------------------------------------------------------------";
        assert_eq!(
            culprit(&kept(text)),
            Some(Culprit {
                rank: Some(2),
                pid: None,
                how: How::Exited(3)
            })
        );
    }

    #[test]
    fn open_mpi_names_a_signal() {
        let text =
            "mpirun noticed that process rank 1 with PID 0 on node vm exited on signal 9 (Killed).";
        assert_eq!(
            culprit(&kept(text)),
            Some(Culprit {
                rank: Some(1),
                pid: None,
                how: How::Signalled(9)
            })
        );
        let text = "mpirun noticed that process rank 4 with PID 4242 on node n1 exited on signal 6 (Aborted).";
        assert_eq!(
            culprit(&kept(text)),
            Some(Culprit {
                rank: Some(4),
                pid: Some(4242),
                how: How::Signalled(6)
            })
        );
    }

    #[test]
    fn hydra_names_a_pid() {
        let text = "
===================================================================================
=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES
=   PID 22349 RUNNING AT vm
=   EXIT CODE: 9
=   CLEANING UP REMAINING PROCESSES
=   YOU CAN IGNORE THE BELOW CLEANUP MESSAGES
===================================================================================
YOUR APPLICATION TERMINATED WITH THE EXIT STRING: Killed (signal 9)";
        assert_eq!(
            culprit(&kept(text)),
            Some(Culprit {
                rank: None,
                pid: Some(22349),
                how: How::Signalled(9)
            })
        );
    }

    #[test]
    fn nothing_said_is_no_culprit() {
        assert_eq!(culprit(&kept("hello\nworld\n")), None);
        // An exit code without a process.
        assert_eq!(culprit(&["  Exit code:    3".to_string()]), None);
        assert!(!is_note("rank 2 says hello"));
        assert!(!is_note("PID 12 is mine"));
    }
}
