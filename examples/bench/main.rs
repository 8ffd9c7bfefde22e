//! rankview beside raw MPI, in the same job. Run it with
//! `rankview run -n 3 --release --example bench -- --workload w1 --json`.
//!
//! Workloads (the project's benchmark targets), each printed with the raw MPI figure beside ours:
//! - `w1` roundtrip_latency: `apply_sync` of a trivial function on engine 0
//!   against an 8-byte MPI ping-pong between ranks 0 and 1 (20,000 round
//!   trips each; p50, p90 and p99 of both, `ratio` of the medians and
//!   `p99_over_raw_median`; goals ≤ 10 and ≤ 30).
//! - `w3` scatter_gather_bandwidth: `scatter` then `gather` of 2^25 `f64`
//!   (256 MiB) over every engine, against raw `MPI_Scatterv` + `MPI_Gatherv`
//!   of the same buffer (medians of 11).
//! - `w8` broadcast_bandwidth: `push` of 64 MiB of `f64` to every engine,
//!   against raw `MPI_Bcast` (medians of 15).
//! - `w3loop` scatter_gather_loop: `w3` as a compute loop does it:
//!   scatter into a name the engines already hold (received into its
//!   memory) and `gather_into` a buffer the client keeps, against raw
//!   `MPI_Scatterv` + `MPI_Gatherv` with every buffer allocated once
//!   (medians of 11; goal ≤ 1.12).
//! - `w8loop` broadcast_loop: `w8` into a name the engines already hold,
//!   against raw `MPI_Bcast` into buffers allocated once (medians of 15;
//!   goal ≤ 1.12).
//!
//!   Both loops also time the raw side with its kept buffers in huge pages
//!   (`raw_huge_s`, `ratio_huge`), alternating with the plain ones: rankview
//!   moves a buffer that rank 0 lends a second time onto huge pages, which
//!   the plain raw side does not have, so `ratio` is against the program
//!   most people write and `ratio_huge` against the fastest one.
//! - `w9` pull_bandwidth: `get` (a `pull`) of 64 MiB of `f64` from engine
//!   0 into a new `Vec` (`ratio`), and `pull_into` a kept buffer
//!   (`ratio_into`), against a raw `MPI_Send`/`MPI_Recv` of the same buffer
//!   with both sides' buffers allocated once and kept (medians of 11; goal
//!   ≤ 1.12). A new `Vec` is faulted in page by page as the data arrives,
//!   which the kept buffers on both sides of `ratio_into` are not. The raw
//!   transfer is also timed between kept buffers in huge pages
//!   (`raw_huge_s`, `ratio_huge`, `ratio_into_huge`), as the engine's value
//!   is: a value that arrived by `push` lives in huge pages. `w9` is judged
//!   by `ratio_into` (a kept buffer on both sides); `get` is also set
//!   against a raw receive into a buffer allocated for each repetition
//!   (`vec![0.0; n]`, as a program that keeps nothing does: `raw_fresh_s`,
//!   `ratio_fresh`), both with the goal ≤ 1.12.
//!
//! - `w11` ensemble: 16 runs of ~50 ms (50 steps of 1 ms of computation,
//!   each ending in an allreduce over the group through `rankview::comm()`)
//!   on `rc.groups(2)`, against a raw MPI farm that splits `COMM_WORLD`
//!   into the same groups and hands each group's leader the next run as the
//!   group frees up (median makespans of 5; goal ratio ≤ 1.1; run it on 5
//!   ranks: two groups).
//! - `w13` held_result_memory: rank 0's RSS growth per result while it
//!   holds 10^6 finished results of empty load-balanced tasks, and how much
//!   of that growth stays once they are dropped (goal ≤ 256 bytes per
//!   result, ≤ 10 % kept).
//! - `w5` idle: the CPU an engine uses while the client does nothing for
//!   3 s, against a rank waiting the same time in `MPI_Barrier` (per cent of
//!   one core; the goal is ≤ 1% for rankview).
//! - `w1idle` latency_after_idle: `apply_sync` of a no-op after 100 ms of
//!   quiet, against an 8-byte ping-pong after the same quiet (median and
//!   p99 of 40; the goal is a median ≤ 1 ms for rankview).
//! - `w10` object_bandwidth: `push`, `apply` with it as the argument, and
//!   `pull` of a 64 MiB `Vec<String>` on engine 0, against the bare cost of
//!   moving it once: encoding it (bincode, as rankview's codec does) into a
//!   buffer kept across repetitions, one raw send of the bytes into a kept
//!   buffer and decoding them on rank 1 (medians of 5; `ratio` is
//!   the slowest of the three over raw, goal ≤ 1.5).
//!
//! - `w2` task_throughput: 20,000 no-op `apply`s on the load-balanced view
//!   (chunksize 1), all submitted, then all collected, against a raw MPI
//!   master/worker farm with one message per task each way: rank 0 first
//!   sends every worker two tasks, then hands the next task to whichever
//!   worker returns a result (`MPI_Recv` from any source, spinning as Open
//!   MPI does), so each worker always has its next task waiting; a task and
//!   a result are one `u64` each, buffers allocated once (tasks per second,
//!   medians of 5; the goal is ≥ 200,000 tasks/s for rankview and a ratio
//!   rankview / raw ≥ 1). Its line, `w2map`'s and `metg`'s summary say
//!   whether the engines captured each task's output (`"capture"`: false
//!   under `RANKVIEW_NO_CAPTURE=1`), which costs two system calls a task.
//! - `w2map` map_throughput: `map` of `x + 1` over 10^6 `u64` on the
//!   load-balanced view with rankview's default chunksize, results checked,
//!   against raw `MPI_Scatterv` of the items over the engines, `x + 1`
//!   there and `MPI_Gatherv` back (items per second, medians of 5; the goal
//!   is ≥ 50,000,000 items/s for rankview, ≥ 0.2 of raw).
//! - `w4` balance: 64 tasks that spin on the clock for exponentially
//!   distributed durations (mean 20 ms, SplitMix64 with a fixed seed), one
//!   `apply` each on the load-balanced view, against a raw greedy farm (the
//!   `w2` farm with one task per worker at a time: rank 0 hands the next
//!   task to whichever worker finishes, probing for results with 50 µs
//!   sleeps between probes so that the workers have the cores).
//!   `efficiency` is the sum of the durations / (engines × makespan),
//!   median makespan of 3; `ideal_greedy` is what handing the tasks out in
//!   order with no overhead at all reaches (a work-stealing queue may land
//!   above it: steals change which engine runs which task). The goal is
//!   ≥ 0.97 for rankview.
//! - `w6` imap_memory: 10^6 `x + 1` tasks through `imap` with at most
//!   10,000 outstanding, each result dropped once read: the client's (rank
//!   0's) RSS growth (VmRSS) from right after the first 10,000 results to
//!   the end, and tasks per second (no raw side; the goal is ≤ 32 MiB).
//!
//! - `w12` psum_allreduce: `mpi_psum`'s allreduce (`MPI_SUM` of `f64`)
//!   through a task's communicator (`rankview::comm()`, a task on every
//!   engine) against the same allreduce in a raw MPI section on a
//!   communicator of the engines, buffers allocated once on both sides:
//!   microseconds per allreduce of one value (`ratio`) and of 2^20 values
//!   (`ratio_large`), the slowest engine's, medians of 7 (goal ≤ 1.1).
//!
//! - `startup`: from starting a job to the first `apply_sync` answered by
//!   every engine, against a raw MPI program's start to after `MPI_Init` +
//!   `MPI_Barrier`, for 2, 4, 8, 16 and 32 ranks (oversubscribed; medians of
//!   3 jobs each; the goal is at most 0.15 s added). This workload starts
//!   its own jobs: run it alone and not under an MPI launcher,
//!   `target/release/examples/bench --workload startup --json`
//!   (`MPIEXEC` picks the launcher, default `mpirun`).
//!
//! Unless a workload says otherwise, both sides allocate their receive
//! buffers for every repetition, as a program moving data once would. The
//! raw half runs in MPI sections (`Launch::mpi_section`) on every rank,
//! alternating with the rankview half, so that both see the same machine
//! noise. `--json` prints one JSON line per workload; otherwise a table.
//! `--timeline FILE` draws the job's timeline (`rc.timeline()`: every
//! task part of the workloads run, the last 100,000 of them) into FILE
//! after the workloads, as SVG, or as an HTML page if FILE ends in
//! `.html`.
//! `BENCH_SAMPLES=1` also prints every sample to stderr.
//!
//! The files: `raw` (the raw MPI baselines and their MPI sections),
//! `workloads` (the rankview side of each workload), `tasks` (what runs on
//! the engines), `sizes` (what both sides share), `stats` and `report`
//! (medians, quantiles and printing), `startup`, `metg`, `ensemble` (`w11`)
//! and `psum` (`w12`) (the workloads with a file of their own). This file reads the arguments and runs the
//! job.

mod ensemble;
mod metg;
mod psum;
mod raw;
mod report;
mod sizes;
mod startup;
mod stats;
mod tasks;
mod workloads;

use std::sync::Arc;

use crate::startup::{startup, startup_child};
use crate::stats::Samples;

/// Every workload, in the order a bare run measures them.
const KNOWN: &[&str] = &[
    "w1", "w1idle", "w2", "w2map", "w3", "w3loop", "w4", "w5", "w6", "w8", "w8loop", "w9", "w10",
    "w11", "w13", "metg", "w12",
];

struct Options {
    workloads: Vec<String>,
    json: bool,
    /// `--timeline FILE`: where to draw `rc.timeline()` after the workloads.
    timeline: Option<String>,
    /// `--metg-svg FILE`: where to draw the `metg` curves.
    metg_svg: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut workloads = Vec::new();
    let mut json = false;
    let mut timeline = None;
    let mut metg_svg = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--workload" => workloads.push(args.next().ok_or("--workload needs a name")?),
            "--timeline" => timeline = Some(args.next().ok_or("--timeline needs a file")?),
            "--metg-svg" => metg_svg = Some(args.next().ok_or("--metg-svg needs a file")?),
            other => {
                return Err(format!(
                    "unknown argument {other:?} (try --workload w1 --json)"
                ))
            }
        }
    }
    if workloads.is_empty() {
        workloads = KNOWN.iter().map(|w| w.to_string()).collect();
    }
    if let Some(w) = workloads
        .iter()
        .find(|w| !KNOWN.contains(&w.as_str()) && w.as_str() != "startup")
    {
        return Err(format!(
            "unknown workload {w:?}; known: {}, startup",
            KNOWN.join(", ")
        ));
    }
    Ok(Options {
        workloads,
        json,
        timeline,
        metg_svg,
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--startup-child") {
        startup_child(&args.next().unwrap_or_default());
        return;
    }
    let options = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    if options.workloads.iter().any(|w| w == "startup") {
        let only = options.workloads.len() == 1;
        let outcome = if only {
            startup(options.json)
        } else {
            Err("run the startup workload alone: it starts its own jobs".into())
        };
        if let Err(e) = outcome {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
        return;
    }
    let raw: Samples = Arc::default();
    let launch = psum::section(raw::sections(rankview::Launch::new(), &raw), &raw);
    let launch = ensemble::section(launch, &raw);
    launch.run(|rc| -> rankview::Result<()> {
        let all = rc.all();
        for workload in &options.workloads {
            match workload.as_str() {
                "w1" => workloads::w1(rc, &raw, options.json)?,
                "w3" => workloads::w3(rc, &all, &raw, options.json)?,
                "w8" => workloads::w8(rc, &all, &raw, options.json)?,
                "w1idle" => workloads::w1idle(rc, &raw, options.json)?,
                "w3loop" => workloads::w3loop(rc, &all, &raw, options.json)?,
                "w8loop" => workloads::w8loop(rc, &all, &raw, options.json)?,
                "w9" => workloads::w9(rc, &raw, options.json)?,
                "w10" => workloads::w10(rc, &raw, options.json)?,
                "w2" => workloads::w2(rc, &raw, options.json)?,
                "w2map" => workloads::w2map(rc, &raw, options.json)?,
                "metg" => workloads::metg(rc, options.json, options.metg_svg.as_deref())?,
                "w4" => workloads::w4(rc, &raw, options.json)?,
                "w6" => workloads::w6(rc, options.json)?,
                "w13" => workloads::w13(rc, options.json)?,
                "w11" => ensemble::w11(rc, &raw, options.json)?,
                "w5" => workloads::w5(rc, &all, options.json)?,
                "w12" => psum::w12(rc, &raw, options.json)?,
                _ => {}
            }
        }
        if let Some(path) = &options.timeline {
            let timeline = rc.timeline();
            if path.ends_with(".html") {
                timeline.write_html(path)?;
            } else {
                timeline.write_svg(path)?;
            }
            eprintln!(
                "bench: timeline of {} task parts ({} earlier left out) written to {path}",
                timeline.len(),
                timeline.left_out()
            );
        }
        Ok(())
    });
}
