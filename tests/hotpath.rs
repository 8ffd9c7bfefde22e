//! `tests/programs/check_hotpath.rs` as MPI jobs on 2, 3 and 5 ranks: numeric
//! `pull` as a raw buffer, scatter and broadcast received into the memory of
//! the value they replace (never one a task still holds or will read),
//! `gather_into` / `reduce_into` with their size checks, a kept buffer lent
//! again (moved onto huge pages) sending its new contents, and encoded values
//! of a megabyte or more carried as attachments. `ci/test-mpich.sh` runs it
//! under MPICH.

mod common;

use common::mpirun;

/// Every check of `check_hotpath` on more than one engine, in order.
const CHECKS: &[&str] = &[
    "pull_every_numeric_kind",
    "pull_from_many_engines",
    "pull_wrong_type_then_right_type",
    "pulled_result_reads_twice",
    "pull_then_change_in_place",
    "scatter_receives_into_the_value_it_replaces",
    "broadcast_receives_into_the_value_it_replaces",
    "a_running_task_keeps_its_value",
    "a_queued_task_sees_the_value_before_the_scatter",
    "an_apply_right_after_a_scatter_sees_it",
    "scatter_receives_into_the_value_it_replaces_in_two_phases",
    "broadcast_receives_into_the_value_it_replaces_in_two_phases",
    "a_running_task_keeps_its_value_in_two_phases",
    "a_queued_task_sees_the_value_before_the_scatter_in_two_phases",
    "an_apply_right_after_a_scatter_sees_it_in_two_phases",
    "gather_into_a_kept_buffer",
    "gather_into_a_wrong_length_moves_nothing",
    "gather_into_a_wrong_element_type",
    "gather_into_arrays",
    "pull_into_a_kept_buffer",
    "reduce_into_a_kept_buffer",
    "a_kept_buffer_lent_again_sends_its_new_contents",
    "large_objects_push_apply_pull",
    "large_objects_through_the_load_balancer",
];

/// One engine also pulls a value longer than one message piece (1 GiB),
/// numeric and encoded, and pushes the encoded one back.
#[test]
fn hotpath_2_ranks() {
    let mut checks = CHECKS.to_vec();
    checks.insert(5, "pull_longer_than_one_piece");
    checks.push("large_object_longer_than_one_piece");
    mpirun(2, "check_hotpath", &[]).assert_checks("check_hotpath", &checks);
}

#[test]
fn hotpath_3_ranks() {
    mpirun(3, "check_hotpath", &[]).assert_checks("check_hotpath", CHECKS);
}

#[test]
fn hotpath_5_ranks() {
    mpirun(5, "check_hotpath", &[]).assert_checks("check_hotpath", CHECKS);
}
