//! rankview beside raw MPI, in the same job. Run it with
//! `rankview run -n 3 --release --example bench -- --workload w1 --json`.
//!
//! Workloads (SPEC §6), each printed with the raw MPI figure beside ours:
//! - `w1` roundtrip_latency: `apply_sync` of a trivial function on engine 0
//!   against an 8-byte MPI ping-pong between ranks 0 and 1 (medians of
//!   20,000 round trips).
//! - `w3` scatter_gather_bandwidth: `scatter` then `gather` of 2^25 `f64`
//!   (256 MiB) over every engine, against raw `MPI_Scatterv` + `MPI_Gatherv`
//!   of the same buffer (medians of 11).
//! - `w8` broadcast_bandwidth: `push` of 64 MiB of `f64` to every engine,
//!   against raw `MPI_Bcast` (medians of 15).
//!
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
//! - `startup`: from starting a job to the first `apply_sync` answered by
//!   every engine, against a raw MPI program's start to after `MPI_Init` +
//!   `MPI_Barrier`, for 2, 4, 8, 16 and 32 ranks (oversubscribed; medians of
//!   3 jobs each; the goal is at most 0.15 s added). This workload starts
//!   its own jobs: run it alone and not under an MPI launcher,
//!   `target/release/examples/bench --workload startup --json`
//!   (`MPIEXEC` picks the launcher, default `mpirun`).
//!
//! Both sides allocate their receive buffers for every repetition, as a
//! program moving data once would. The raw half runs in MPI sections
//! (`Launch::mpi_section`) on every rank, alternating with the rankview
//! half, so that both see the same machine noise. `--json` prints one JSON
//! line per workload; otherwise a table. `BENCH_SAMPLES=1` also prints every
//! sample to stderr.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rankview::mpi::collective::{CommunicatorCollectives, Root};
use rankview::mpi::datatype::{Partition, PartitionMut};
use rankview::mpi::point_to_point::{Destination, Source};
use rankview::mpi::topology::{Communicator, SimpleCommunicator};
use rankview::mpi::Count;

const PING_ROUNDS: usize = 20_000;
const PING_WARMUP: usize = 2_000;
const W3_ELEMENTS: usize = 1 << 25;
const W3_REPS: usize = 11;
const W8_ELEMENTS: usize = 8 << 20;
const W8_REPS: usize = 15;
const IDLE_GAP: Duration = Duration::from_millis(100);
const IDLE_ROUNDS: usize = 40;
const W10_STRINGS: usize = 1 << 20;
const W10_REPS: usize = 5;

#[rankview::remote]
fn noop() {}

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

/// One raw `MPI_Scatterv` then `MPI_Gatherv` of `W3_ELEMENTS` f64 from rank
/// 0; the time on rank 0.
fn raw_scatter_gather(world: &SimpleCommunicator, data: &[f64]) -> Option<Duration> {
    let ranks = world.size() as usize;
    let (counts, displs) = partition(W3_ELEMENTS, ranks);
    let root = world.process_at_rank(0);
    let me = world.rank() as usize;
    world.barrier();
    let t = Instant::now();
    if me == 0 {
        let mut nothing: Vec<f64> = Vec::new();
        root.scatter_varcount_into_root(
            &Partition::new(data, &counts[..], &displs[..]),
            &mut nothing[..],
        );
        let mut back = vec![0.0f64; W3_ELEMENTS];
        root.gather_varcount_into_root(
            &nothing[..],
            &mut PartitionMut::new(&mut back[..], &counts[..], &displs[..]),
        );
        let elapsed = t.elapsed();
        assert!(back == data, "raw gather(scatter(x)) != x");
        Some(elapsed)
    } else {
        let mut chunk = vec![0.0f64; counts[me] as usize];
        root.scatter_varcount_into(&mut chunk[..]);
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

/// Every workload, in the order a bare run measures them.
const KNOWN: &[&str] = &["w1", "w1idle", "w3", "w5", "w8", "w10"];

struct Options {
    workloads: Vec<String>,
    json: bool,
}

fn options() -> Result<Options, String> {
    let mut workloads = Vec::new();
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = true,
            "--workload" => workloads.push(args.next().ok_or("--workload needs a name")?),
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
    Ok(options_with(workloads, json))
}

fn options_with(workloads: Vec<String>, json: bool) -> Options {
    Options { workloads, json }
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
    let mut w10_data: Vec<String> = Vec::new();
    // Each rank's kept buffer for the raw side of w10.
    let mut w10_buffer: Vec<u8> = Vec::new();
    // Rank 0's copy of the data the raw sections send.
    let mut w3_data: Vec<f64> = Vec::new();
    let mut w8_data: Vec<f64> = Vec::new();
    rankview::Launch::new()
        .mpi_section("w1", move |world| {
            let samples = raw_pingpong(world, PING_ROUNDS / 10);
            record(&w1, "w1", samples);
        })
        .mpi_section("w3", move |world| {
            if world.rank() == 0 && w3_data.is_empty() {
                w3_data = (0..W3_ELEMENTS).map(|i| i as f64).collect();
            }
            if let Some(t) = raw_scatter_gather(world, &w3_data) {
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
                        report(
                            options.json,
                            "w1",
                            "roundtrip_latency",
                            median(samples),
                            raw_of("w1")?,
                            "us",
                        );
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
                            rc.mpi_section("w3").get()?;
                        }
                        all.clear().get()?;
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
                        }
                        all.clear().get()?;
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
            Ok(())
        });
}
