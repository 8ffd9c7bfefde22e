//! `tests/programs/check_taskcomm.rs` as MPI jobs: a task's communicator
//! (`rankview::comm()`) on 3, 5 and 9 ranks (9 oversubscribed), and a task
//! left in a barrier another engine never enters, which must not keep the
//! job alive past the shutdown grace or the launcher's `--timeout`, and
//! whose engine is named. `ci/test.sh` runs it again over TCP only and with
//! `RANKVIEW_FUNNELED=1`, and `ci/test-mpich.sh` under MPICH.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{extra_mpi_args, launcher, mpirun, mpirun_args, program, JobLock};

/// Every check of `check_taskcomm`.
const CHECKS: &[&str] = &[
    "psum_matches_a_local_sum",
    "ranks_follow_the_view_order",
    "every_operation_on_every_view_size",
    "sub_views_interleaved_keep_their_communicators",
    "comm_is_an_error_on_one_engine_in_balanced_tasks_and_outside",
    "bad_buffers_and_ranks_are_errors",
    "the_mpi_thread_serves_while_a_task_waits_in_a_barrier",
    "threading_mode_is_the_one_asked_for",
];

#[test]
fn taskcomm_3_ranks() {
    mpirun(3, "check_taskcomm", &[]).assert_checks("check_taskcomm", CHECKS);
}

#[test]
fn taskcomm_5_ranks() {
    mpirun(5, "check_taskcomm", &[]).assert_checks("check_taskcomm", CHECKS);
}

#[test]
fn taskcomm_9_ranks() {
    mpirun(9, "check_taskcomm", &[]).assert_checks("check_taskcomm", CHECKS);
}

/// A task waiting in a barrier that the other engine of its view never
/// enters, and a client that returns: the job ends after the shutdown
/// grace (2 s here), non-zero, naming the engine and its task.
#[test]
fn a_collective_never_entered_ends_after_the_shutdown_grace() {
    mpirun_args(vec![
        "-x".into(),
        "RANKVIEW_SHUTDOWN_GRACE=2".into(),
        "-n".into(),
        "3".into(),
        program("check_taskcomm").into(),
        "never_entered".into(),
    ])
    .assert_failure()
    .assert_within(Duration::from_secs(15))
    .assert_stdout_contains("check_taskcomm: left task")
    .assert_stderr_contains("rankview: engine 0 was still busy with task")
    .assert_stderr_contains("(check_taskcomm::barrier_alone) 2 s after the client returned");
}

/// The same task, with a client that waits for it: the launcher's
/// `--timeout` ends the job (status 124), and the engine has said where
/// its task waits (`RANKVIEW_COMM_WAIT_NOTE`: after 1 s here).
#[test]
fn a_collective_never_entered_ends_at_the_launchers_timeout() {
    let launcher = launcher();
    let program = program("check_taskcomm");
    let _lock = JobLock::acquire();
    let mut command = Command::new(launcher);
    command.args(["run", "-n", "3", "--timeout", "5"]);
    let extra = extra_mpi_args();
    if !extra.is_empty() {
        command.args(["--mpi-args", &extra.join(" ")]);
    }
    let started = Instant::now();
    let out = command
        .arg(&program)
        .args(["--", "never_entered_wait"])
        .env("RANKVIEW_COMM_WAIT_NOTE", "1")
        .env_remove("MPIEXEC")
        .env_remove("SLURM_JOB_ID")
        .env_remove("PBS_JOBID")
        .stdin(Stdio::null())
        .output()
        .expect("the launcher starts");
    let elapsed = started.elapsed();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let report =
        format!("after {elapsed:.2?}\n---- stdout ----\n{stdout}\n---- stderr ----\n{stderr}");
    assert_eq!(out.status.code(), Some(124), "{report}");
    assert!(elapsed < Duration::from_secs(20), "{report}");
    assert!(stdout.contains("check_taskcomm: left task"), "{report}");
    assert!(
        stderr.contains(
            "rankview: engine 0: a task has waited 1 s in MPI_Ibarrier on the communicator \
             of engines [0, 1]"
        ),
        "{report}"
    );
    assert!(
        stderr.contains("rankview: job timed out after 5 s"),
        "{report}"
    );
}
