//! `tests/programs/check_timeline.rs` as MPI jobs on 2 and 3 ranks, then
//! the pictures it wrote, parsed as XML: a legend giving each function a
//! colour of its own, one lane per engine, one bar per task part in its
//! function's colour (each direct part in its engine's lane), and the HTML
//! page embedding the SVG. Which colours the palette has is the picture's
//! business: bars are told apart by the legend's colours, lanes are the
//! other filled shapes (the white background aside).

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

/// The program's functions: its direct one and its load-balanced one.
const DIRECT: &str = "check_timeline::direct_work";
const BALANCED: &str = "check_timeline::balanced_work";
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

/// The legend: each function's name and the fill of the dot before it.
fn legend(svg: &str) -> Vec<(String, String)> {
    let doc = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
    let mut dot = None;
    let mut entries = Vec::new();
    for node in doc.descendants() {
        if node.has_tag_name("circle") {
            dot = node.attribute("fill").map(str::to_string);
        } else if node.has_tag_name("text") {
            if let Some(fill) = dot.take() {
                let name = node.text().unwrap_or("").trim().to_string();
                entries.push((name, fill));
            }
        }
    }
    entries
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
    let legend = legend(&svg);
    let names: Vec<&str> = legend.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [DIRECT, BALANCED],
        "the legend of {}",
        path.display()
    );
    let colour = |function: &str| {
        legend
            .iter()
            .find(|(name, _)| name == function)
            .map(|(_, fill)| fill.clone())
            .unwrap_or_default()
    };
    let (direct_fill, balanced_fill) = (colour(DIRECT), colour(BALANCED));
    assert_ne!(direct_fill, balanced_fill, "one colour per function");
    let all = rects(&svg);
    let mut lanes: Vec<&Rect> = all
        .iter()
        .filter(|r| ![&direct_fill, &balanced_fill, "none", "#FFFFFF"].contains(&r.fill.as_str()))
        .collect();
    lanes.sort_by(|a, b| a.top.total_cmp(&b.top));
    assert_eq!(
        lanes.len(),
        engines,
        "one lane per engine in {}",
        path.display()
    );
    let direct: Vec<&Rect> = all.iter().filter(|r| r.fill == direct_fill).collect();
    let balanced = all.iter().filter(|r| r.fill == balanced_fill).count();
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
    assert!(text.contains("engine 0"), "no lane label in {text}");
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
