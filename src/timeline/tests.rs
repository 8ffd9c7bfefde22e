//! Unit tests of the timeline: the job log's bound, the layout, and the SVG
//! drawn from it (parsed back as XML).

use std::time::{Duration, SystemTime};

use super::draw::{layout, unit, FUNCTION_COLOURS, LANE_COLOURS};
use super::*;

fn at(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms)
}

fn record(
    engine: usize,
    function: &'static str,
    task: u64,
    start: u64,
    end: u64,
) -> TimelineRecord {
    TimelineRecord {
        engine: Some(engine),
        function,
        task,
        submitted: at(0),
        started: Some(at(start)),
        completed: Some(at(end)),
        received: Some(at(end + 1)),
        stolen: false,
    }
}

fn hex(c: plotters::style::RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

#[test]
fn one_lane_per_engine_and_one_bar_per_part_in_seconds_from_the_first_submission() {
    let timeline: Timeline = vec![
        record(2, "b", 1, 10, 30),
        record(0, "a", 2, 5, 15),
        record(2, "a", 3, 40, 50),
    ]
    .into_iter()
    .collect();
    let l = layout(timeline.records());
    assert_eq!(l.engines, vec![0, 2]);
    assert_eq!(
        l.functions,
        vec!["a", "b"],
        "legend in order of first start"
    );
    assert_eq!(l.bars.len(), 3);
    assert_eq!(l.bars[0].lane, 1);
    assert_eq!(l.bars[0].function, 1);
    assert!((l.bars[0].start - 0.010).abs() < 1e-9 && (l.bars[0].end - 0.030).abs() < 1e-9);
    assert_eq!(l.bars[1].lane, 0);
    assert!((l.span - 0.050).abs() < 1e-9);
    assert_eq!(l.undrawn, 0);
}

#[test]
fn parts_without_engine_times_use_the_client_clock_and_unrun_parts_are_not_drawn() {
    let mut collective = record(1, "gather", 1, 0, 0);
    collective.started = None;
    collective.completed = None;
    collective.submitted = at(100);
    collective.received = Some(at(130));
    let mut never_ran = record(0, "f", 2, 0, 0);
    never_ran.engine = None;
    let mut running = record(0, "f", 3, 0, 0);
    running.started = None;
    running.completed = None;
    running.received = None;
    let l = layout(&[collective, never_ran, running]);
    assert_eq!(l.bars.len(), 1);
    assert_eq!(l.engines, vec![1]);
    assert!((l.bars[0].end - l.bars[0].start - 0.030).abs() < 1e-9);
    assert_eq!(l.undrawn, 2);
}

#[test]
fn the_axis_is_in_ms_up_to_two_seconds() {
    assert_eq!(unit(0.5).0, "ms");
    assert_eq!(unit(2.5).0, "s");
}

#[test]
fn the_job_log_keeps_the_last_parts_and_counts_the_others() {
    let log = JobLog::new(3);
    let us = |ms| {
        let since = at(ms).duration_since(SystemTime::UNIX_EPOCH).unwrap();
        u64::try_from(since.as_micros()).unwrap()
    };
    let mut entry = Entry {
        engine: 1,
        stolen: true,
        task: 0,
        function: "f",
        submitted: us(0),
        started: us(1),
        completed: us(2),
        received: us(3),
    };
    for task in 1..=5 {
        entry.task = task;
        log.record(entry);
    }
    let timeline = log.timeline();
    assert_eq!(timeline.left_out(), 2);
    let tasks: Vec<u64> = timeline.records().iter().map(|r| r.task).collect();
    assert_eq!(tasks, vec![3, 4, 5]);
    assert_eq!(
        timeline.records()[0],
        TimelineRecord {
            engine: Some(1),
            function: "f",
            task: 3,
            submitted: at(0),
            started: Some(at(1)),
            completed: Some(at(2)),
            received: Some(at(3)),
            stolen: true,
        }
    );
}

#[test]
fn the_svg_has_a_lane_rect_per_engine_and_a_bar_rect_per_part() {
    let mut stolen = record(1, "b", 4, 20, 21);
    stolen.stolen = true;
    let timeline: Timeline = vec![
        record(0, "a", 1, 0, 10),
        record(1, "a<f64>", 2, 0, 10),
        record(2, "b & c", 3, 5, 6),
        stolen,
    ]
    .into_iter()
    .collect();
    let mut all = Timeline::new();
    all.extend(timeline);
    all.left_out = 7;
    let svg = all.to_svg().unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let rects: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect"))
        .collect();
    let fills = |colours: &[String]| {
        rects
            .iter()
            .filter(|r| {
                r.attribute("fill")
                    .is_some_and(|f| colours.contains(&f.to_string()))
            })
            .count()
    };
    let lanes: Vec<String> = LANE_COLOURS.iter().map(|&c| hex(c)).collect();
    let bars: Vec<String> = FUNCTION_COLOURS.iter().map(|&c| hex(c)).collect();
    assert_eq!(fills(&lanes), 3);
    assert_eq!(fills(&bars), 4);
    let outlines = rects
        .iter()
        .filter(|r| r.attribute("fill") == Some("none") && r.attribute("stroke") == Some("#000000"))
        .count();
    assert!(outlines >= 1, "the stolen bar is outlined");
    let text: String = doc
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    for needle in [
        "a<f64>",
        "b & c",
        "engine 2",
        "7 earlier parts left out",
        "ms since",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
    let html = all.to_html().unwrap();
    assert!(html.contains(&svg) && html.starts_with("<!DOCTYPE html>"));
}

#[test]
fn an_empty_timeline_still_draws() {
    let svg = Timeline::new().to_svg().unwrap();
    roxmltree::Document::parse(&svg).unwrap();
}
