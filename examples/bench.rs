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
//!   rankview / raw ≥ 1).
//! - `w2map` map_throughput: `map` of `x + 1` over 10^6 `u64` on the
//!   load-balanced view with rankview's default chunksize, results checked,
//!   against raw `MPI_Scatterv` of the items over the engines, `x + 1`
//!   there and `MPI_Gatherv` back (items per second, medians of 5; the goal
//!   is ≥ 5,000,000 items/s for rankview).
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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rankview::mpi::collective::{CommunicatorCollectives, Root};
use rankview::mpi::datatype::{Partition, PartitionMut};
use rankview::mpi::point_to_point::{Destination, Source};
use rankview::mpi::topology::{Communicator, SimpleCommunicator};
use rankview::mpi::Count;

#[path = "bench/metg.rs"]
mod metg;

const PING_ROUNDS: usize = 20_000;
const PING_WARMUP: usize = 2_000;
const W3_ELEMENTS: usize = 1 << 25;
const W3_REPS: usize = 11;
const W8_ELEMENTS: usize = 8 << 20;
const W8_REPS: usize = 15;
const W9_ELEMENTS: usize = 8 << 20;
const W9_REPS: usize = 11;
const IDLE_GAP: Duration = Duration::from_millis(100);
const IDLE_ROUNDS: usize = 40;
const W10_STRINGS: usize = 1 << 20;
const W10_REPS: usize = 5;
const W2_TASKS: usize = 20_000;
const W2_REPS: usize = 5;
/// Tasks the raw `w2` farm keeps outstanding on each worker.
const W2_PIPE: usize = 2;
const W2MAP_ITEMS: usize = 1_000_000;
const W2MAP_REPS: usize = 5;
const W4_TASKS: usize = 64;
const W4_MEAN_US: f64 = 20_000.0;
const W4_SEED: u64 = 2024;
const W4_REPS: usize = 3;
/// How long the raw `w4` farm's rank 0 sleeps between probes for a result.
const W4_POLL: Duration = Duration::from_micros(50);
const W6_TASKS: u64 = 1_000_000;
/// Finished empty results `w13` holds at once.
const W13_RESULTS: usize = 1_000_000;
const W6_WINDOW: usize = 10_000;

#[rankview::remote]
fn noop() {}

#[rankview::remote]
fn increment(x: u64) -> u64 {
    x + 1
}

#[rankview::remote]
fn spin(us: u64) -> u64 {
    spin_us(us)
}

/// Busy-waits `us` microseconds on the clock (a `w4` task); returns `us`.
fn spin_us(us: u64) -> u64 {
    let end = Instant::now() + Duration::from_micros(us);
    while Instant::now() < end {
        std::hint::spin_loop();
    }
    us
}

/// SplitMix64: a tiny deterministic generator for `w4`'s durations.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `w4`'s task durations in microseconds: exponential, mean `W4_MEAN_US`,
/// the same on every rank and every run.
fn w4_durations_us() -> Vec<u64> {
    let mut rng = SplitMix64(W4_SEED);
    (0..W4_TASKS)
        .map(|_| (-W4_MEAN_US * (1.0 - rng.unit()).ln()).round() as u64)
        .collect()
}

/// Resident memory of this process (VmRSS in /proc/self/status), in bytes.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[rankview::remote]
fn count_strings(items: Vec<String>) -> usize {
    items.len()
}

/// 64 MiB of text as 2^20 strings of 64 bytes.
fn w10_strings() -> Vec<String> {
    (0..W10_STRINGS).map(|i| format!("{i:064}")).collect()
}

/// CPU time of this process so far (all threads), from /proc.
fn cpu_time() -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

#[rankview::remote]
fn engine_cpu_ns() -> u64 {
    cpu_time().as_nanos() as u64
}

/// CPU an engine used inside the last `w5` MPI section, in nanoseconds.
static RAW_IDLE_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[rankview::remote]
fn raw_idle_ns() -> u64 {
    RAW_IDLE_NS.load(std::sync::atomic::Ordering::SeqCst)
}

const IDLE: Duration = Duration::from_secs(3);

fn median(mut samples: Vec<Duration>) -> Duration {
    if std::env::var_os("BENCH_SAMPLES").is_some() {
        eprintln!("samples: {samples:?}");
    }
    samples.sort();
    samples[samples.len() / 2]
}

/// One 8-byte ping-pong round between ranks 0 and 1, `rounds` times; the
/// round trip times on rank 0.
fn raw_pingpong(world: &SimpleCommunicator, rounds: usize) -> Vec<Duration> {
    let mut buf = [0u8; 8];
    let mut samples = Vec::with_capacity(rounds);
    match world.rank() {
        0 => {
            let peer = world.process_at_rank(1);
            for _ in 0..rounds {
                let t = Instant::now();
                peer.send(&buf[..]);
                peer.receive_into(&mut buf[..]);
                samples.push(t.elapsed());
            }
        }
        1 => {
            let peer = world.process_at_rank(0);
            for _ in 0..rounds {
                peer.receive_into(&mut buf[..]);
                peer.send(&buf[..]);
            }
        }
        _ => {}
    }
    samples
}

/// `rounds` 8-byte ping-pongs between ranks 0 and 1, each after rank 0 has
/// been quiet for `IDLE_GAP` (rank 1 waits in `MPI_Recv`); times on rank 0.
fn raw_pingpong_after_idle(world: &SimpleCommunicator, rounds: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        if world.rank() == 0 {
            std::thread::sleep(IDLE_GAP);
        }
        samples.extend(raw_pingpong(world, 1));
    }
    samples
}

/// One raw transfer of `data` from rank 0 to rank 1 as an expert would
/// write it: encode once into `buffer` (kept across repetitions, so its
/// pages are already there), send the length and the bytes into rank 1's
/// kept `buffer`, decode there; rank 1 answers with one byte. The time on
/// rank 0.
fn raw_object_send(
    world: &SimpleCommunicator,
    data: &[String],
    buffer: &mut Vec<u8>,
) -> Option<Duration> {
    let config = bincode::config::standard();
    world.barrier();
    match world.rank() {
        0 => {
            let peer = world.process_at_rank(1);
            let t = Instant::now();
            buffer.clear();
            bincode::serde::encode_into_std_write(data, buffer, config).ok()?;
            peer.send(&(buffer.len() as u64));
            peer.send(&buffer[..]);
            let mut ack = 0u8;
            peer.receive_into(&mut ack);
            Some(t.elapsed())
        }
        1 => {
            let peer = world.process_at_rank(0);
            let mut len = 0u64;
            peer.receive_into(&mut len);
            buffer.resize(len as usize, 0);
            peer.receive_into(&mut buffer[..]);
            let decoded: Option<(Vec<String>, usize)> =
                bincode::serde::decode_from_slice(buffer, config).ok();
            let ack = u8::from(decoded.is_some_and(|(d, _)| d.len() == W10_STRINGS));
            peer.send(&ack);
            None
        }
        _ => None,
    }
}

/// The task message that tells a raw farm worker to stop.
const FARM_STOP: u64 = u64::MAX;

/// A raw MPI master/worker farm, one message per task each way: rank 0
/// sends each worker `pipe` tasks, then hands the next task to whichever
/// worker returns a result (`MPI_Recv` from any source), until every result
/// is back; workers run `work` on each task and answer with its result. The
/// task and result buffers are one `u64` each, allocated once. Rank 0 waits
/// for a result in `MPI_Recv` (Open MPI spins there) when `poll` is `None`,
/// the fastest wait for microsecond tasks; with `Some(nap)` it probes and
/// sleeps `nap` between probes, leaving the cores to the workers when tasks
/// are long and the job oversubscribed. On rank 0: the time from after a
/// barrier to the last result, and the sum of the results.
fn raw_farm(
    world: &SimpleCommunicator,
    tasks: &[u64],
    pipe: usize,
    poll: Option<Duration>,
    work: fn(u64) -> u64,
) -> Option<(Duration, u64)> {
    let size = world.size();
    world.barrier();
    if world.rank() != 0 {
        let master = world.process_at_rank(0);
        let mut task = 0u64;
        loop {
            master.receive_into(&mut task);
            if task == FARM_STOP {
                return None;
            }
            master.send(&work(task));
        }
    }
    let t = Instant::now();
    let mut next = tasks.iter();
    for _ in 0..pipe {
        for worker in 1..size {
            if let Some(task) = next.next() {
                world.process_at_rank(worker).send(task);
            }
        }
    }
    let (mut result, mut sum) = (0u64, 0u64);
    for _ in 0..tasks.len() {
        if let Some(nap) = poll {
            while world.any_process().immediate_probe().is_none() {
                std::thread::sleep(nap);
            }
        }
        let status = world.any_process().receive_into(&mut result);
        sum = sum.wrapping_add(result);
        if let Some(task) = next.next() {
            world.process_at_rank(status.source_rank()).send(task);
        }
    }
    let elapsed = t.elapsed();
    for worker in 1..size {
        world.process_at_rank(worker).send(&FARM_STOP);
    }
    Some((elapsed, sum))
}

/// The value at quantile `q` (0..=1) of `samples`.
fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = ((sorted.len().saturating_sub(1)) as f64 * q).round() as usize;
    sorted.get(at).copied().unwrap_or_default()
}

/// Counts and displacements of ipyparallel's block rule over the engines
/// (rank 0 gets nothing).
fn partition(n: usize, ranks: usize) -> (Vec<Count>, Vec<Count>) {
    let engines = ranks - 1;
    let mut counts = vec![0 as Count];
    counts.extend((0..engines).map(|k| (n / engines + usize::from(k < n % engines)) as Count));
    let mut displs = Vec::with_capacity(ranks);
    let mut offset = 0;
    for &c in &counts {
        displs.push(offset);
        offset += c;
    }
    (counts, displs)
}

/// One raw `MPI_Scatterv` of the `n` elements of `data` (rank 0's) over the
/// other ranks, `work` on each element there, and `MPI_Gatherv` back; on
/// rank 0 the time and what came back.
fn raw_scatter_gather<T>(
    world: &SimpleCommunicator,
    data: &[T],
    n: usize,
    work: fn(&mut T),
) -> Option<(Duration, Vec<T>)>
where
    T: rankview::mpi::datatype::Equivalence + Default + Clone,
{
    let ranks = world.size() as usize;
    let (counts, displs) = partition(n, ranks);
    let root = world.process_at_rank(0);
    let me = world.rank() as usize;
    world.barrier();
    let t = Instant::now();
    if me == 0 {
        let mut nothing: Vec<T> = Vec::new();
        root.scatter_varcount_into_root(
            &Partition::new(data, &counts[..], &displs[..]),
            &mut nothing[..],
        );
        let mut back = vec![T::default(); n];
        root.gather_varcount_into_root(
            &nothing[..],
            &mut PartitionMut::new(&mut back[..], &counts[..], &displs[..]),
        );
        Some((t.elapsed(), back))
    } else {
        let mut chunk = vec![T::default(); counts[me] as usize];
        root.scatter_varcount_into(&mut chunk[..]);
        chunk.iter_mut().for_each(work);
        root.gather_varcount_into(&chunk[..]);
        None
    }
}

/// One raw `MPI_Bcast` of `W8_ELEMENTS` f64 from rank 0, until every rank
/// has it; the time on rank 0.
fn raw_broadcast(world: &SimpleCommunicator, data: &mut [f64]) -> Option<Duration> {
    let root = world.process_at_rank(0);
    world.barrier();
    let t = Instant::now();
    if world.rank() == 0 {
        root.broadcast_into(data);
        world.barrier();
        Some(t.elapsed())
    } else {
        let mut received = vec![0.0f64; W8_ELEMENTS];
        root.broadcast_into(&mut received[..]);
        world.barrier();
        None
    }
}

/// How the raw side of a loop workload allocates the buffers it keeps.
#[derive(Clone, Copy)]
enum Pages {
    /// A plain `Vec`, as most programs allocate (4 KiB pages).
    Plain,
    /// Huge pages asked for before the first write (`MADV_HUGEPAGE`): what
    /// rankview gives a buffer it receives into or that rank 0 lends again.
    /// The engines' single-copy reads from rank 0 then pin 32 pages per
    /// 64 MiB instead of 16,384.
    Huge,
}

impl Pages {
    fn vec(self, len: usize, value: impl Fn(usize) -> f64) -> Vec<f64> {
        let mut v: Vec<f64> = Vec::with_capacity(len);
        if let Pages::Huge = self {
            const HUGE: usize = 2 << 20;
            let start = v.as_ptr() as usize;
            let (aligned, end) = (start.div_ceil(HUGE) * HUGE, (start + len * 8) / HUGE * HUGE);
            if end > aligned {
                // SAFETY: `[aligned, end)` lies inside the vector's
                // allocation, which nothing else can reach yet; the advice
                // only chooses how pages not yet written will be backed.
                unsafe {
                    libc::madvise(
                        aligned as *mut libc::c_void,
                        end - aligned,
                        libc::MADV_HUGEPAGE,
                    );
                }
            }
        }
        v.extend((0..len).map(value));
        v
    }
}

/// The buffers an expert's scatter/compute/gather loop keeps: rank 0's data
/// and gathered copy, each engine's block.
#[derive(Default)]
struct Kept {
    data: Vec<f64>,
    back: Vec<f64>,
    block: Vec<f64>,
}

/// One raw `MPI_Scatterv` + `MPI_Gatherv` of `W3_ELEMENTS` f64 with every
/// buffer allocated once and kept (`w3loop`'s raw side); the time on rank 0.
fn raw_scatter_gather_kept(
    world: &SimpleCommunicator,
    kept: &mut Kept,
    pages: Pages,
) -> Option<Duration> {
    let ranks = world.size() as usize;
    let (counts, displs) = partition(W3_ELEMENTS, ranks);
    let root = world.process_at_rank(0);
    let me = world.rank() as usize;
    if me == 0 && kept.data.is_empty() {
        kept.data = pages.vec(W3_ELEMENTS, |i| i as f64);
        kept.back = pages.vec(W3_ELEMENTS, |_| -1.0);
    } else if me != 0 && kept.block.is_empty() {
        kept.block = pages.vec(counts[me] as usize, |_| -1.0);
    }
    world.barrier();
    let t = Instant::now();
    if me == 0 {
        let mut nothing: Vec<f64> = Vec::new();
        root.scatter_varcount_into_root(
            &Partition::new(&kept.data[..], &counts[..], &displs[..]),
            &mut nothing[..],
        );
        root.gather_varcount_into_root(
            &nothing[..],
            &mut PartitionMut::new(&mut kept.back[..], &counts[..], &displs[..]),
        );
        Some(t.elapsed())
    } else {
        root.scatter_varcount_into(&mut kept.block[..]);
        root.gather_varcount_into(&kept.block[..]);
        None
    }
}

/// One raw transfer of `W9_ELEMENTS` f64 from rank 1 to rank 0, each side
/// with its buffer allocated once and kept (an expert's point-to-point
/// pull); the time on rank 0, from a common barrier until it has the data.
fn raw_pull(world: &SimpleCommunicator, buffer: &mut Vec<f64>, pages: Pages) -> Option<Duration> {
    if world.rank() <= 1 && buffer.is_empty() {
        *buffer = pages.vec(W9_ELEMENTS, |i| i as f64);
    }
    world.barrier();
    let t = Instant::now();
    match world.rank() {
        0 => {
            world.process_at_rank(1).receive_into(&mut buffer[..]);
            Some(t.elapsed())
        }
        1 => {
            world.process_at_rank(0).send(&buffer[..]);
            None
        }
        _ => None,
    }
}

/// One raw receive on rank 0 of `W9_ELEMENTS` f64 from rank 1 (which sends
/// from `sent`, kept) into a buffer allocated for it (`vec![0.0; n]`, as a
/// program that keeps nothing does): `w9`'s raw side for `get`, which
/// returns a new `Vec`. The time on rank 0 includes the allocation.
fn raw_pull_fresh(world: &SimpleCommunicator, sent: &mut Vec<f64>) -> Option<Duration> {
    if world.rank() == 1 && sent.is_empty() {
        *sent = Pages::Plain.vec(W9_ELEMENTS, |i| i as f64);
    }
    world.barrier();
    let t = Instant::now();
    match world.rank() {
        0 => {
            let mut fresh = vec![0.0f64; W9_ELEMENTS];
            world.process_at_rank(1).receive_into(&mut fresh[..]);
            let elapsed = t.elapsed();
            assert!(fresh[W9_ELEMENTS - 1] == (W9_ELEMENTS - 1) as f64);
            Some(elapsed)
        }
        1 => {
            world.process_at_rank(0).send(&sent[..]);
            None
        }
        _ => None,
    }
}

/// One raw `MPI_Bcast` of `W8_ELEMENTS` f64 from rank 0 into a buffer each
/// rank allocated once and keeps (`w8loop`'s raw side), until every rank
/// has it; the time on rank 0.
fn raw_broadcast_kept(
    world: &SimpleCommunicator,
    buffer: &mut Vec<f64>,
    pages: Pages,
) -> Option<Duration> {
    if buffer.is_empty() {
        *buffer = pages.vec(W8_ELEMENTS, |i| i as f64);
    }
    let root = world.process_at_rank(0);
    world.barrier();
    let t = Instant::now();
    root.broadcast_into(&mut buffer[..]);
    world.barrier();
    (world.rank() == 0).then(|| t.elapsed())
}

/// Every workload, in the order a bare run measures them.
const KNOWN: &[&str] = &[
    "w1", "w1idle", "w2", "w2map", "w3", "w3loop", "w4", "w5", "w6", "w8", "w8loop", "w9", "w10",
    "w13", "metg",
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

/// Job sizes of the `startup` workload.
const STARTUP_RANKS: &[usize] = &[2, 4, 8, 16, 32];
/// Jobs per size and side.
const STARTUP_JOBS: usize = 3;

/// Microseconds since the Unix epoch (comparable across the processes of
/// one machine).
fn unix_us() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// One job of the `startup` workload (`--startup-child raw|rankview`):
/// rank 0 prints when the job is ready.
fn startup_child(mode: &str) {
    if mode == "raw" {
        let Some(universe) = rankview::mpi::initialize() else {
            eprintln!("bench: MPI was already initialized");
            std::process::exit(1);
        };
        let world = universe.world();
        world.barrier();
        if world.rank() == 0 {
            println!("STARTUP_DONE {}", unix_us());
        }
        return;
    }
    rankview::launch(|rc| -> rankview::Result<()> {
        rc.all().apply_sync(noop, ())?;
        println!("STARTUP_DONE {}", unix_us());
        Ok(())
    });
}

/// Starts one startup job of `ranks` ranks; seconds from starting the
/// launcher to rank 0's report.
fn startup_job(mpiexec: &str, openmpi: bool, ranks: usize, mode: &str) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut command = std::process::Command::new(mpiexec);
    if openmpi {
        command
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .args(["--oversubscribe", "--bind-to", "none"]);
    }
    command
        .args(["-n", &ranks.to_string()])
        .arg(&exe)
        .args(["--startup-child", mode]);
    let start = unix_us();
    let output = command
        .output()
        .map_err(|e| format!("cannot run {mpiexec}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let done: u128 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("STARTUP_DONE ")?.trim().parse().ok())
        .ok_or_else(|| {
            format!(
                "{mode} job of {ranks} ranks did not report ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    Ok(done.saturating_sub(start) as f64 / 1e6)
}

/// The `startup` workload: jobs of every size, raw and rankview
/// alternating; one line per size.
fn startup(json: bool) -> Result<(), String> {
    if [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_RANK",
        "SLURM_PROCID",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some())
    {
        return Err(
            "the startup workload starts its own jobs: run it alone, not under an MPI \
                    launcher (target/release/examples/bench --workload startup)"
                .into(),
        );
    }
    let mpiexec = std::env::var("MPIEXEC").unwrap_or_else(|_| "mpirun".into());
    let openmpi = std::process::Command::new(&mpiexec)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("Open MPI"))
        .unwrap_or(false);
    let median_of = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for &ranks in STARTUP_RANKS {
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        for _ in 0..STARTUP_JOBS {
            raw.push(startup_job(&mpiexec, openmpi, ranks, "raw")?);
            ours.push(startup_job(&mpiexec, openmpi, ranks, "rankview")?);
        }
        let (ours, raw) = (median_of(ours), median_of(raw));
        if json {
            println!(
                "{{\"workload\":\"startup\",\"ranks\":{ranks},\"rankview_s\":{ours:.3},\"raw_s\":{raw:.3},\"added_s\":{:.3}}}",
                ours - raw
            );
        } else {
            println!(
                "startup {ranks:>3} ranks   rankview {ours:>7.3} s   raw MPI {raw:>7.3} s   added {:>7.3} s",
                ours - raw
            );
        }
    }
    Ok(())
}

/// Prints one workload's figures: times in `unit` (`"us"` or `"s"`).
fn report(json: bool, workload: &str, label: &str, ours: Duration, raw: Duration, unit: &str) {
    let scale = if unit == "us" { 1e6 } else { 1.0 };
    let (ours, raw) = (ours.as_secs_f64() * scale, raw.as_secs_f64() * scale);
    let ratio = ours / raw;
    if json {
        println!(
            "{{\"workload\":\"{workload}\",\"rankview_{unit}\":{ours:.6},\"raw_{unit}\":{raw:.6},\"ratio\":{ratio:.3}}}"
        );
    } else {
        println!("{workload} {label:<26} rankview {ours:>12.6} {unit}  raw MPI {raw:>12.6} {unit}  ratio {ratio:>7.3}");
    }
}

/// Prints a loop workload's figures: rankview against the raw side with
/// plain kept buffers (`ratio`, the program most people write) and with
/// kept buffers in huge pages (`ratio_huge`, the fastest raw program).
fn report_kept(
    json: bool,
    workload: &str,
    label: &str,
    ours: Duration,
    raw: Duration,
    huge: Duration,
) {
    let (ours, raw, huge) = (ours.as_secs_f64(), raw.as_secs_f64(), huge.as_secs_f64());
    let (ratio, ratio_huge) = (ours / raw, ours / huge);
    if json {
        println!(
            "{{\"workload\":\"{workload}\",\"rankview_s\":{ours:.6},\"raw_s\":{raw:.6},\"ratio\":{ratio:.3},\"raw_huge_s\":{huge:.6},\"ratio_huge\":{ratio_huge:.3}}}"
        );
    } else {
        println!("{workload} {label:<26} rankview {ours:>12.6} s  raw MPI {raw:>12.6} s  ratio {ratio:>7.3}  huge pages {huge:>9.6} s  ratio {ratio_huge:>7.3}");
    }
}

/// Tasks a `metg` step keeps submitted and not read, for the series that
/// submit one call per task.
const METG_WINDOW: usize = 10_000;

/// Runs one `metg` step of `count` tasks spinning `us` µs as `series` does.
fn metg_step(
    rc: &rankview::Client,
    series: metg::Series,
    us: u64,
    count: usize,
) -> rankview::Result<()> {
    let lv = rc.load_balanced_view();
    let engines: Vec<_> = rc
        .ids()
        .into_iter()
        .map(|e| rc.engine(e as i64))
        .collect::<rankview::Result<_>>()?;
    let call = |i: usize| match series {
        metg::Series::Direct => engines[i % engines.len()].apply(spin, (us,)),
        _ => lv.chunksize(1).apply(spin, (us,)),
    };
    match series {
        metg::Series::Map => {
            lv.map(spin, vec![us; count]).get()?;
        }
        metg::Series::Apply | metg::Series::Direct => {
            let mut pending = std::collections::VecDeque::with_capacity(METG_WINDOW);
            for i in 0..count {
                if pending.len() == METG_WINDOW {
                    if let Some(r) = pending.pop_front() {
                        rankview::AsyncResult::get(&r)?;
                    }
                }
                pending.push_back(call(i));
            }
            for r in pending {
                r.get()?;
            }
        }
        metg::Series::Raw => {}
    }
    Ok(())
}

/// Prints the `metg` curves (one line per series and step) and each
/// series' METG(50 %), with the load-balanced `apply`'s over the raw farm's.
fn report_metg(json: bool, curves: &[metg::Curve]) {
    for curve in curves {
        for &(us, efficiency) in &curve.points {
            if json {
                println!(
                    "{{\"workload\":\"metg\",\"series\":\"{}\",\"task_us\":{us},\"efficiency\":{efficiency:.4}}}",
                    curve.name
                );
            } else {
                println!(
                    "metg {:<9} {us:>6} µs  efficiency {efficiency:.3}",
                    curve.name
                );
            }
        }
    }
    let metg_of = |name: &str| {
        curves
            .iter()
            .find(|c| c.name == name)
            .and_then(metg::Curve::metg)
    };
    let show = |m: Option<f64>| m.map_or("null".to_string(), |m| format!("{m:.1}"));
    let ratio = match (metg_of("lb_apply"), metg_of("raw_farm")) {
        (Some(ours), Some(raw)) => format!("{:.3}", ours / raw),
        _ => "null".to_string(),
    };
    if json {
        println!(
            "{{\"workload\":\"metg\",\"metg_lb_apply_us\":{},\"metg_lb_map_us\":{},\"metg_direct_us\":{},\"metg_raw_us\":{},\"ratio\":{ratio}}}",
            show(metg_of("lb_apply")),
            show(metg_of("lb_map")),
            show(metg_of("direct")),
            show(metg_of("raw_farm"))
        );
    } else {
        println!(
            "metg METG(50 %)   lb_apply {} µs  lb_map {} µs  direct {} µs  raw farm {} µs  ratio {ratio} (goal ≤ 1.5)",
            show(metg_of("lb_apply")),
            show(metg_of("lb_map")),
            show(metg_of("direct")),
            show(metg_of("raw_farm"))
        );
    }
}

/// Prints one throughput workload's figures: `what` (`"tasks"`, `"items"`)
/// per second for both sides, their ratio, and in the table the goal.
fn report_rates(
    json: bool,
    workload: &str,
    label: &str,
    what: &str,
    ours: f64,
    raw: f64,
    goal: &str,
) {
    let ratio = ours / raw;
    if json {
        println!(
            "{{\"workload\":\"{workload}\",\"rankview_{what}_per_s\":{ours:.0},\"raw_{what}_per_s\":{raw:.0},\"ratio\":{ratio:.3}}}"
        );
    } else {
        println!("{workload} {label:<26} rankview {ours:>12.0} {what}/s  raw MPI {raw:>12.0} {what}/s  ratio {ratio:>7.3} (goal {goal})");
    }
}

/// The efficiency of handing `durations` out in order, each to whichever
/// of `engines` frees first, with no overhead at all: what a perfect
/// greedy farm reaches on these tasks.
fn greedy_efficiency(durations: &[u64], engines: usize) -> f64 {
    let mut loads = vec![0u64; engines.max(1)];
    for &d in durations {
        if let Some(least) = loads.iter_mut().min() {
            *least += d;
        }
    }
    let makespan = loads.iter().copied().max().unwrap_or(0).max(1);
    durations.iter().sum::<u64>() as f64 / (loads.len() as f64 * makespan as f64)
}

/// Raw figures recorded by the MPI sections on rank 0, by workload.
type Samples = Arc<Mutex<HashMap<&'static str, Vec<Duration>>>>;

fn record(samples: &Samples, workload: &'static str, new: impl IntoIterator<Item = Duration>) {
    if let Ok(mut map) = samples.lock() {
        map.entry(workload).or_default().extend(new);
    }
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
    let (w1, w3, w8) = (raw.clone(), raw.clone(), raw.clone());
    let (w1idle, w10) = (raw.clone(), raw.clone());
    let (w2, w2map, w4) = (raw.clone(), raw.clone(), raw.clone());
    // Rank 0's items for the raw side of w2map.
    let mut w2map_data: Vec<u64> = Vec::new();
    let mut w10_data: Vec<String> = Vec::new();
    // Each rank's kept buffer for the raw side of w10.
    let mut w10_buffer: Vec<u8> = Vec::new();
    // Rank 0's copy of the data the raw sections send.
    let mut w3_data: Vec<f64> = Vec::new();
    let mut w8_data: Vec<f64> = Vec::new();
    let (w3loop, w8loop, w9) = (raw.clone(), raw.clone(), raw.clone());
    let (mut w3loop_kept, mut w3loop_huge) = (Kept::default(), Kept::default());
    let (mut w8loop_buffer, mut w8loop_huge): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let (mut w9_buffer, mut w9_huge): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let mut w9_sent: Vec<f64> = Vec::new();
    rankview::Launch::new()
        .mpi_section("w1", move |world| {
            let samples = raw_pingpong(world, PING_ROUNDS / 10);
            record(&w1, "w1", samples);
        })
        .mpi_section("w3", move |world| {
            if world.rank() == 0 && w3_data.is_empty() {
                w3_data = (0..W3_ELEMENTS).map(|i| i as f64).collect();
            }
            if let Some((t, back)) = raw_scatter_gather(world, &w3_data, W3_ELEMENTS, |_| {}) {
                assert!(back == w3_data, "raw gather(scatter(x)) != x");
                record(&w3, "w3", [t]);
            }
        })
        .mpi_section("w8", move |world| {
            if world.rank() == 0 && w8_data.is_empty() {
                w8_data = (0..W8_ELEMENTS).map(|i| i as f64).collect();
            }
            if let Some(t) = raw_broadcast(world, &mut w8_data) {
                record(&w8, "w8", [t]);
            }
        })
        .mpi_section("w3loop", move |world| {
            for (kept, pages, key) in [
                (&mut w3loop_kept, Pages::Plain, "w3loop"),
                (&mut w3loop_huge, Pages::Huge, "w3loop_huge"),
            ] {
                if let Some(t) = raw_scatter_gather_kept(world, kept, pages) {
                    assert!(kept.back == kept.data, "raw gather(scatter(x)) != x");
                    record(&w3loop, key, [t]);
                }
            }
        })
        .mpi_section("w8loop", move |world| {
            for (buffer, pages, key) in [
                (&mut w8loop_buffer, Pages::Plain, "w8loop"),
                (&mut w8loop_huge, Pages::Huge, "w8loop_huge"),
            ] {
                if let Some(t) = raw_broadcast_kept(world, buffer, pages) {
                    record(&w8loop, key, [t]);
                }
            }
        })
        .mpi_section("w9", move |world| {
            for (buffer, pages, key) in [
                (&mut w9_buffer, Pages::Plain, "w9"),
                (&mut w9_huge, Pages::Huge, "w9_huge"),
            ] {
                if let Some(t) = raw_pull(world, buffer, pages) {
                    record(&w9, key, [t]);
                }
            }
            if let Some(t) = raw_pull_fresh(world, &mut w9_sent) {
                record(&w9, "w9_fresh", [t]);
            }
        })
        .mpi_section("w1idle", move |world| {
            let samples = raw_pingpong_after_idle(world, IDLE_ROUNDS);
            record(&w1idle, "w1idle", samples);
        })
        .mpi_section("w10", move |world| {
            if world.rank() == 0 && w10_data.is_empty() {
                w10_data = w10_strings();
            }
            if let Some(t) = raw_object_send(world, &w10_data, &mut w10_buffer) {
                record(&w10, "w10", [t]);
            }
        })
        .mpi_section("w2", move |world| {
            let tasks: Vec<u64> = (0..W2_TASKS as u64).collect();
            if let Some((t, sum)) = raw_farm(world, &tasks, W2_PIPE, None, |task| task) {
                assert_eq!(sum, tasks.iter().sum::<u64>(), "raw farm lost results");
                record(&w2, "w2", [t]);
            }
        })
        .mpi_section("w2map", move |world| {
            if world.rank() == 0 && w2map_data.is_empty() {
                w2map_data = (0..W2MAP_ITEMS as u64).collect();
            }
            if let Some((t, back)) =
                raw_scatter_gather(world, &w2map_data, W2MAP_ITEMS, |x| *x += 1)
            {
                assert!(
                    back.iter().zip(&w2map_data).all(|(b, x)| *b == x + 1),
                    "raw map gave wrong results"
                );
                record(&w2map, "w2map", [t]);
            }
        })
        .mpi_section("w4", move |world| {
            let durations = w4_durations_us();
            if let Some((t, sum)) = raw_farm(world, &durations, 1, Some(W4_POLL), spin_us) {
                assert_eq!(sum, durations.iter().sum::<u64>(), "raw farm lost results");
                record(&w4, "w4", [t]);
            }
        })
        .mpi_section("metg", |world| {
            metg::raw_section(world, raw_farm, W2_PIPE, W4_POLL, spin_us);
        })
        .mpi_section("w5", |world| {
            // Rank 0 waits IDLE before joining the barrier; the others wait in it.
            let before = cpu_time();
            if world.rank() == 0 {
                std::thread::sleep(IDLE);
            }
            world.barrier();
            let used = cpu_time().saturating_sub(before);
            RAW_IDLE_NS.store(used.as_nanos() as u64, std::sync::atomic::Ordering::SeqCst);
        })
        .run(|rc| -> rankview::Result<()> {
            let raw_of = |w: &'static str| -> rankview::Result<Duration> {
                let samples = raw
                    .lock()
                    .ok()
                    .and_then(|mut m| m.remove(w))
                    .ok_or_else(|| {
                        rankview::Error::Usage(format!("raw figures for {w} missing"))
                    })?;
                Ok(median(samples))
            };
            let all = rc.all();
            for workload in &options.workloads {
                match workload.as_str() {
                    "w1" => {
                        // Ten alternating slices of raw and rankview round trips.
                        let e0 = rc.engine(0)?;
                        for _ in 0..PING_WARMUP {
                            e0.apply_sync(noop, ())?;
                        }
                        rc.mpi_section("w1").get()?;
                        raw.lock().map(|mut m| m.remove("w1")).ok();
                        let mut samples = Vec::with_capacity(PING_ROUNDS);
                        for _ in 0..10 {
                            rc.mpi_section("w1").get()?;
                            for _ in 0..PING_ROUNDS / 10 {
                                let t = Instant::now();
                                e0.apply_sync(noop, ())?;
                                samples.push(t.elapsed());
                            }
                        }
                        let raw_samples = raw
                            .lock()
                            .ok()
                            .and_then(|mut m| m.remove("w1"))
                            .ok_or_else(|| rankview::Error::Usage("raw figures for w1 missing".into()))?;
                        let us = |d: Duration| d.as_secs_f64() * 1e6;
                        let at = |v: &[Duration], q| us(quantile(v, q));
                        let (o50, o90, o99) = (at(&samples, 0.5), at(&samples, 0.9), at(&samples, 0.99));
                        let (r50, r90, r99) =
                            (at(&raw_samples, 0.5), at(&raw_samples, 0.9), at(&raw_samples, 0.99));
                        let (ratio, p99_ratio) = (o50 / r50, o99 / r50);
                        if options.json {
                            println!(
                                "{{\"workload\":\"w1\",\"rankview_us\":{o50:.3},\"raw_us\":{r50:.3},\"ratio\":{ratio:.3},\"rankview_p90_us\":{o90:.3},\"rankview_p99_us\":{o99:.3},\"raw_p90_us\":{r90:.3},\"raw_p99_us\":{r99:.3},\"p99_over_raw_median\":{p99_ratio:.3}}}"
                            );
                        } else {
                            println!(
                                "w1 roundtrip_latency           rankview p50 {o50:>7.2} p90 {o90:>7.2} p99 {o99:>7.2} us  raw MPI p50 {r50:>6.2} p90 {r90:>6.2} p99 {r99:>6.2} us  ratio {ratio:>6.2} (p99/raw p50 {p99_ratio:.1})"
                            );
                        }
                    }
                    "w3" => {
                        let data: Vec<f64> = (0..W3_ELEMENTS).map(|i| i as f64).collect();
                        let mut samples = Vec::new();
                        for _ in 0..W3_REPS {
                            let t = Instant::now();
                            all.scatter("w3", &data).get()?;
                            let back: Vec<f64> = all.gather("w3").into_value()?;
                            samples.push(t.elapsed());
                            assert!(back == data, "gather(scatter(x)) != x");
                            drop(back);
                            // Moving data once: no value to receive into next time.
                            all.clear().get()?;
                            rc.mpi_section("w3").get()?;
                        }
                        report(
                            options.json,
                            "w3",
                            "scatter_gather_bandwidth",
                            median(samples),
                            raw_of("w3")?,
                            "s",
                        );
                    }
                    "w8" => {
                        let data: Vec<f64> = (0..W8_ELEMENTS).map(|i| i as f64).collect();
                        let mut samples = Vec::new();
                        for _ in 0..W8_REPS {
                            rc.mpi_section("w8").get()?;
                            let t = Instant::now();
                            all.push("w8", &data).get()?;
                            samples.push(t.elapsed());
                            // Moving data once: no value to receive into next time.
                            all.clear().get()?;
                        }
                        report(
                            options.json,
                            "w8",
                            "broadcast_bandwidth",
                            median(samples),
                            raw_of("w8")?,
                            "s",
                        );
                    }
                    "w1idle" => {
                        let e0 = rc.engine(0)?;
                        let mut samples = Vec::with_capacity(IDLE_ROUNDS);
                        for _ in 0..IDLE_ROUNDS {
                            std::thread::sleep(IDLE_GAP);
                            let t = Instant::now();
                            e0.apply_sync(noop, ())?;
                            samples.push(t.elapsed());
                        }
                        rc.mpi_section("w1idle").get()?;
                        let raw_samples = raw
                            .lock()
                            .ok()
                            .and_then(|mut m| m.remove("w1idle"))
                            .unwrap_or_default();
                        let us = |d: Duration| d.as_secs_f64() * 1e6;
                        let (ours50, ours99) = (quantile(&samples, 0.5), quantile(&samples, 0.99));
                        let (raw50, raw99) =
                            (quantile(&raw_samples, 0.5), quantile(&raw_samples, 0.99));
                        if options.json {
                            println!(
                                "{{\"workload\":\"w1idle\",\"rankview_median_us\":{:.3},\"rankview_p99_us\":{:.3},\"raw_median_us\":{:.3},\"raw_p99_us\":{:.3}}}",
                                us(ours50), us(ours99), us(raw50), us(raw99)
                            );
                        } else {
                            println!(
                                "w1idle latency_after_idle        rankview median {:>9.1} us p99 {:>9.1} us  raw MPI median {:>7.1} us p99 {:>7.1} us",
                                us(ours50), us(ours99), us(raw50), us(raw99)
                            );
                        }
                    }
                    "w3loop" => {
                        // Scatter into the same name and gather into the same
                        // buffer every time, as a compute loop does.
                        let data: Vec<f64> = (0..W3_ELEMENTS).map(|i| i as f64).collect();
                        let mut back = vec![-1.0f64; W3_ELEMENTS];
                        let mut samples = Vec::new();
                        for _ in 0..W3_REPS {
                            rc.mpi_section("w3loop").get()?;
                            let t = Instant::now();
                            all.scatter("w3loop", &data).get()?;
                            all.gather_into("w3loop", &mut back)?;
                            samples.push(t.elapsed());
                            assert!(back == data, "gather(scatter(x)) != x");
                            back[0] = -1.0;
                        }
                        all.clear().get()?;
                        report_kept(
                            options.json,
                            "w3loop",
                            "scatter_gather_loop",
                            median(samples),
                            raw_of("w3loop")?,
                            raw_of("w3loop_huge")?,
                        );
                    }
                    "w8loop" => {
                        let data: Vec<f64> = (0..W8_ELEMENTS).map(|i| i as f64).collect();
                        let mut samples = Vec::new();
                        for _ in 0..W8_REPS {
                            rc.mpi_section("w8loop").get()?;
                            let t = Instant::now();
                            all.push("w8loop", &data).get()?;
                            samples.push(t.elapsed());
                        }
                        all.clear().get()?;
                        report_kept(
                            options.json,
                            "w8loop",
                            "broadcast_loop",
                            median(samples),
                            raw_of("w8loop")?,
                            raw_of("w8loop_huge")?,
                        );
                    }
                    "w9" => {
                        // Alternating: a pull into a new Vec (the user's
                        // `get`), a pull into a kept buffer, the raw transfer.
                        let data: Vec<f64> = (0..W9_ELEMENTS).map(|i| i as f64).collect();
                        let e0 = rc.engine(0)?;
                        e0.push("w9", &data).get()?;
                        let mut kept = vec![-1.0f64; W9_ELEMENTS];
                        let (mut fresh, mut into) = (Vec::new(), Vec::new());
                        for _ in 0..W9_REPS {
                            rc.mpi_section("w9").get()?;
                            let t = Instant::now();
                            let back: Vec<f64> = e0.get("w9")?;
                            fresh.push(t.elapsed());
                            // Checked after both pulls: like the raw side
                            // (right behind a barrier), each starts while
                            // the engine is still polling eagerly, not after
                            // 10 ms spent comparing (see w1idle for that).
                            let t = Instant::now();
                            e0.pull_into("w9", &mut kept)?;
                            into.push(t.elapsed());
                            assert!(back == data, "pull(push(x)) != x");
                            drop(back);
                            assert!(kept == data, "pull_into(push(x)) != x");
                            kept[0] = -1.0;
                        }
                        e0.clear().get()?;
                        let raw_s = raw_of("w9")?.as_secs_f64();
                        let huge_s = raw_of("w9_huge")?.as_secs_f64();
                        let fresh_s = raw_of("w9_fresh")?.as_secs_f64();
                        let (fresh, into) = (median(fresh).as_secs_f64(), median(into).as_secs_f64());
                        let (ratio, ratio_into) = (fresh / raw_s, into / raw_s);
                        let (ratio_huge, ratio_into_huge) = (fresh / huge_s, into / huge_s);
                        let ratio_fresh = fresh / fresh_s;
                        if options.json {
                            println!(
                                "{{\"workload\":\"w9\",\"rankview_s\":{fresh:.6},\"rankview_into_s\":{into:.6},\"raw_s\":{raw_s:.6},\"ratio\":{ratio:.3},\"ratio_into\":{ratio_into:.3},\"raw_huge_s\":{huge_s:.6},\"ratio_huge\":{ratio_huge:.3},\"ratio_into_huge\":{ratio_into_huge:.3},\"raw_fresh_s\":{fresh_s:.6},\"ratio_fresh\":{ratio_fresh:.3}}}"
                            );
                        } else {
                            println!(
                                "w9 pull_bandwidth             get {fresh:.6} s  pull_into {into:.6} s  raw MPI {raw_s:.6} s  ratio {ratio:>7.3}  into {ratio_into:>7.3}  huge pages {huge_s:.6} s  ratio {ratio_huge:>7.3}  into {ratio_into_huge:>7.3}  raw into a fresh Vec {fresh_s:.6} s  get's ratio {ratio_fresh:>7.3}"
                            );
                        }
                    }
                    "w10" => {
                        let data = w10_strings();
                        let e0 = rc.engine(0)?;
                        let (mut push, mut apply, mut pull) = (Vec::new(), Vec::new(), Vec::new());
                        for _ in 0..W10_REPS {
                            rc.mpi_section("w10").get()?;
                            let t = Instant::now();
                            e0.push("w10", &data).get()?;
                            push.push(t.elapsed());
                            let t = Instant::now();
                            let n = e0.apply_sync(count_strings, (&data,))?;
                            apply.push(t.elapsed());
                            assert_eq!(n, W10_STRINGS);
                            let t = Instant::now();
                            let back: Vec<String> = e0.pull("w10").get()?;
                            pull.push(t.elapsed());
                            assert!(back == data, "pull(push(x)) != x");
                        }
                        e0.clear().get()?;
                        let raw_s = raw_of("w10")?.as_secs_f64();
                        let (push, apply, pull) = (
                            median(push).as_secs_f64(),
                            median(apply).as_secs_f64(),
                            median(pull).as_secs_f64(),
                        );
                        let ratio = push.max(apply).max(pull) / raw_s;
                        if options.json {
                            println!(
                                "{{\"workload\":\"w10\",\"rankview_push_s\":{push:.6},\"rankview_apply_s\":{apply:.6},\"rankview_pull_s\":{pull:.6},\"raw_s\":{raw_s:.6},\"ratio\":{ratio:.3}}}"
                            );
                        } else {
                            println!(
                                "w10 object_bandwidth             push {push:.4} s  apply {apply:.4} s  pull {pull:.4} s  raw MPI {raw_s:.4} s  ratio {ratio:>7.3} (slowest)"
                            );
                        }
                    }
                    "w2" => {
                        let lv = rc.load_balanced_view().chunksize(1);
                        let mut samples = Vec::with_capacity(W2_REPS);
                        for _ in 0..W2_REPS {
                            rc.mpi_section("w2").get()?;
                            let t = Instant::now();
                            let pending: Vec<_> =
                                (0..W2_TASKS).map(|_| lv.apply(noop, ())).collect();
                            for result in pending {
                                result.get()?;
                            }
                            samples.push(t.elapsed());
                        }
                        let per_s = |d: Duration| W2_TASKS as f64 / d.as_secs_f64();
                        report_rates(
                            options.json,
                            "w2",
                            "task_throughput",
                            "tasks",
                            per_s(median(samples)),
                            per_s(raw_of("w2")?),
                            "≥ 200,000 tasks/s, ratio ≥ 1",
                        );
                    }
                    "w2map" => {
                        let lv = rc.load_balanced_view();
                        let items: Vec<u64> = (0..W2MAP_ITEMS as u64).collect();
                        let mut samples = Vec::with_capacity(W2MAP_REPS);
                        for _ in 0..W2MAP_REPS {
                            rc.mpi_section("w2map").get()?;
                            let t = Instant::now();
                            let back = lv.map(increment, items.iter().copied()).get()?;
                            samples.push(t.elapsed());
                            assert!(
                                back.len() == items.len()
                                    && back.iter().zip(&items).all(|(b, x)| *b == x + 1),
                                "map(x + 1) gave wrong results"
                            );
                        }
                        let per_s = |d: Duration| W2MAP_ITEMS as f64 / d.as_secs_f64();
                        report_rates(
                            options.json,
                            "w2map",
                            "map_throughput",
                            "items",
                            per_s(median(samples)),
                            per_s(raw_of("w2map")?),
                            "≥ 5,000,000 items/s",
                        );
                    }
                    "metg" => {
                        let curves = metg::run(rc, metg_step)?;
                        report_metg(options.json, &curves);
                        if let Some(path) = &options.metg_svg {
                            metg::draw(&curves, path).map_err(rankview::Error::Usage)?;
                        }
                    }
                    "w4" => {
                        let lv = rc.load_balanced_view();
                        let durations = w4_durations_us();
                        let total: u64 = durations.iter().sum();
                        let mut samples = Vec::with_capacity(W4_REPS);
                        for _ in 0..W4_REPS {
                            rc.mpi_section("w4").get()?;
                            let t = Instant::now();
                            let pending: Vec<_> =
                                durations.iter().map(|&us| lv.apply(spin, (us,))).collect();
                            let mut done = 0u64;
                            for result in pending {
                                done += result.get()?;
                            }
                            samples.push(t.elapsed());
                            assert_eq!(done, total, "a w4 task came back wrong");
                        }
                        let engines = rc.ids().len();
                        let efficiency = |makespan: Duration| {
                            total as f64 / 1e6 / (engines as f64 * makespan.as_secs_f64())
                        };
                        let (ours, raw) = (efficiency(median(samples)), efficiency(raw_of("w4")?));
                        let bound = greedy_efficiency(&durations, engines);
                        if options.json {
                            println!(
                                "{{\"workload\":\"w4\",\"efficiency\":{ours:.4},\"raw_efficiency\":{raw:.4},\"ideal_greedy\":{bound:.4}}}"
                            );
                        } else {
                            println!(
                                "w4 {:<26} rankview {ours:>12.4}        raw MPI {raw:>12.4}        (efficiency; ideal greedy {bound:.4}; goal ≥ 0.97)",
                                "balance"
                            );
                        }
                    }
                    "w6" => {
                        let lv = rc.load_balanced_view().max_outstanding(W6_WINDOW);
                        let t = Instant::now();
                        let (mut read, mut sum, mut first_window) = (0usize, 0u64, 0u64);
                        for result in lv.imap(increment, 0..W6_TASKS) {
                            sum += result?;
                            read += 1;
                            if read == W6_WINDOW {
                                first_window = rss_bytes();
                            }
                        }
                        let elapsed = t.elapsed();
                        let growth = rss_bytes() as f64 - first_window as f64;
                        assert_eq!(read as u64, W6_TASKS, "imap lost results");
                        assert_eq!(sum, W6_TASKS * (W6_TASKS + 1) / 2, "imap gave wrong results");
                        let mib = growth / (1u64 << 20) as f64;
                        let per_s = W6_TASKS as f64 / elapsed.as_secs_f64();
                        if options.json {
                            println!(
                                "{{\"workload\":\"w6\",\"rss_growth_mib\":{mib:.3},\"tasks_per_s\":{per_s:.0}}}"
                            );
                        } else {
                            println!(
                                "w6 {:<26} rankview {mib:>12.3} MiB of RSS growth after the first window, {per_s:.0} tasks/s (goal ≤ 32 MiB)",
                                "imap_memory"
                            );
                        }
                    }
                    "w13" => {
                        let before = rss_bytes();
                        let lv = rc.load_balanced_view();
                        let held: Vec<_> = (0..W13_RESULTS).map(|_| lv.apply(noop, ())).collect();
                        for result in &held {
                            result.get()?;
                        }
                        let holding = rss_bytes();
                        drop(held);
                        // The controller takes the handles' Forget commands
                        // in order: once it answers, it has taken them all.
                        rc.queue_status()?;
                        let after = rss_bytes();
                        let growth = (holding as f64 - before as f64).max(1.0);
                        let per_result = growth / W13_RESULTS as f64;
                        let kept = (after as f64 - before as f64) / growth;
                        if options.json {
                            println!(
                                "{{\"workload\":\"w13\",\"bytes_per_held_result\":{per_result:.0},\"rss_growth_mib\":{:.1},\"kept_after_drop\":{kept:.3}}}",
                                growth / (1u64 << 20) as f64
                            );
                        } else {
                            println!(
                                "w13 {:<25} rankview {per_result:>12.0} bytes per held finished result ({W13_RESULTS} held; {:.0} % of the growth kept after dropping them; goal ≤ 256 bytes, ≤ 10 %)",
                                "held_result_memory",
                                kept * 100.0
                            );
                        }
                    }
                    "w5" => {
                        let before = all.apply_sync(engine_cpu_ns, ())?;
                        std::thread::sleep(IDLE);
                        let after = all.apply_sync(engine_cpu_ns, ())?;
                        let ours = before.iter().zip(&after).map(|(b, a)| a - b).max().unwrap_or(0);
                        rc.mpi_section("w5").get()?;
                        let raw = all.apply_sync(raw_idle_ns, ())?.into_iter().max().unwrap_or(0);
                        let pct = |ns: u64| ns as f64 / IDLE.as_nanos() as f64 * 100.0;
                        if options.json {
                            println!(
                                "{{\"workload\":\"w5\",\"rankview_core_pct\":{:.3},\"raw_core_pct\":{:.3}}}",
                                pct(ours),
                                pct(raw)
                            );
                        } else {
                            println!(
                                "w5 idle_engine_cpu             rankview {:>10.3} %    raw MPI {:>10.3} % (of one core, busiest engine)",
                                pct(ours),
                                pct(raw)
                            );
                        }
                    }
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
