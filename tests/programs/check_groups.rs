//! Views over groups of engines (`rc.groups(k)`) as a user drives them.
//! Run it with `rankview run -n 5 --package rankview-checks --bin
//! check_groups`; `tests/groups.rs` runs it on 3, 5 and 9 ranks, under
//! MPICH and over TCP only.
//!
//! Owns the checks of the partition (groups of `k`, the remainder left
//! out, bad sizes refused), `apply` and `map` running SPMD on every engine
//! of one group (the leader's value, every member's metadata and output),
//! whole tasks per group under load and steals, a panicking member or
//! leader failing the task naming it (and the group serving on), retries
//! landing on another group, `follow`/`after`, `imap`, aborts of queued
//! group tasks, the queue status and the timeline (one lane per group).
//! Prints one line per check and exits non-zero unless every check held.

mod checklist;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use checklist::{expect_err, skip, wait_until, Checklist};
use rankview::{Client, Error, TaskResult};

/// Records `id` in this engine's namespace; prints where it ran; returns
/// `x * 1000 + engine`.
#[rankview::remote]
fn part(id: u64, x: u64) -> TaskResult<u64> {
    let g = rankview::globals();
    let me = g.engine()?;
    if !g.contains("ran")? {
        g.insert("ran", Vec::<u64>::new())?;
    }
    g.get_mut::<Vec<u64>>("ran")?.push(id);
    println!("part {id} on engine {me}");
    Ok(x * 1000 + me as u64)
}

/// Takes the ids recorded on this engine.
#[rankview::remote]
fn take_ran() -> TaskResult<Vec<u64>> {
    let g = rankview::globals();
    if !g.contains("ran")? {
        return Ok(Vec::new());
    }
    let ran = g.get::<Vec<u64>>("ran")?.to_vec();
    g.remove("ran")?;
    Ok(ran)
}

/// Sleeps, records `id`, returns the engine id.
#[rankview::remote]
fn slow_part(id: u64, seconds: f64) -> TaskResult<usize> {
    std::thread::sleep(Duration::from_secs_f64(seconds));
    part(id, 0).map(|v| (v % 1000) as usize)
}

/// Item of a map: `x * x` on every engine; records the item.
#[rankview::remote]
fn square(x: u64) -> TaskResult<u64> {
    part(x, 0)?;
    Ok(x * x)
}

/// Panics on the engine at `index` in its group of `size`.
#[rankview::remote]
fn panic_at(index: usize, size: usize) -> TaskResult<usize> {
    let me = rankview::globals().engine()?;
    assert!(me % size != index, "engine {me} gives up");
    Ok(me)
}

/// Fails on engine `bad`; else returns the engine id.
#[rankview::remote]
fn fail_on(bad: usize) -> TaskResult<usize> {
    let me = rankview::globals().engine()?;
    if me == bad {
        return Err(rankview::TaskError::msg("this engine is bad"));
    }
    Ok(me)
}

/// The group's communicator as its leader sees it: its engines, and every
/// rank's engine id gathered over it.
#[rankview::remote]
fn group_comm() -> TaskResult<(Vec<usize>, Vec<u64>)> {
    let comm = rankview::comm()?;
    let me = rankview::globals().engine()? as u64;
    let mut all = vec![0u64; comm.size()];
    comm.all_gather_into(&[me], &mut all)?;
    let sum = comm.all_reduce(me, rankview::ReduceOp::Sum)?;
    assert_eq!(sum, all.iter().sum::<u64>());
    comm.barrier()?;
    Ok((comm.engines(), all))
}

/// A member panics while the leader waits for it in an allreduce.
#[rankview::remote]
fn panic_in_collective() -> TaskResult<u64> {
    let comm = rankview::comm()?;
    assert!(comm.rank() == 0, "member {} gives up", comm.rank());
    Ok(comm.all_reduce(1u64, rankview::ReduceOp::Sum)?)
}

/// A member is killed (SIGKILL, as by the OOM killer) while the leader
/// waits for it in an allreduce.
#[rankview::remote]
fn killed_in_collective() -> TaskResult<u64> {
    let comm = rankview::comm()?;
    if comm.rank() == 1 {
        // SAFETY: kill(2) with this process's own pid and a valid signal.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
    Ok(comm.all_reduce(1u64, rankview::ReduceOp::Sum)?)
}

/// Sleeps `ms` on every engine of the group, then meets the others in a
/// barrier and appends a line saying so to the file `log` (a task still
/// pending when the client returns: its output is not printed).
#[rankview::remote]
fn late_barrier(ms: u64, log: String) -> TaskResult<()> {
    use std::io::Write;
    std::thread::sleep(std::time::Duration::from_millis(ms));
    let comm = rankview::comm()?;
    comm.barrier()?;
    let engine = rankview::globals().engine()?;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)?;
    // One write: the engines append to the same file at once.
    file.write_all(format!("late_barrier {ms} ms done on engine {engine}\n").as_bytes())?;
    Ok(())
}

/// A member returns without entering the barrier its leader waits in.
#[rankview::remote]
fn member_skips_barrier() -> TaskResult<()> {
    let comm = rankview::comm()?;
    if comm.rank() == 0 {
        comm.barrier()?;
    }
    Ok(())
}

/// Every engine's recorded ids (and clears them).
fn ran(rc: &Client) -> rankview::Result<Vec<Vec<u64>>> {
    rc.all().apply_sync(take_ran, ())
}

/// Checks that each id ran on exactly the engines of one group, and
/// returns the group's leader per id.
fn whole_groups(groups: &[Vec<usize>], ran: &[Vec<u64>]) -> Result<BTreeMap<u64, usize>, String> {
    let mut engines_of: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
    for (engine, ids) in ran.iter().enumerate() {
        for &id in ids {
            if !engines_of.entry(id).or_default().insert(engine) {
                return Err(format!("task {id} ran twice on engine {engine}"));
            }
        }
    }
    let mut leader_of = BTreeMap::new();
    for (id, engines) in engines_of {
        let group = groups
            .iter()
            .find(|g| g.iter().copied().collect::<BTreeSet<_>>() == engines)
            .ok_or_else(|| format!("task {id} ran on {engines:?}, not one whole group"))?;
        leader_of.insert(id, group[0]);
    }
    Ok(leader_of)
}

fn checks(rc: &Client, list: &mut Checklist) {
    let engines = rc.len();
    let size = if engines >= 2 { 2 } else { 1 };
    let gv = match rc.groups(size) {
        Ok(gv) => gv,
        Err(e) => {
            list.check("groups_of_two", || Err(e.to_string().into()));
            return;
        }
    };
    let groups = gv.groups();

    list.check("groups_partition_the_engines", || {
        assert_eq!(gv.group_size(), size);
        assert_eq!(groups.len(), engines / size);
        for (g, group) in groups.iter().enumerate() {
            let want: Vec<usize> = (g * size..(g + 1) * size).collect();
            assert_eq!(group, &want);
        }
        assert_eq!(
            gv.targets(),
            groups.iter().map(|g| g[0]).collect::<Vec<_>>()
        );
        expect_err(rc.groups(0).map(|_| ()), |e| matches!(e, Error::Usage(_)))?;
        expect_err(rc.groups(engines + 1).map(|_| ()), |e| {
            matches!(e, Error::Usage(_))
        })?;
        // Three engines in a group of 2 leave the last one out; groups of
        // 3 on 4 or 8 engines do too.
        if engines % 3 != 0 && engines >= 3 {
            let threes = rc.groups(3)?;
            let last = threes.groups().last().cloned().unwrap_or_default();
            assert_eq!(threes.groups().len(), engines / 3);
            assert!(last.iter().all(|&e| e < engines / 3 * 3), "{last:?}");
            ran(rc)?;
            let ars: Vec<_> = (0..4u64).map(|id| threes.apply(part, (id, 1))).collect();
            for ar in &ars {
                ar.get()?;
                assert_eq!(ar.metadata().len(), 3);
            }
            let left = ran(rc)?;
            assert_eq!(whole_groups(&threes.groups(), &left)?.len(), 4);
            for ids in &left[engines / 3 * 3..] {
                assert!(ids.is_empty(), "a left-out engine ran {ids:?}");
            }
        }
        Ok(())
    });

    list.check("comm_is_the_groups_communicator", || {
        for _ in 0..groups.len() * 2 {
            let ar = gv.apply(group_comm, ());
            let (engines, gathered) = ar.get()?;
            let leader = ar.metadata()[0].engine;
            let group = groups
                .iter()
                .find(|g| g[0] == leader)
                .ok_or("no such leader")?;
            assert_eq!(&engines, group, "ranks follow the group's engines");
            let want: Vec<u64> = group.iter().map(|&e| e as u64).collect();
            assert_eq!(gathered, want, "every rank took part, in rank order");
        }
        // A load-balanced task of another view has no communicator.
        let lv = rc.load_balanced_view();
        expect_err(lv.apply(group_comm, ()).get(), |e| {
            e.to_string()
                .contains("a load-balanced task has no communicator")
        })?;
        Ok(())
    });

    list.check(
        "apply_runs_on_every_member_returns_the_leaders_value",
        || {
            ran(rc)?;
            for id in 0..10u64 {
                let ar = gv.apply(part, (id, id + 1));
                let value = ar.get()?;
                let meta = ar.metadata();
                let leader = meta[0].engine;
                assert_eq!(value, (id + 1) * 1000 + leader as u64, "the leader's value");
                let engines: Vec<usize> = meta.iter().map(|m| m.engine).collect();
                let group = groups
                    .iter()
                    .find(|g| g[0] == leader)
                    .ok_or("no such leader")?;
                assert_eq!(&engines, group, "every member's metadata, in rank order");
                for m in &meta {
                    assert!(
                        m.stdout
                            .contains(&format!("part {id} on engine {}", m.engine)),
                        "engine {}'s output: {:?}",
                        m.engine,
                        m.stdout
                    );
                    assert!(m.started.is_some() && m.completed.is_some(), "{m:?}");
                    assert_eq!(m.task, meta[0].task);
                }
            }
            let leaders = whole_groups(&groups, &ran(rc)?)?;
            assert_eq!(leaders.len(), 10, "every task ran");
            Ok(())
        },
    );

    list.check("map_runs_each_item_on_one_whole_group", || {
        ran(rc)?;
        let items: Vec<u64> = (0..40).collect();
        let squares = gv.chunksize(1).map_sync(square, items.clone())?;
        let want: Vec<u64> = items.iter().map(|x| x * x).collect();
        assert_eq!(squares, want);
        let leaders = whole_groups(&groups, &ran(rc)?)?;
        assert_eq!(leaders.len(), 40);
        // A chunk of several items runs whole too.
        let chunked = gv.chunksize(7).map_sync(square, items.clone())?;
        assert_eq!(chunked, want);
        whole_groups(&groups, &ran(rc)?)?;
        Ok(())
    });

    list.check("load_spreads_over_groups_and_tasks_stay_whole", || {
        if groups.len() < 2 {
            return skip("one group");
        }
        ran(rc)?;
        // All sent to leaders by the balancer, moved by steals: each still
        // runs on one whole group.
        let n = 8 * groups.len() as u64;
        let ars: Vec<_> = (0..n).map(|id| gv.apply(slow_part, (id, 0.02))).collect();
        for ar in &ars {
            ar.get()?;
        }
        let leaders = whole_groups(&groups, &ran(rc)?)?;
        let used: BTreeSet<usize> = leaders.values().copied().collect();
        assert_eq!(used.len(), groups.len(), "every group worked: {leaders:?}");
        Ok(())
    });

    list.check("steals_move_whole_tasks_between_groups", || {
        if groups.len() < 2 {
            return skip("one group");
        }
        ran(rc)?;
        // Steal counts are the job's: a member may have stolen a task of a
        // plain load-balanced view in an earlier check (an engine of such
        // a view is no member). Only this check's steals count here.
        let before = rc.queue_status()?;
        // The first leader is held up by a direct request while its queue
        // fills: the other leaders steal from it, and each task still runs
        // once, on one whole group.
        let hold = rc.engine(0)?.apply(slow_part, (1_000_000, 0.5));
        let m = gv.chunksize(1).map(square, 0..200u64);
        let squares = m.get()?;
        hold.get()?;
        assert_eq!(squares, (0..200u64).map(|x| x * x).collect::<Vec<_>>());
        let leaders: BTreeSet<usize> = groups.iter().map(|g| g[0]).collect();
        let stolen = m
            .metadata()
            .iter()
            .filter(|meta| leaders.contains(&meta.engine) && meta.stolen)
            .count();
        assert!(stolen > 0, "no group task was stolen");
        let mut left = ran(rc)?;
        left[0].retain(|&id| id != 1_000_000);
        assert_eq!(whole_groups(&groups, &left)?.len(), 200);
        let status = rc.queue_status()?;
        for group in &groups {
            for &member in &group[1..] {
                assert_eq!(
                    status.engines[member].stolen_in, before.engines[member].stolen_in,
                    "a member stole: {status} (before: {before})"
                );
            }
        }
        println!("({stolen} of 200 group tasks were stolen)");
        Ok(())
    });

    list.check("a_panicking_member_fails_the_task_naming_it", || {
        if size < 2 {
            return skip("groups of one engine have no member");
        }
        for _ in 0..groups.len() * 2 {
            let ar = gv.apply(panic_at, (1usize, size));
            let err = ar.get();
            let meta = ar.metadata();
            match err {
                Err(Error::Remote {
                    engine, message, ..
                }) => {
                    assert_eq!(engine, meta[0].engine + 1, "names the member");
                    assert!(message.contains("gives up"), "{message}");
                }
                other => return Err(format!("{other:?}").into()),
            }
            assert_eq!(meta.len(), size, "every member's metadata");
        }
        ran(rc)?;
        // The groups serve on.
        for id in 0..groups.len() as u64 * 2 {
            gv.apply(part, (id, 1)).get()?;
        }
        whole_groups(&groups, &ran(rc)?)?;
        Ok(())
    });

    list.check("a_panicking_leader_fails_the_task_naming_it", || {
        let ar = gv.apply(panic_at, (0usize, size));
        match ar.get() {
            Err(Error::Remote { engine, .. }) => assert_eq!(engine, ar.metadata()[0].engine),
            other => return Err(format!("{other:?}").into()),
        }
        assert_eq!(gv.apply(part, (0, 2u64)).get()? / 1000, 2);
        ran(rc)?;
        Ok(())
    });

    list.check("follow_and_after_between_group_tasks", || {
        ran(rc)?;
        let first = gv.apply(slow_part, (1, 0.05));
        let second = gv.follow(&first).apply(part, (2, 0u64));
        let third = gv.after(&second).apply(part, (3, 0u64));
        let (a, b) = (first.get()?, second.get()?);
        third.get()?;
        assert_eq!(a as u64, b % 1000, "follow runs on the same group");
        assert!(third.metadata()[0].started >= second.metadata()[0].completed);
        whole_groups(&groups, &ran(rc)?)?;
        Ok(())
    });

    list.check("imap_over_groups", || {
        ran(rc)?;
        let got: Vec<u64> = gv
            .chunksize(2)
            .max_outstanding(3)
            .imap(square, 0..30u64)
            .collect::<rankview::Result<_>>()?;
        assert_eq!(got, (0..30u64).map(|x| x * x).collect::<Vec<_>>());
        assert_eq!(whole_groups(&groups, &ran(rc)?)?.len(), 30);
        Ok(())
    });

    list.check("retries_land_on_another_group", || {
        if groups.len() < 2 {
            return skip("one group");
        }
        // A member of the first group is bad: a task there fails, its retry
        // runs on another group.
        let bad = groups[0][size - 1];
        for _ in 0..4 {
            let ar = gv.retries(1).apply(fail_on, (bad,));
            let leader = ar.get()?;
            assert_ne!(leader, groups[0][0], "succeeded where the bad engine is");
        }
        Ok(())
    });

    list.check("abort_drops_queued_group_tasks", || {
        ran(rc)?;
        let busy: Vec<_> = (0..groups.len() as u64)
            .map(|id| gv.apply(slow_part, (100 + id, 0.3)))
            .collect();
        let queued: Vec<_> = (0..5u64).map(|id| gv.apply(part, (id, 0))).collect();
        gv.abort(&queued)?;
        let mut aborted = 0;
        for ar in &queued {
            match ar.get() {
                Err(Error::TaskAborted { .. }) => aborted += 1,
                Ok(_) => {}
                other => return Err(format!("{other:?}").into()),
            }
        }
        for ar in &busy {
            ar.get()?;
        }
        assert!(aborted > 0, "nothing was aborted");
        whole_groups(&groups, &ran(rc)?)?;
        Ok(())
    });

    list.check("queue_status_and_one_timeline_lane_per_group", || {
        let hold: Vec<_> = (0..groups.len() as u64 * 3)
            .map(|id| gv.apply(slow_part, (id, 0.1)))
            .collect();
        wait_until("a group task running", || {
            let status = rc.queue_status()?;
            Ok(groups.iter().any(|g| status.engines[g[0]].running > 0))
        })?;
        let status = rc.queue_status()?;
        for group in &groups {
            for &member in &group[1..] {
                let s = &status.engines[member];
                assert_eq!(s.queued, 0, "a member queues no group task: {status}");
            }
        }
        let mut timeline = rankview::Timeline::new();
        for ar in &hold {
            ar.get()?;
            timeline.extend(ar.timeline());
        }
        let lanes: BTreeSet<usize> = timeline.records().iter().filter_map(|r| r.engine).collect();
        let leaders: BTreeSet<usize> = groups.iter().map(|g| g[0]).collect();
        assert!(
            lanes.is_subset(&leaders),
            "lanes {lanes:?}, leaders {leaders:?}"
        );
        ran(rc)?;
        Ok(())
    });
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    rankview::launch(|rc| -> Result<(), String> {
        match mode.as_str() {
            // A member panics while its leader waits for it in a
            // collective: the job must end within seconds, saying so.
            "panic_in_collective" => {
                let gv = rc.groups(2).map_err(|e| e.to_string())?;
                let r = gv.apply(panic_in_collective, ()).get();
                Err(format!("the job went on after a stuck collective: {r:?}"))
            }
            // A member is killed while its leader waits for it.
            "killed_in_collective" => {
                let gv = rc.groups(2).map_err(|e| e.to_string())?;
                let r = gv.apply(killed_in_collective, ()).get();
                Err(format!("the job went on after a member was killed: {r:?}"))
            }
            // Group tasks still pending (one running, more queued) when
            // the client returns: they complete, and the job ends cleanly.
            "pending_at_return" => {
                let log = std::env::args().nth(2).ok_or("pending_at_return LOG")?;
                let gv = rc.groups(2).map_err(|e| e.to_string())?;
                for ms in [300, 50, 50, 50] {
                    drop(gv.apply(late_barrier, (ms, log.clone())));
                }
                Ok(())
            }
            // A member never enters the barrier its leader waits in.
            "never_enters" => {
                let gv = rc.groups(2).map_err(|e| e.to_string())?;
                let r = gv.apply(member_skips_barrier, ()).get();
                Err(format!("the job went on after a stuck barrier: {r:?}"))
            }
            _ => {
                let mut list = Checklist::new("check_groups");
                checks(rc, &mut list);
                list.finish()
            }
        }
    });
}
