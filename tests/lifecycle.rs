//! `tests/programs/check_lifecycle.rs` as MPI jobs: what dropping a handle,
//! aborting, and the client returning do to tasks and callbacks, on 3 and 5
//! ranks. `ci/test.sh` runs it again over TCP only, and `ci/test-mpich.sh`
//! under MPICH.

mod common;

use std::time::Duration;

use std::process::Command;

use common::{launcher, mpirun, mpirun_args, program, JobLock};

/// Every check of `check_lifecycle`, in order.
const CHECKS: &[&str] = &[
    "a_map_dependency_outlives_the_map",
    "empty_maps_and_failed_submissions_as_dependencies",
    "a_map_that_could_not_be_submitted_yields_its_error",
    "abort_stops_the_retries_of_a_running_task",
    "dropping_an_imap_aborts_what_it_did_not_start",
    "imap_abort_says_what_it_aborted",
    "queued_direct_requests_can_be_aborted",
    "huge_durations_and_chunks_mean_no_limit",
    "a_task_closing_stdout_leaves_later_output_captured",
    "a_short_tasks_reply_does_not_wait_for_the_next_task",
];

#[test]
fn lifecycle_3_ranks() {
    mpirun(3, "check_lifecycle", &[]).assert_checks("check_lifecycle", CHECKS);
}

#[test]
fn lifecycle_5_ranks() {
    mpirun(5, "check_lifecycle", &[]).assert_checks("check_lifecycle", CHECKS);
}

/// A client that stops an endless `imap` early (`take`, then `break`) and
/// returns: the tasks it left are aborted, and the job ends cleanly well
/// within the shutdown grace (10 s) instead of failing after it.
#[test]
fn stopping_an_endless_imap_ends_the_job_cleanly() {
    for ranks in [3, 5] {
        mpirun(ranks, "check_lifecycle", &["imap_stop"])
            .assert_success()
            .assert_within(Duration::from_secs(9))
            .assert_stdout_contains("check_lifecycle: took [0, 1, 2]")
            .assert_stdout_contains("check_lifecycle: stopped an endless imap");
    }
}

/// A client that returns while `on_done` callbacks still sleep and submit
/// work: the job ends only once both have run to their end.
#[test]
fn callbacks_run_to_their_end_before_the_job_ends() {
    for ranks in [3, 5] {
        mpirun(ranks, "check_lifecycle", &["callbacks"])
            .assert_success()
            .assert_stdout_contains("check_lifecycle: the client returns")
            .assert_stdout_contains("check_lifecycle: the sleeping callback ended")
            .assert_stdout_contains("check_lifecycle: the callback's task ran on engine");
    }
}

/// A callback that never returns does not keep the job alive: after the
/// shutdown grace (2 s here) the job ends, non-zero, naming it.
#[test]
fn a_callback_that_never_returns_ends_the_job_after_the_grace() {
    mpirun_args(vec![
        "-x".into(),
        "RANKVIEW_SHUTDOWN_GRACE=2".into(),
        "-n".into(),
        "3".into(),
        program("check_lifecycle").into(),
        "stuck_callback".into(),
    ])
    .assert_failure()
    .assert_within(Duration::from_secs(15))
    .assert_stdout_contains("check_lifecycle: left a callback blocked")
    .assert_stderr_contains(
        "1 on_done callback(s) were still queued or running 2 s after the client returned",
    );
}

/// A shutdown grace too large for a clock (`1e19` s overflows an `Instant`,
/// `1e30` a `Duration`) means "no limit": a job that succeeds still does.
#[test]
fn a_huge_shutdown_grace_means_no_limit() {
    for grace in ["1e19", "1e30", "inf"] {
        mpirun_args(vec![
            "-x".into(),
            format!("RANKVIEW_SHUTDOWN_GRACE={grace}").into(),
            "-n".into(),
            "3".into(),
            program("check_lifecycle").into(),
            "quick".into(),
        ])
        .assert_success()
        .assert_stdout_contains("check_lifecycle: quick job done");
    }
}

/// Under `rankview run` in a terminal (a pseudo-terminal made by `script`),
/// rank 0's stderr is a pipe, yet `wait_interactive` draws its bar, counting
/// a map's items; with `TERM=dumb` it writes plain lines.
#[test]
fn the_progress_bar_draws_through_the_launcher_in_a_terminal() {
    let line = format!(
        "{} run -n 3 {} progress",
        launcher().display(),
        program("check_lifecycle").display()
    );
    for (term, bar) in [("xterm", true), ("dumb", false)] {
        let _lock = JobLock::acquire();
        let out = Command::new("script")
            .args(["-q", "-e", "-c", &line, "/dev/null"])
            .env("TERM", term)
            .output()
            .expect("script (util-linux) runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "TERM={term}\n{text}");
        assert!(text.contains("check_lifecycle: the map is done"), "{text}");
        let plain = text.contains("rankview: 40/40 items done");
        let drawn = text.contains("40/40 items") && !plain;
        assert_eq!(
            (drawn, plain),
            (bar, !bar),
            "TERM={term}: bar {bar}\n{text}"
        );
    }
}

/// Without a terminal the progress is plain lines, in items for a map.
#[test]
fn progress_without_a_terminal_is_plain_lines_of_items() {
    mpirun(3, "check_lifecycle", &["progress"])
        .assert_success()
        .assert_stdout_contains("check_lifecycle: the map is done")
        .assert_stderr_contains("rankview: 40/40 items done");
}
