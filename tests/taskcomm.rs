//! `tests/programs/check_taskcomm.rs` as MPI jobs: a task's communicator
//! (`rankview::comm()`) on 3, 5 and 9 ranks (9 oversubscribed), and a task
//! left in a barrier another engine never enters, which must not keep the
//! job alive past the shutdown grace, the launcher's `--timeout` or Ctrl-C,
//! and whose engine is named. `ci/test.sh` runs it again over TCP only and with
//! `RANKVIEW_FUNNELED=1`, and `ci/test-mpich.sh` under MPICH.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{launcher_run, mpirun, mpirun_args, program, Drain, JobLock};

/// Every check of `check_taskcomm`.
const CHECKS: &[&str] = &[
    "psum_matches_a_local_sum",
    "ranks_follow_the_view_order",
    "every_operation_on_every_view_size",
    "sub_views_interleaved_keep_their_communicators",
    "comm_is_an_error_on_one_engine_in_balanced_tasks_and_outside",
    "bad_buffers_and_ranks_are_errors",
    "the_mpi_thread_serves_while_a_task_waits_in_a_barrier",
    "a_task_of_several_engines_is_not_aborted_once_sent",
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

/// With `RANKVIEW_MAX_TEAMS=2`, the third distinct view's tasks run without
/// a communicator, and `comm()` in them names the limit; the views made
/// before keep theirs.
#[test]
fn views_beyond_the_team_limit_run_without_a_communicator() {
    mpirun_args(vec![
        "-x".into(),
        "RANKVIEW_MAX_TEAMS=2".into(),
        "-n".into(),
        "5".into(),
        program("check_taskcomm").into(),
        "team_limit".into(),
    ])
    .assert_success()
    .assert_stdout_contains(
        "check_taskcomm: team_limit: ok (rankview::comm(): this view's engines got no communicator",
    );
}

/// A task waiting in a barrier that the other engine of its view never
/// enters, and a client that returns: the job ends after the shutdown
/// grace (2 s here), non-zero, naming the engine and its task.
#[test]
fn a_collective_never_entered_ends_after_the_shutdown_grace() {
    left_alone_past_the_grace("never_entered", "barrier_alone");
}

/// The same with an allreduce of one value, which the task's own thread
/// runs from start to end (under `MPI_THREAD_SERIALIZED`): the job still
/// ends after the shutdown grace, naming the engine and its task, though
/// the task's thread keeps testing its allreduce.
#[test]
fn an_allreduce_never_entered_ends_after_the_shutdown_grace() {
    left_alone_past_the_grace("allreduce_never_entered", "allreduce_alone");
}

/// `check_taskcomm MODE` on 3 ranks with a 2 s shutdown grace: the job
/// fails within 15 s, naming engine 0 and its task running `function`.
fn left_alone_past_the_grace(mode: &str, function: &str) {
    mpirun_args(vec![
        "-x".into(),
        "RANKVIEW_SHUTDOWN_GRACE=2".into(),
        "-n".into(),
        "3".into(),
        program("check_taskcomm").into(),
        mode.into(),
    ])
    .assert_failure()
    .assert_within(Duration::from_secs(15))
    .assert_stdout_contains("check_taskcomm: left task")
    .assert_stderr_contains("rankview: engine 0 was still busy with task")
    .assert_stderr_contains(&format!(
        "(check_taskcomm::{function}) 2 s after the client returned"
    ));
}

/// `rankview run -n 3 [--timeout T] check_taskcomm never_entered_wait`,
/// its output drained, the engine's note on a long wait after 1 s
/// (`RANKVIEW_COMM_WAIT_NOTE`), in a process group of its own (a signal to
/// it reaches it alone, as `kill PID` from a user would).
fn never_entered_under_the_launcher(timeout: Option<&str>) -> (Child, Drain, Drain, JobLock) {
    never_entered_in(timeout, "never_entered_wait", "1")
}

/// [`never_entered_under_the_launcher`] with the program's `mode`, and
/// `RANKVIEW_TEAM_SHM` set to `shm` (`0`: no shared memory).
fn never_entered_in(
    timeout: Option<&str>,
    mode: &str,
    shm: &str,
) -> (Child, Drain, Drain, JobLock) {
    let lock = JobLock::acquire();
    let options: Vec<&str> = timeout.map_or(Vec::new(), |t| vec!["--timeout", t]);
    let mut child = launcher_run(3, &options, "check_taskcomm")
        .args(["--", mode])
        .env("RANKVIEW_COMM_WAIT_NOTE", "1")
        .env("RANKVIEW_TEAM_SHM", shm)
        .spawn()
        .expect("the launcher starts");
    let stdout = Drain::start(child.stdout.take().expect("stdout is piped"));
    let stderr = Drain::start(child.stderr.take().expect("stderr is piped"));
    (child, stdout, stderr, lock)
}

/// Waits up to `limit` for `child` to exit: its status, stdout and stderr,
/// and a report of them for a failed assertion.
fn ended(
    mut child: Child,
    stdout: Drain,
    stderr: Drain,
    limit: Duration,
) -> (Option<i32>, String, String) {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the launcher can be waited for") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (
        stdout.finish(Duration::from_secs(2)),
        stderr.finish(Duration::from_secs(2)),
    );
    let report = format!(
        "status {status:?} after {:.2?}\n---- stdout ----\n{stdout}\n---- stderr ----\n{stderr}",
        started.elapsed()
    );
    assert!(
        status.is_some(),
        "the launcher was still running after {limit:?}: {report}"
    );
    (status.and_then(|s| s.code()), stdout, report)
}

/// The note an engine writes when its task has waited 1 s in the barrier.
const NOTE: &str = "rankview: engine 0: a task has waited 1 s in MPI_Ibarrier on the communicator \
                    of engines [0, 1]";

/// The same task, with a client that waits for it: the launcher's
/// `--timeout` ends the job (status 124), and the engine has said where
/// its task waits.
#[test]
fn a_collective_never_entered_ends_at_the_launchers_timeout() {
    let (child, stdout, stderr, _lock) = never_entered_under_the_launcher(Some("5"));
    let (code, out, report) = ended(child, stdout, stderr, Duration::from_secs(20));
    assert_eq!(code, Some(124), "{report}");
    assert!(out.contains("check_taskcomm: left task"), "{report}");
    assert!(report.contains(NOTE), "{report}");
    assert!(
        report.contains("rankview: job timed out after 5 s"),
        "{report}"
    );
}

/// A task waiting in an allreduce of one value that the other engine never
/// enters (through the team's shared memory, both engines on this node,
/// the task's own thread waiting): the engine says where its task waits,
/// as for other operations, and the launcher's `--timeout` ends the job.
#[test]
fn an_allreduce_never_entered_is_noted_and_ends_at_the_timeout() {
    an_allreduce_never_entered("1", "an allreduce (shared memory)");
}

/// The same without shared memory (`RANKVIEW_TEAM_SHM=0`): the task's own
/// thread runs the allreduce's point-to-point steps, testing them between
/// naps.
#[test]
fn a_point_to_point_allreduce_never_entered_is_noted_and_ends_at_the_timeout() {
    an_allreduce_never_entered("0", "an allreduce (MPI_Isend/MPI_Irecv)");
}

/// `allreduce_never_entered_wait` with `RANKVIEW_TEAM_SHM=shm`: the job
/// ends at the launcher's timeout, and the engine's note says it waits in
/// `what`.
fn an_allreduce_never_entered(shm: &str, what: &str) {
    let (child, stdout, stderr, _lock) =
        never_entered_in(Some("5"), "allreduce_never_entered_wait", shm);
    let (code, out, report) = ended(child, stdout, stderr, Duration::from_secs(20));
    assert_eq!(code, Some(124), "{report}");
    assert!(out.contains("check_taskcomm: left task"), "{report}");
    let note = format!(
        "rankview: engine 0: a task has waited 1 s in {what} on the communicator of engines [0, 1]"
    );
    assert!(report.contains(&note), "{report}");
}

/// The same task, and Ctrl-C (SIGINT to the launcher) once the engine has
/// said where its task waits: the job ends within seconds (status 130).
#[test]
fn a_collective_never_entered_ends_at_ctrl_c() {
    let (child, stdout, stderr, _lock) = never_entered_under_the_launcher(None);
    let started = Instant::now();
    while !stderr.text().contains(NOTE) && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = i32::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) has no memory-safety preconditions; the launcher is
    // our child, not yet reaped, so the pid is still its own.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let (code, _, report) = ended(child, stdout, stderr, Duration::from_secs(10));
    assert!(report.contains(NOTE), "{report}");
    assert_eq!(code, Some(130), "{report}");
    assert!(
        report.contains("rankview: job interrupted by SIGINT: 3 ranks"),
        "{report}"
    );
}
