//! Spinners on long steps (building an example, starting the ranks).
//!
//! Owns the one indicatif spinner the launcher shows at a time, the rule
//! that it is drawn only when stderr is a terminal (logs and CI output stay
//! clean), and when the "starting N ranks" spinner shows ([`StartWatch`]).
//! Callers say what is happening; this module decides whether and how it is
//! shown.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::host;
use crate::output;
use crate::status::StatusDir;

/// The launcher's progress display: at most one spinner.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    spinner: Option<ProgressBar>,
}

impl Progress {
    /// A display that draws only if stderr is a terminal.
    pub fn for_stderr() -> Progress {
        Progress {
            enabled: host::stderr_is_terminal(),
            spinner: None,
        }
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
        self.spinner = Some(spinner);
    }

    /// Changes the current spinner's message (nothing without a spinner).
    pub fn set_message(&self, message: String) {
        if let Some(spinner) = &self.spinner {
            spinner.set_message(message);
        }
    }

    /// Whether a spinner is showing.
    pub fn spinning(&self) -> bool {
        self.spinner.is_some()
    }

    /// Prints a line to stderr above the spinner (or plainly, without one).
    pub fn println(&self, line: &str) {
        match &self.spinner {
            Some(spinner) => spinner.println(line),
            None => output::err(line),
        }
    }

    /// Removes the spinner, if any.
    pub fn clear(&mut self) {
        if let Some(spinner) = self.spinner.take() {
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
/// not all, after [`StartWatch::DELAY`]) and goes once every rank is up, so
/// it never sits on a line the ranks are printing to. A job where no rank
/// reports within [`StartWatch::GIVE_UP`] is not a rankview program: the
/// watch stops looking.
pub struct StartWatch {
    ranks: u32,
    since: Instant,
    done: bool,
}

impl StartWatch {
    /// How long start-up may take before the spinner shows.
    const DELAY: Duration = Duration::from_millis(500);
    /// How long to wait for a first status file.
    const GIVE_UP: Duration = Duration::from_secs(5);

    /// A watch over a job of `ranks` ranks, starting now.
    pub fn new(ranks: u32) -> StartWatch {
        StartWatch {
            ranks,
            since: Instant::now(),
            done: false,
        }
    }

    /// Looks at the status files once; shows, updates or clears the spinner.
    pub fn tick(&mut self, status_dir: &StatusDir, progress: &mut Progress) {
        if self.done || !progress.enabled() {
            return;
        }
        let waited = self.since.elapsed();
        let started = status_dir.started(self.ranks);
        if started == self.ranks || (started == 0 && waited >= Self::GIVE_UP) {
            progress.clear();
            self.done = true;
        } else if started > 0 && waited >= Self::DELAY {
            let message = format!("starting {} ranks ({started} up)", self.ranks);
            if progress.spinning() {
                progress.set_message(message);
            } else {
                progress.spin(message);
            }
        }
    }
}
