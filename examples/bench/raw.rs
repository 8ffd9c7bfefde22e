//! The raw MPI baselines: each workload as an MPI expert would write it,
//! run in the job's MPI sections (`Launch::mpi_section`) on every rank,
//! alternating with the rankview side so that both see the same machine
//! noise. Owns the ping-pongs, the farms, the scatter/gather, broadcast and
//! point-to-point transfers, the buffers they keep (in plain or huge
//! pages), and `sections`, which wires each workload's section and records
//! its times.

use std::time::{Duration, Instant};

use rankview::mpi::collective::{CommunicatorCollectives, Root};
use rankview::mpi::datatype::{Partition, PartitionMut};
use rankview::mpi::point_to_point::{Destination, Source};
use rankview::mpi::topology::{Communicator, SimpleCommunicator};
use rankview::mpi::Count;

use crate::metg;
use crate::sizes::*;
use crate::stats::{cpu_time, record, Samples};
use crate::tasks::{spin_us, w10_strings, w4_durations_us};

/// CPU an engine used inside the last `w5` MPI section, in nanoseconds.
pub static RAW_IDLE_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[rankview::remote]
pub fn raw_idle_ns() -> u64 {
    RAW_IDLE_NS.load(std::sync::atomic::Ordering::SeqCst)
}

/// One 8-byte ping-pong round between ranks 0 and 1, `rounds` times; the
/// round trip times on rank 0.
pub fn raw_pingpong(world: &SimpleCommunicator, rounds: usize) -> Vec<Duration> {
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
pub fn raw_pingpong_after_idle(world: &SimpleCommunicator, rounds: usize) -> Vec<Duration> {
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
pub fn raw_object_send(
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
pub const FARM_STOP: u64 = u64::MAX;

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
pub fn raw_farm(
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

/// Counts and displacements of ipyparallel's block rule over the engines
/// (rank 0 gets nothing).
pub fn partition(n: usize, ranks: usize) -> (Vec<Count>, Vec<Count>) {
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
pub fn raw_scatter_gather<T>(
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
pub fn raw_broadcast(world: &SimpleCommunicator, data: &mut [f64]) -> Option<Duration> {
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
pub enum Pages {
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
pub struct Kept {
    data: Vec<f64>,
    back: Vec<f64>,
    block: Vec<f64>,
}

/// One raw `MPI_Scatterv` + `MPI_Gatherv` of `W3_ELEMENTS` f64 with every
/// buffer allocated once and kept (`w3loop`'s raw side); the time on rank 0.
pub fn raw_scatter_gather_kept(
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
pub fn raw_pull(
    world: &SimpleCommunicator,
    buffer: &mut Vec<f64>,
    pages: Pages,
) -> Option<Duration> {
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
pub fn raw_pull_fresh(world: &SimpleCommunicator, sent: &mut Vec<f64>) -> Option<Duration> {
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
pub fn raw_broadcast_kept(
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

/// Every workload's raw side, as MPI sections added to `launch`: each runs
/// on every rank and records its times on rank 0 in `raw`. The data and
/// buffers a section keeps live in its closure, from one run to the next.
pub fn sections(launch: rankview::Launch, raw: &Samples) -> rankview::Launch {
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
    launch
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
}
