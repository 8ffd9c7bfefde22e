//! Statistics: the raw side's samples recorded per workload, medians and
//! quantiles, the greedy bound of `w4`, and what the process measures of
//! itself (CPU time, resident memory).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Raw figures recorded by the MPI sections on rank 0, by workload.
pub type Samples = Arc<Mutex<HashMap<&'static str, Vec<Duration>>>>;

pub fn record(samples: &Samples, workload: &'static str, new: impl IntoIterator<Item = Duration>) {
    if let Ok(mut map) = samples.lock() {
        map.entry(workload).or_default().extend(new);
    }
}

/// The median of the raw samples `raw` holds for `workload`, taken out of
/// it; an error when the raw side recorded none.
pub fn raw_median(raw: &Samples, workload: &str) -> rankview::Result<Duration> {
    let samples = raw
        .lock()
        .ok()
        .and_then(|mut m| m.remove(workload))
        .ok_or_else(|| rankview::Error::Usage(format!("raw figures for {workload} missing")))?;
    Ok(median(samples))
}

pub fn median(mut samples: Vec<Duration>) -> Duration {
    if std::env::var_os("BENCH_SAMPLES").is_some() {
        eprintln!("samples: {samples:?}");
    }
    samples.sort();
    samples[samples.len() / 2]
}

/// The value at quantile `q` (0..=1) of `samples`.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = ((sorted.len().saturating_sub(1)) as f64 * q).round() as usize;
    sorted.get(at).copied().unwrap_or_default()
}

/// The efficiency of handing `durations` out in order, each to whichever
/// of `engines` frees first, with no overhead at all: what a perfect
/// greedy farm reaches on these tasks.
pub fn greedy_efficiency(durations: &[u64], engines: usize) -> f64 {
    let mut loads = vec![0u64; engines.max(1)];
    for &d in durations {
        if let Some(least) = loads.iter_mut().min() {
            *least += d;
        }
    }
    let makespan = loads.iter().copied().max().unwrap_or(0).max(1);
    durations.iter().sum::<u64>() as f64 / (loads.len() as f64 * makespan as f64)
}

/// Resident memory of this process (VmRSS in /proc/self/status), in bytes.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// CPU time of this process so far (all threads), from /proc.
pub fn cpu_time() -> Duration {
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
