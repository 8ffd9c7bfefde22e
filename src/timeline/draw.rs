//! The timeline picture: layout (records to lanes and bars, a pure
//! function) and drawing it as SVG with `plotters`.
//!
//! What the picture shows is documented on [`Timeline`](crate::Timeline); this file keeps
//! the geometry apart from the drawing so the geometry can be tested alone.

use std::time::SystemTime;

use plotters::prelude::*;

use super::record::TimelineRecord;
use crate::error::{Error, Result};

/// Picture width, pixels.
const WIDTH: u32 = 1000;
/// Height of one lane, pixels: lanes share this much...
const LANES_PX: u32 = 360;
/// ...but each is at least this high...
const LANE_MIN_PX: u32 = 24;
/// ...and at most this.
const LANE_MAX_PX: u32 = 60;
/// Legend entries per row.
const LEGEND_COLUMNS: usize = 3;
/// Height of one legend row, pixels.
const LEGEND_ROW_PX: u32 = 20;
/// Width of the lane labels, pixels.
const LABEL_PX: u32 = 80;
/// Smallest bar width, pixels (shorter tasks are drawn this wide).
const MIN_BAR_PX: f64 = 1.5;

/// Lane shades, alternating from engine 0's lane.
pub(crate) const LANE_COLOURS: [RGBColor; 2] =
    [RGBColor(0xF2, 0xF2, 0xF2), RGBColor(0xE4, 0xE4, 0xE4)];

/// Function colours (Tableau 10), in legend order, repeating.
pub(crate) const FUNCTION_COLOURS: [RGBColor; 10] = [
    RGBColor(0x4E, 0x79, 0xA7),
    RGBColor(0xF2, 0x8E, 0x2B),
    RGBColor(0xE1, 0x57, 0x59),
    RGBColor(0x76, 0xB7, 0xB2),
    RGBColor(0x59, 0xA1, 0x4F),
    RGBColor(0xED, 0xC9, 0x48),
    RGBColor(0xB0, 0x7A, 0xA1),
    RGBColor(0xFF, 0x9D, 0xA7),
    RGBColor(0x9C, 0x75, 0x5F),
    RGBColor(0xBA, 0xB0, 0xAC),
];

/// What the picture's bars mean, for the HTML page.
pub(crate) const CLOCK_NOTE: &str = "Bars run from the engine's start to its end of each task \
    (engine clock); parts without engine times (a gather's, a reduce's) from submission to \
    reply (client clock). On one node both clocks are the same.";

/// One bar: a part on its lane, in seconds from the first submission.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bar {
    /// Index into [`Layout::engines`].
    pub lane: usize,
    pub start: f64,
    pub end: f64,
    /// Index into [`Layout::functions`].
    pub function: usize,
    pub stolen: bool,
}

/// Lanes, bars and legend of a timeline, before any drawing.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Layout {
    /// The engine of each lane, top to bottom (ascending ids).
    pub engines: Vec<usize>,
    /// Function names in the order their first bar starts.
    pub functions: Vec<&'static str>,
    pub bars: Vec<Bar>,
    /// Seconds from the first submission to the end of the last bar.
    pub span: f64,
    /// Records with nothing to draw (no engine, or no times yet).
    pub undrawn: usize,
}

fn seconds(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Lays a timeline's `records` out: one lane per engine that ran a part,
/// one bar per part with an engine and times (see
/// [`Timeline`](crate::Timeline)'s picture docs).
pub(crate) fn layout(records: &[TimelineRecord]) -> Layout {
    // (engine, function, start, end, stolen), absolute times.
    let mut spans = Vec::with_capacity(records.len());
    let mut undrawn = 0;
    for r in records {
        let times = match (r.started, r.completed, r.received) {
            (Some(s), Some(c), _) => Some((s, c)),
            (None, None, Some(received)) => Some((r.submitted, received)),
            _ => None,
        };
        match (r.engine, times) {
            (Some(engine), Some((start, end))) => {
                spans.push((engine, r.function, r.submitted, start, end, r.stolen))
            }
            _ => undrawn += 1,
        }
    }
    let Some(origin) = spans.iter().map(|s| s.2).min() else {
        return Layout {
            undrawn,
            ..Layout::default()
        };
    };
    let mut engines: Vec<usize> = spans.iter().map(|s| s.0).collect();
    engines.sort_unstable();
    engines.dedup();
    let mut by_start: Vec<usize> = (0..spans.len()).collect();
    by_start.sort_by_key(|&i| spans[i].3);
    let mut functions: Vec<&'static str> = Vec::new();
    for &i in &by_start {
        if !functions.contains(&spans[i].1) {
            functions.push(spans[i].1);
        }
    }
    let mut span: f64 = 0.0;
    let bars = spans
        .iter()
        .map(|&(engine, function, _, start, end, stolen)| {
            let start = seconds(origin, start).max(0.0);
            let end = seconds(origin, end).max(start);
            span = span.max(end);
            Bar {
                lane: engines.binary_search(&engine).unwrap_or(0),
                start,
                end,
                function: functions.iter().position(|f| *f == function).unwrap_or(0),
                stolen,
            }
        })
        .collect();
    Layout {
        engines,
        functions,
        bars,
        span,
        undrawn,
    }
}

/// The time unit of the axis for a span in seconds: name and scale.
pub(crate) fn unit(span: f64) -> (&'static str, f64) {
    if span > 2.0 {
        ("s", 1.0)
    } else {
        ("ms", 1e3)
    }
}

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::Io {
        what: "draw the timeline".into(),
        message: e.to_string(),
    }
}

/// Draws `layout` as an SVG document; `left_out` parts are named in the title.
pub(crate) fn svg(layout: &Layout, left_out: u64) -> Result<String> {
    let lanes = layout.engines.len().max(1);
    let legend_rows = layout.functions.len().div_ceil(LEGEND_COLUMNS).max(1);
    let lanes_u32 = u32::try_from(lanes).unwrap_or(u32::MAX / LANE_MAX_PX / 2);
    let lane_px = (LANES_PX / lanes_u32).clamp(LANE_MIN_PX, LANE_MAX_PX);
    let chart_px = 90 + lane_px * lanes_u32;
    let legend_px = 26 + LEGEND_ROW_PX * u32::try_from(legend_rows).unwrap_or(1);
    let mut title = format!(
        "rankview timeline: {} task part{} on {} engine{}",
        layout.bars.len(),
        if layout.bars.len() == 1 { "" } else { "s" },
        layout.engines.len(),
        if layout.engines.len() == 1 { "" } else { "s" },
    );
    if left_out > 0 {
        title.push_str(&format!(" ({left_out} earlier parts left out)"));
    }
    let (unit_name, scale) = unit(layout.span);
    let x_max = (layout.span * scale * 1.02).max(1e-3 * scale);
    let mut text = String::new();
    {
        let root =
            SVGBackend::with_string(&mut text, (WIDTH, chart_px + legend_px)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let (top, bottom) = root.split_vertically(chart_px);
        let lane_count = lanes as f64;
        let mut chart = ChartBuilder::on(&top)
            .caption(&title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(LABEL_PX)
            .build_cartesian_2d(0.0..x_max, -0.5..lane_count - 0.5)
            .map_err(plot_error)?;
        // Lane i (engine engines[i]) is centred on y = lanes - 1 - i, so
        // that engine 0 is on top.
        let y_of = |lane: usize| lane_count - 1.0 - lane as f64;
        let engines = layout.engines.clone();
        let label = move |y: &f64| {
            let lane = lane_count - 1.0 - y.round();
            if (y - y.round()).abs() > 1e-6 || lane < 0.0 {
                return String::new();
            }
            engines
                .get(lane as usize)
                .map_or(String::new(), |e| format!("engine {e}"))
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(lanes.min(40))
            .y_label_formatter(&label)
            .x_desc(format!("{unit_name} since the first submission"))
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series((0..layout.engines.len()).map(|lane| {
                let y = y_of(lane);
                Rectangle::new(
                    [(0.0, y - 0.45), (x_max, y + 0.45)],
                    LANE_COLOURS[lane % 2].filled(),
                )
            }))
            .map_err(plot_error)?;
        let plot_px = f64::from(WIDTH - LABEL_PX - 20);
        let min_width = MIN_BAR_PX * x_max / plot_px;
        // Bars wider than three pixels end a pixel early, so that tasks
        // run back to back stay apart.
        let pixel = x_max / plot_px;
        let corners = |bar: &Bar| {
            let y = y_of(bar.lane);
            let start = bar.start * scale;
            let mut end = bar.end * scale;
            if end - start > 3.0 * pixel {
                end -= pixel;
            }
            let end = end.max(start + min_width);
            [(start, y - 0.35), (end, y + 0.35)]
        };
        chart
            .draw_series(layout.bars.iter().map(|bar| {
                let colour = FUNCTION_COLOURS[bar.function % FUNCTION_COLOURS.len()];
                Rectangle::new(corners(bar), colour.filled())
            }))
            .map_err(plot_error)?;
        chart
            .draw_series(
                layout
                    .bars
                    .iter()
                    .filter(|bar| bar.stolen)
                    .map(|bar| Rectangle::new(corners(bar), BLACK.stroke_width(1))),
            )
            .map_err(plot_error)?;
        // The legend: a dot and a name per function, under the chart.
        let column_px =
            i32::try_from((WIDTH - 2 * LABEL_PX) as usize / LEGEND_COLUMNS).unwrap_or(300);
        for (i, name) in layout.functions.iter().enumerate() {
            let row = i32::try_from(i / LEGEND_COLUMNS).unwrap_or(0);
            let column = i32::try_from(i % LEGEND_COLUMNS).unwrap_or(0);
            let x = LABEL_PX as i32 + column * column_px;
            let y = 10 + row * LEGEND_ROW_PX as i32;
            let colour = FUNCTION_COLOURS[i % FUNCTION_COLOURS.len()];
            bottom
                .draw(&Circle::new((x, y), 6, colour.filled()))
                .map_err(plot_error)?;
            bottom
                .draw(&Text::new(
                    name.to_string(),
                    (x + 12, y - 7),
                    ("sans-serif", 14),
                ))
                .map_err(plot_error)?;
        }
        if layout.bars.iter().any(|b| b.stolen) {
            let y = 10 + i32::try_from(legend_rows).unwrap_or(1) * LEGEND_ROW_PX as i32 - 7;
            bottom
                .draw(&Text::new(
                    "outlined: stolen by an idle engine",
                    (LABEL_PX as i32, y),
                    ("sans-serif", 12),
                ))
                .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(text)
}
