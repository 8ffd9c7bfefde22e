//! The messages of the wire protocol: what the controller, the engines and
//! their peers say to each other, as typed enums, and their encoding.
//!
//! Plain data: no MPI, no threads, no I/O. Which large fields travel beside a
//! message is `framed`'s; the ordering rules and the byte layout are in the
//! module doc of `protocol`. The typed values these messages carry
//! ([`Typed`]) are the codec's; task ids and engine sets are the
//! scheduler's.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::bulk::{ElemKind, ReduceOp};
use crate::codec::{self, Typed};
use crate::error::{Error, Result};
use crate::scheduler::{EngineId, EngineSet, Fence, Queued, Stealable, TaskId};

/// One argument of a remote call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[doc(hidden)]
pub enum WireArg {
    /// An encoded value.
    Value(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A name in the engine's namespace ([`crate::Ref`]).
    Ref(String),
}

/// A call's arguments, in order. One is held inline: the call of a
/// function of one argument (the usual task) allocates no list on the
/// client, nor on the engine that decodes it. On the wire, a sequence as
/// a `Vec` is.
#[doc(hidden)]
pub type WireArgs = SmallVec<[WireArg; 1]>;

/// Controller → engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Call a registered function.
    Apply {
        task: TaskId,
        /// Registry id of the function.
        function: u64,
        args: WireArgs,
        /// The engines of a direct view of several engines, whose
        /// communicator the task gets ([`crate::comm`]); `None` for one
        /// engine.
        team: Option<TeamSpec>,
    },
    /// Store named values in the namespace.
    Push {
        task: TaskId,
        items: Vec<(String, Typed)>,
    },
    /// Send back named values.
    Pull { task: TaskId, names: Vec<String> },
    /// List the namespace's names.
    Keys { task: TaskId },
    /// Empty the namespace.
    Clear { task: TaskId },
    /// Call a registered one-argument function once per item, in order.
    Map {
        task: TaskId,
        function: u64,
        #[serde(with = "byte_vecs")]
        items: Vec<Vec<u8>>,
    },
    /// Take part in a collective on a view's sub-communicator.
    Collective {
        task: TaskId,
        group: GroupSpec,
        op: CollectiveOp,
    },
    /// Load-balanced tasks for this engine's local queue (one message for
    /// many tasks; see `src/scheduler/README.md`). Without tasks, the load
    /// figures alone, which the controller sends an idle engine when a peer
    /// may give more than before (`TaskTable::refreshes`).
    Tasks {
        /// Per engine, the queued tasks another engine could steal, as the
        /// controller knows them (the thief's estimates).
        loads: Vec<u32>,
        /// Per engine, the messages the controller had sent it before this
        /// one (the stream fence of every task here).
        fence: Vec<u64>,
        tasks: Vec<WireTask>,
    },
    /// Remove these load-balanced tasks from the local queue if they have
    /// not started; the engine answers [`Reply::Aborted`].
    Abort { tasks: Vec<TaskId> },
    /// Stop serving. `failed` means the client failed: exit non-zero at once.
    /// A clean one (`failed: false`) is answered with [`Reply::Quiet`] once
    /// the engine's work is done; the engine then keeps answering steals
    /// until [`Request::Exit`].
    Shutdown { failed: bool },
    /// Every engine is quiet: say goodbye and finalize.
    Exit,
}

/// What a load-balanced task runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Work {
    /// Call a registered function once.
    Apply {
        task: TaskId,
        function: u64,
        args: WireArgs,
    },
    /// Call a registered one-argument function once per item; each item's
    /// outcome comes back on its own ([`Outcome::Each`]).
    Map {
        task: TaskId,
        function: u64,
        /// Each item's encoding; when `raw`, one string instead: every
        /// item's bytes back to back.
        items: Packed,
        /// The function takes and returns plain numbers (its registry
        /// entry's `raw_kinds`), and items and results travel as their
        /// bytes: the reply's [`Each`] then holds one string, every
        /// result's bytes (zeroes for a failed item).
        raw: bool,
    },
    /// Run `work` SPMD on every engine of the group led by the engine that
    /// runs it (engines `leader..leader + size`; see `engine/group.rs`).
    /// Only group leaders receive these, and only leaders may steal them.
    Group { size: u32, work: Box<Work> },
}

/// Byte strings back to back in one block, with where each one ends: the
/// items of a `map` task and their results travel this way, one allocation
/// for a whole task instead of one per item. Read with [`Packed::get`],
/// which checks the bounds (a hostile `ends` is an error, not a panic).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Packed {
    #[serde(with = "serde_bytes")]
    pub(super) bytes: Vec<u8>,
    /// End offset of each string in `bytes`.
    pub(super) ends: Vec<u64>,
}

impl Packed {
    /// Room for about `items` strings of `bytes` bytes in all.
    pub(crate) fn with_capacity(items: usize, bytes: usize) -> Packed {
        Packed {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(items),
        }
    }

    /// Appends one string, written by `write` at the end of the block.
    pub(crate) fn push_with<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let start = self.bytes.len();
        match write(&mut self.bytes) {
            Ok(()) => {
                self.ends.push(self.bytes.len() as u64);
                Ok(())
            }
            Err(e) => {
                self.bytes.truncate(start);
                Err(e)
            }
        }
    }

    /// Appends one string.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        self.ends.push(self.bytes.len() as u64);
    }

    /// Number of strings.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// String `index`; an error if the offsets are out of bounds.
    pub(crate) fn get(&self, index: usize) -> Result<&[u8]> {
        let start = match index {
            0 => 0,
            i => self.ends.get(i - 1).copied().unwrap_or(u64::MAX),
        };
        let end = self.ends.get(index).copied().unwrap_or(u64::MAX);
        usize::try_from(start)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(start, end)| self.bytes.get(start..end))
            .ok_or_else(|| Error::Protocol(format!("packed string {index} is out of bounds")))
    }
}

impl Work {
    pub(crate) fn task(&self) -> TaskId {
        match self {
            Work::Apply { task, .. } | Work::Map { task, .. } => *task,
            Work::Group { work, .. } => work.task(),
        }
    }

    /// The registry id of the function the task runs.
    pub(crate) fn function(&self) -> u64 {
        match self {
            Work::Apply { function, .. } | Work::Map { function, .. } => *function,
            Work::Group { work, .. } => work.function(),
        }
    }
}

/// Who may steal a queued task, on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireStealable {
    Never,
    Anyone,
    Only(Vec<u32>),
}

/// A load-balanced task as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireTask {
    pub work: Work,
    pub stealable: WireStealable,
    /// Times it was stolen so far.
    pub hops: u32,
}

impl WireTask {
    /// A queued task as it travels (to its engine, or to a thief).
    pub(crate) fn from_queued(q: Queued<Work>) -> WireTask {
        WireTask {
            stealable: match &q.stealable {
                Stealable::Never => WireStealable::Never,
                Stealable::Anyone => WireStealable::Anyone,
                Stealable::Only(set) => WireStealable::Only(set.iter().map(|e| e as u32).collect()),
            },
            hops: q.hops,
            work: q.payload,
        }
    }

    /// The task as the receiving engine's local queue holds it.
    pub(crate) fn into_queued(self, fence: Fence, stolen_from: Option<EngineId>) -> Queued<Work> {
        Queued {
            task: self.work.task(),
            stealable: match self.stealable {
                WireStealable::Never => Stealable::Never,
                WireStealable::Anyone => Stealable::Anyone,
                WireStealable::Only(engines) => {
                    Stealable::Only(EngineSet::new(engines.into_iter().map(|e| e as usize)))
                }
            },
            hops: self.hops,
            stolen_from,
            fence,
            payload: self.work,
        }
    }
}

/// Engine → engine: work stealing. Sent on the control tag like everything
/// else; an engine tells them from the controller's messages by their
/// source rank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Peer {
    /// Give me at most `max` tasks you have not started, once you have
    /// received `seen` messages from the controller (my estimate of you
    /// counted on them; see the scheduler's "Fenced steals").
    Steal { max: u32, seen: u64 },
    /// The answer to a steal, possibly empty. Each task carries its stream
    /// fence; `left` is what another steal by the thief would take now (the
    /// victim's share, `LocalQueue::share`).
    Give {
        tasks: Vec<(WireTask, Vec<u64>)>,
        left: u32,
    },
    /// Group leader → member: run your part of a group task (the group is
    /// engines `leader..leader + size`, ranks in that order).
    GroupRun {
        leader: u32,
        size: u32,
        hops: u32,
        work: Work,
    },
    /// Member → leader: how the member's part of a group task ended.
    GroupDone { done: Done },
    /// Leader → member: another part of group task `task` (of the group
    /// of `size` engines led by the sender) has ended, as `why` says; it
    /// will take part in nothing more on the group's communicator.
    GroupAbandon {
        task: TaskId,
        size: u32,
        why: String,
    },
}

/// A view's sub-communicator: rank 0 and the view's engines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupSpec {
    /// Chosen by the controller; the same for every view over the same ranks.
    pub id: u32,
    /// World ranks, sorted (rank 0 first); sub-rank `s` is `ranks[s]`. Sent
    /// only in the first message about a group (which every rank of it
    /// receives, and which creates the sub-communicator); empty afterwards.
    pub ranks: Vec<u32>,
}

impl GroupSpec {
    /// The world ranks as `usize`.
    pub(crate) fn world_ranks(&self) -> Vec<usize> {
        self.ranks.iter().map(|&r| r as usize).collect()
    }

    /// The same group, named by id alone (for ranks that already know it).
    pub(crate) fn known(&self) -> GroupSpec {
        GroupSpec {
            id: self.id,
            ranks: Vec::new(),
        }
    }
}

/// An ordered set of engines that share a task communicator (see
/// `crate::taskcomm`): a direct view's engines in target order, rank 0 never
/// among them. The ordered list itself is the communicator's key on every
/// engine: the same list always names the same communicator, so the engines
/// need no id agreed with the controller. Every member's MPI thread creates
/// the communicator (`MPI_Comm_create_group`) when the first message
/// carrying the list reaches it, at the same point of its stream as the
/// others, and keeps it for the rest of the job.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct TeamSpec {
    /// Engine ids; a member's rank in the communicator is its index here.
    pub engines: Vec<u32>,
    /// The team has (or gets) its communicator; false when the client had
    /// already made as many as it allows (`RANKVIEW_MAX_TEAMS`), and the
    /// task runs without one.
    pub communicator: bool,
}

impl TeamSpec {
    /// The team of `engines`, in that order, with its communicator.
    pub(crate) fn new(engines: &[usize]) -> TeamSpec {
        TeamSpec {
            engines: engines.iter().map(|&e| e as u32).collect(),
            communicator: true,
        }
    }

    /// The rank of engine `engine` in the team, if it is a member.
    pub(crate) fn rank_of(&self, engine: usize) -> Option<usize> {
        self.engines.iter().position(|&e| e as usize == engine)
    }
}

/// What the stored value of a collective is: its type and, for bulk
/// numeric data, its element type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ValueSpec {
    pub fingerprint: u64,
    pub type_name: String,
    /// `Some` for bulk data moved as raw MPI buffers, `None` for codec bytes.
    pub bulk: Option<ElemKind>,
}

/// An engine's part of a collective.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum CollectiveOp {
    /// Receive this engine's block (`MPI_Scatterv`) and store it as `name`.
    /// Each engine gets its own message, so a collective costs rank 0 O(n)
    /// bytes, not O(n²).
    Scatter {
        name: String,
        value: ValueSpec,
        /// Elements (or bytes) of this engine's block.
        count: u64,
        /// Shape of this engine's block (empty for codec bytes).
        shape: Vec<u64>,
        /// Elements (or bytes) of all blocks together (whether the scatter
        /// moves in pieces depends on it).
        total: u64,
        /// Get the receive buffer ready first, reply [`Reply::Ready`] and
        /// enter the collective on [`CollectiveOp::Go`] (large numeric data:
        /// see the controller's "Two phases").
        ready: bool,
    },
    /// Receive a value (`MPI_Bcast`) and store it as `name`.
    Broadcast {
        name: String,
        value: ValueSpec,
        len: u64,
        shape: Vec<u64>,
        /// As for `Scatter`.
        ready: bool,
    },
    /// Lend `name` for a gather (or a reduce with `op`) and reply `Ready`.
    Prepare {
        name: String,
        value: ValueSpec,
        reduce: Option<ReduceOp>,
    },
    /// Run the prepared gather, reduce, scatter or broadcast, or cancel it;
    /// `pieces` when the gather is too large for one `MPI_Gatherv` and moves
    /// in pieces.
    Go { proceed: bool, pieces: bool },
    /// Free the group's sub-communicator (the controller evicted it from its
    /// cache); a later collective on the same ranks makes a new one.
    Free,
    /// Run the raw MPI section `name` (every rank takes part).
    Section { name: String },
}

/// Engine → controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// First message of every engine: identity and binary check.
    Hello {
        binary: u64,
        registry: u64,
        pid: u32,
        host: String,
    },
    /// A request finished.
    Done(Done),
    /// The value of a prepared gather or reduce is lent and ready, or the
    /// buffer of a prepared scatter or broadcast is.
    Ready {
        task: TaskId,
        /// Elements (or bytes) this engine contributes.
        len: u64,
        shape: Vec<u64>,
    },
    /// Load-balanced tasks this engine started, and those it finished (one
    /// message for many).
    Progress {
        started: Vec<TaskId>,
        done: Vec<Done>,
    },
    /// This engine stole `tasks` (id and steal count) from engine `victim`;
    /// sent before anything else about them.
    Stolen {
        victim: u32,
        tasks: Vec<(TaskId, u32)>,
    },
    /// What this engine removed from its queue on a [`Request::Abort`].
    Aborted { tasks: Vec<TaskId> },
    /// After a clean `Shutdown`: this engine's work is done and it has no
    /// steal in flight.
    Quiet,
    /// The engine has stopped serving and is about to finalize MPI.
    Goodbye,
}

/// The end of one request on one engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Done {
    pub task: TaskId,
    /// Microseconds since the Unix epoch, engine clock.
    pub started_us: u64,
    /// Microseconds since the Unix epoch, engine clock.
    pub completed_us: u64,
    pub stdout: String,
    pub stderr: String,
    /// Times a load-balanced task was stolen before it ran here (0 for
    /// everything else).
    pub hops: u32,
    pub outcome: Outcome,
}

/// What a request produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Outcome {
    /// The encoded return value of a function.
    Value(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Named values, in the order asked for.
    Values(Vec<Typed>),
    /// The namespace's names, sorted.
    Keys(Vec<String>),
    /// One encoded result per item of a `Map`.
    Many(#[serde(with = "byte_vecs")] Vec<Vec<u8>>),
    /// The outcomes of a load-balanced `Map`, item by item.
    Each(Each),
    /// Done, nothing to return.
    Unit,
    /// The request failed.
    Failed(Failure),
    /// A pulled numeric value whose elements follow this reply as one raw
    /// message from the same engine (see the transport's data messages):
    /// its type, its element count and its shape.
    Bulk {
        value: ValueSpec,
        len: u64,
        shape: Vec<u64>,
    },
    /// The end of a group task: its outcome (the leader's, or the first
    /// failure, naming the member it happened on) and every member's report.
    Group(Box<GroupOutcome>),
}

/// What a group task produced on its leader and members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupOutcome {
    pub outcome: Outcome,
    /// Per member (leader excluded), its engine id and its end; the
    /// member's value is dropped (`Unit`), a failure kept.
    pub members: Vec<(u32, Done)>,
}

impl Outcome {
    /// False for a failure, a `map` task with a failed item, or a group
    /// task whose outcome is one of these.
    pub(crate) fn succeeded(&self) -> bool {
        match self {
            Outcome::Failed(_) => false,
            Outcome::Each(each) => each.failed.is_empty(),
            Outcome::Group(group) => group.outcome.succeeded(),
            _ => true,
        }
    }
}

/// What the items of a load-balanced `map` task produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Each {
    /// One encoded value per item, in item order (empty for a failed item).
    pub values: Packed,
    /// The items that failed (index within the task) and why, in order.
    pub failed: Vec<(u64, Failure)>,
}

impl Each {
    /// Item `index`: its encoded value, or why it failed.
    pub(crate) fn item(&self, index: usize) -> std::result::Result<Result<&[u8]>, &Failure> {
        match self.failed.iter().find(|(i, _)| *i == index as u64) {
            Some((_, failure)) => Err(failure),
            None => Ok(self.values.get(index)),
        }
    }
}

/// Why a request failed on an engine; the controller adds engine and task ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Failure {
    Remote {
        kind: String,
        message: String,
        backtrace: Option<String>,
    },
    Name(String),
    TypeMismatch {
        name: String,
        expected: String,
        found: String,
    },
    Borrowed(String),
    Codec {
        action: String,
        type_name: String,
        message: String,
    },
    Protocol(String),
    Usage(String),
    /// The failure of a group task on one of its members (engine id).
    Member {
        engine: u32,
        failure: Box<Failure>,
    },
}

impl Failure {
    /// The client-side error for this failure on `engine`, task `task`.
    pub(crate) fn into_error(self, engine: usize, task: TaskId) -> Error {
        match self {
            Failure::Remote {
                kind,
                message,
                backtrace,
            } => Error::Remote {
                engine,
                task,
                kind,
                message,
                backtrace,
            },
            Failure::Name(name) => Error::NameError { engine, name },
            Failure::TypeMismatch {
                name,
                expected,
                found,
            } => Error::TypeMismatch {
                engine,
                name,
                expected,
                found,
            },
            Failure::Borrowed(name) => Error::Borrowed { engine, name },
            Failure::Codec {
                action,
                type_name,
                message,
            } => Error::Codec {
                action: if action == "encode" {
                    "encode"
                } else {
                    "decode"
                },
                type_name,
                message,
            },
            Failure::Protocol(m) => Error::Protocol(format!("engine {engine}: {m}")),
            Failure::Usage(m) => Error::Usage(format!("engine {engine}: {m}")),
            Failure::Member { engine, failure } => failure.into_error(engine as usize, task),
        }
    }

    /// The engine-side failure for an error raised while serving a request.
    pub(crate) fn from_error(error: Error) -> Failure {
        match error {
            Error::Remote {
                kind,
                message,
                backtrace,
                ..
            } => Failure::Remote {
                kind,
                message,
                backtrace,
            },
            Error::NameError { name, .. } => Failure::Name(name),
            Error::TypeMismatch {
                name,
                expected,
                found,
                ..
            } => Failure::TypeMismatch {
                name,
                expected,
                found,
            },
            Error::Borrowed { name, .. } => Failure::Borrowed(name),
            Error::Codec {
                action,
                type_name,
                message,
            } => Failure::Codec {
                action: action.to_string(),
                type_name,
                message,
            },
            Error::Protocol(m) => Failure::Protocol(m),
            other => Failure::Usage(other.to_string()),
        }
    }
}

/// A list of byte strings, each encoded as bytes (see the protocol's "Bytes").
mod byte_vecs {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    pub(super) fn serialize<S: Serializer>(items: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(items.iter().map(|item| Bytes::new(item)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let items = Vec::<ByteBuf>::deserialize(d)?;
        Ok(items.into_iter().map(ByteBuf::into_vec).collect())
    }
}

/// Encodes a message for the wire.
pub(crate) fn encode<M: Serialize>(message: &M) -> Result<Vec<u8>> {
    codec::encode(message)
}

/// Decodes a message from the wire; any defect is a [`Error::Protocol`].
pub(crate) fn decode<M: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<M> {
    codec::decode(bytes).map_err(|e| Error::Protocol(format!("malformed message: {e}")))
}
