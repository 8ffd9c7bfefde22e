//! What the MPI launcher said about the processes that failed.
//!
//! Open MPI's `mpirun` names the first process that failed when a job is
//! aborted ("The first process to do so was: Process name: `[[J,1],R]` /
//! Exit code: C", or "mpirun noticed that process rank R with PID P on node
//! N exited on signal S"), on its stderr. `srun` names each task that ended
//! badly, first the first it heard of ("srun: error: N: task R: Killed",
//! "... task R: Exited with exit code C"), on its stderr. MPICH's Hydra
//! names a process by pid when one dies by a signal ("BAD TERMINATION ...
//! PID P RUNNING AT N / EXIT CODE: C" and "EXIT STRING: Killed (signal 9)"),
//! but not the first to fail: it may be one Hydra killed itself while
//! cleaning up. It says nothing about a plain non-zero exit.
//!
//! This module owns picking those lines out ([`is_note`], used by `relay`)
//! and reading them into a [`Culprit`], by the rules of the launcher that
//! ran the job. The job's own output passes through the same streams, so a
//! rank can print a line in the launcher's words (a log replayed, a nested
//! `mpirun`): only the stream the launcher writes to is read, and for
//! `mpirun` and Hydra, whose verdict comes after every rank ended, the last
//! verdict wins. Naming the rank in the summary, and checking the culprit
//! against what the ranks reported, is `summary`'s job. Pure.

use crate::mpiexec::Flavour;

/// How a failing process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// It exited with this non-zero status.
    Exited(i32),
    /// It was killed by this signal.
    Signalled(i32),
}

/// A process of the job that failed, as the MPI launcher named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Culprit {
    /// Its rank, when the MPI launcher said it.
    pub rank: Option<u32>,
    /// Its pid, when the MPI launcher said it (Open MPI may say 0: unknown).
    pub pid: Option<u32>,
    /// Its host, when the MPI launcher said it.
    pub host: Option<String>,
    /// How it ended.
    pub how: How,
    /// Whether the MPI launcher names it as the first process that failed
    /// (Open MPI, srun), or only as one that did (Hydra).
    pub first: bool,
}

impl Culprit {
    /// A culprit the MPI launcher names, by rank, as the first to fail (for
    /// tests).
    #[cfg(test)]
    pub fn named(rank: u32, how: How) -> Culprit {
        Culprit {
            rank: Some(rank),
            pid: None,
            host: None,
            how,
            first: true,
        }
    }
}

/// A line of the job's output that the verdict may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Whether it came on the MPI launcher's stderr (else its stdout).
    pub stderr: bool,
    /// The line, without its newline.
    pub text: String,
}

/// The prefix of `srun`'s own error lines.
const SRUN_ERROR: &str = "srun: error: ";

/// Whether `line` is one the verdict may read (for any launcher).
pub fn is_note(line: &str) -> bool {
    let banner = in_banner(line);
    let line = strip_banner(line);
    line.starts_with("Process name:")
        || line.starts_with("Exit code:")
        || line.starts_with("mpirun noticed that process rank")
        || (banner && (line.starts_with("PID ") || line.starts_with("EXIT CODE:")))
        || line.starts_with("YOUR APPLICATION TERMINATED WITH THE EXIT STRING:")
        || (line.starts_with(SRUN_ERROR) && line.contains(": task"))
}

/// The process that failed, read from `notes` by the rules of `flavour`'s
/// launcher (see the module docs); `None` when it names none.
pub fn culprit(flavour: Flavour, notes: &[Note]) -> Option<Culprit> {
    match flavour {
        Flavour::OpenMpi => open_mpi(notes.iter().filter(|n| n.stderr)),
        Flavour::Slurm => srun(notes.iter().filter(|n| n.stderr)),
        Flavour::Mpich => hydra(notes.iter()),
        Flavour::Unknown => None,
    }
}

/// `mpirun`'s last verdict.
fn open_mpi<'a>(notes: impl Iterator<Item = &'a Note>) -> Option<Culprit> {
    let mut found = None;
    let mut named = None;
    for note in notes {
        let line = strip_banner(&note.text);
        if let Some(rest) = line.strip_prefix("mpirun noticed that process rank") {
            // "R with PID P on node N exited on signal S (Name)."
            let words: Vec<&str> = rest.split_whitespace().collect();
            if let Some(signal) = word_after(&words, "signal") {
                found = Some(Culprit {
                    rank: words.first().and_then(|w| w.parse().ok()),
                    pid: word_after(&words, "PID").filter(|&p| p != 0),
                    host: words
                        .iter()
                        .position(|w| *w == "node")
                        .and_then(|at| words.get(at + 1))
                        .map(|h| h.to_string()),
                    how: How::Signalled(signal as i32),
                    first: true,
                });
            }
            named = None;
        } else if let Some(name) = line.strip_prefix("Process name:") {
            // "[[jobid,1],R]": the rank is the last number.
            named = name
                .trim()
                .trim_end_matches(']')
                .rsplit(',')
                .next()
                .and_then(|r| r.trim().parse::<u32>().ok());
        } else if let Some(value) = line.strip_prefix("Exit code:") {
            let code = value.trim().parse::<i32>().ok().filter(|&c| c != 0);
            if let (Some(rank), Some(code)) = (named.take(), code) {
                found = Some(Culprit {
                    rank: Some(rank),
                    pid: None,
                    host: None,
                    how: How::Exited(code),
                    first: true,
                });
            }
        }
    }
    found
}

/// `srun`'s first report of a task that ended badly, when it names one
/// task alone.
fn srun<'a>(mut notes: impl Iterator<Item = &'a Note>) -> Option<Culprit> {
    let line = notes.find_map(|n| n.text.trim().strip_prefix(SRUN_ERROR))?;
    // "HOST: task R: Killed", "HOST: tasks 0-2: Exited with exit code 1".
    let (host, rest) = line.split_once(": ")?;
    let (rank, what) = rest.strip_prefix("task ")?.split_once(": ")?;
    let how = match what.trim().strip_prefix("Exited with exit code ") {
        Some(code) => How::Exited(code.trim().parse().ok()?),
        None => How::Signalled(signal_of_description(what)?),
    };
    Some(Culprit {
        rank: Some(rank.trim().parse().ok()?),
        pid: None,
        host: Some(host.trim().to_string()),
        how,
        first: true,
    })
}

/// Hydra's last banner: a process killed by a signal, not the first.
fn hydra<'a>(notes: impl Iterator<Item = &'a Note>) -> Option<Culprit> {
    let mut pid = None;
    let mut host = None;
    let mut code = None;
    let mut signal = None;
    for note in notes {
        let banner = in_banner(&note.text);
        let line = strip_banner(&note.text);
        if let Some(rest) = line.strip_prefix("PID ").filter(|_| banner) {
            // "P RUNNING AT N": a new banner.
            let mut words = rest.split_whitespace();
            pid = words.next().and_then(|p| p.parse::<u32>().ok());
            host = words.nth(2).map(str::to_string);
            code = None;
            signal = None;
        } else if let Some(value) = line.strip_prefix("EXIT CODE:").filter(|_| banner) {
            code = value.trim().parse::<i32>().ok();
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
    pid?;
    Some(Culprit {
        rank: None,
        pid,
        host,
        how,
        first: false,
    })
}

/// The signal whose `strsignal` text srun printed (`Killed`, `Segmentation
/// fault (core dumped)`).
fn signal_of_description(text: &str) -> Option<i32> {
    const NAMES: [(&str, i32); 15] = [
        ("Hangup", 1),
        ("Interrupt", 2),
        ("Quit", 3),
        ("Illegal instruction", 4),
        ("Trace/breakpoint trap", 5),
        ("Aborted", 6),
        ("Bus error", 7),
        ("Floating point exception", 8),
        ("Killed", 9),
        ("User defined signal 1", 10),
        ("Segmentation fault", 11),
        ("User defined signal 2", 12),
        ("Broken pipe", 13),
        ("Alarm clock", 14),
        ("Terminated", 15),
    ];
    let text = text.trim().trim_end_matches("(core dumped)").trim();
    NAMES
        .iter()
        .find(|(name, _)| *name == text)
        .map(|&(_, signal)| signal)
}

/// Whether `line` is inside Hydra's `=` banner.
fn in_banner(line: &str) -> bool {
    line.trim_start().starts_with('=')
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

    /// The notes of `text`, as if it all came on stderr.
    fn kept(text: &str) -> Vec<Note> {
        on(true, text)
    }

    fn on(stderr: bool, text: &str) -> Vec<Note> {
        text.lines()
            .filter(|l| is_note(l))
            .map(|l| Note {
                stderr,
                text: l.to_string(),
            })
            .collect()
    }

    const OPEN_MPI_EXIT: &str =
        "--------------------------------------------------------------------------
mpirun detected that one or more processes exited with non-zero status, thus causing
the job to be terminated. The first process to do so was:

  Process name: [[23223,1],2]
  Exit code:    3
--------------------------------------------------------------------------";

    #[test]
    fn open_mpi_names_the_first_exit() {
        assert_eq!(
            culprit(Flavour::OpenMpi, &kept(OPEN_MPI_EXIT)),
            Some(Culprit::named(2, How::Exited(3)))
        );
    }

    #[test]
    fn open_mpi_names_a_signal() {
        let text =
            "mpirun noticed that process rank 1 with PID 0 on node vm exited on signal 9 (Killed).";
        let mut expected = Culprit::named(1, How::Signalled(9));
        expected.host = Some("vm".into());
        assert_eq!(culprit(Flavour::OpenMpi, &kept(text)), Some(expected));
        let text = "mpirun noticed that process rank 4 with PID 4242 on node n1 exited on signal 6 (Aborted).";
        let found = culprit(Flavour::OpenMpi, &kept(text)).unwrap();
        assert_eq!((found.rank, found.pid), (Some(4), Some(4242)));
        assert_eq!(found.how, How::Signalled(6));
    }

    /// A rank that prints mpirun's words (a log replayed, a nested mpirun)
    /// does not choose the culprit: its stdout is not read, and on stderr
    /// mpirun's own verdict, which comes last, wins.
    #[test]
    fn a_ranks_own_output_does_not_choose_the_culprit() {
        let replayed =
            "mpirun noticed that process rank 2 with PID 7 on node old exited on signal 9 (Killed).";
        let mut notes = on(false, replayed);
        assert_eq!(culprit(Flavour::OpenMpi, &notes), None);
        notes.extend(kept(replayed));
        notes.extend(kept(OPEN_MPI_EXIT.replace("],2]", "],1]").as_str()));
        assert_eq!(
            culprit(Flavour::OpenMpi, &notes),
            Some(Culprit::named(1, How::Exited(3)))
        );
        // mpirun's words mean nothing under srun or Hydra.
        assert_eq!(culprit(Flavour::Slurm, &kept(replayed)), None);
        assert_eq!(culprit(Flavour::Mpich, &kept(OPEN_MPI_EXIT)), None);
    }

    #[test]
    fn srun_names_the_first_task_it_heard_of() {
        let text = "srun: error: node2: task 3: Killed
srun: Terminating StepId=12.0
slurmstepd: error: *** STEP 12.0 ON node1 CANCELLED AT 2026-11-01T10:00:00 ***
srun: error: node1: tasks 0-2: Killed";
        let mut expected = Culprit::named(3, How::Signalled(9));
        expected.host = Some("node2".into());
        assert_eq!(culprit(Flavour::Slurm, &kept(text)), Some(expected));
        let text = "srun: error: vm: task 1: Exited with exit code 3";
        let found = culprit(Flavour::Slurm, &kept(text)).unwrap();
        assert_eq!((found.rank, found.how), (Some(1), How::Exited(3)));
        let text = "srun: error: vm: task 0: Segmentation fault (core dumped)";
        let found = culprit(Flavour::Slurm, &kept(text)).unwrap();
        assert_eq!(found.how, How::Signalled(11));
        // Several tasks at once: which came first is not said.
        let text = "srun: error: vm: tasks 0-2: Exited with exit code 1";
        assert_eq!(culprit(Flavour::Slurm, &kept(text)), None);
        // On stdout it is a rank's, not srun's.
        assert_eq!(
            culprit(
                Flavour::Slurm,
                &on(false, "srun: error: vm: task 1: Killed")
            ),
            None
        );
    }

    #[test]
    fn hydra_names_a_pid_not_the_first() {
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
            culprit(Flavour::Mpich, &on(false, text)),
            Some(Culprit {
                rank: None,
                pid: Some(22349),
                host: Some("vm".into()),
                how: How::Signalled(9),
                first: false,
            })
        );
    }

    #[test]
    fn nothing_said_is_no_culprit() {
        assert_eq!(culprit(Flavour::OpenMpi, &kept("hello\nworld\n")), None);
        // An exit code without a process.
        assert_eq!(culprit(Flavour::OpenMpi, &kept("  Exit code:    3")), None);
        assert_eq!(culprit(Flavour::Unknown, &kept(OPEN_MPI_EXIT)), None);
        assert!(!is_note("rank 2 says hello"));
        assert!(!is_note("PID 12 is mine"));
        assert!(!is_note("srun: error: something else"));
    }
}
