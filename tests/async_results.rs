//! `tests/programs/check_async.rs` as an MPI job on 2, 3 and 5 ranks.
//!
//! The program asserts awaiting, callbacks, metadata and timings itself (see
//! its header); this file owns the list of checks that must pass, and reads
//! what `display_outputs` printed to the job's stdout: one `[stdout:N]`
//! block per engine, then one `[stderr:N]` block per engine, in engine order.

mod common;

use std::collections::BTreeSet;

use common::{mpirun, Run};

/// Every check of `check_async`, in the order it runs them.
const CHECKS: &[&str] = &[
    "await_keeps_runtime_running",
    "awaits_overlap",
    "await_many_in_target_order",
    "timeout_then_await",
    "clones_awaited_by_two_tasks",
    "a_map_awaited_as_one_result",
    "on_done_pending",
    "on_done_finished",
    "on_done_failed",
    "map_inside_on_done",
    "metadata_in_target_order",
    "outputs_in_engine_order",
    "map_metadata_per_part",
    "c_stdio_in_metadata",
    "load_balanced_output_is_each_tasks_own",
    "long_output_keeps_its_tail",
    "timings_consistent",
    "engine_pids_distinct",
];

/// The lines `display_outputs` printed, between the program's markers.
fn displayed(run: &Run) -> Vec<&str> {
    let Some((_, rest)) = run.stdout.split_once("display_outputs:\n") else {
        run.fail("no display_outputs block");
    };
    let Some((block, _)) = rest.split_once("end of display_outputs\n") else {
        run.fail("display_outputs block not closed");
    };
    block.lines().collect()
}

fn check_async(ranks: usize) {
    let run = mpirun(ranks, "check_async", &[]);
    run.assert_checks("check_async", CHECKS);
    let engines = ranks - 1;
    let lines = displayed(&run);
    if lines.len() != 2 * engines {
        run.fail(format_args!("{engines} engines, displayed {lines:#?}"));
    }
    let mut pids = BTreeSet::new();
    for (engine, line) in lines[..engines].iter().enumerate() {
        let prefix = format!("[stdout:{engine}] out from pid ");
        match line.strip_prefix(&prefix).map(str::parse::<u32>) {
            Some(Ok(pid)) => {
                pids.insert(pid);
            }
            _ => run.fail(format_args!("line {line:?} should start with {prefix:?}")),
        }
    }
    for (engine, line) in lines[engines..].iter().enumerate() {
        if *line != format!("[stderr:{engine}] out on stderr") {
            run.fail(format_args!(
                "line {line:?} should be engine {engine}'s stderr"
            ));
        }
    }
    if pids.len() != engines {
        run.fail(format_args!("engines share pids: {pids:?}"));
    }
}

#[test]
fn check_async_2_ranks() {
    check_async(2);
}

#[test]
fn check_async_3_ranks() {
    check_async(3);
}

#[test]
fn check_async_5_ranks() {
    check_async(5);
}
