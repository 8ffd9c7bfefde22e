//! The `metg` workload: task granularity against efficiency (Task Bench,
//! SC20), for the load-balanced view (`apply` and `map`), the direct view and
//! a raw MPI farm in the same job.
//!
//! Each step runs tasks that spin for one duration, from 1 µs to 10 ms in
//! half-decade steps, enough of them for at least 0.2 s of work in all;
//! efficiency is that work over (engines × wall time). METG(50 %), the
//! minimum effective task granularity, is the duration where a curve crosses
//! 50 % (interpolated on the logarithm of the duration). Each step runs
//! three times per series and the best counts, for every series alike. The
//! raw farm is the
//! better of two expert farms per step: rank 0 receiving with a blocking
//! call, and rank 0 napping between probes (on an oversubscribed machine the
//! spinning master takes a core from the workers). Drawing the curves
//! (`--metg-svg FILE`) is here too; the job is `main.rs`'s, the rankview
//! side of each step `workloads.rs`'s (`metg_step`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rankview::mpi::collective::Root;
use rankview::mpi::topology::{Communicator, SimpleCommunicator};
use rankview::Client;

/// Task durations of the steps, in microseconds (half-decade steps).
pub const DURATIONS_US: [u64; 9] = [1, 3, 10, 30, 100, 300, 1_000, 3_000, 10_000];
/// Work per step, all tasks together.
const WORK_PER_STEP: Duration = Duration::from_millis(200);
/// Fewest tasks per step per engine.
const MIN_TASKS_PER_ENGINE: usize = 8;
/// Repetitions of each step and series; the best one counts (the machine's
/// noise only ever lowers an efficiency), on both sides alike.
const REPS: usize = 3;

/// The step's task duration and count, set by rank 0's client before it
/// runs the raw section (the section sends them to every rank).
static STEP: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
/// The raw farm's best time for the last step, recorded on rank 0.
static RAW: Mutex<Option<Duration>> = Mutex::new(None);

/// Tasks of a step of `us` microseconds on `engines` engines.
pub fn tasks(us: u64, engines: usize) -> usize {
    let for_work = WORK_PER_STEP.as_micros().div_ceil(u128::from(us.max(1)));
    usize::try_from(for_work)
        .unwrap_or(usize::MAX)
        .max(MIN_TASKS_PER_ENGINE * engines)
}

/// The raw side of one step, run by every rank in the `metg` section:
/// `farm(world, tasks, pipe, poll, work)` is `raw.rs`'s hand-written farm
/// (`raw_farm`).
pub fn raw_section(
    world: &SimpleCommunicator,
    farm: impl Fn(
        &SimpleCommunicator,
        &[u64],
        usize,
        Option<Duration>,
        fn(u64) -> u64,
    ) -> Option<(Duration, u64)>,
    pipe: usize,
    poll: Duration,
    work: fn(u64) -> u64,
) {
    let mut step = [
        STEP[0].load(Ordering::SeqCst),
        STEP[1].load(Ordering::SeqCst),
    ];
    world.process_at_rank(0).broadcast_into(&mut step[..]);
    let [us, count] = step;
    let tasks = vec![us; usize::try_from(count).unwrap_or(0)];
    let mut best: Option<Duration> = None;
    for nap in [None, Some(poll)] {
        if let Some((t, sum)) = farm(world, &tasks, pipe, nap, work) {
            assert_eq!(sum, us * count, "the raw farm lost results");
            best = Some(best.map_or(t, |b| b.min(t)));
        }
    }
    if best.is_some() {
        *RAW.lock().unwrap_or_else(|p| p.into_inner()) = best;
    }
}

/// One curve: efficiency per step.
pub struct Curve {
    pub name: &'static str,
    pub points: Vec<(u64, f64)>,
}

impl Curve {
    /// The duration where efficiency crosses 50 %: interpolated on the
    /// logarithm of the duration between the last step below and the first
    /// at or above; `None` if no step reaches it.
    pub fn metg(&self) -> Option<f64> {
        let at = self.points.iter().position(|&(_, e)| e >= 0.5)?;
        if at == 0 {
            return Some(self.points[0].0 as f64);
        }
        let (d0, e0) = self.points[at - 1];
        let (d1, e1) = self.points[at];
        let (l0, l1) = ((d0 as f64).ln(), (d1 as f64).ln());
        let f = if e1 > e0 { (0.5 - e0) / (e1 - e0) } else { 1.0 };
        Some((l0 + f * (l1 - l0)).exp())
    }
}

/// Runs every step for the four series and returns their curves; the raw
/// section is run through `rc.mpi_section("metg")`.
pub fn run(
    rc: &Client,
    spin: impl Fn(&Client, Series, u64, usize) -> rankview::Result<()>,
) -> rankview::Result<Vec<Curve>> {
    let engines = rc.len();
    let mut curves: Vec<Curve> = Series::ALL
        .iter()
        .map(|s| Curve {
            name: s.name(),
            points: Vec::new(),
        })
        .collect();
    for us in DURATIONS_US {
        let count = tasks(us, engines);
        let work = Duration::from_micros(us).as_secs_f64() * count as f64;
        let efficiency = |wall: Duration| work / (engines as f64 * wall.as_secs_f64());
        let mut best = [Duration::MAX; 4];
        for _ in 0..REPS {
            for (series, best) in Series::ALL.into_iter().zip(&mut best) {
                let wall = match series {
                    Series::Raw => {
                        STEP[0].store(us, Ordering::SeqCst);
                        STEP[1].store(count as u64, Ordering::SeqCst);
                        rc.mpi_section("metg").get()?;
                        RAW.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .take()
                            .ok_or_else(|| {
                                rankview::Error::Usage("raw metg figure missing".into())
                            })?
                    }
                    series => {
                        let t = Instant::now();
                        spin(rc, series, us, count)?;
                        t.elapsed()
                    }
                };
                *best = (*best).min(wall);
            }
        }
        for (curve, wall) in curves.iter_mut().zip(best) {
            curve.points.push((us, efficiency(wall)));
        }
    }
    Ok(curves)
}

/// How a step's tasks are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// `lv.chunksize(1).apply` per task.
    Apply,
    /// `lv.map` over the tasks, default chunks.
    Map,
    /// `rc.engine(i).apply` per task, engines in turn.
    Direct,
    /// The hand-written MPI farm.
    Raw,
}

impl Series {
    pub const ALL: [Series; 4] = [Series::Apply, Series::Map, Series::Direct, Series::Raw];

    pub fn name(self) -> &'static str {
        match self {
            Series::Apply => "lb_apply",
            Series::Map => "lb_map",
            Series::Direct => "direct",
            Series::Raw => "raw_farm",
        }
    }
}

/// Draws the curves as an SVG picture: efficiency against task duration
/// (logarithmic), the 50 % line, one colour per series with a legend.
pub fn draw(curves: &[Curve], path: &str) -> Result<(), String> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| format!("cannot draw {path}: {e}");
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (lo, hi) = (
        *DURATIONS_US.first().unwrap_or(&1) as f64,
        *DURATIONS_US.last().unwrap_or(&10_000) as f64,
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Efficiency against task granularity (METG at 50 %)",
            ("sans-serif", 18),
        )
        .margin(12)
        .margin_right(28)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.05)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("task duration (µs)")
        .x_label_formatter(&|d| format!("{d:.0}"))
        .y_desc("efficiency")
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(lo, 0.5), (hi, 0.5)],
            BLACK.mix(0.3),
        )))
        .map_err(|e| err(&e))?;
    let colours = [RED, BLUE, GREEN, BLACK];
    for (curve, colour) in curves.iter().zip(colours) {
        // A curve at 50 % from the first step has its METG there or below.
        let below = curve.points.first().is_some_and(|&(_, e)| e >= 0.5);
        let label = match curve.metg() {
            Some(m) if below => format!("{} (METG ≤ {m:.0} µs)", curve.name),
            Some(m) => format!("{} (METG {m:.0} µs)", curve.name),
            None => format!("{} (never 50 %)", curve.name),
        };
        chart
            .draw_series(std::iter::once(PathElement::new(
                curve
                    .points
                    .iter()
                    .map(|&(d, e)| (d as f64, e))
                    .collect::<Vec<_>>(),
                colour.stroke_width(2),
            )))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
