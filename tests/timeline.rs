//! `tests/programs/check_timeline.rs` as MPI jobs on 2 and 3 ranks, then
//! the pictures it wrote, parsed as XML: one lane per engine, one bar per
//! task part (each direct part in its engine's lane), the legend's function
//! names, and the HTML page embedding the SVG. Lanes and bars are told
//! apart by their fill colours, which `Timeline`'s docs state.

mod common;

use std::path::Path;

use common::mpirun;

/// Every check of `check_timeline`, in order.
const CHECKS: &[&str] = &[
    "records_of_a_direct_result",
    "records_of_a_load_balanced_map",
    "the_job_timeline_has_every_part",
    "timelines_add_up_and_are_written",
    "collectives_and_requests_are_named",
];

/// Lane shades, alternating from engine 0 (see `Timeline`).
const LANES: [&str; 2] = ["#F2F2F2", "#E4E4E4"];
/// The first two function colours: the direct function's (it starts
/// first), then the load-balanced one's.
const DIRECT: &str = "#4E79A7";
const BALANCED: &str = "#F28E2B";
/// Items of the program's load-balanced map.
const ITEMS: usize = 12;

/// A rectangle: fill and vertical extent.
struct Rect {
    fill: String,
    top: f64,
    bottom: f64,
}

fn rects(svg: &str) -> Vec<Rect> {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("rect"))
        .map(|n| {
            let num = |a: &str| {
                n.attribute(a)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            Rect {
                fill: n.attribute("fill").unwrap_or("").to_string(),
                top: num("y"),
                bottom: num("y") + num("height"),
            }
        })
        .collect()
}

fn texts(svg: &str) -> String {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    doc.descendants()
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join("|")
}

/// Checks one picture of `engines` lanes and `engines + ITEMS` bars.
fn check_picture(path: &Path, engines: usize) {
    let svg = std::fs::read_to_string(path).expect("the program wrote the SVG");
    let all = rects(&svg);
    let mut lanes: Vec<&Rect> = all
        .iter()
        .filter(|r| LANES.contains(&r.fill.as_str()))
        .collect();
    lanes.sort_by(|a, b| a.top.total_cmp(&b.top));
    assert_eq!(
        lanes.len(),
        engines,
        "one lane per engine in {}",
        path.display()
    );
    let direct: Vec<&Rect> = all.iter().filter(|r| r.fill == DIRECT).collect();
    let balanced = all.iter().filter(|r| r.fill == BALANCED).count();
    assert_eq!(direct.len(), engines, "one direct bar per engine");
    assert_eq!(balanced, ITEMS, "one bar per load-balanced task");
    // Each direct bar sits inside its own lane.
    for (i, lane) in lanes.iter().enumerate() {
        let inside = direct
            .iter()
            .filter(|b| b.top >= lane.top && b.bottom <= lane.bottom)
            .count();
        assert_eq!(inside, 1, "lane {i} holds one direct bar");
    }
    let text = texts(&svg);
    for needle in [
        "check_timeline::direct_work",
        "check_timeline::balanced_work",
        "engine 0",
    ] {
        assert!(
            text.contains(needle),
            "{needle:?} not in the picture's text: {text}"
        );
    }
    let last = format!("engine {}", engines - 1);
    assert!(text.contains(&last), "{last:?} not in {text}");
}

fn run(ranks: usize) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().to_str().expect("a UTF-8 path").to_string();
    mpirun(ranks, "check_timeline", &[&out]).assert_checks("check_timeline", CHECKS);
    let engines = ranks - 1;
    check_picture(&dir.path().join("results.svg"), engines);
    check_picture(&dir.path().join("job.svg"), engines);
    let svg = std::fs::read_to_string(dir.path().join("results.svg")).expect("results.svg");
    let html = std::fs::read_to_string(dir.path().join("results.html")).expect("results.html");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains(svg.trim()), "the page embeds the SVG");
    assert!(
        !html.contains("<script") && !html.contains("src="),
        "self-contained"
    );
}

#[test]
fn timeline_2_ranks() {
    run(2);
}

#[test]
fn timeline_3_ranks() {
    run(3);
}
