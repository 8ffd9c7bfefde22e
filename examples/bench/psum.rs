//! `w12` psum_allreduce: `mpi_psum`'s allreduce through a task's
//! communicator (`rankview::comm()`) against the same allreduce in a raw
//! MPI section, in the same job. Owns both sides: the task that runs the
//! allreduces on every engine, the raw section, and the report.
//!
//! Both sides time, on every engine, a loop of allreduces (`MPI_SUM` of
//! `f64`) among exactly the engines, after a few untimed ones, with the
//! buffers allocated once; the figure of one repetition is the slowest
//! engine's time per allreduce. Two sizes: one value (the psum itself, a
//! latency) and 2^20 values (8 MiB, a bandwidth). The raw side is what an
//! expert writes in a section: `MPI_Comm_split` of the world into the
//! engines (rank 0 apart, outside the timed loop) and blocking
//! `MPI_Allreduce`; rankview's is a task of a direct view over every
//! engine calling `TaskComm::all_reduce_into`.

use std::time::{Duration, Instant};

use rankview::mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use rankview::mpi::request::scope;
use rankview::mpi::topology::{Color, Communicator, SimpleCommunicator};
use rankview::{Client, ReduceOp, TaskResult};

use crate::stats::{median, raw_median, record, Samples};

/// Elements of the large allreduce.
const LARGE: usize = 1 << 20;
/// Allreduces timed per repetition: one value, and `LARGE` values.
const SMALL_OPS: usize = 2_000;
const LARGE_OPS: usize = 20;
/// Untimed allreduces before each timed loop.
const WARMUP: usize = 10;
/// Repetitions of each side, alternating (medians).
const REPS: usize = 7;

/// The sizes and loop lengths measured, in order.
const CASES: [(usize, usize, &str); 2] = [(1, SMALL_OPS, "w12"), (LARGE, LARGE_OPS, "w12_large")];

/// Times `ops` allreduces of `len` values among the engines of `allreduce`
/// (after `WARMUP` untimed ones) and checks their result: the sum over
/// `size` engines of `rank + 1` in every element. Seconds per allreduce.
fn timed(
    len: usize,
    ops: usize,
    rank: usize,
    size: usize,
    mut allreduce: impl FnMut(&[f64], &mut [f64]) -> rankview::Result<()>,
) -> rankview::Result<f64> {
    let send = vec![(rank + 1) as f64; len];
    let mut recv = vec![0.0f64; len];
    for _ in 0..WARMUP {
        allreduce(&send, &mut recv)?;
    }
    let t = Instant::now();
    for _ in 0..ops {
        allreduce(&send, &mut recv)?;
    }
    let per_op = t.elapsed().as_secs_f64() / ops as f64;
    let want = (size * (size + 1) / 2) as f64;
    if recv.iter().any(|&x| x != want) {
        return Err(rankview::Error::Usage(format!(
            "allreduce gave {} where {want} was due",
            recv[0]
        )));
    }
    Ok(per_op)
}

/// rankview's side on one engine: `ops` allreduces of `len` values through
/// the task's communicator; seconds per allreduce.
#[rankview::remote]
pub fn psum_allreduce(len: usize, ops: usize) -> TaskResult<f64> {
    let comm = rankview::comm()?;
    let (rank, size) = (comm.rank(), comm.size());
    Ok(timed(len, ops, rank, size, |send, recv| {
        comm.all_reduce_into(send, recv, ReduceOp::Sum)
    })?)
}

/// The raw side, in the section `w12` on every rank: each case's loop among
/// the engines with blocking `MPI_Allreduce` (key `w12`, `w12_large`) and
/// with `MPI_Iallreduce` completed by an `MPI_Test` loop (`w12_nb`,
/// `w12_large_nb`: the non-blocking call rankview's MPI thread makes), the
/// slowest engine's time per allreduce recorded on rank 0. Rank 0 waits
/// for the engines in a sleeping poll, as rankview's idle controller does,
/// so that it does not take a core from them.
pub fn section(launch: rankview::Launch, raw: &Samples) -> rankview::Launch {
    let raw = raw.clone();
    launch.mpi_section("w12", move |world| {
        let color = match world.rank() {
            0 => Color::undefined(),
            _ => Color::with_value(1),
        };
        let engines: Option<SimpleCommunicator> = world.split_by_color(color);
        for (len, ops, key) in CASES {
            for blocking in [true, false] {
                let per_op = match &engines {
                    Some(comm) => {
                        let (rank, size) = (comm.rank() as usize, comm.size() as usize);
                        comm.barrier();
                        timed(len, ops, rank, size, |send, recv| {
                            if blocking {
                                comm.all_reduce_into(send, recv, SystemOperation::sum());
                            } else {
                                scope(|scope| {
                                    let mut request = comm.immediate_all_reduce_into(
                                        scope,
                                        send,
                                        recv,
                                        SystemOperation::sum(),
                                    );
                                    while let Err(waiting) = request.test() {
                                        request = waiting;
                                    }
                                });
                            }
                            Ok(())
                        })
                        .expect("the raw allreduce is right")
                    }
                    None => 0.0,
                };
                let slowest = slowest_on_rank_0(world, per_op);
                let key = match (key, blocking) {
                    (key, true) => key,
                    ("w12", false) => "w12_nb",
                    _ => "w12_large_nb",
                };
                if world.rank() == 0 {
                    record(&raw, key, [Duration::from_secs_f64(slowest)]);
                }
            }
        }
    })
}

/// The largest of every engine's `per_op`, on rank 0 (0 elsewhere); rank 0
/// waits for the engines' figures in a sleeping poll.
fn slowest_on_rank_0(world: &SimpleCommunicator, per_op: f64) -> f64 {
    // Non-blocking on every rank: MPI never matches a blocking collective
    // with a non-blocking one.
    let mut arrived = world.immediate_barrier();
    while let Err(waiting) = arrived.test() {
        arrived = waiting;
        if world.rank() == 0 {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    let root = world.process_at_rank(0);
    let mut slowest = 0.0f64;
    if world.rank() == 0 {
        root.reduce_into_root(&per_op, &mut slowest, SystemOperation::max());
    } else {
        root.reduce_into(&per_op, SystemOperation::max());
    }
    slowest
}

/// `w12`: both sides, alternating, and the report (time per allreduce;
/// `ratio` for one value, `ratio_large` for 2^20, each against blocking
/// `MPI_Allreduce`; `ratio_nb`, `ratio_large_nb` against `MPI_Iallreduce`).
pub fn w12(rc: &Client, raw: &Samples, json: bool) -> rankview::Result<()> {
    if rc.len() < 2 {
        return Err(rankview::Error::Usage(
            "w12 needs two engines or more (run it on 3 ranks or more)".into(),
        ));
    }
    let all = rc.all();
    let mut ours: [Vec<Duration>; 2] = Default::default();
    for _ in 0..REPS {
        rc.mpi_section("w12").get()?;
        for (k, (len, ops, _)) in CASES.into_iter().enumerate() {
            let per_op = all.apply_sync(psum_allreduce, (len, ops))?;
            let slowest = per_op.into_iter().fold(0.0f64, f64::max);
            ours[k].push(Duration::from_secs_f64(slowest));
        }
    }
    let [small, large] = ours.map(|samples| median(samples).as_secs_f64() * 1e6);
    let raw_small = raw_median(raw, "w12")?.as_secs_f64() * 1e6;
    let raw_large = raw_median(raw, "w12_large")?.as_secs_f64() * 1e6;
    let nb_small = raw_median(raw, "w12_nb")?.as_secs_f64() * 1e6;
    let nb_large = raw_median(raw, "w12_large_nb")?.as_secs_f64() * 1e6;
    let (ratio, ratio_large) = (small / raw_small, large / raw_large);
    let (ratio_nb, ratio_large_nb) = (small / nb_small, large / nb_large);
    if json {
        println!(
            "{{\"workload\":\"w12\",\"rankview_us\":{small:.3},\"raw_us\":{raw_small:.3},\"ratio\":{ratio:.3},\"raw_nb_us\":{nb_small:.3},\"ratio_nb\":{ratio_nb:.3},\"rankview_large_us\":{large:.3},\"raw_large_us\":{raw_large:.3},\"ratio_large\":{ratio_large:.3},\"raw_large_nb_us\":{nb_large:.3},\"ratio_large_nb\":{ratio_large_nb:.3}}}"
        );
    } else {
        println!(
            "w12 psum_allreduce             1 value: rankview {small:>9.3} us  raw MPI {raw_small:>9.3} us  ratio {ratio:>7.3}  raw Iallreduce {nb_small:>9.3} us  ratio {ratio_nb:>7.3}"
        );
        println!(
            "w12 psum_allreduce       2^20 values: rankview {large:>9.3} us  raw MPI {raw_large:>9.3} us  ratio {ratio_large:>7.3}  raw Iallreduce {nb_large:>9.3} us  ratio {ratio_large_nb:>7.3}"
        );
    }
    Ok(())
}
