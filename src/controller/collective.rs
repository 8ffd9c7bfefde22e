//! The controller's side of collectives: the sub-communicators views run
//! them on, the trigger each engine is sent, rank 0's part of the MPI call,
//! and the gathers, reduces and two-phase scatters waiting for their
//! engines (see the module's "Message ordering" and "Two phases").

use std::collections::HashMap;
use std::sync::Arc;

use crate::bulk::{BulkVec, ElemKind, ReduceOp};
use crate::contract::{Collective, CollectiveKind, Filling};
use crate::error::{Error, Result};
use crate::protocol::{self, CollectiveOp, GroupSpec, Request, TaskId, ValueSpec};
use crate::result::{Gathered, Payload, ResultState};
use crate::transport::{self, Mpi};

use super::inflight::Inflight;
use super::wire::send_all;

/// What one engine lends to a gather or reduce: elements and shape.
pub(super) type Contribution = (usize, Vec<usize>);

/// A gather or reduce waiting for its engines to lend their values.
struct Pending {
    task: TaskId,
    engines: Arc<[usize]>,
    group: GroupSpec,
    state: Arc<ResultState>,
    value: ValueSpec,
    op: Option<ReduceOp>,
    /// Per target: what it lent once it has, or the engine's error.
    lent: Vec<Option<Result<Contribution>>>,
    /// Where the data goes, when the caller gave its own memory.
    into: Option<Filling>,
}

/// How many sub-communicators the controller keeps before freeing the least
/// recently used one (MPICH allows about 2,000 per process).
const DEFAULT_GROUP_CACHE: usize = 64;

/// The sub-communicators of views, by rank set: a bounded cache.
///
/// Ids are never reused, so an engine never mistakes a new group for a
/// freed one. Evicting a group sends `Free` to its engines in their streams
/// (after every collective already triggered on it) and frees rank 0's side.
struct Groups {
    by_ranks: HashMap<Vec<usize>, (u32, u64)>,
    /// Groups whose ranks have been sent to their engines.
    announced: std::collections::HashSet<u32>,
    next_id: u32,
    clock: u64,
    capacity: usize,
}

impl Groups {
    fn new() -> Groups {
        let capacity = std::env::var("RANKVIEW_GROUP_CACHE")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n >= 1)
            .unwrap_or(DEFAULT_GROUP_CACHE);
        Groups {
            by_ranks: HashMap::new(),
            announced: std::collections::HashSet::new(),
            next_id: 1,
            clock: 0,
            capacity,
        }
    }

    /// The group of rank 0 and `engines`, made (and another one evicted) if
    /// needed; groups in `busy` are never evicted.
    fn get(&mut self, engines: &[usize], busy: &[u32], mpi: &mut Mpi) -> Result<GroupSpec> {
        let mut ranks: Vec<usize> = std::iter::once(0)
            .chain(engines.iter().map(|e| e + 1))
            .collect();
        ranks.sort_unstable();
        self.clock += 1;
        let clock = self.clock;
        if let Some((id, used)) = self.by_ranks.get_mut(&ranks) {
            *used = clock;
            return Ok(spec(*id, &ranks));
        }
        if self.by_ranks.len() >= self.capacity {
            let victim = self
                .by_ranks
                .iter()
                .filter(|(_, (id, _))| !busy.contains(id))
                .min_by_key(|(_, (_, used))| *used)
                .map(|(ranks, (id, _))| (ranks.clone(), *id));
            if let Some((old, id)) = victim {
                self.by_ranks.remove(&old);
                let engines: Vec<usize> = old.iter().skip(1).map(|r| r - 1).collect();
                let free = Request::Collective {
                    task: 0,
                    group: spec(id, &[]),
                    op: CollectiveOp::Free,
                };
                send_all(mpi, &engines, &free)?;
                mpi.free_group(id);
                self.announced.remove(&id);
            }
        }
        let id = self.next_id;
        self.next_id = self
            .next_id
            .checked_add(1)
            .ok_or_else(|| Error::Usage("this job has created 2^32 sub-communicators".into()))?;
        self.by_ranks.insert(ranks.clone(), (id, clock));
        Ok(spec(id, &ranks))
    }
}

impl Groups {
    /// `group` as the next collective's messages must name it: with its
    /// ranks the first time, by id alone afterwards. The first time also
    /// creates rank 0's side of the sub-communicator, right after
    /// `announce` has sent those messages: each engine creates its side when
    /// it receives one, so every rank creates it at the same point of its
    /// collective order.
    fn wire(
        &mut self,
        group: &GroupSpec,
        mpi: &mut Mpi,
        announce: impl FnOnce(&mut Mpi, GroupSpec) -> Result<()>,
    ) -> Result<()> {
        if self.announced.insert(group.id) {
            announce(mpi, group.clone())?;
            mpi.ensure_group(group.id, &group.world_ranks())
        } else {
            announce(mpi, group.known())
        }
    }
}

fn spec(id: u32, ranks: &[usize]) -> GroupSpec {
    GroupSpec {
        id,
        ranks: ranks.iter().map(|&r| r as u32).collect(),
    }
}

/// A gather or reduce about to wait for its engines' values: which task,
/// which engines, where the result goes, and what is gathered (reduced by
/// `op`, if any).
struct Lenders {
    task: TaskId,
    engines: Arc<[usize]>,
    state: Arc<ResultState>,
    value: ValueSpec,
    op: Option<ReduceOp>,
}

/// The controller's view of collectives: sub-communicators and the gathers
/// and reduces waiting for their engines. See the module's "Message
/// ordering".
pub(super) struct Collectives {
    groups: Groups,
    pending: HashMap<TaskId, Pending>,
    /// Scatters and broadcasts waiting for their engines' buffers.
    receiving: HashMap<TaskId, TwoPhase>,
}

/// Numeric scatters and broadcasts of this many bytes or more go in two
/// phases (see "Two phases").
const TWO_PHASES_FROM: usize = 1 << 20;

/// A scatter or broadcast whose engines are getting their buffers ready.
struct TwoPhase {
    c: Collective,
    group: GroupSpec,
    ranks: Vec<usize>,
    /// Sub-rank of each engine.
    subs: Vec<usize>,
    /// Which engines replied `Ready`, in `c.engines` order.
    ready: Vec<bool>,
}

impl Collectives {
    pub(super) fn new() -> Collectives {
        Collectives {
            groups: Groups::new(),
            pending: HashMap::new(),
            receiving: HashMap::new(),
        }
    }

    /// Gathers and reduces waiting for lenders: the task, and the engines
    /// that have not lent yet.
    pub(super) fn waiting(&self) -> impl Iterator<Item = (TaskId, Vec<usize>)> + '_ {
        self.pending.values().map(|pending| {
            let waiting = pending
                .engines
                .iter()
                .zip(&pending.lent)
                .filter(|(_, lent)| lent.is_none())
                .map(|(&engine, _)| engine)
                .collect();
            (pending.task, waiting)
        })
    }

    pub(super) fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.receiving.is_empty()
    }

    /// Gathers and reduces waiting for their lenders that `engine` takes
    /// part in (its execution thread is held by each until it runs).
    pub(super) fn lending(&self, engine: usize) -> usize {
        self.pending
            .values()
            .filter(|p| p.engines.contains(&engine))
            .count()
    }

    /// Starts a collective now; its failure fails its result.
    pub(super) fn run(&mut self, c: Collective, mpi: &mut Mpi, inflight: &mut Inflight) {
        let (task, engines, state) = (c.task, c.engines.clone(), c.state.clone());
        if let Err(e) = self.start(c, mpi, inflight) {
            for (index, &engine) in engines.iter().enumerate() {
                inflight.remove(&(engine, task));
                state.fail(index, e.clone());
            }
        }
    }

    fn start(&mut self, c: Collective, mpi: &mut Mpi, inflight: &mut Inflight) -> Result<()> {
        let busy: Vec<u32> = (self.pending.values().map(|p| p.group.id))
            .chain(self.receiving.values().map(|r| r.group.id))
            .collect();
        if let CollectiveKind::Section { name } = &c.kind {
            if !mpi.has_section(name) {
                return Err(Error::Usage(format!(
                    "no MPI section called {name:?}: register it with Launch::mpi_section"
                )));
            }
        }
        let group = self.groups.get(&c.engines, &busy, mpi)?;
        let ranks = group.world_ranks();
        // Sub-rank of each target.
        let subs: Vec<usize> = c
            .engines
            .iter()
            .map(|e| ranks.iter().position(|&r| r == e + 1).unwrap_or(0))
            .collect();
        // Every engine's trigger, each with what that engine needs.
        self.groups.wire(&group, mpi, |mpi, wire| {
            for (k, &engine) in c.engines.iter().enumerate() {
                let request = Request::Collective {
                    task: c.task,
                    group: wire.clone(),
                    op: trigger(&c.kind, k),
                };
                send_all(mpi, &[engine], &request)?;
            }
            Ok(())
        })?;
        let what = c.kind.name();
        let parts = || c.engines.iter().enumerate();
        match c.kind {
            CollectiveKind::Scatter { .. } | CollectiveKind::Broadcast { .. } => {
                for (index, &engine) in parts() {
                    inflight.insert((engine, c.task), (c.state.clone(), index, what));
                }
                if in_two_phases(&c.kind) {
                    let ready = vec![false; c.engines.len()];
                    let receiving = TwoPhase {
                        group,
                        ranks,
                        subs,
                        ready,
                        c,
                    };
                    self.receiving.insert(receiving.c.task, receiving);
                } else {
                    send_from_root(&c.kind, group.id, &ranks, &subs, mpi)?;
                }
            }
            CollectiveKind::Section { name } => {
                for (index, &engine) in parts() {
                    inflight.insert((engine, c.task), (c.state.clone(), index, what));
                }
                mpi.run_section(&name)?;
            }
            CollectiveKind::Gather { value, into, .. } => {
                let lenders = Lenders {
                    task: c.task,
                    engines: c.engines,
                    state: c.state,
                    value,
                    op: None,
                };
                self.wait_for_lenders(lenders, group, into);
            }
            CollectiveKind::Reduce {
                value, op, into, ..
            } => {
                let lenders = Lenders {
                    task: c.task,
                    engines: c.engines,
                    state: c.state,
                    value,
                    op: Some(op),
                };
                self.wait_for_lenders(lenders, group, into);
            }
        }
        Ok(())
    }

    /// A gather or reduce whose engines were asked to lend their values now
    /// waits for them (see [`Collectives::lent`]).
    fn wait_for_lenders(&mut self, lenders: Lenders, group: GroupSpec, into: Option<Filling>) {
        let Lenders {
            task,
            engines,
            state,
            value,
            op,
        } = lenders;
        self.pending.insert(
            task,
            Pending {
                task,
                lent: vec![None; engines.len()],
                engines,
                group,
                state,
                value,
                op,
                into,
            },
        );
    }

    /// An engine lent its value for the pending gather or reduce, or has its
    /// buffer ready for the pending scatter or broadcast.
    pub(super) fn lent(
        &mut self,
        engine: usize,
        task: TaskId,
        len: usize,
        shape: Vec<u64>,
        mpi: &mut Mpi,
        inflight: &mut Inflight,
    ) {
        if let Some(r) = self.receiving.get_mut(&task) {
            if let Some(index) = r.c.engines.iter().position(|&e| e == engine) {
                r.ready[index] = true;
            }
            if r.ready.iter().all(|&ready| ready) {
                if let Some(r) = self.receiving.remove(&task) {
                    go_receive(r, mpi, inflight);
                }
            }
            return;
        }
        let shape = shape.iter().map(|&d| d as usize).collect();
        self.record(engine, task, Ok((len, shape)), mpi);
    }

    /// An engine could not lend its value; false if no gather waits for it.
    pub(super) fn lend_failed(
        &mut self,
        engine: usize,
        done: protocol::Done,
        mpi: &mut Mpi,
    ) -> bool {
        let task = done.task;
        if !self.pending.contains_key(&task) {
            return false;
        }
        let error = match done.outcome {
            protocol::Outcome::Failed(f) => f.into_error(engine, task),
            other => Error::Protocol(format!("unexpected reply {other:?} to a gather")),
        };
        self.record(engine, task, Err(error), mpi);
        true
    }

    fn record(&mut self, engine: usize, task: TaskId, lent: Result<Contribution>, mpi: &mut Mpi) {
        let Some(pending) = self.pending.get_mut(&task) else {
            return;
        };
        if let Some(index) = pending.engines.iter().position(|&e| e == engine) {
            pending.lent[index] = Some(lent);
        }
        if pending.lent.iter().all(Option::is_some) {
            if let Some(pending) = self.pending.remove(&task) {
                finish(pending, mpi);
            }
        }
    }
}

/// Whether a collective goes in two phases (see "Two phases").
fn in_two_phases(kind: &CollectiveKind) -> bool {
    match kind {
        CollectiveKind::Scatter { value, data, .. }
        | CollectiveKind::Broadcast { value, data, .. } => {
            value.bulk.is_some() && data.buf().as_bytes().len() >= TWO_PHASES_FROM
        }
        _ => false,
    }
}

/// Rank 0's part of a scatter or broadcast: the MPI call.
fn send_from_root(
    kind: &CollectiveKind,
    group: u32,
    ranks: &[usize],
    subs: &[usize],
    mpi: &mut Mpi,
) -> Result<()> {
    match kind {
        CollectiveKind::Scatter { data, counts, .. } => {
            let mut sub_counts = vec![0usize; ranks.len()];
            for (k, &sub) in subs.iter().enumerate() {
                sub_counts[sub] = counts[k];
            }
            mpi.scatter_root(group, ranks, data.buf(), &sub_counts, subs)
        }
        CollectiveKind::Broadcast { data, .. } => mpi.broadcast_root(group, ranks, data.buf()),
        _ => Err(Error::Protocol(format!(
            "{} has no data to send",
            kind.name()
        ))),
    }
}

/// Second phase of a scatter or broadcast: every engine has its buffer
/// ready; tell them to go and send the data. A failure here fails the
/// result (as in [`Collectives::run`]).
fn go_receive(r: TwoPhase, mpi: &mut Mpi, inflight: &mut Inflight) {
    let go = Request::Collective {
        task: r.c.task,
        group: r.group.known(),
        op: CollectiveOp::Go {
            proceed: true,
            pieces: false,
        },
    };
    let sent = send_all(mpi, &r.c.engines, &go)
        .and_then(|()| send_from_root(&r.c.kind, r.group.id, &r.ranks, &r.subs, mpi));
    if let Err(e) = sent {
        for (index, &engine) in r.c.engines.iter().enumerate() {
            inflight.remove(&(engine, r.c.task));
            r.c.state.fail(index, e.clone());
        }
    }
}

/// What the `k`-th engine of a collective is sent to take part in it.
fn trigger(kind: &CollectiveKind, k: usize) -> CollectiveOp {
    match kind {
        CollectiveKind::Scatter {
            name,
            value,
            counts,
            shapes,
            ..
        } => CollectiveOp::Scatter {
            name: name.clone(),
            value: value.clone(),
            count: counts.get(k).copied().unwrap_or(0) as u64,
            shape: shapes
                .get(k)
                .map(|s| s.iter().map(|&d| d as u64).collect())
                .unwrap_or_default(),
            total: counts.iter().sum::<usize>() as u64,
            ready: in_two_phases(kind),
        },
        CollectiveKind::Broadcast {
            name,
            value,
            data,
            shape,
        } => CollectiveOp::Broadcast {
            name: name.clone(),
            value: value.clone(),
            len: data.buf().len() as u64,
            shape: shape.iter().map(|&d| d as u64).collect(),
            ready: in_two_phases(kind),
        },
        CollectiveKind::Section { name } => CollectiveOp::Section { name: name.clone() },
        CollectiveKind::Gather { name, value, .. } => CollectiveOp::Prepare {
            name: name.clone(),
            value: value.clone(),
            reduce: None,
        },
        CollectiveKind::Reduce {
            name, value, op, ..
        } => CollectiveOp::Prepare {
            name: name.clone(),
            value: value.clone(),
            reduce: Some(*op),
        },
    }
}

/// Second phase of a gather or reduce: run it (or cancel it) and fill the result.
fn finish(p: Pending, mpi: &mut Mpi) {
    let ranks = p.group.world_ranks();
    let mut errors = Vec::new();
    let mut contributions = Vec::new();
    for (index, lent) in p.lent.into_iter().enumerate() {
        match lent {
            Some(Ok(c)) => contributions.push(c),
            Some(Err(e)) => errors.push((index, e)),
            None => errors.push((index, Error::Protocol("no answer".into()))),
        }
    }
    let len = contributions.first().map_or(0, |c| c.0);
    if errors.is_empty() && p.op.is_some() && contributions.iter().any(|c| c.0 != len) {
        let lens: Vec<usize> = contributions.iter().map(|c| c.0).collect();
        errors.push((
            0,
            Error::Usage(format!(
                "reduce needs values of one length on every engine; they hold {lens:?}"
            )),
        ));
    }
    let total: usize = contributions.iter().map(|c| c.0).sum();
    let kind = p.value.bulk.unwrap_or(ElemKind::U8);
    let out_len = if p.op.is_some() { len } else { total };
    let mut into = p.into;
    if errors.is_empty() {
        if let Some(filling) = &mut into {
            if let Err(e) = check_filling(filling, kind, out_len, &contributions, p.op.is_some()) {
                errors.push((0, e));
            }
        }
    }
    let pieces = p.op.is_none() && transport::needs_pieces(total);
    let go = |proceed| Request::Collective {
        task: p.task,
        group: p.group.known(),
        op: CollectiveOp::Go { proceed, pieces },
    };
    if !errors.is_empty() {
        let _ = send_all(mpi, &p.engines, &go(false));
        for index in 0..p.engines.len() {
            match errors.iter().position(|(i, _)| *i == index) {
                Some(at) => p.state.fail(index, errors[at].1.clone()),
                None => p.state.resolve(index, Ok(Payload::Unit)),
            }
        }
        return;
    }
    let subs: Vec<usize> = p
        .engines
        .iter()
        .map(|e| ranks.iter().position(|&r| r == e + 1).unwrap_or(0))
        .collect();
    // Everything that can fail at the root is done before any engine is
    // told to go: once it has been, every engine is inside the collective.
    let mut counts = vec![0usize; ranks.len()];
    for (k, &sub) in subs.iter().enumerate() {
        counts[sub] = contributions[k].0;
    }
    let mut owned = BulkVec::for_receive(kind, if into.is_some() { 0 } else { out_len });
    let outcome = send_all(mpi, &p.engines, &go(true)).and_then(|()| {
        // `check_filling` made sure a caller's buffer is writable.
        let recv = match into.as_mut().and_then(|f| f.loan.buf_mut()) {
            Some(buf) => buf,
            None => owned.as_mut(),
        };
        match p.op {
            None => mpi.gather_root(p.group.id, &ranks, recv, &counts, &subs),
            Some(op) => {
                let own = BulkVec::identity(kind, op, len);
                mpi.reduce_root(p.group.id, &ranks, &own, recv, op)
            }
        }
    });
    // The caller's memory goes back (its `gather_into` returns) only now.
    let filled = into.is_some();
    drop(into);
    match outcome {
        Ok(()) => {
            let first = if filled {
                Payload::Unit
            } else {
                let parts = match p.op {
                    None => contributions,
                    Some(_) => contributions.into_iter().take(1).collect(),
                };
                Payload::Gathered(Gathered {
                    data: owned,
                    value: None,
                    parts,
                })
            };
            p.state.resolve(0, Ok(first));
            for index in 1..p.engines.len() {
                p.state.resolve(index, Ok(Payload::Unit));
            }
        }
        Err(e) => {
            for index in 0..p.engines.len() {
                p.state.fail(index, e.clone());
            }
        }
    }
}

/// Checks that the caller's buffer fits what the engines lent, before any
/// engine is told to go: its element type, its length and (for an array)
/// its shape.
fn check_filling(
    filling: &mut Filling,
    kind: ElemKind,
    len: usize,
    contributions: &[Contribution],
    reduce: bool,
) -> Result<()> {
    let what = if reduce { "reduce_into" } else { "gather_into" };
    filling.check(what, kind, len, "the engines hold", || {
        if reduce {
            Ok(contributions
                .first()
                .map(|c| c.1.clone())
                .unwrap_or_default())
        } else {
            crate::contract::stacked_shape(contributions)
        }
    })
}
