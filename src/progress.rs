//! Progress of a result while the client waits for it (`wait_interactive`).
//!
//! Shows tasks done out of the total, the rate and the time elapsed on
//! stderr: an indicatif bar when stderr is a terminal, otherwise a plain
//! line every few seconds (batch jobs write stderr to a file, where a bar's
//! redraws would be noise). What counts as a task, and the waiting itself,
//! belong to the result being watched.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often the display is brought up to date on a terminal.
const TICK: Duration = Duration::from_millis(100);
/// How often a plain progress line is written.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Waits until `wait(timeout)` says done, showing `progress()` (tasks done,
/// tasks in all) on stderr meanwhile.
pub(crate) fn watch(progress: impl Fn() -> (usize, usize), wait: impl Fn(Duration) -> bool) {
    let start = Instant::now();
    if std::io::stderr().is_terminal() {
        let (done, total) = progress();
        let bar = ProgressBar::new(total as u64);
        let style = ProgressStyle::with_template(
            "{bar:40} {pos}/{len} tasks  {per_sec}  {elapsed_precise}",
        );
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
        eprintln!("rankview: {}", line(progress(), start.elapsed()));
    }
    eprintln!("rankview: {}", line(progress(), start.elapsed()));
}

/// One plain progress line: `12/40 tasks done, 3.1 tasks/s, 4.0 s elapsed`.
fn line((done, total): (usize, usize), elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    format!("{done}/{total} tasks done, {rate:.1} tasks/s, {secs:.1} s elapsed")
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_plain_line_says_done_total_rate_and_time() {
        assert_eq!(
            line((12, 40), Duration::from_secs(4)),
            "12/40 tasks done, 3.0 tasks/s, 4.0 s elapsed"
        );
        assert_eq!(
            line((0, 0), Duration::ZERO),
            "0/0 tasks done, 0.0 tasks/s, 0.0 s elapsed"
        );
    }
}
