//! Timelines: where and when tasks ran, and their picture.
//!
//! Owns [`Timeline`] (records of task parts, from one result or the whole
//! job) and the job's bounded log of finished parts ([`JobLog`], kept by the
//! client and filled as results settle). Drawing the picture (layout, then
//! SVG through `plotters`) is in `timeline/draw.rs`, one record
//! ([`TimelineRecord`]) in `timeline/record.rs`; the timing itself is
//! measured by the engines and the controller, not here.
//!
//! ## Clocks
//!
//! `started` and `completed` are read on the engine's clock, `submitted`
//! and `received` on the client's (rank 0). On one node these are the same
//! clock; across nodes they differ by the nodes' clock offset, which shifts
//! every bar of an engine's lane by the same amount.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::protocol::TaskId;

mod draw;
mod record;
#[cfg(test)]
mod tests;

pub use record::TimelineRecord;

/// How many finished parts [`Client::timeline`](crate::Client::timeline)
/// keeps: the last 100,000 (64 bytes each, about 6 MiB once full); earlier ones are counted in
/// [`Timeline::left_out`].
pub const TIMELINE_LIMIT: usize = 100_000;

/// Where and when a set of tasks ran, to look at or to draw.
///
/// Made by [`AsyncResult::timeline`](crate::AsyncResult::timeline) for one
/// result and by [`Client::timeline`](crate::Client::timeline) for the whole
/// job so far; timelines add up with [`extend`](Timeline::extend) or
/// `collect()`.
///
/// ## The picture
///
/// [`to_svg`](Timeline::to_svg) draws one lane per engine (engine 0 on top,
/// lanes shaded alternately `#F2F2F2` and `#E4E4E4`) and one bar per part
/// that has an engine: from `started` to `completed` (engine clock), or,
/// for parts without engine times (a gather's, a reduce's), from `submitted` to
/// `received` (client clock: the span the client waited, queueing
/// included). Bars are coloured by function (ten colours, repeating after
/// ten functions), named in the legend under the chart; a stolen task's bar
/// has a black outline; a bar is at least 1.5 pixels wide, so short tasks
/// stay visible (wider bars end a pixel early, so that tasks run back to
/// back stay apart). Gaps between bars are time the engine did no task. The
/// time axis runs from the first submission, in ms (s when the span is
/// over 2 s). The title gives the number of parts drawn, the number of
/// engines, and how many earlier parts were left out (see
/// [`TIMELINE_LIMIT`]). See the module docs for the two clocks.
///
/// # Examples
///
/// ```no_run
/// #[rankview::remote]
/// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
///
/// rankview::launch(|rc| -> rankview::Result<()> {
///     let first = rc.all().apply(nap, (20,));
///     let second = rc.load_balanced_view().map(nap, [5, 10, 15, 20]);
///     first.get()?;
///     second.get()?;
///     let mut timeline = first.timeline();
///     timeline.extend(second.timeline());
///     timeline.write_svg("naps.svg")?;
///     Ok(())
/// });
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    records: Vec<TimelineRecord>,
    left_out: u64,
}

impl Timeline {
    /// An empty timeline.
    pub fn new() -> Self {
        Timeline::default()
    }

    /// The records, in the order they were added.
    pub fn records(&self) -> &[TimelineRecord] {
        &self.records
    }

    /// How many earlier parts the job's log no longer holds (see
    /// [`TIMELINE_LIMIT`]); 0 for a result's timeline.
    pub fn left_out(&self) -> u64 {
        self.left_out
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when there is no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Adds one record.
    pub fn push(&mut self, record: TimelineRecord) {
        self.records.push(record);
    }

    /// Adds `other`'s records (and its count of left-out parts).
    pub fn extend(&mut self, other: Timeline) {
        self.records.extend(other.records);
        self.left_out += other.left_out;
    }

    /// The picture as an SVG document (see [the picture](Timeline#the-picture)).
    ///
    /// Errors: [`Error::Io`] if the drawing library fails.
    pub fn to_svg(&self) -> Result<String> {
        draw::svg(&draw::layout(&self.records), self.left_out)
    }

    /// A self-contained HTML page showing the picture (the SVG inline, no
    /// scripts, nothing fetched).
    pub fn to_html(&self) -> Result<String> {
        let svg = self.to_svg()?;
        Ok(format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>rankview timeline</title>\n</head>\n<body style=\"margin:0\">\n{svg}\n\
             <p style=\"font-family:sans-serif;font-size:13px;margin:8px\">{}</p>\n</body>\n</html>\n",
            draw::CLOCK_NOTE
        ))
    }

    /// Writes [`to_svg`](Timeline::to_svg) to `path`.
    ///
    /// Errors: [`Error::Io`] naming the file.
    pub fn write_svg(&self, path: impl AsRef<Path>) -> Result<()> {
        write(path.as_ref(), &self.to_svg()?)
    }

    /// Writes [`to_html`](Timeline::to_html) to `path`.
    ///
    /// Errors: [`Error::Io`] naming the file.
    pub fn write_html(&self, path: impl AsRef<Path>) -> Result<()> {
        write(path.as_ref(), &self.to_html()?)
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::Io {
        what: format!("write {}", path.display()),
        message: e.to_string(),
    })
}

impl FromIterator<TimelineRecord> for Timeline {
    fn from_iter<I: IntoIterator<Item = TimelineRecord>>(iter: I) -> Self {
        Timeline {
            records: iter.into_iter().collect(),
            left_out: 0,
        }
    }
}

impl FromIterator<Timeline> for Timeline {
    fn from_iter<I: IntoIterator<Item = Timeline>>(iter: I) -> Self {
        let mut all = Timeline::new();
        for timeline in iter {
            all.extend(timeline);
        }
        all
    }
}

/// One finished part in the job's log: a few words, no output. A result's
/// part builds it from its own stamps (no clock read, no conversion through
/// `SystemTime`: one is logged per task, bench `w2`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) function: &'static str,
    pub(crate) task: TaskId,
    /// `u32::MAX` when the part never ran on an engine.
    pub(crate) engine: u32,
    pub(crate) stolen: bool,
    /// Microseconds since the Unix epoch; 0 for "none".
    pub(crate) submitted: u64,
    pub(crate) started: u64,
    pub(crate) completed: u64,
    pub(crate) received: u64,
}

fn time(us: u64) -> Option<SystemTime> {
    (us != 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_micros(us))
}

/// The job's log: a process has one client, so one log, which results
/// reach without keeping a pointer to it (a word less in each of the
/// million a program may hold).
pub(crate) fn job_log() -> &'static JobLog {
    static LOG: OnceLock<JobLog> = OnceLock::new();
    LOG.get_or_init(|| JobLog::new(TIMELINE_LIMIT))
}

/// The last finished parts of the job, for [`Client::timeline`](crate::Client::timeline).
///
/// Parts are added as they settle (on the controller thread, one short lock
/// each); past `limit` the oldest go, and are counted.
pub(crate) struct JobLog {
    inner: Mutex<LogInner>,
}

struct LogInner {
    entries: VecDeque<Entry>,
    limit: usize,
    dropped: u64,
}

impl JobLog {
    /// A log keeping the last `limit` parts. Its room is reserved at once
    /// (virtual memory: pages count in RSS as parts fill them), so that it
    /// never grows by copying itself, which would leave the old copy's
    /// pages resident in the allocator.
    pub(crate) fn new(limit: usize) -> JobLog {
        JobLog {
            inner: Mutex::new(LogInner {
                entries: VecDeque::with_capacity(limit),
                limit,
                dropped: 0,
            }),
        }
    }

    /// Adds a settled part.
    pub(crate) fn record(&self, entry: Entry) {
        // Every write is a single push or pop: a poisoned lock still holds a
        // consistent log.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.limit == 0 {
            inner.dropped += 1;
            return;
        }
        if inner.entries.len() == inner.limit {
            inner.entries.pop_front();
            inner.dropped += 1;
        }
        inner.entries.push_back(entry);
    }

    /// The log as a timeline.
    pub(crate) fn timeline(&self) -> Timeline {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Timeline {
            records: inner
                .entries
                .iter()
                .map(|e| TimelineRecord {
                    engine: (e.engine != u32::MAX).then_some(e.engine as usize),
                    function: e.function,
                    task: e.task,
                    submitted: time(e.submitted).unwrap_or(SystemTime::UNIX_EPOCH),
                    started: time(e.started),
                    completed: time(e.completed),
                    received: time(e.received),
                    stolen: e.stolen,
                })
                .collect(),
            left_out: inner.dropped,
        }
    }
}
