//! `tests/programs/check_executors.rs` as MPI jobs on 2 and 3 ranks: the
//! `Executor` trait on a local pool, a direct view and load-balanced views
//! (same results from one generic function, 1000 futures awaited from
//! tokio, `map` order, panics). `ci/test-mpich.sh` runs it under MPICH.

mod common;

use common::mpirun;

/// Every check of `check_executors`, in order.
const CHECKS: &[&str] = &[
    "same_results_on_every_executor",
    "many_submits_awaited_from_tokio",
    "map_in_input_order",
    "panic_is_the_same_error_and_the_executor_goes_on",
    "names_say_where_tasks_run",
    "direct_executor_takes_engines_in_turn",
    "local_pool_has_no_engine_namespace",
];

#[test]
fn executors_2_ranks() {
    mpirun(2, "check_executors", &[]).assert_checks("check_executors", CHECKS);
}

#[test]
fn executors_3_ranks() {
    mpirun(3, "check_executors", &[]).assert_checks("check_executors", CHECKS);
}
