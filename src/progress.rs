//! Progress of a result while the client waits for it (`wait_interactive`).
//!
//! Shows units done (tasks, or a map's items) out of the total, the rate and
//! the time elapsed on stderr: an indicatif bar when the user sees a
//! terminal, otherwise a plain line every few seconds (batch jobs write
//! stderr to a file, where a bar's redraws would be noise). Under an MPI
//! launcher rank 0's stderr is a pipe even when the user's is a terminal:
//! the `rankview` launcher then says so (`RANKVIEW_LAUNCHER=terminal`), and
//! the bar is drawn into the pipe. `TERM=dumb` means no bar. What counts as
//! done, and the waiting itself, belong to the result being watched.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the display is brought up to date on a terminal.
const TICK: Duration = Duration::from_millis(100);
/// How often a plain progress line is written.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Where the bar goes, when there is a terminal to see it.
fn bar_target() -> Option<ProgressDrawTarget> {
    if std::env::var_os("TERM").is_some_and(|t| t == "dumb") {
        return None;
    }
    if std::io::stderr().is_terminal() {
        return Some(ProgressDrawTarget::stderr());
    }
    // The launcher relays this pipe to the user's terminal.
    let relayed = std::env::var_os("RANKVIEW_LAUNCHER").is_some_and(|v| v == "terminal");
    relayed.then(|| ProgressDrawTarget::term_like(Box::new(console::Term::stderr())))
}

/// Waits until `wait(timeout)` says done, showing `progress()` (`unit`s
/// done, in all) on stderr meanwhile.
pub(crate) fn watch(
    unit: &str,
    progress: impl Fn() -> (usize, usize),
    wait: impl Fn(Duration) -> bool,
) {
    let start = Instant::now();
    if let Some(target) = bar_target() {
        let (done, total) = progress();
        let bar = ProgressBar::with_draw_target(Some(total as u64), target);
        let style = ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {unit}  {{per_sec}}  {{elapsed_precise}}"
        ));
        if let Ok(style) = style {
            bar.set_style(style);
        }
        bar.set_position(done as u64);
        while !wait(TICK) {
            bar.set_position(progress().0 as u64);
        }
        bar.set_position(progress().0 as u64);
        bar.finish();
        return;
    }
    while !wait(LINE_EVERY) {
        eprintln!("rankview: {}", line(unit, progress(), start.elapsed()));
    }
    eprintln!("rankview: {}", line(unit, progress(), start.elapsed()));
}

/// One plain progress line: `12/40 tasks done, 3.1 tasks/s, 4.0 s elapsed`.
fn line(unit: &str, (done, total): (usize, usize), elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    format!("{done}/{total} {unit} done, {rate:.1} {unit}/s, {secs:.1} s elapsed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_line_says_done_total_rate_and_time() {
        assert_eq!(
            line("tasks", (12, 40), Duration::from_secs(4)),
            "12/40 tasks done, 3.0 tasks/s, 4.0 s elapsed"
        );
        assert_eq!(
            line("items", (0, 0), Duration::ZERO),
            "0/0 items done, 0.0 items/s, 0.0 s elapsed"
        );
    }
}
