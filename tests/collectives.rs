//! `tests/programs/check_collectives.rs` as an MPI job on 2, 3 and 5 ranks,
//! and the table of `scatter_gather` (ipyparallel's scatter and gather
//! notebook) on 8 ranks.
//!
//! The program asserts the collectives itself (see its header); this file
//! owns the list of checks that must be reported as passed.

mod common;

use common::mpirun;

const CHECKS: &[&str] = &[
    "uneven_split_lengths",
    "fewer_items_than_engines",
    "array1_round_trip",
    "array2_round_trip",
    "non_contiguous_input",
    "strings_round_trip",
    "round_robin_order",
    "views_in_any_order",
    "gathered_value_reads_again",
    "broadcast_push_numeric",
    "broadcast_push_serde",
    "reduce_every_op",
    "reduce_with_user_function",
    "reduce_unequal_lengths_is_an_error",
    "gather_missing_name_is_name_error",
    "gather_wrong_type_is_type_mismatch",
    "map_in_input_order",
    "mpi_section_runs_on_every_rank",
    "with_mpi_runs_on_every_rank",
];

#[test]
fn check_collectives_2_ranks() {
    mpirun(2, "check_collectives", &[]).assert_checks_skipping(
        "check_collectives",
        CHECKS,
        &["reduce_unequal_lengths_is_an_error"],
    );
}

#[test]
fn check_collectives_3_ranks() {
    mpirun(3, "check_collectives", &[]).assert_checks("check_collectives", CHECKS);
}

#[test]
fn check_collectives_5_ranks() {
    mpirun(5, "check_collectives", &[]).assert_checks("check_collectives", CHECKS);
}

/// The scatter and gather notebook on 7 engines: six chunks of 143, one of
/// 142, maxima as printed.
#[test]
fn scatter_gather_prints_the_seed_table_on_8_ranks() {
    let run = mpirun(8, "scatter_gather", &[]);
    run.assert_success();
    let mut expected = String::new();
    for (k, max) in [142, 285, 428, 571, 714, 857].iter().enumerate() {
        expected.push_str(&format!("[stdout:{k}] Len 143\nMax {max}\n"));
    }
    expected.push_str("[stdout:6] Len 142\nMax 999\n");
    run.assert_stdout_contains(&expected);
    run.assert_stdout_contains("\"ID:0\", \"ID:3\", \"ID:6\"");
}
