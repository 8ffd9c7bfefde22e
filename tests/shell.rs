//! `tests/programs/check_shell.rs` as MPI jobs: `view.shell` and
//! `shell_status` on 2 and 3 ranks (statuses, errors naming the engine,
//! 1 MiB and more of output, `[stdout:N]` blocks), again with another
//! capture limit (`RANKVIEW_CAPTURE_LIMIT`), under a file size limit
//! (`ulimit -f`), and with capture off (`RANKVIEW_NO_CAPTURE`).

mod common;

use common::{mpirun, mpirun_args, program};

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

/// A capture limit of 64 KiB on the engines: every check holds, and the
/// metadata keeps 64 KiB of a long output.
#[test]
fn shell_3_ranks_with_a_capture_limit() {
    mpirun_args(vec![
        "-x".into(),
        "RANKVIEW_CAPTURE_LIMIT=64K".into(),
        "-n".into(),
        "3".into(),
        program("check_shell").into(),
    ])
    .assert_checks("check_shell", CHECKS);
}

/// Under a file size limit below capture's far offset (`ulimit -f`, about
/// 1 GB): the engines capture from offset 0 instead of dying of SIGXFSZ at
/// their first output, and every check holds.
#[test]
fn shell_3_ranks_under_a_file_size_limit() {
    let script = format!(
        "ulimit -f 1000000 && exec '{}'",
        program("check_shell").display()
    );
    mpirun_args(vec![
        "-n".into(),
        "3".into(),
        "sh".into(),
        "-c".into(),
        script.into(),
    ])
    .assert_checks("check_shell", CHECKS);
}

/// Capture off: each engine's lines reach the job's own stdout and stderr.
#[test]
fn no_capture_leaves_output_on_the_engines_streams() {
    let run = mpirun_args(vec![
        "-x".into(),
        "RANKVIEW_NO_CAPTURE=1".into(),
        "-n".into(),
        "3".into(),
        program("check_shell").into(),
        "no_capture".into(),
    ]);
    run.assert_checks(
        "check_shell",
        &[
            "output_stays_on_the_engines_streams",
            "shell_output_is_whole_without_capture",
        ],
    );
    for engine in 0..2 {
        run.assert_stdout_contains(&format!("engine {engine}: a line on stdout\n"))
            .assert_stderr_contains(&format!("engine {engine}: a line on stderr\n"));
    }
}
