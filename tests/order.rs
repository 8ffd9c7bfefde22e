//! `tests/programs/check_order.rs` as MPI jobs: request order on busy and
//! idle engines on 2, 3 and 5 ranks (with a small sub-communicator cache, so
//! that thousands of views create and free sub-communicators), and data past
//! MPI's 2^31 count limit on 3 ranks.

mod common;

use std::ffi::OsString;

use common::{mpirun, mpirun_args, program};

/// Every check of `check_order` in its default mode, in order.
const ORDER_CHECKS: &[&str] = &[
    "section_then_collectives_on_the_same_ranks",
    "push_after_waiting_gather",
    "scatter_after_waiting_gather",
    "interleavings_on_busy_and_idle_engines",
    "push_does_not_wait_for_other_engines",
    "gathers_on_disjoint_views_overlap",
    "many_distinct_views",
    "waiting_threads_help_unless_funneled",
];

/// The checks of `check_order` that need two engines, skipped on one.
const TWO_ENGINE_CHECKS: &[&str] = &[
    "push_does_not_wait_for_other_engines",
    "gathers_on_disjoint_views_overlap",
];

fn check_order(ranks: usize) {
    let line: Vec<OsString> = vec![
        "-x".into(),
        "RANKVIEW_GROUP_CACHE=3".into(),
        "-n".into(),
        ranks.to_string().into(),
        program("check_order").into(),
    ];
    let skipped = if ranks == 2 { TWO_ENGINE_CHECKS } else { &[] };
    mpirun_args(line).assert_checks_skipping("check_order", ORDER_CHECKS, skipped);
}

#[test]
fn order_2_ranks() {
    check_order(2);
}

#[test]
fn order_3_ranks() {
    check_order(3);
}

#[test]
fn order_5_ranks() {
    check_order(5);
}

/// Gather, reply, scatter and broadcast of more than 2^31 bytes (about 9 GB
/// of memory at the peak, across the three ranks).
#[test]
fn past_the_count_limit() {
    mpirun(3, "check_order", &["large"]).assert_checks(
        "check_order",
        &[
            "gather_past_the_count_limit",
            "reply_past_the_count_limit",
            "scatter_and_broadcast_past_the_count_limit",
        ],
    );
}

/// A client that returns while a task runs "forever": after the shutdown
/// grace (2 s here) the job ends, non-zero, naming the engine, the task and
/// its function.
#[test]
fn a_stuck_engine_does_not_keep_the_job_alive() {
    let run = mpirun_args(vec![
        "-x".into(),
        "RANKVIEW_SHUTDOWN_GRACE=2".into(),
        "-n".into(),
        "3".into(),
        program("check_order").into(),
        "stuck".into(),
    ]);
    run.assert_failure()
        .assert_within(std::time::Duration::from_secs(15))
        .assert_stdout_contains("check_order: left task")
        .assert_stderr_contains("rankview: engine 0 was still busy with task")
        .assert_stderr_contains("(check_order::sleep_for) 2 s after the client returned");
}
