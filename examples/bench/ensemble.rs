//! `w11` ensemble: 16 small MPI runs of ~50 ms each on groups of 2
//! engines, load-balanced over the groups by `rc.groups(2)`, against a raw
//! MPI program in the same job that splits `COMM_WORLD` into the same
//! groups (`MPI_Comm_split`) and farms the runs by hand. Owns both sides:
//! the run (steps of computation, each ending in an allreduce over the
//! group), the raw farm and its MPI section, and the rankview side.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rankview::mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use rankview::mpi::point_to_point::{Destination, Source};
use rankview::mpi::topology::{Color, Communicator, SimpleCommunicator};
use rankview::{Client, ReduceOp};

use crate::report::report;
use crate::sizes::{W11_GROUP, W11_POLL, W11_REPS, W11_STEPS, W11_STEP_US, W11_TASKS};
use crate::stats::{median, raw_median, record, Samples};
use crate::tasks::spin_us;

/// What tells a raw group that the farm is over.
const STOP: u64 = u64::MAX;

/// The sum of the raw farm's last values (an `f64`'s bits), to check the
/// rankview side's against.
static RAW_SUM: AtomicU64 = AtomicU64::new(0);

/// One run's step: its computation, then the value every rank of the
/// group agrees on.
fn step(x: f64, k: usize) -> f64 {
    spin_us(W11_STEP_US);
    x * 0.5 + k as f64
}

/// A run of the ensemble through rankview: every engine of the group does
/// the steps, each ending in an allreduce on the group's communicator.
#[rankview::remote]
pub fn w11_run(task: u64) -> rankview::TaskResult<f64> {
    let comm = rankview::comm()?;
    let mut x = task as f64 + comm.rank() as f64;
    for k in 0..W11_STEPS {
        x = comm.all_reduce(step(x, k), ReduceOp::Max)?;
    }
    Ok(x)
}

/// The same run on a raw group communicator.
fn raw_run(group: &SimpleCommunicator, task: u64) -> f64 {
    let mut x = task as f64 + group.rank() as f64;
    for k in 0..W11_STEPS {
        let mine = step(x, k);
        group.all_reduce_into(&mine, &mut x, SystemOperation::max());
    }
    x
}

/// The raw farm: rank 0 hands each group's leader a run as soon as the
/// group is free (probing for results with short sleeps, so that the
/// groups have the cores), the leader broadcasts it in its group, every
/// rank of the group runs it, and the leader returns the value. The
/// makespan and the values' sum on rank 0.
fn raw_farm(
    world: &SimpleCommunicator,
    group: Option<&SimpleCommunicator>,
) -> Option<(Duration, f64)> {
    world.barrier();
    if let Some(group) = group {
        let master = world.process_at_rank(0);
        loop {
            let mut task = 0u64;
            if group.rank() == 0 {
                master.receive_into(&mut task);
            }
            group.process_at_rank(0).broadcast_into(&mut task);
            if task == STOP {
                return None;
            }
            let value = raw_run(group, task);
            if group.rank() == 0 {
                master.send(&value);
            }
        }
    }
    if world.rank() != 0 {
        return None;
    }
    let groups = (world.size() as usize - 1) / W11_GROUP;
    let leader = |g: usize| world.process_at_rank((1 + g * W11_GROUP) as i32);
    let t = Instant::now();
    let mut next = 0..W11_TASKS as u64;
    let mut busy = 0;
    for g in 0..groups {
        match next.next() {
            Some(task) => {
                leader(g).send(&task);
                busy += 1;
            }
            None => leader(g).send(&STOP),
        }
    }
    let mut sum = 0.0;
    while busy > 0 {
        while world.any_process().immediate_probe().is_none() {
            std::thread::sleep(W11_POLL);
        }
        let mut value = 0.0f64;
        let status = world.any_process().receive_into(&mut value);
        sum += value;
        let free = world.process_at_rank(status.source_rank());
        match next.next() {
            Some(task) => free.send(&task),
            None => {
                free.send(&STOP);
                busy -= 1;
            }
        }
    }
    Some((t.elapsed(), sum))
}

/// The MPI section of `w11`'s raw side. Each section splits its group
/// communicators anew (before the farm's barrier, so outside the timing):
/// a section may run on any thread of a rank (whichever makes the pass of
/// its loop), and a communicator cannot be kept across threads.
pub fn section(launch: rankview::Launch, raw: &Samples) -> rankview::Launch {
    let raw = raw.clone();
    launch.mpi_section("w11", move |world| {
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let groups = (size - 1) / W11_GROUP;
        let color = match rank.checked_sub(1).map(|e| e / W11_GROUP) {
            Some(g) if g < groups => Color::with_value(g as i32),
            _ => Color::undefined(),
        };
        let group = world.split_by_color(color);
        if let Some((t, sum)) = raw_farm(world, group.as_ref()) {
            record(&raw, "w11", [t]);
            RAW_SUM.store(sum.to_bits(), Ordering::SeqCst);
        }
    })
}

/// `w11` ensemble: the 16 runs on `rc.groups(2)`, against the raw farm.
pub fn w11(rc: &Client, raw: &Samples, json: bool) -> rankview::Result<()> {
    let groups = rc.groups(W11_GROUP)?;
    // The groups' communicators are made on first use: once, outside the
    // timing (the raw side splits before its first timing too).
    groups.apply_sync(w11_run, (0u64,))?;
    let mut samples = Vec::with_capacity(W11_REPS);
    let mut sum = 0.0;
    for _ in 0..W11_REPS {
        rc.mpi_section("w11").get()?;
        let t = Instant::now();
        let runs: Vec<_> = (0..W11_TASKS as u64)
            .map(|task| groups.apply(w11_run, (task,)))
            .collect();
        sum = 0.0;
        for run in runs {
            sum += run.get()?;
        }
        samples.push(t.elapsed());
    }
    let raw_sum = f64::from_bits(RAW_SUM.load(Ordering::SeqCst));
    assert!(
        (sum - raw_sum).abs() <= 1e-6 * raw_sum.abs().max(1.0),
        "w11: rankview's runs sum to {sum}, the raw farm's to {raw_sum}"
    );
    report(
        json,
        "w11",
        "ensemble",
        median(samples),
        raw_median(raw, "w11")?,
        "s",
    );
    Ok(())
}
