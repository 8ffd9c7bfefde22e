//! The exit summary and the exit code of `rankview run`.
//!
//! Owns the words printed after a job (one line when it succeeded; else one
//! line per rank with a problem, then one line for the job) and the mapping
//! from how the job ended to the launcher's exit code. Pure: it reads an
//! [`Outcome`] and a [`Report`] and returns text, so every case is unit
//! tested here.

use nix::sys::signal::Signal;

use crate::status::{RankState, Report};
use crate::supervisor::{End, Outcome, Stop};

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
}

/// The summary lines, each to be printed to stderr with a `rankview: `
/// prefix. `swept` are the pids of leftover processes `orphans` killed.
pub fn lines(job: &Job<'_>, outcome: &Outcome, report: &Report, swept: &[u32]) -> Vec<String> {
    // A job that succeeded gets one line: a rank without an end line then
    // most likely wrote to a directory its node cannot see (multi-node jobs).
    let mut lines = if report.any_reported() && !succeeded(outcome, report) {
        rank_lines(job, report, swept)
    } else {
        Vec::new()
    };
    if !swept.is_empty() {
        let n = swept.len();
        let processes = if n == 1 { "process" } else { "processes" };
        lines.push(format!(
            "killed {n} {processes} of the job still running after {} ended",
            job.launcher
        ));
    }
    lines.push(job_line(job, outcome, report));
    lines
}

/// Whether the job as a whole succeeded.
pub fn succeeded(outcome: &Outcome, report: &Report) -> bool {
    outcome.stop == Stop::None && outcome.end == End::Exited(0) && !report.any_failed()
}

/// The launcher's exit code: 124 on timeout; otherwise the MPI launcher's
/// code, or 128+S if it was killed by signal S; and 1 if it exited 0 while
/// a rank reported a failure.
pub fn exit_code(outcome: &Outcome, report: &Report) -> u8 {
    if outcome.stop == Stop::TimedOut {
        return TIMEOUT_EXIT_CODE;
    }
    match outcome.end {
        End::Exited(0) if report.any_failed() => 1,
        End::Exited(code) => u8::try_from(code & 0xff).unwrap_or(1),
        End::Signalled(signal) => u8::try_from(128 + signal).unwrap_or(u8::MAX),
    }
}

/// One line per rank that did not end with `ok`; runs of ranks that never
/// started are merged (`ranks 3-9: never started`).
fn rank_lines(job: &Job<'_>, report: &Report, swept: &[u32]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut never_started: Option<(u32, u32)> = None;
    let flush = |run: &mut Option<(u32, u32)>, lines: &mut Vec<String>| {
        if let Some((first, last)) = run.take() {
            lines.push(if first == last {
                format!("rank {first}: never started")
            } else {
                format!("ranks {first}-{last}: never started")
            });
        }
    };
    for (rank, state) in (0u32..).zip(&report.ranks) {
        if *state == RankState::NeverStarted {
            never_started = match never_started {
                Some((first, _)) => Some((first, rank)),
                None => Some((rank, rank)),
            };
            continue;
        }
        flush(&mut never_started, &mut lines);
        match state {
            RankState::Ok | RankState::NeverStarted => {}
            RankState::Failed { message } => {
                let mut message_lines = message.lines();
                let first = message_lines.next().unwrap_or("");
                lines.push(format!("rank {rank}: failed: {first}"));
                lines.extend(message_lines.map(|more| format!("    {more}")));
            }
            RankState::DiedWithoutReporting { pid, host } => {
                let place = match (pid, host) {
                    (Some(pid), Some(host)) => format!(" (pid {pid} on {host})"),
                    (Some(pid), None) => format!(" (pid {pid})"),
                    (None, Some(host)) => format!(" (on {host})"),
                    (None, None) => String::new(),
                };
                lines.push(if pid.is_some_and(|pid| swept.contains(&pid)) {
                    format!(
                        "rank {rank}: still running after {} ended; killed it{place}",
                        job.launcher
                    )
                } else {
                    format!("rank {rank}: died without reporting (killed by a signal or aborted){place}")
                });
            }
        }
    }
    flush(&mut never_started, &mut lines);
    lines
}

/// `job finished: 3 ranks, exit 0, 1.23 s` and its failing variants.
fn job_line(job: &Job<'_>, outcome: &Outcome, report: &Report) -> String {
    let headline = match outcome.stop {
        Stop::TimedOut => format!("job timed out after {} s", job.timeout_text.unwrap_or("?")),
        Stop::Interrupted => "job interrupted".to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const JOB: Job<'static> = Job {
        ranks: 3,
        launcher: "mpirun",
        timeout_text: Some("1"),
    };

    fn outcome(end: End, stop: Stop) -> Outcome {
        Outcome {
            end,
            stop,
            elapsed: Duration::from_millis(1234),
        }
    }

    fn report(ranks: Vec<RankState>) -> Report {
        Report { ranks }
    }

    fn nothing() -> Report {
        report(vec![RankState::NeverStarted; 3])
    }

    #[test]
    fn success_is_one_line() {
        let ok = report(vec![RankState::Ok; 3]);
        let out = outcome(End::Exited(0), Stop::None);
        assert_eq!(
            lines(&JOB, &out, &ok, &[]),
            ["job finished: 3 ranks, exit 0, 1.23 s"]
        );
        assert_eq!(exit_code(&out, &ok), 0);
        // Not a rankview program: no status files, same line.
        assert_eq!(
            lines(&JOB, &out, &nothing(), &[]),
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
            lines(&JOB, &out, &partial, &[]),
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
            RankState::DiedWithoutReporting {
                pid: Some(42),
                host: Some("n1".into()),
            },
        ]);
        let out = outcome(End::Exited(1), Stop::None);
        assert_eq!(
            lines(&JOB, &out, &states, &[]),
            [
                "rank 1: failed: task 7 panicked: boom",
                "    at src/main.rs:3",
                "rank 2: died without reporting (killed by a signal or aborted) (pid 42 on n1)",
                "job failed: 3 ranks, exit 1, 1.23 s",
            ]
        );
        assert_eq!(exit_code(&out, &states), 1);
    }

    #[test]
    fn never_started_runs_are_merged() {
        let mut states = vec![RankState::Ok];
        states.extend(vec![RankState::NeverStarted; 4]);
        states.push(RankState::Ok);
        states.push(RankState::NeverStarted);
        let job = Job { ranks: 7, ..JOB };
        let out = outcome(End::Exited(1), Stop::None);
        assert_eq!(
            lines(&job, &out, &report(states), &[]),
            [
                "ranks 1-4: never started",
                "rank 6: never started",
                "job failed: 7 ranks, exit 1, 1.23 s"
            ]
        );
    }

    #[test]
    fn signals_timeouts_and_interrupts() {
        let out = outcome(End::Signalled(9), Stop::None);
        assert_eq!(
            lines(&JOB, &out, &nothing(), &[]),
            ["job failed: 3 ranks, mpirun killed by SIGKILL (signal 9), 1.23 s"]
        );
        assert_eq!(exit_code(&out, &nothing()), 137);

        let out = outcome(End::Exited(1), Stop::TimedOut);
        assert_eq!(
            lines(&JOB, &out, &nothing(), &[]),
            ["job timed out after 1 s: 3 ranks, exit 1, 1.23 s"]
        );
        assert_eq!(exit_code(&out, &nothing()), TIMEOUT_EXIT_CODE);

        let out = outcome(End::Exited(130), Stop::Interrupted);
        assert_eq!(
            lines(&JOB, &out, &nothing(), &[]),
            ["job interrupted: 3 ranks, exit 130, 1.23 s"]
        );
        assert_eq!(exit_code(&out, &nothing()), 130);
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
            lines(&JOB, &out, &states, &[]).last().unwrap(),
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
        let out = outcome(End::Signalled(9), Stop::Interrupted);
        assert_eq!(
            lines(&JOB, &out, &states, &[7, 8]),
            [
                "rank 1: still running after mpirun ended; killed it (pid 7)",
                "killed 2 processes of the job still running after mpirun ended",
                "job interrupted: 3 ranks, mpirun killed by SIGKILL (signal 9), 1.23 s"
            ]
        );
    }
}
