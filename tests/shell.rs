//! `tests/programs/check_shell.rs` as MPI jobs: `view.shell` and
//! `shell_status` on 2 and 3 ranks (statuses, errors naming the engine,
//! 1 MiB and more of output, `[stdout:N]` blocks).

mod common;

use common::mpirun;

/// Every check of `check_shell`, in order.
const CHECKS: &[&str] = &[
    "every_engine_in_target_order",
    "a_failing_command_names_engine_and_status",
    "statuses_when_asked",
    "a_missing_command_is_127",
    "one_mib_and_more_intact_in_order",
    "display_outputs_blocks",
    "a_background_process_stays_out_of_later_tasks",
    "shell_parts_are_named_in_the_metadata",
];

#[test]
fn shell_2_ranks() {
    mpirun(2, "check_shell", &[])
        .assert_checks("check_shell", CHECKS)
        .assert_stdout_contains("[stdout:0] hello from 1\n[stderr:0] warn 1\n");
}

#[test]
fn shell_3_ranks() {
    mpirun(3, "check_shell", &[])
        .assert_checks("check_shell", CHECKS)
        .assert_stdout_contains(
            "[stdout:0] hello from 1\n[stdout:1] hello from 2\n[stderr:0] warn 1\n",
        );
}
