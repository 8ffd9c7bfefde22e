//! Spinners on long steps (building an example, starting the ranks).
//!
//! Owns the one indicatif spinner the launcher shows at a time, the rule
//! that it is drawn only when stderr is a terminal (logs and CI output stay
//! clean), and when the "starting N ranks" spinner shows ([`StartWatch`]).
//! Callers say what is happening; this module decides whether and how it is
//! shown.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::host;
use crate::output;
use crate::status::StatusDir;

/// Where the current spinner lives, shared with `relay` (which removes it
/// when the job first prints).
pub type SpinnerSlot = Arc<Mutex<Option<ProgressBar>>>;

/// The launcher's progress display: at most one spinner.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    spinner: SpinnerSlot,
}

impl Progress {
    /// A display that draws only if stderr is a terminal.
    pub fn for_stderr() -> Progress {
        Progress {
            enabled: host::stderr_is_terminal(),
            spinner: SpinnerSlot::default(),
        }
    }

    /// The slot of the current spinner, for `relay`.
    pub fn slot(&self) -> SpinnerSlot {
        Arc::clone(&self.spinner)
    }

    /// The current spinner, if one is showing.
    fn current(&self) -> Option<ProgressBar> {
        self.spinner.lock().ok().and_then(|slot| slot.clone())
    }

    /// Whether spinners are drawn at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Shows a spinner with `message`, replacing any current one.
    pub fn spin(&mut self, message: String) {
        self.clear();
        if !self.enabled {
            return;
        }
        let spinner = ProgressBar::new_spinner();
        let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        spinner.set_style(style);
        spinner.set_message(message);
        spinner.enable_steady_tick(Duration::from_millis(100));
        if let Ok(mut slot) = self.spinner.lock() {
            *slot = Some(spinner);
        }
    }

    /// Changes the current spinner's message (nothing without a spinner).
    pub fn set_message(&self, message: String) {
        if let Some(spinner) = self.current() {
            spinner.set_message(message);
        }
    }

    /// Whether a spinner is showing.
    pub fn spinning(&self) -> bool {
        self.current().is_some()
    }

    /// Prints a line to stderr above the spinner (or plainly, without one).
    pub fn println(&self, line: &str) {
        match self.current() {
            Some(spinner) => spinner.println(line),
            None => output::err(line),
        }
    }

    /// Removes the spinner, if any.
    pub fn clear(&mut self) {
        let taken = self.spinner.lock().ok().and_then(|mut slot| slot.take());
        if let Some(spinner) = taken {
            spinner.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Drives the "starting N ranks" spinner from the status files.
///
/// The spinner appears only when start-up is slow (some rank has reported,
/// not all, after [`StartWatch::DELAY`]) and goes for good once every rank
/// is up, once the job prints anything (so it never sits on a line the
/// ranks print to), or once no more rank has reported for
/// [`StartWatch::GIVE_UP`] (not a rankview program, or ranks that cannot
/// write to the status directory).
pub struct StartWatch {
    ranks: u32,
    since: Instant,
    last_change: Instant,
    last_count: u32,
    done: bool,
}

impl StartWatch {
    /// How long start-up may take before the spinner shows.
    const DELAY: Duration = Duration::from_millis(500);
    /// How long to wait for one more rank to report.
    const GIVE_UP: Duration = Duration::from_secs(5);

    /// A watch over a job of `ranks` ranks, starting now.
    pub fn new(ranks: u32) -> StartWatch {
        StartWatch {
            ranks,
            since: Instant::now(),
            last_change: Instant::now(),
            last_count: 0,
            done: false,
        }
    }

    /// Looks at the status files once; shows, updates or clears the spinner.
    /// `printed`: whether the job has printed anything.
    pub fn tick(&mut self, status_dir: &StatusDir, printed: bool, progress: &mut Progress) {
        if self.done || !progress.enabled() {
            return;
        }
        let started = status_dir.started(self.ranks);
        if started != self.last_count {
            self.last_count = started;
            self.last_change = Instant::now();
        }
        match decide_spinner(
            self.ranks,
            started,
            self.since.elapsed(),
            self.last_change.elapsed(),
            printed,
        ) {
            Spinner::Stop => {
                progress.clear();
                self.done = true;
            }
            Spinner::Wait => {}
            Spinner::Show => {
                let message = format!("starting {} ranks ({started} up)", self.ranks);
                if progress.spinning() {
                    progress.set_message(message);
                } else {
                    progress.spin(message);
                }
            }
        }
    }
}

/// What the start-up spinner should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spinner {
    /// Not yet (or not now).
    Wait,
    /// Show or update it.
    Show,
    /// Remove it for good.
    Stop,
}

/// The spinner rule of [`StartWatch`], as a pure function: `started` of
/// `ranks` have reported, the last one `unchanged_for` ago.
fn decide_spinner(
    ranks: u32,
    started: u32,
    since_start: Duration,
    unchanged_for: Duration,
    printed: bool,
) -> Spinner {
    if started >= ranks || printed || unchanged_for >= StartWatch::GIVE_UP {
        Spinner::Stop
    } else if started > 0 && since_start >= StartWatch::DELAY {
        Spinner::Show
    } else {
        Spinner::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinner_gives_up() {
        let s = Duration::from_secs;
        assert_eq!(decide_spinner(4, 4, s(1), s(0), false), Spinner::Stop);
        // The job printed: the spinner would sit on its lines.
        assert_eq!(decide_spinner(4, 2, s(1), s(1), true), Spinner::Stop);
        // Ranks that cannot report: the spinner goes after GIVE_UP.
        assert_eq!(decide_spinner(4, 3, s(9), s(6), false), Spinner::Stop);
        assert_eq!(decide_spinner(4, 0, s(6), s(6), false), Spinner::Stop);
        assert_eq!(decide_spinner(4, 3, s(2), s(1), false), Spinner::Show);
        assert_eq!(decide_spinner(4, 3, s(0), s(0), false), Spinner::Wait);
        assert_eq!(decide_spinner(4, 0, s(1), s(1), false), Spinner::Wait);
    }
}
