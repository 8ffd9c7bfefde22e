//! How much each workload moves and how often: the sizes and repetitions
//! that the raw MPI side (`raw`) and the rankview side (`workloads`) share,
//! so both always measure the same thing.

use std::time::Duration;

pub const PING_ROUNDS: usize = 20_000;
pub const PING_WARMUP: usize = 2_000;
pub const W3_ELEMENTS: usize = 1 << 25;
pub const W3_REPS: usize = 11;
pub const W8_ELEMENTS: usize = 8 << 20;
pub const W8_REPS: usize = 15;
pub const W9_ELEMENTS: usize = 8 << 20;
pub const W9_REPS: usize = 11;
pub const IDLE_GAP: Duration = Duration::from_millis(100);
pub const IDLE_ROUNDS: usize = 40;
pub const W10_STRINGS: usize = 1 << 20;
pub const W10_REPS: usize = 5;
pub const W2_TASKS: usize = 20_000;
pub const W2_REPS: usize = 5;
/// Tasks the raw `w2` farm keeps outstanding on each worker.
pub const W2_PIPE: usize = 2;
pub const W2MAP_ITEMS: usize = 1_000_000;
pub const W2MAP_REPS: usize = 5;
pub const W4_TASKS: usize = 64;
pub const W4_MEAN_US: f64 = 20_000.0;
pub const W4_SEED: u64 = 2024;
pub const W4_REPS: usize = 3;
/// How long the raw `w4` farm's rank 0 sleeps between probes for a result.
pub const W4_POLL: Duration = Duration::from_micros(50);
pub const W6_TASKS: u64 = 1_000_000;
/// Finished empty results `w13` holds at once.
pub const W13_RESULTS: usize = 1_000_000;
pub const W6_WINDOW: usize = 10_000;

/// How long `w5` leaves the engines idle.
pub const IDLE: Duration = Duration::from_secs(3);

/// `w11`: runs of the ensemble, engines per group, steps per run and the
/// computation of each step (50 steps of 1 ms: ~50 ms a run).
pub const W11_TASKS: usize = 16;
pub const W11_GROUP: usize = 2;
pub const W11_STEPS: usize = 50;
pub const W11_STEP_US: u64 = 1_000;
pub const W11_REPS: usize = 5;
/// How long the raw `w11` farm's rank 0 sleeps between probes for a result.
pub const W11_POLL: Duration = Duration::from_micros(50);
