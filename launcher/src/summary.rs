//! The exit summary and the exit code of `rankview run`.
//!
//! Owns the words printed after a job and the mapping from how the job ended
//! to the launcher's exit code. Pure: it reads an [`Outcome`], a [`Report`]
//! and the MPI launcher's [`Culprit`] and returns text, so every case is
//! unit tested here.
//!
//! ## The rules
//!
//! - A job that succeeded gets one line.
//! - Otherwise each rank with something to say gets a line, and ranks with
//!   the same line share it (`ranks 0-3, 7: ended without reporting`).
//! - The rank that failed first is said so, when that is known: the MPI
//!   launcher named it as the first (`rank 2: first to fail: exited with
//!   status 3`; Open MPI and srun do), unless its own report says it only
//!   failed because another rank did (an engine whose client failed); or
//!   it is the rank that reported a failure of its own, the only one, while
//!   every other rank reported how it ended (`rank 0: first to fail: <its
//!   message>`), or the one such a consequence names. When ranks died and neither tells which was
//!   first (MPICH's Hydra names a process it may have killed itself), a line
//!   says the first is not known. A job that was stopped names no first
//!   from the MPI launcher: its ranks died because they were stopped.
//!   The other ranks are worded neutrally (`ended without reporting`),
//!   because most of them were only taken down with the job.
//! - A pid names a rank only together with its host: nodes (containers) may
//!   each have their own pids. A rank killed by `orphans` (a process of
//!   this machine) is one reported on this host.
//! - A rank with no status file while others wrote one is `status unknown`:
//!   it never started, or its node cannot see the status directory. When no
//!   rank wrote one in a failed job whose program links an MPI, the MPI
//!   launcher's hint (e.g. srun's PMI plugin) is printed.
//! - Exit code: 128 + S after a stop request by signal S (130 for SIGINT,
//!   143 for SIGTERM, 129 for SIGHUP, 131 for SIGQUIT), whatever the MPI
//!   launcher returned; 124 after `--timeout`; otherwise the MPI launcher's
//!   code (128 + S if it was killed by signal S), and 1 if it exited 0
//!   while a rank reported a failure.

use nix::sys::signal::Signal;

use crate::status::{RankState, Report};
use crate::supervisor::{End, Outcome, Stop};
use crate::verdict::{Culprit, How};

/// The exit code when `--timeout` expired (as `timeout(1)` uses).
pub const TIMEOUT_EXIT_CODE: u8 = 124;

/// What the summary needs besides the outcome and the report.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// Number of ranks.
    pub ranks: u32,
    /// The MPI launcher's name, e.g. `mpirun`.
    pub launcher: &'a str,
    /// `--timeout` as the user wrote it.
    pub timeout_text: Option<&'a str>,
    /// This machine's host name (where `orphans` kills), when known.
    pub local_host: Option<&'a str>,
    /// The line to print when no rank started (see `plan`).
    pub no_start_hint: Option<&'a str>,
}

/// What the job left behind to be summarised.
#[derive(Debug, Clone, Copy)]
pub struct Ending<'a> {
    /// How the MPI launcher ended, and whether we stopped it.
    pub outcome: &'a Outcome,
    /// What the ranks reported.
    pub report: &'a Report,
    /// Pids of leftover processes `orphans` killed (on this machine).
    pub swept: &'a [u32],
    /// A failing process, as the MPI launcher named it.
    pub culprit: Option<&'a Culprit>,
}

/// The summary lines, each to be printed to stderr with a `rankview: `
/// prefix.
pub fn lines(job: &Job<'_>, ending: &Ending<'_>) -> Vec<String> {
    let failed = !succeeded(ending.outcome, ending.report);
    let mut lines = Vec::new();
    if failed {
        let first = first_to_fail(job, ending);
        lines = merged(rank_entries(job, ending, &first));
        if let First::NotKnown(text) = first {
            lines.push(text);
        }
        let stopped = ending.outcome.stop != Stop::None;
        if let Some(hint) = job.no_start_hint {
            if !stopped && !ending.report.any_reported() {
                lines.push(hint.to_string());
            }
        }
    }
    if !ending.swept.is_empty() {
        let n = ending.swept.len();
        let processes = if n == 1 { "process" } else { "processes" };
        lines.push(format!(
            "killed {n} {processes} of the job still running after {} ended",
            job.launcher
        ));
    }
    lines.push(job_line(job, ending.outcome, ending.report));
    lines
}

/// Whether the job as a whole succeeded.
pub fn succeeded(outcome: &Outcome, report: &Report) -> bool {
    outcome.stop == Stop::None && outcome.end == End::Exited(0) && !report.any_failed()
}

/// The launcher's exit code (see the module docs).
pub fn exit_code(outcome: &Outcome, report: &Report) -> u8 {
    match outcome.stop {
        Stop::Interrupted(signal) => return u8::try_from(128 + signal).unwrap_or(u8::MAX),
        Stop::TimedOut => return TIMEOUT_EXIT_CODE,
        Stop::None => {}
    }
    match outcome.end {
        End::Exited(0) if report.any_failed() => 1,
        End::Exited(code) => u8::try_from(code & 0xff).unwrap_or(1),
        End::Signalled(signal) => u8::try_from(128 + signal).unwrap_or(u8::MAX),
    }
}

/// Which rank failed first, as far as is known.
#[derive(Debug, Clone, PartialEq, Eq)]
enum First {
    /// The MPI launcher named this rank as the first, ending this way.
    Named(u32, How),
    /// This rank is the one that reported a failure of its own.
    Reported(u32),
    /// Ranks died, and which was first is not known: this line says so.
    NotKnown(String),
    /// Nothing to say.
    Nobody,
}

impl First {
    /// The rank named first, if any.
    fn rank(&self) -> Option<u32> {
        match self {
            First::Named(rank, _) | First::Reported(rank) => Some(*rank),
            First::NotKnown(_) | First::Nobody => None,
        }
    }
}

/// The rule of the module docs for the first rank to fail.
fn first_to_fail(job: &Job<'_>, ending: &Ending<'_>) -> First {
    let report = ending.report;
    let stopped = ending.outcome.stop != Stop::None;
    let rank_of = |c: &Culprit| {
        c.rank
            .or_else(|| c.pid.and_then(|pid| report.rank_of(pid, c.host.as_deref())))
            .filter(|&rank| rank < job.ranks)
    };
    // The rank a named culprit failed because of.
    let mut because_of = None;
    if let Some(culprit) = ending.culprit.filter(|c| c.first && !stopped) {
        if let Some(rank) = rank_of(culprit) {
            match report.ranks.get(rank as usize) {
                // It ended well: the MPI launcher's words are not about it.
                Some(RankState::Ok) => {}
                Some(state) if state.caused_by().is_some() => because_of = state.caused_by(),
                // Its own report says more than its exit status: one line;
                // when other ranks reported the same, their shared line
                // says it (none of them is singled out).
                Some(state @ RankState::Failed { message }) if state.failed_on_its_own() => {
                    let same = |s: &RankState| matches!(s, RankState::Failed { message: m } if m == message);
                    return if report.ranks.iter().filter(|s| same(s)).count() > 1 {
                        First::Nobody
                    } else {
                        First::Reported(rank)
                    };
                }
                _ => return First::Named(rank, culprit.how),
            }
        }
    }
    let own: Vec<u32> = (0u32..)
        .zip(&report.ranks)
        .filter(|(_, state)| state.failed_on_its_own())
        .map(|(rank, _)| rank)
        .collect();
    // A rank that died without a word, or whose status is unknown, may have
    // failed before the one that reported, and caused its failure.
    let died = report
        .ranks
        .iter()
        .any(|s| matches!(s, RankState::DiedWithoutReporting { .. }));
    let all_reported = !died && !report.ranks.contains(&RankState::NeverStarted);
    let reported = because_of
        .filter(|rank| own.contains(rank))
        .or(match own[..] {
            [only] if all_reported => Some(only),
            _ => None,
        });
    if let Some(rank) = reported {
        return First::Reported(rank);
    }
    let unsure = ending.culprit.filter(|c| !c.first);
    if stopped || (!died && unsure.is_none()) {
        return First::Nobody;
    }
    let said = match unsure {
        Some(culprit) => {
            let process = match (culprit.pid, culprit.host.as_deref()) {
                (Some(pid), Some(host)) => format!("pid {pid} on {host}"),
                (Some(pid), None) => format!("pid {pid}"),
                _ => "a process".to_string(),
            };
            let process = match rank_of(culprit) {
                Some(rank) => format!("rank {rank} ({process})"),
                None => process,
            };
            format!(
                "{} names {process}, {}, which it may have killed itself",
                job.launcher,
                how(culprit.how)
            )
        }
        None => format!("{} does not say", job.launcher),
    };
    First::NotKnown(format!("which rank failed first is not known: {said}"))
}

/// One rank's line before merging: the text (continuation lines after a
/// newline), and a detail shown only when no other rank shares the text.
struct Entry {
    rank: u32,
    text: String,
    detail: Option<String>,
}

/// The lines of each rank with something to say, rank by rank.
fn rank_entries(job: &Job<'_>, ending: &Ending<'_>, first: &First) -> Vec<Entry> {
    let report = ending.report;
    let anyone_reported = report.any_reported();
    let first_rank = first.rank();
    let mut entries = Vec::new();
    for (rank, state) in (0u32..).zip(&report.ranks) {
        if let First::Named(named, ended) = first {
            if *named == rank {
                entries.push(Entry {
                    rank,
                    text: format!("first to fail: {}", how(*ended)),
                    detail: None,
                });
            }
        }
        let entry = |text: String, detail: Option<String>| Entry { rank, text, detail };
        match state {
            RankState::Ok => {}
            RankState::NeverStarted if anyone_reported && first_rank != Some(rank) => {
                entries.push(entry(
                    "status unknown: no report (it never started, or its node cannot write to the \
                 status directory)"
                        .to_string(),
                    None,
                ))
            }
            RankState::NeverStarted => {}
            RankState::Failed { message } if *first == First::Reported(rank) => {
                entries.push(entry(format!("first to fail: {message}"), None))
            }
            // Stopped because another rank failed: nothing of its own to say.
            state @ RankState::Failed { .. } if state.caused_by().is_some() => {}
            RankState::Failed { message } => {
                entries.push(entry(format!("failed: {message}"), None))
            }
            RankState::DiedWithoutReporting { pid, host } => {
                let on = host
                    .as_ref()
                    .map(|h| format!(" on {h}"))
                    .unwrap_or_default();
                let detail = pid.map(|pid| format!("pid {pid}"));
                let here = match (host.as_deref(), job.local_host) {
                    (Some(host), Some(local)) => host == local,
                    _ => true,
                };
                let swept = here && pid.is_some_and(|pid| ending.swept.contains(&pid));
                let text = if swept {
                    format!("still running after {} ended; killed it{on}", job.launcher)
                } else if first_rank == Some(rank) {
                    continue;
                } else {
                    format!("ended without reporting{on}")
                };
                entries.push(entry(text, detail));
            }
        }
    }
    entries
}

/// Merges entries with the same text into one line naming every rank, in
/// the order of each text's first rank; multi-line texts are indented.
fn merged(entries: Vec<Entry>) -> Vec<String> {
    let mut groups: Vec<(String, Vec<u32>, Option<String>)> = Vec::new();
    for entry in entries {
        match groups.iter_mut().find(|(text, _, _)| *text == entry.text) {
            Some((_, ranks, _)) => ranks.push(entry.rank),
            None => groups.push((entry.text, vec![entry.rank], entry.detail)),
        }
    }
    let mut lines = Vec::new();
    for (text, ranks, detail) in groups {
        let mut text_lines = text.lines();
        let first = text_lines.next().unwrap_or("");
        let detail = match (&detail, ranks.len()) {
            (Some(detail), 1) => format!(" ({detail})"),
            _ => String::new(),
        };
        lines.push(format!("{}: {first}{detail}", rank_list(&ranks)));
        lines.extend(text_lines.map(|more| format!("    {more}")));
    }
    lines
}

/// `rank 3`, `ranks 0-3`, `ranks 1, 4-6, 9`.
fn rank_list(ranks: &[u32]) -> String {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &rank in ranks {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == rank => *last = rank,
            _ => runs.push((rank, rank)),
        }
    }
    let text: Vec<String> = runs
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    let noun = if ranks.len() == 1 { "rank" } else { "ranks" };
    format!("{noun} {}", text.join(", "))
}

/// `exited with status 3`, `killed by SIGKILL (signal 9)`.
fn how(how: How) -> String {
    match how {
        How::Exited(code) => format!("exited with status {code}"),
        How::Signalled(signal) => format!("killed by {}", signal_name(signal)),
    }
}

/// `job finished: 3 ranks, exit 0, 1.23 s` and its failing variants.
fn job_line(job: &Job<'_>, outcome: &Outcome, report: &Report) -> String {
    let headline = match outcome.stop {
        Stop::TimedOut => format!("job timed out after {} s", job.timeout_text.unwrap_or("?")),
        Stop::Interrupted(signal) => format!("job interrupted by {}", signal_only(signal)),
        Stop::None if succeeded(outcome, report) => "job finished".to_string(),
        Stop::None => "job failed".to_string(),
    };
    let status = match outcome.end {
        End::Exited(code) => format!("exit {code}"),
        End::Signalled(signal) => format!("{} killed by {}", job.launcher, signal_name(signal)),
    };
    format!(
        "{headline}: {} ranks, {status}, {:.2} s",
        job.ranks,
        outcome.elapsed.as_secs_f64()
    )
}

/// `SIGKILL (signal 9)`, or `signal 77` for a number nix does not know.
fn signal_name(signal: i32) -> String {
    match Signal::try_from(signal) {
        Ok(known) => format!("{} (signal {signal})", known.as_str()),
        Err(_) => format!("signal {signal}"),
    }
}

/// `SIGTERM`, or `signal 77`.
fn signal_only(signal: i32) -> String {
    Signal::try_from(signal).map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Process;
    use std::time::Duration;

    const JOB: Job<'static> = Job {
        ranks: 3,
        launcher: "mpirun",
        timeout_text: Some("1"),
        local_host: Some("n1"),
        no_start_hint: None,
    };

    fn outcome(end: End, stop: Stop) -> Outcome {
        Outcome {
            end,
            stop,
            elapsed: Duration::from_millis(1234),
        }
    }

    fn report(ranks: Vec<RankState>) -> Report {
        let processes = ranks
            .iter()
            .map(|s| match s {
                RankState::DiedWithoutReporting { pid, host } => Process {
                    pid: *pid,
                    host: host.clone(),
                },
                _ => Process::default(),
            })
            .collect();
        Report { ranks, processes }
    }

    fn nothing() -> Report {
        report(vec![RankState::NeverStarted; 3])
    }

    fn died(pid: u32) -> RankState {
        RankState::DiedWithoutReporting {
            pid: Some(pid),
            host: Some("n1".into()),
        }
    }

    fn summary(job: &Job<'_>, out: &Outcome, report: &Report) -> Vec<String> {
        summary_with(job, out, report, &[], None)
    }

    fn summary_with(
        job: &Job<'_>,
        out: &Outcome,
        report: &Report,
        swept: &[u32],
        culprit: Option<Culprit>,
    ) -> Vec<String> {
        lines(
            job,
            &Ending {
                outcome: out,
                report,
                swept,
                culprit: culprit.as_ref(),
            },
        )
    }

    #[test]
    fn success_is_one_line() {
        let ok = report(vec![RankState::Ok; 3]);
        let out = outcome(End::Exited(0), Stop::None);
        assert_eq!(
            summary(&JOB, &out, &ok),
            ["job finished: 3 ranks, exit 0, 1.23 s"]
        );
        assert_eq!(exit_code(&out, &ok), 0);
        // Not a rankview program: no status files, same line.
        assert_eq!(
            summary(&JOB, &out, &nothing()),
            ["job finished: 3 ranks, exit 0, 1.23 s"]
        );
        // Ranks that could not report (status directory not shared across
        // nodes) do not turn a success into a list of problems.
        let partial = report(vec![
            RankState::Ok,
            RankState::NeverStarted,
            RankState::NeverStarted,
        ]);
        assert_eq!(
            summary(&JOB, &out, &partial),
            ["job finished: 3 ranks, exit 0, 1.23 s"]
        );
        assert_eq!(exit_code(&out, &partial), 0);
    }

    #[test]
    fn failure_names_each_problem_rank() {
        let states = report(vec![
            RankState::Ok,
            RankState::Failed {
                message: "task 7 panicked: boom\nat src/main.rs:3".into(),
            },
            died(42),
        ]);
        let out = outcome(End::Exited(1), Stop::None);
        assert_eq!(
            summary(&JOB, &out, &states),
            [
                "rank 1: failed: task 7 panicked: boom",
                "    at src/main.rs:3",
                "rank 2: ended without reporting on n1 (pid 42)",
                "which rank failed first is not known: mpirun does not say",
                "job failed: 3 ranks, exit 1, 1.23 s",
            ]
        );
        assert_eq!(exit_code(&out, &states), 1);
    }

    #[test]
    fn the_first_failing_rank_is_named_and_the_others_merged() {
        let states = report((0..64).map(|r| died(1000 + r)).collect());
        let job = Job { ranks: 64, ..JOB };
        let out = outcome(End::Exited(3), Stop::None);
        assert_eq!(
            summary_with(
                &job,
                &out,
                &states,
                &[],
                Some(Culprit::named(2, How::Exited(3)))
            ),
            [
                "ranks 0-1, 3-63: ended without reporting on n1",
                "rank 2: first to fail: exited with status 3",
                "job failed: 64 ranks, exit 3, 1.23 s",
            ]
        );
        // Rank 0 exiting 3 is not "killed by a signal".
        let lines = summary_with(
            &JOB,
            &out,
            &nothing(),
            &[],
            Some(Culprit::named(0, How::Exited(3))),
        );
        assert_eq!(
            lines,
            [
                "rank 0: first to fail: exited with status 3",
                "job failed: 3 ranks, exit 3, 1.23 s"
            ]
        );
        // A culprit that is no rank of the job, or one that ended well, is
        // not believed.
        let ok = report(vec![RankState::Ok, died(1), died(2)]);
        for culprit in [
            Culprit::named(7, How::Exited(3)),
            Culprit::named(0, How::Exited(3)),
        ] {
            let lines = summary_with(&JOB, &out, &ok, &[], Some(culprit));
            assert!(
                !lines.iter().any(|l| l.contains("first to fail")),
                "{lines:?}"
            );
        }
    }

    /// Item 9 of issue 22: Hydra names a process by pid, but not the first
    /// to fail (it may be one it killed while cleaning up): the first is
    /// not known, and the pid is named with its rank.
    #[test]
    fn hydra_names_no_first_rank() {
        let states = report(vec![died(21518), died(21519), died(21520)]);
        let job = Job {
            launcher: "mpiexec.mpich",
            ..JOB
        };
        let out = outcome(End::Exited(9), Stop::None);
        let culprit = Culprit {
            rank: None,
            pid: Some(21519),
            host: Some("n1".into()),
            how: How::Signalled(9),
            first: false,
        };
        assert_eq!(
            summary_with(&job, &out, &states, &[], Some(culprit)),
            [
                "ranks 0-2: ended without reporting on n1",
                "which rank failed first is not known: mpiexec.mpich names rank 1 (pid 21519 on \
                 n1), killed by SIGKILL (signal 9), which it may have killed itself",
                "job failed: 3 ranks, exit 9, 1.23 s",
            ]
        );
    }

    /// Item 7: a pid with another host is another process.
    #[test]
    fn a_pid_names_a_rank_only_on_its_host() {
        let states = report(vec![died(50), died(51), died(52)]);
        let mut culprit = Culprit::named(0, How::Signalled(9));
        culprit.rank = None;
        culprit.pid = Some(51);
        culprit.host = Some("n2".into());
        let out = outcome(End::Exited(137), Stop::None);
        let lines = summary_with(&JOB, &out, &states, &[], Some(culprit.clone()));
        assert!(
            !lines.iter().any(|l| l.contains("first to fail")),
            "{lines:?}"
        );
        culprit.host = Some("n1".into());
        let lines = summary_with(&JOB, &out, &states, &[], Some(culprit));
        assert!(
            lines.contains(&"rank 1: first to fail: killed by SIGKILL (signal 9)".to_string()),
            "{lines:?}"
        );
        // Pid 51 killed here is not rank 1 when rank 1 ran on another host.
        let mut states = states;
        states.ranks[1] = RankState::DiedWithoutReporting {
            pid: Some(51),
            host: Some("n2".into()),
        };
        let out = outcome(End::Signalled(9), Stop::Interrupted(2));
        let lines = summary_with(&JOB, &out, &states, &[51], None);
        assert_eq!(
            lines[1], "rank 1: ended without reporting on n2 (pid 51)",
            "{lines:?}"
        );
    }

    /// Item 5: mpirun names an engine that only exited because the client
    /// failed; the client, whose failure was its own, is the first.
    #[test]
    fn a_consequence_is_not_the_first_failure() {
        let client = "engine 1: task 3 (panic): engine-side panic";
        let states = report(vec![
            RankState::Failed {
                message: client.into(),
            },
            RankState::Failed {
                message: "the client on rank 0 failed".into(),
            },
            RankState::Failed {
                message: "the client on rank 0 failed".into(),
            },
        ]);
        let out = outcome(End::Exited(1), Stop::None);
        // The engines that only stopped are not mentioned.
        let expected = [
            format!("rank 0: first to fail: {client}"),
            "job failed: 3 ranks, exit 1, 1.23 s".to_string(),
        ];
        assert_eq!(
            summary_with(
                &JOB,
                &out,
                &states,
                &[],
                Some(Culprit::named(1, How::Exited(1)))
            ),
            expected
        );
        // The same without a word from the MPI launcher.
        assert_eq!(summary(&JOB, &out, &states), expected);
    }

    /// A stopped job names no first from the launcher: its ranks died
    /// because they were stopped.
    #[test]
    fn a_stopped_job_names_no_first() {
        let states = report(vec![died(1), died(2), died(3)]);
        let out = outcome(End::Exited(143), Stop::Interrupted(15));
        let lines = summary_with(
            &JOB,
            &out,
            &states,
            &[],
            Some(Culprit::named(1, How::Signalled(9))),
        );
        assert_eq!(
            lines,
            [
                "ranks 0-2: ended without reporting on n1",
                "job interrupted by SIGTERM: 3 ranks, exit 143, 1.23 s"
            ]
        );
    }

    /// Item 3: no rank started in a failed job: the launcher's hint.
    #[test]
    fn no_rank_started_gets_the_hint() {
        let job = Job {
            no_start_hint: Some("no rank started: try --mpi=pmix"),
            ..JOB
        };
        let out = outcome(End::Exited(1), Stop::None);
        assert_eq!(
            summary(&job, &out, &nothing()),
            [
                "no rank started: try --mpi=pmix",
                "job failed: 3 ranks, exit 1, 1.23 s"
            ]
        );
        let some = report(vec![
            died(1),
            RankState::NeverStarted,
            RankState::NeverStarted,
        ]);
        assert!(!summary(&job, &out, &some).iter().any(|l| l.contains("try")));
        let stopped = outcome(End::Exited(1), Stop::Interrupted(2));
        assert!(!summary(&job, &stopped, &nothing())
            .iter()
            .any(|l| l.contains("try")));
    }

    #[test]
    fn identical_failures_share_a_line() {
        let message = "the MPI launcher started 3 processes, but each sees a world of 1";
        let states = report(vec![
            RankState::Failed {
                message: message.into()
            };
            3
        ]);
        let out = outcome(End::Exited(1), Stop::None);
        assert_eq!(
            summary(&JOB, &out, &states),
            [
                format!("ranks 0-2: failed: {message}"),
                "job failed: 3 ranks, exit 1, 1.23 s".to_string()
            ]
        );
    }

    #[test]
    fn ranks_without_a_file_are_unknown_when_others_reported() {
        let mut states = vec![RankState::Failed {
            message: "boom".into(),
        }];
        states.extend(vec![RankState::NeverStarted; 4]);
        states.push(RankState::Ok);
        states.push(RankState::NeverStarted);
        let job = Job { ranks: 7, ..JOB };
        let out = outcome(End::Exited(1), Stop::None);
        assert_eq!(
            summary(&job, &out, &report(states)),
            [
                "rank 0: failed: boom",
                "ranks 1-4, 6: status unknown: no report (it never started, or its node cannot \
                 write to the status directory)",
                "job failed: 7 ranks, exit 1, 1.23 s"
            ]
        );
    }

    #[test]
    fn signals_timeouts_and_interrupts() {
        let out = outcome(End::Signalled(9), Stop::None);
        assert_eq!(
            summary(&JOB, &out, &nothing()),
            ["job failed: 3 ranks, mpirun killed by SIGKILL (signal 9), 1.23 s"]
        );
        assert_eq!(exit_code(&out, &nothing()), 137);

        let out = outcome(End::Exited(1), Stop::TimedOut);
        assert_eq!(
            summary(&JOB, &out, &nothing()),
            ["job timed out after 1 s: 3 ranks, exit 1, 1.23 s"]
        );
        assert_eq!(exit_code(&out, &nothing()), TIMEOUT_EXIT_CODE);

        let out = outcome(End::Exited(130), Stop::Interrupted(2));
        assert_eq!(
            summary(&JOB, &out, &nothing()),
            ["job interrupted by SIGINT: 3 ranks, exit 130, 1.23 s"]
        );
        assert_eq!(exit_code(&out, &nothing()), 130);
    }

    #[test]
    fn an_interrupt_exits_128_plus_the_signal_whatever_mpirun_said() {
        let ok = report(vec![RankState::Ok; 3]);
        for (signal, code) in [(2, 130), (15, 143), (1, 129), (3, 131)] {
            for end in [End::Exited(0), End::Exited(1), End::Signalled(9)] {
                assert_eq!(
                    exit_code(&outcome(end, Stop::Interrupted(signal)), &ok),
                    code
                );
            }
        }
    }

    #[test]
    fn reported_failure_with_exit_zero_still_fails() {
        let states = report(vec![
            RankState::Failed {
                message: "x".into(),
            },
            RankState::Ok,
            RankState::Ok,
        ]);
        let out = outcome(End::Exited(0), Stop::None);
        assert_eq!(exit_code(&out, &states), 1);
        assert_eq!(
            summary(&JOB, &out, &states).last().unwrap(),
            "job failed: 3 ranks, exit 0, 1.23 s"
        );
    }

    #[test]
    fn swept_ranks_are_named() {
        let states = report(vec![
            RankState::Ok,
            RankState::DiedWithoutReporting {
                pid: Some(7),
                host: None,
            },
            RankState::Ok,
        ]);
        let out = outcome(End::Signalled(9), Stop::Interrupted(2));
        assert_eq!(
            summary_with(&JOB, &out, &states, &[7, 8], None),
            [
                "rank 1: still running after mpirun ended; killed it (pid 7)",
                "killed 2 processes of the job still running after mpirun ended",
                "job interrupted by SIGINT: 3 ranks, mpirun killed by SIGKILL (signal 9), 1.23 s"
            ]
        );
    }

    #[test]
    fn rank_lists() {
        assert_eq!(rank_list(&[3]), "rank 3");
        assert_eq!(rank_list(&[0, 1, 2, 3]), "ranks 0-3");
        assert_eq!(rank_list(&[1, 4, 5, 6, 9]), "ranks 1, 4-6, 9");
    }
}
