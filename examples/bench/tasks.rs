//! The tasks the workloads run on the engines (`#[rankview::remote]`
//! functions) and the data they are given: `w4`'s durations, `w10`'s
//! strings. The raw farms run the same functions (`spin_us`), so both sides
//! do the same work.

use std::time::{Duration, Instant};

use crate::sizes::{W10_STRINGS, W4_MEAN_US, W4_SEED, W4_TASKS};
use crate::stats::cpu_time;

#[rankview::remote]
pub fn noop() {}

#[rankview::remote]
pub fn increment(x: u64) -> u64 {
    x + 1
}

#[rankview::remote]
pub fn spin(us: u64) -> u64 {
    spin_us(us)
}

/// Busy-waits `us` microseconds on the clock (a `w4` task); returns `us`.
pub fn spin_us(us: u64) -> u64 {
    let end = Instant::now() + Duration::from_micros(us);
    while Instant::now() < end {
        std::hint::spin_loop();
    }
    us
}

/// SplitMix64: a tiny deterministic generator for `w4`'s durations.
pub struct SplitMix64(u64);

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
pub fn w4_durations_us() -> Vec<u64> {
    let mut rng = SplitMix64(W4_SEED);
    (0..W4_TASKS)
        .map(|_| (-W4_MEAN_US * (1.0 - rng.unit()).ln()).round() as u64)
        .collect()
}

#[rankview::remote]
pub fn count_strings(items: Vec<String>) -> usize {
    items.len()
}

/// 64 MiB of text as 2^20 strings of 64 bytes.
pub fn w10_strings() -> Vec<String> {
    (0..W10_STRINGS).map(|i| format!("{i:064}")).collect()
}

#[rankview::remote]
pub fn engine_cpu_ns() -> u64 {
    cpu_time().as_nanos() as u64
}
