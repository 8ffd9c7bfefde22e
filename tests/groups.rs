//! `tests/programs/check_groups.rs` as MPI jobs: views over groups of
//! engines (the partition, SPMD apply and map, the leader's value and every
//! member's metadata, whole tasks under steals, failing members and
//! leaders, retries, dependencies, imap, aborts, queue status, timeline
//! lanes) on 3, 5 and 9 ranks. `ci/test.sh` runs it again over TCP only
//! and with RANKVIEW_FUNNELED=1, and `ci/test-mpich.sh` under MPICH.

mod common;

use std::time::{Duration, Instant};

use common::{launcher_run, mpirun, mpirun_args, program, JobLock, Run};

/// Every check of `check_groups`, in order.
const CHECKS: &[&str] = &[
    "groups_partition_the_engines",
    "comm_is_the_groups_communicator",
    "apply_runs_on_every_member_returns_the_leaders_value",
    "map_runs_each_item_on_one_whole_group",
    "load_spreads_over_groups_and_tasks_stay_whole",
    "steals_move_whole_tasks_between_groups",
    "a_panicking_member_fails_the_task_naming_it",
    "a_panicking_leader_fails_the_task_naming_it",
    "follow_and_after_between_group_tasks",
    "imap_over_groups",
    "retries_land_on_another_group",
    "abort_drops_queued_group_tasks",
    "queue_status_and_one_timeline_lane_per_group",
];

/// Two engines: one group of two, so the checks that need two groups skip.
#[test]
fn groups_3_ranks() {
    mpirun(3, "check_groups", &[]).assert_checks_skipping(
        "check_groups",
        CHECKS,
        &[
            "load_spreads_over_groups_and_tasks_stay_whole",
            "steals_move_whole_tasks_between_groups",
            "retries_land_on_another_group",
        ],
    );
}

#[test]
fn groups_5_ranks() {
    mpirun(5, "check_groups", &[]).assert_checks("check_groups", CHECKS);
}

#[test]
fn groups_9_ranks() {
    mpirun(9, "check_groups", &[]).assert_checks("check_groups", CHECKS);
}

/// Runs `check_groups MODE` on `ranks` ranks with a grace of 1 s: a job
/// left waiting on a group's communicator, which must fail within
/// seconds, saying that it ends the job.
fn stuck(ranks: usize, mode: &str) -> Run {
    stuck_with(ranks, mode, "RANKVIEW_TEAM_SHM=1")
}

/// [`stuck`] with one more variable (`NAME=VALUE`) in every rank's
/// environment.
fn stuck_with(ranks: usize, mode: &str, variable: &str) -> Run {
    let run = mpirun_args(vec![
        "-x".into(),
        variable.into(),
        "-x".into(),
        "RANKVIEW_GROUP_GRACE=1".into(),
        "-n".into(),
        ranks.to_string().into(),
        program("check_groups").into(),
        mode.into(),
    ]);
    run.assert_failure()
        .assert_within(Duration::from_secs(20))
        .assert_stderr_contains("ending the job");
    run
}

/// A member panics while its leader waits for it in an allreduce (of one
/// value: through the group's shared memory, the engines sharing a node):
/// the job ends, naming the member's panic and where the leader waits.
#[test]
fn a_member_panicking_in_a_collective_ends_the_job() {
    stuck(3, "panic_in_collective")
        .assert_stderr_contains("the part on engine 1 failed")
        .assert_stderr_contains("member 1 gives up")
        .assert_stderr_contains(
            "in an allreduce (shared memory) on the group's communicator (engines [0, 1])",
        );
}

/// The same without shared memory (`RANKVIEW_TEAM_SHM=0`): the leader waits
/// in the allreduce's point-to-point steps.
#[test]
fn a_member_panicking_in_a_point_to_point_allreduce_ends_the_job() {
    stuck_with(3, "panic_in_collective", "RANKVIEW_TEAM_SHM=0")
        .assert_stderr_contains("the part on engine 1 failed")
        .assert_stderr_contains(
            "in an allreduce (MPI_Isend/MPI_Irecv) on the group's communicator (engines [0, 1])",
        );
}

/// A member killed with SIGKILL while its leader waits for it in an
/// allreduce, under the launcher: the job ends within seconds and the
/// summary names the member's rank and the signal.
#[test]
fn a_member_killed_in_a_collective_ends_the_job() {
    let _lock = JobLock::acquire();
    let mut command = launcher_run(5, &[], "check_groups");
    command.arg("killed_in_collective");
    let started = Instant::now();
    let out = command.output().expect("the launcher runs");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the job must fail\n{stderr}");
    assert!(
        took < Duration::from_secs(20),
        "ended after {took:?}\n{stderr}"
    );
    assert!(
        stderr.contains("rank 2: first to fail: killed by SIGKILL (signal 9)"),
        "the member's rank (engine 1) and signal\n{stderr}"
    );
}

/// Group tasks still pending when the client returns (one running on the
/// first group, three queued for the second, none waited for): every
/// part of each runs (each engine appends a line after the group's
/// barrier), and the job ends cleanly.
#[test]
fn group_tasks_pending_when_the_client_returns_complete() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = dir.path().join("parts");
    mpirun(
        5,
        "check_groups",
        &["pending_at_return", log.to_str().expect("a UTF-8 path")],
    )
    .assert_success()
    .assert_within(Duration::from_secs(20));
    let text = std::fs::read_to_string(&log).expect("the parts' log");
    let lines: Vec<&str> = text.lines().collect();
    let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(
        (lines.len(), count(" 300 ms "), count(" 50 ms ")),
        (8, 2, 6),
        "each part of each pending task ran once: {lines:?}"
    );
    for (a, b) in [(0, 1), (2, 3)] {
        assert_eq!(
            count(&format!("engine {a}")),
            count(&format!("engine {b}")),
            "both engines of a group ran each of its tasks: {lines:?}"
        );
    }
}

/// A member returns without entering the barrier its leader waits in: the
/// job ends, saying so.
#[test]
fn a_member_that_never_enters_the_collective_ends_the_job() {
    stuck(5, "never_enters")
        .assert_stderr_contains("returned, and engine")
        .assert_stderr_contains("in MPI_Ibarrier on the group's communicator");
}

/// The `ensemble` example: 32 solves on groups of two, each checked
/// against the serial solve by the example itself (a mismatch fails the
/// job); here, that it ran them on as many groups as the job has.
fn ensemble(ranks: usize) {
    let run = mpirun(ranks, "ensemble", &[]);
    run.assert_success();
    let groups = (ranks - 1) / 2;
    run.assert_stdout_contains(&format!("ensemble: 32 solves on {groups} group(s) of 2"));
}

#[test]
fn ensemble_3_ranks() {
    ensemble(3);
}

#[test]
fn ensemble_5_ranks() {
    ensemble(5);
}

#[test]
fn ensemble_9_ranks() {
    ensemble(9);
}
