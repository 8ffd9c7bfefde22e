//! `tests/programs/check_errors.rs` as an MPI job on 2, 3 and 5 ranks.
//!
//! The program asserts every error path itself (see its header); this file
//! owns the list of checks that must be reported as passed, so that a check
//! that silently stops running fails here too.

mod common;

use common::mpirun;

/// Every check of `check_errors`, in the order it runs them.
const CHECKS: &[&str] = &[
    "panic_is_remote",
    "engine_survives_panic",
    "ref_released_after_panic",
    "get_mut_value_survives_panic",
    "thousand_panics_mixed",
    "task_err_is_remote",
    "task_error_msg_kind",
    "pull_missing_is_name_error",
    "pull_wrong_type_is_type_mismatch",
    "ref_missing_is_name_error",
    "ref_wrong_type_is_type_mismatch",
    "composite_lists_failed_engines",
    "keys_sorted_and_clear",
    "invalid_targets",
    "unregistered_is_not_registered",
    "get_timeout_then_get",
    "generic_instantiations",
    "str_and_slice_params",
];

fn check_errors(ranks: usize) {
    mpirun(ranks, "check_errors", &[]).assert_checks("check_errors", CHECKS);
}

#[test]
fn check_errors_2_ranks() {
    check_errors(2);
}

#[test]
fn check_errors_3_ranks() {
    check_errors(3);
}

#[test]
fn check_errors_5_ranks() {
    check_errors(5);
}
