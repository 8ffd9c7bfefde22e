//! Printing a workload's figures the common ways: one JSON line (`--json`,
//! whose keys are an interface) or one table line, rankview beside raw MPI.
//! Workloads with figures of their own print them themselves.

use std::time::Duration;

use crate::metg;

/// Prints one workload's figures: times in `unit` (`"us"` or `"s"`).
pub fn report(json: bool, workload: &str, label: &str, ours: Duration, raw: Duration, unit: &str) {
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

/// Prints a loop workload's figures: rankview against the raw side with
/// plain kept buffers (`ratio`, the program most people write) and with
/// kept buffers in huge pages (`ratio_huge`, the fastest raw program).
pub fn report_kept(
    json: bool,
    workload: &str,
    label: &str,
    ours: Duration,
    raw: Duration,
    huge: Duration,
) {
    let (ours, raw, huge) = (ours.as_secs_f64(), raw.as_secs_f64(), huge.as_secs_f64());
    let (ratio, ratio_huge) = (ours / raw, ours / huge);
    if json {
        println!(
            "{{\"workload\":\"{workload}\",\"rankview_s\":{ours:.6},\"raw_s\":{raw:.6},\"ratio\":{ratio:.3},\"raw_huge_s\":{huge:.6},\"ratio_huge\":{ratio_huge:.3}}}"
        );
    } else {
        println!("{workload} {label:<26} rankview {ours:>12.6} s  raw MPI {raw:>12.6} s  ratio {ratio:>7.3}  huge pages {huge:>9.6} s  ratio {ratio_huge:>7.3}");
    }
}

/// Prints the `metg` curves (one line per series and step) and each
/// series' METG(50 %), with the load-balanced `apply`'s over the raw farm's.
pub fn report_metg(json: bool, curves: &[metg::Curve]) {
    for curve in curves {
        for &(us, efficiency) in &curve.points {
            if json {
                println!(
                    "{{\"workload\":\"metg\",\"series\":\"{}\",\"task_us\":{us},\"efficiency\":{efficiency:.4}}}",
                    curve.name
                );
            } else {
                println!(
                    "metg {:<9} {us:>6} µs  efficiency {efficiency:.3}",
                    curve.name
                );
            }
        }
    }
    let metg_of = |name: &str| {
        curves
            .iter()
            .find(|c| c.name == name)
            .and_then(metg::Curve::metg)
    };
    let show = |m: Option<f64>| m.map_or("null".to_string(), |m| format!("{m:.1}"));
    let ratio = match (metg_of("lb_apply"), metg_of("raw_farm")) {
        (Some(ours), Some(raw)) => format!("{:.3}", ours / raw),
        _ => "null".to_string(),
    };
    if json {
        println!(
            "{{\"workload\":\"metg\",\"metg_lb_apply_us\":{},\"metg_lb_map_us\":{},\"metg_direct_us\":{},\"metg_raw_us\":{},\"ratio\":{ratio},\"capture\":{}}}",
            show(metg_of("lb_apply")),
            show(metg_of("lb_map")),
            show(metg_of("direct")),
            show(metg_of("raw_farm")),
            capture()
        );
    } else {
        println!(
            "metg METG(50 %)   lb_apply {} µs  lb_map {} µs  direct {} µs  raw farm {} µs  ratio {ratio} (goal ≤ 1.5){}",
            show(metg_of("lb_apply")),
            show(metg_of("lb_map")),
            show(metg_of("direct")),
            show(metg_of("raw_farm")),
            capture_note()
        );
    }
}

/// Whether the engines capture each task's output (`RANKVIEW_NO_CAPTURE`
/// unset, as by default): the per-task workloads say so, since capture
/// costs two system calls per task (`docs/benchmarks.md`, w2) and the
/// raw side captures nothing. The job's environment is every rank's.
pub fn capture() -> bool {
    std::env::var_os("RANKVIEW_NO_CAPTURE").is_none()
}

/// What a table line adds when the engines did not capture output.
fn capture_note() -> &'static str {
    if capture() {
        ""
    } else {
        " (output capture off)"
    }
}

/// Prints one throughput workload's figures: `what` (`"tasks"`, `"items"`)
/// per second for both sides, their ratio, and in the table the goal.
pub fn report_rates(
    json: bool,
    workload: &str,
    label: &str,
    what: &str,
    ours: f64,
    raw: f64,
    goal: &str,
) {
    let ratio = ours / raw;
    if json {
        println!(
            "{{\"workload\":\"{workload}\",\"rankview_{what}_per_s\":{ours:.0},\"raw_{what}_per_s\":{raw:.0},\"ratio\":{ratio:.3},\"capture\":{}}}",
            capture()
        );
    } else {
        println!("{workload} {label:<26} rankview {ours:>12.0} {what}/s  raw MPI {raw:>12.0} {what}/s  ratio {ratio:>7.3} (goal {goal}){}", capture_note());
    }
}
