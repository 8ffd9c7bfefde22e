//! `tests/programs/check_groups.rs` as MPI jobs: views over groups of
//! engines (the partition, SPMD apply and map, the leader's value and every
//! member's metadata, whole tasks under steals, failing members and
//! leaders, retries, dependencies, imap, aborts, queue status, timeline
//! lanes) on 3, 5 and 9 ranks. `ci/test.sh` runs it again over TCP only
//! and with RANKVIEW_FUNNELED=1, and `ci/test-mpich.sh` under MPICH.

mod common;

use common::mpirun;

/// Every check of `check_groups`, in order.
const CHECKS: &[&str] = &[
    "groups_partition_the_engines",
    "apply_runs_on_every_member_returns_the_leaders_value",
    "map_runs_each_item_on_one_whole_group",
    "load_spreads_over_groups_and_tasks_stay_whole",
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
