//! `tests/programs/check_balanced.rs` as MPI jobs: the load-balanced view
//! (apply, map, imap, dependencies, retries, aborts, the stream fence,
//! exactly-once under steals, queue status) on 2, 3 and 5 ranks. `ci/test.sh`
//! runs it again over TCP only, and `ci/test-mpich.sh` under MPICH.

mod common;

use common::mpirun;

/// Every check of `check_balanced`, in order.
const CHECKS: &[&str] = &[
    "apply_runs_once_and_says_where",
    "subset_views_stay_in_their_engines",
    "map_order_and_chunking",
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
    "wait_interactive_reports_progress",
];

#[test]
fn balanced_2_ranks() {
    mpirun(2, "check_balanced", &[]).assert_checks("check_balanced", CHECKS);
}

#[test]
fn balanced_3_ranks() {
    mpirun(3, "check_balanced", &[]).assert_checks("check_balanced", CHECKS);
}

#[test]
fn balanced_5_ranks() {
    mpirun(5, "check_balanced", &[]).assert_checks("check_balanced", CHECKS);
}
