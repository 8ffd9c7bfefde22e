//! What an engine's two threads hand each other: the execution thread's
//! [`Job`]s (in stream order, through the inbox), what it hands back
//! ([`ExecOut`]), values that arrive by or are lent to collectives, and how
//! the MPI thread ended ([`Ending`]).

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::bulk::{BufRef, BulkVec, Lent};
use crate::error::{Error, Result};
use crate::namespace::Stored;
use crate::protocol::{Done, Framed, Outcome, Request, TaskId, Typed, ValueSpec, Work};

/// How an engine's MPI thread ended.
pub(crate) enum Ending {
    /// Clean shutdown: the execution thread has finished.
    Clean,
    /// The client failed: the process must exit non-zero now.
    ClientFailed,
    /// The engine could not serve.
    Broken(Error),
}

/// Work for the execution thread, in arrival order.
pub(crate) enum Job {
    /// A request from the controller.
    Request(Request),
    /// Store a value that arrived by a collective.
    Store {
        task: TaskId,
        name: String,
        value: Incoming,
    },
    /// Give the buffer of `name` back for a scatter or broadcast about to
    /// replace it with a value of the same type and shape (see
    /// [`Comm::recycled`]); `None` if it cannot be reused.
    Recycle {
        name: String,
        fingerprint: u64,
        shape: Vec<usize>,
        reply: Sender<Option<BulkVec>>,
    },
    /// Lend a value to the MPI thread for a gather or reduce.
    Lend {
        task: TaskId,
        name: String,
        value: ValueSpec,
    },
    /// This engine's part of a group task led by engine `leader` (the
    /// group is engines `leader..leader + size`).
    Member {
        leader: usize,
        size: u32,
        hops: u32,
        work: Work,
    },
}

impl Job {
    /// The task of a direct-view request that may still be aborted (one
    /// that only this engine runs); `None` for collectives' jobs, and for a
    /// task with a communicator (`Apply` with a team): its other members
    /// may have started it and wait for this one in a collective.
    pub(crate) fn abortable(&self) -> Option<TaskId> {
        match self {
            Job::Request(
                Request::Apply {
                    task, team: None, ..
                }
                | Request::Map { task, .. }
                | Request::Push { task, .. }
                | Request::Pull { task, .. }
                | Request::Keys { task }
                | Request::Clear { task },
            ) => Some(*task),
            _ => None,
        }
    }
}

/// A value that arrived by a collective.
pub(crate) enum Incoming {
    Decoded(Arc<dyn Stored>),
    Encoded(Typed),
    /// Still to arrive: the MPI thread sends it (or why it cannot be
    /// stored) once its two-phase scatter or broadcast has run, and drops
    /// the sender if it never runs. Queued at the trigger, so that the
    /// requests after it in the stream see the new value.
    Later(Receiver<Result<Incoming>>),
}

/// What the execution thread hands back to the MPI thread.
pub(crate) enum ExecOut {
    /// An encoded reply for the controller, with its attachments.
    Reply(Framed),
    /// An encoded reply announcing raw data, and the lent value whose
    /// elements are that data. The execution thread waits until `resume` is
    /// dropped (the data has been sent).
    Data {
        reply: Vec<u8>,
        data: Lent,
        resume: Sender<()>,
    },
    /// A lent value (or why it cannot be lent). The execution thread waits
    /// until `resume` is dropped.
    Lent {
        task: TaskId,
        lent: Result<Lending>,
        resume: Sender<()>,
    },
    /// About a group task (see `group.rs`).
    Group(GroupOut),
}

/// What the execution thread hands the MPI thread about a group task.
pub(crate) enum GroupOut {
    /// This engine leads a group task: send `work` to the members (engines
    /// `leader + 1..leader + size`) and hand each member's end to `ends`.
    Forward {
        leader: usize,
        size: u32,
        hops: u32,
        work: Work,
        ends: Sender<(usize, Done)>,
    },
    /// This engine's part of a group task led by `leader` ended.
    MemberDone { leader: usize, done: Done },
    /// The leader's own part of `task` ended (`why`: how, for a message).
    LeaderEnded { task: TaskId, why: String },
}

/// The group tasks an engine's MPI thread follows (`group.rs`).
#[derive(Default)]
pub(crate) struct Groups {
    /// The group tasks this engine leads, waiting for their parts.
    pub(super) leading: HashMap<TaskId, Leading>,
    /// The group tasks whose part this engine (a member) was sent and has
    /// not finished.
    pub(super) parts: HashSet<TaskId>,
    /// Another part of the group task this engine's execution thread runs
    /// has ended: that part will never take part in an operation on the
    /// group's communicator again.
    pub(super) ended: Option<PartEnded>,
}

impl Groups {
    /// No group task is under way on this engine.
    pub(super) fn is_empty(&self) -> bool {
        self.leading.is_empty() && self.parts.is_empty() && self.ended.is_none()
    }
}

/// A group task this engine leads, as its MPI thread follows it.
pub(crate) struct Leading {
    /// Where the members' ends go (the leader's execution thread).
    pub(super) ends: Sender<(usize, Done)>,
    /// The group's engines, leader first.
    pub(super) engines: Vec<u32>,
    /// Members (engine ids) whose end has not arrived.
    pub(super) running: Vec<usize>,
    /// The leader's own part has ended.
    pub(super) leader_ended: bool,
}

/// Another part of the group task running here has ended (see
/// [`Groups::ended`]).
pub(crate) struct PartEnded {
    pub(super) task: TaskId,
    /// The group's engines, leader first.
    pub(super) engines: Vec<u32>,
    /// Which part ended and how, for the message that ends the job.
    pub(super) why: String,
    pub(super) since: Instant,
}

/// A value lent for a gather or reduce.
pub(crate) enum Lending {
    Bulk(Lent),
    Bytes(Arc<Vec<u8>>),
}

impl Lending {
    pub(super) fn buf(&self) -> Option<BufRef<'_>> {
        match self {
            Lending::Bulk(lent) => lent.buf(),
            Lending::Bytes(bytes) => Some(BufRef::U8(bytes)),
        }
    }

    pub(super) fn shape(&self) -> Vec<u64> {
        match self {
            Lending::Bulk(lent) => lent.shape.iter().map(|&d| d as u64).collect(),
            Lending::Bytes(_) => Vec::new(),
        }
    }
}

/// The end of a request that ran no user code (a failure before it ran, a
/// store, an MPI section): no output, never stolen.
pub(super) fn quiet_done(
    task: TaskId,
    started_us: u64,
    completed_us: u64,
    outcome: Outcome,
) -> Done {
    Done {
        task,
        started_us,
        completed_us,
        stdout: String::new(),
        stderr: String::new(),
        hops: 0,
        outcome,
    }
}

/// Microseconds since the Unix epoch, now.
pub(super) fn now_us() -> u64 {
    wall_us(Instant::now())
}

/// How often a thread reads the wall clock again for [`wall_us`].
const REBASE_EVERY: Duration = Duration::from_secs(1);

thread_local! {
    /// An instant and the wall clock's microseconds at it, read again once
    /// older than [`REBASE_EVERY`].
    static WALL_BASE: Cell<Option<(Instant, u64)>> = const { Cell::new(None) };
}

/// Microseconds since the Unix epoch at `at` (a recent instant): the
/// monotonic clock's reading carried over to the wall clock by this
/// thread's base, which is read at most once a second. A task's two
/// timestamps thus cost two monotonic readings, the ones its engine takes
/// anyway, not two more of the wall clock.
pub(super) fn wall_us(at: Instant) -> u64 {
    let micros = |d: Duration| d.as_secs() * 1_000_000 + u64::from(d.subsec_micros());
    WALL_BASE.with(|base| {
        if let Some((instant, us)) = base.get() {
            if let Some(since) = at.checked_duration_since(instant) {
                if since < REBASE_EVERY {
                    return us.saturating_add(micros(since));
                }
            }
        }
        let (instant, us) = (Instant::now(), system_us());
        base.set(Some((instant, us)));
        match at.checked_duration_since(instant) {
            Some(since) => us.saturating_add(micros(since)),
            None => us.saturating_sub(micros(instant.duration_since(at))),
        }
    })
}

/// The wall clock in microseconds since the Unix epoch.
fn system_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Times carried over from the monotonic clock agree with the wall
    /// clock, for instants after this thread's base and before it.
    #[test]
    fn wall_times_agree_with_the_system_clock() {
        const SLACK_US: u64 = 2_000;
        let earlier = Instant::now();
        let earlier_us = system_us();
        std::thread::sleep(Duration::from_millis(5));
        for _ in 0..3 {
            let before = system_us();
            let derived = now_us();
            let after = system_us();
            assert!(
                before.saturating_sub(SLACK_US) <= derived && derived <= after + SLACK_US,
                "{derived} is not within {before}..{after}"
            );
        }
        // Older than the base just taken: read back, not clamped to it.
        let derived = wall_us(earlier);
        assert!(
            derived.abs_diff(earlier_us) <= SLACK_US,
            "{derived} vs {earlier_us}"
        );
        assert!(derived + 4_000 <= now_us());
    }
}
