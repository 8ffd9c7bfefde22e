//! [`Part`]: one engine's share of a submission as a result holds it, in
//! as few bytes as it takes, since a program may hold a million of them.
//!
//! What an engine returned ([`Payload`]) is held in a [`Slot`] (an empty
//! or plain value inline, anything rarer boxed), its times are plain
//! numbers, and its output (and a group task's members' metadata) is
//! allocated only when there is some. The public [`Metadata`] is built
//! from it when asked for. What the parts mean together (settling,
//! waiting, callbacks) is the shared state's (`state.rs`).

use std::time::{Duration, SystemTime};

use super::metadata::Metadata;
use crate::bulk::BulkVec;
use crate::error::{Error, Result};
use crate::protocol::{Done, Each, TaskId, Typed, ValueSpec};
use crate::timeline::Entry;

/// What one engine returned for one task, before decoding.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    Value(Vec<u8>),
    Values(Vec<Typed>),
    Keys(Vec<String>),
    Many(Vec<Vec<u8>>),
    /// The outcomes of a load-balanced `map` task, item by item.
    Each(Each),
    /// The assembled data of a gather or reduce (on the first part only).
    /// Read by borrowing: each `get` assembles the user's container anew.
    Gathered(Gathered),
    /// A gathered payload handed to the only handle's
    /// [`AsyncResult::into_value`], which may move the data out (leaving
    /// [`Payload::Taken`]) instead of copying it.
    Movable(Gathered),
    /// A gathered payload moved out by `into_value`; no handle is left to
    /// see it.
    Taken,
    Unit,
}

impl Payload {
    /// The first failed item of a `map` chunk, as an error (with the item's
    /// index within the chunk).
    pub(crate) fn item_failure(&self, engine: usize, task: TaskId) -> Option<Error> {
        let Payload::Each(each) = self else {
            return None;
        };
        each.failed.first().map(|(index, f)| Error::MapItem {
            index: usize::try_from(*index).unwrap_or(usize::MAX),
            error: Box::new(f.clone().into_error(engine, task)),
        })
    }
}

/// Data a gather or reduce brought to rank 0, in target order.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Gathered {
    /// Every engine's contribution, back to back.
    pub(crate) data: BulkVec,
    /// The type of a pulled value (`None` for a gather or reduce, whose
    /// type the controller checked already).
    pub(crate) value: Option<ValueSpec>,
    /// Per engine, in target order: elements (or bytes) and shape.
    pub(crate) parts: Vec<(usize, Vec<usize>)>,
}

/// A part's outcome as it is held.
#[derive(Debug)]
pub(super) enum Slot {
    /// No reply yet (or the outcome is being decoded).
    Pending,
    /// `Ok(Payload::Unit)`.
    Unit,
    /// `Ok(Payload::Value(_))`: what most tasks return, inline.
    Value(Vec<u8>),
    /// Any other outcome (an error, gathered data, a map chunk's items).
    Other(Box<Result<Payload>>),
}

impl Slot {
    /// Holds `outcome`, boxing only the rare kinds.
    pub(super) fn hold(outcome: Result<Payload>) -> Slot {
        match outcome {
            Ok(Payload::Unit) => Slot::Unit,
            Ok(Payload::Value(bytes)) => Slot::Value(bytes),
            other => Slot::Other(Box::new(other)),
        }
    }

    /// Takes the outcome out (leaving [`Slot::Pending`]); `None` if none
    /// arrived.
    pub(super) fn take(&mut self) -> Option<Result<Payload>> {
        match std::mem::replace(self, Slot::Pending) {
            Slot::Pending => None,
            Slot::Unit => Some(Ok(Payload::Unit)),
            Slot::Value(bytes) => Some(Ok(Payload::Value(bytes))),
            Slot::Other(outcome) => Some(*outcome),
        }
    }

    /// Settled without an error (a map chunk's items included).
    pub(super) fn succeeded(&self) -> bool {
        match self {
            Slot::Pending => false,
            Slot::Unit | Slot::Value(_) => true,
            Slot::Other(outcome) => match outcome.as_ref() {
                Ok(payload) => payload.item_failure(0, 0).is_none(),
                Err(_) => false,
            },
        }
    }

    pub(super) fn is_pending(&self) -> bool {
        matches!(self, Slot::Pending)
    }

    /// The outcome's error, if it is one.
    pub(super) fn error(&self) -> Option<&crate::Error> {
        match self {
            Slot::Other(outcome) => outcome.as_ref().as_ref().err(),
            _ => None,
        }
    }

    /// The payload of a rare successful outcome (the inline kinds carry no
    /// item failures).
    pub(super) fn rare_payload(&self) -> Option<&Payload> {
        match self {
            Slot::Other(outcome) => outcome.as_ref().as_ref().ok(),
            _ => None,
        }
    }
}

/// A time as whole units since the Unix epoch (nanoseconds or
/// microseconds, as its field says), or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp(u64);

impl Stamp {
    pub(super) const NONE: Stamp = Stamp(u64::MAX);

    /// `time` to the nanosecond (times before the epoch, or past the year
    /// 2554, are kept as the epoch).
    pub(super) fn nanos(time: SystemTime) -> Stamp {
        let since = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Stamp(
            u64::try_from(since.as_nanos())
                .unwrap_or(0)
                .min(u64::MAX - 1),
        )
    }

    pub(super) fn micros(us: u64) -> Stamp {
        Stamp(us.min(u64::MAX - 1))
    }

    /// Whole microseconds, from a stamp of `per_micro` units a microsecond
    /// (1000 for nanoseconds); 0 for none, as the job's log keeps it.
    fn in_micros(self, per_micro: u64) -> u64 {
        if self == Stamp::NONE {
            0
        } else {
            self.0 / per_micro
        }
    }

    fn time(self, unit: fn(u64) -> Duration) -> Option<SystemTime> {
        (self != Stamp::NONE).then(|| SystemTime::UNIX_EPOCH + unit(self.0))
    }

    pub(super) fn as_nanos(self) -> Option<SystemTime> {
        self.time(Duration::from_nanos)
    }

    pub(super) fn as_micros(self) -> Option<SystemTime> {
        self.time(Duration::from_micros)
    }
}

/// What a task wrote, and for a task of a view over groups its members'
/// metadata: kept only when there is some.
#[derive(Debug, Clone, Default)]
struct Output {
    stdout: String,
    stderr: String,
    /// A group task's members, in rank order (the part is the leader's).
    members: Vec<Metadata>,
}

/// One engine's share of a submission: its outcome and its metadata,
/// compact ([`Part::metadata`] gives the public form).
#[derive(Debug)]
pub(crate) struct Part {
    pub(super) outcome: Slot,
    task: TaskId,
    /// A thin pointer to the name (a word smaller than `&'static str`).
    function: Name,
    /// Nanoseconds.
    submitted: Stamp,
    /// Microseconds, engine clock.
    started: Stamp,
    /// Microseconds, engine clock.
    completed: Stamp,
    /// Nanoseconds.
    received: Stamp,
    output: Option<Box<Output>>,
    /// `u32::MAX` for none (`usize::MAX` in [`Metadata`]).
    engine: u32,
    stolen: bool,
    /// Added to the job's log when it settles (false for a part copied
    /// into a result made of others: the original is logged).
    logged: bool,
}

/// What a part's work runs, as the part keeps it: a reference to a
/// static name (a remote function's path in the registry, or a literal
/// such as `&"push"`), one word instead of a `&str`'s two.
pub(crate) type Name = &'static &'static str;

/// An engine id as a part keeps it; ids past `u32` (none are) read as
/// "none".
fn compact_engine(engine: usize) -> u32 {
    u32::try_from(engine).unwrap_or(u32::MAX)
}

impl Part {
    /// A part waiting for `engine`'s reply to `task`.
    pub(super) fn new(
        task: TaskId,
        engine: usize,
        function: Name,
        submitted: Stamp,
        logged: bool,
    ) -> Part {
        Part {
            outcome: Slot::Pending,
            task,
            function,
            submitted,
            started: Stamp::NONE,
            completed: Stamp::NONE,
            received: Stamp::NONE,
            output: None,
            engine: compact_engine(engine),
            stolen: false,
            logged,
        }
    }

    pub(super) fn engine(&self) -> usize {
        match self.engine {
            u32::MAX => usize::MAX,
            e => e as usize,
        }
    }

    pub(super) fn task(&self) -> TaskId {
        self.task
    }

    pub(super) fn logged(&self) -> bool {
        self.logged
    }

    /// Records an engine's reply's times and output; with `ran_on`, the
    /// engine a load-balanced task ran on and whether it was stolen.
    pub(super) fn record(&mut self, done: &mut Done, ran_on: Option<(usize, bool)>) {
        if let Some((engine, stolen)) = ran_on {
            self.engine = compact_engine(engine);
            self.stolen = stolen;
        }
        self.started = Stamp::micros(done.started_us);
        self.completed = Stamp::micros(done.completed_us);
        let (stdout, stderr) = (
            std::mem::take(&mut done.stdout),
            std::mem::take(&mut done.stderr),
        );
        self.output = (!stdout.is_empty() || !stderr.is_empty()).then(|| {
            Box::new(Output {
                stdout,
                stderr,
                members: Vec::new(),
            })
        });
    }

    /// Records the members of the group task whose leader's reply this
    /// part holds: their times and output (their function and submission
    /// time are the leader's).
    pub(super) fn add_members(&mut self, members: Vec<(u32, Done)>) {
        if members.is_empty() {
            return;
        }
        let leader = self.timing();
        let output = self.output.get_or_insert_with(Box::default);
        output.members = members
            .into_iter()
            .map(|(engine, done)| Metadata {
                engine: engine as usize,
                stolen: done.hops > 0,
                started: Stamp::micros(done.started_us).as_micros(),
                completed: Stamp::micros(done.completed_us).as_micros(),
                stdout: done.stdout,
                stderr: done.stderr,
                ..leader.clone()
            })
            .collect();
    }

    /// The metadata of a group task's members (empty for other tasks).
    pub(super) fn members(&self) -> &[Metadata] {
        self.output.as_ref().map_or(&[], |o| o.members.as_slice())
    }

    /// Marks the part received at the time `at` gives, unless it was
    /// already (a part adopted from another result keeps its time; a
    /// load-balanced reply has the time its message arrived).
    pub(super) fn mark_received(&mut self, at: impl FnOnce() -> SystemTime) {
        if self.received == Stamp::NONE {
            self.received = Stamp::nanos(at());
        }
    }

    /// The same metadata with no outcome (for a result made of others).
    pub(super) fn copy_meta(&self) -> Part {
        Part {
            outcome: Slot::Pending,
            task: self.task,
            function: self.function,
            submitted: self.submitted,
            started: self.started,
            completed: self.completed,
            received: self.received,
            output: self.output.clone(),
            engine: self.engine,
            stolen: self.stolen,
            logged: false,
        }
    }

    /// The public metadata, without the output (nothing allocated).
    pub(super) fn timing(&self) -> Metadata {
        Metadata {
            engine: self.engine(),
            stolen: self.stolen,
            task: self.task,
            function: self.function,
            submitted: self.submitted.as_nanos().unwrap_or(SystemTime::UNIX_EPOCH),
            started: self.started.as_micros(),
            completed: self.completed.as_micros(),
            received: self.received.as_nanos(),
            stdout: String::new(),
            stderr: String::new(),
        }
    }

    /// The part as the job's log keeps it.
    pub(super) fn log_entry(&self) -> Entry {
        Entry {
            function: self.function,
            task: self.task,
            engine: self.engine,
            stolen: self.stolen,
            submitted: self.submitted.in_micros(1000),
            started: self.started.in_micros(1),
            completed: self.completed.in_micros(1),
            received: self.received.in_micros(1000),
        }
    }

    /// The public metadata, output included.
    pub(super) fn metadata(&self) -> Metadata {
        let mut meta = self.timing();
        if let Some(output) = &self.output {
            meta.stdout.clone_from(&output.stdout);
            meta.stderr.clone_from(&output.stderr);
        }
        meta
    }
}

/// A submission's parts: one (a load-balanced task) inline, several in a
/// vector.
#[derive(Debug)]
pub(super) enum Parts {
    One(Part),
    Many(Vec<Part>),
}

impl Parts {
    pub(super) fn new(parts: Vec<Part>) -> Parts {
        match <[Part; 1]>::try_from(parts) {
            Ok([part]) => Parts::One(part),
            Err(parts) => Parts::Many(parts),
        }
    }

    pub(super) fn as_slice(&self) -> &[Part] {
        match self {
            Parts::One(part) => std::slice::from_ref(part),
            Parts::Many(parts) => parts,
        }
    }

    pub(super) fn as_mut_slice(&mut self) -> &mut [Part] {
        match self {
            Parts::One(part) => std::slice::from_mut(part),
            Parts::Many(parts) => parts,
        }
    }
}
