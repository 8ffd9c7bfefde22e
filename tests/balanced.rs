//! `tests/programs/check_balanced.rs` as MPI jobs: the load-balanced view
//! (apply, map, imap, dependencies, retries, aborts, the stream fence,
//! exactly-once under steals, queue status) on 2, 3 and 5 ranks. `ci/test.sh`
//! runs it again over TCP only, and `ci/test-mpich.sh` under MPICH.

mod common;

use std::time::Duration;

use common::{mpirun, mpirun_args, program};

/// Every check of `check_balanced`, in order.
const CHECKS: &[&str] = &[
    "apply_runs_once_and_says_where",
    "subset_views_stay_in_their_engines",
    "map_order_and_chunking",
    "raw_maps_match_local",
    "a_panic_inside_a_raw_chunk_fails_its_item",
    "a_panicking_item_spares_the_others",
    "imap_keeps_a_bounded_window",
    "after_waits_for_its_dependency",
    "follow_runs_where_its_dependency_ran",
    "follow_tasks_are_never_stolen",
    "any_and_on_failure",
    "impossible_dependencies_fail_at_once",
    "dependency_timeout",
    "retries_then_the_last_error",
    "retries_land_on_another_engine",
    "abort_drops_queued_tasks",
    "tasks_see_what_was_pushed_before_them",
    "exactly_once_under_forced_steals",
    "no_task_waits_behind_a_busy_engine",
    "a_busy_engine_and_an_idle_one_do_not_spin",
    "the_pollers_leave_the_cores_to_running_tasks",
    "queue_status_counts_direct_work",
    "wait_interactive_reports_progress",
];

#[test]
fn balanced_2_ranks() {
    mpirun(2, "check_balanced", &[]).assert_checks_skipping(
        "check_balanced",
        CHECKS,
        &[
            "follow_tasks_are_never_stolen",
            "retries_land_on_another_engine",
            "no_task_waits_behind_a_busy_engine",
            "a_busy_engine_and_an_idle_one_do_not_spin",
        ],
    );
}

#[test]
fn balanced_3_ranks() {
    mpirun(3, "check_balanced", &[]).assert_checks("check_balanced", CHECKS);
}

#[test]
fn balanced_5_ranks() {
    mpirun(5, "check_balanced", &[]).assert_checks("check_balanced", CHECKS);
}

/// A client that returns while load-balanced tasks run for an hour and more
/// wait: after the shutdown grace (2 s here) the job ends, non-zero, saying
/// which tasks were not finished and where they were.
#[test]
fn unfinished_load_balanced_tasks_do_not_keep_the_job_alive() {
    mpirun_args(vec![
        "-x".into(),
        "RANKVIEW_SHUTDOWN_GRACE=2".into(),
        "-n".into(),
        "3".into(),
        program("check_balanced").into(),
        "stuck".into(),
    ])
    .assert_failure()
    .assert_within(Duration::from_secs(15))
    .assert_stdout_contains("check_balanced: left load-balanced tasks running")
    .assert_stderr_contains("load-balanced task(s) were not finished 2 s after the client returned")
    .assert_stderr_contains("engine  queued  running");
}

/// A client that panics with thousands of load-balanced tasks queued and
/// running: every rank ends within seconds, with the client's message.
#[test]
fn a_client_panic_with_tasks_queued_ends_the_job() {
    mpirun(3, "check_balanced", &["panic"])
        .assert_failure()
        .assert_within(Duration::from_secs(10))
        .assert_stderr_contains("the client gives up with tasks queued");
}
