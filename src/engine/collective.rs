//! The engine's side of collectives: joining a view's sub-communicator,
//! preparing a gather or reduce with a value the execution thread lends,
//! and receiving a scatter or broadcast (in two phases when large: the
//! buffer of the value it replaces is recycled first).

use std::sync::mpsc::Sender;

use crate::bulk::{BulkVec, ElemKind};
use crate::error::{Error, Result};
use crate::protocol::{CollectiveOp, GroupSpec, Outcome, Reply, TaskId, ValueSpec};
use crate::transport::Receive;

use super::comm::{AwaitingGo, Comm, Prepared};
use super::exec::{incoming, recycle, ON_EXECUTION_THREAD};
use super::job::{now_us, quiet_done, Incoming, Job, Lending};

/// The value a scatter or broadcast brings: its name, type and shape.
pub(super) struct Arriving {
    name: String,
    value: ValueSpec,
    shape: Vec<u64>,
}

impl Comm {
    /// Takes part in a collective. The first message about a group carries
    /// its ranks and creates its sub-communicator, as rank 0 does when it
    /// sends it (see the controller's "Message ordering").
    pub(super) fn collective(
        &mut self,
        task: TaskId,
        group: GroupSpec,
        op: CollectiveOp,
    ) -> Result<()> {
        let size = |n: u64| {
            usize::try_from(n).map_err(|_| Error::Protocol(format!("{n} elements do not fit here")))
        };
        let ranks = group.world_ranks();
        if !ranks.is_empty() {
            self.mpi.ensure_group(group.id, &ranks)?;
        }
        match op {
            CollectiveOp::Scatter {
                name,
                value,
                count,
                shape,
                total,
                ready,
            } => {
                let how = Receive::Scatter {
                    total: size(total)?,
                };
                let arriving = Arriving { name, value, shape };
                let r = self.receiving(task, group, how, arriving, size(count)?);
                self.receive(r, ready)
            }
            CollectiveOp::Broadcast {
                name,
                value,
                len,
                shape,
                ready,
            } => {
                let arriving = Arriving { name, value, shape };
                let r = self.receiving(task, group, Receive::Broadcast, arriving, size(len)?);
                self.receive(r, ready)
            }
            CollectiveOp::Prepare {
                name,
                value,
                reduce,
            } => {
                self.mpi.ensure_group(group.id, &ranks)?;
                self.reduces.insert(task, (group, reduce));
                self.inbox.push(Job::Lend { task, name, value });
                Ok(())
            }
            CollectiveOp::Section { name } => {
                let started_us = now_us();
                self.mpi.run_section(&name)?;
                let completed_us = now_us();
                self.send(Reply::Done(quiet_done(
                    task,
                    started_us,
                    completed_us,
                    Outcome::Unit,
                )))
            }
            CollectiveOp::Free => {
                self.mpi.free_group(group.id);
                Ok(())
            }
            CollectiveOp::Go { proceed, pieces } => {
                if let Some(receiving) = self.receiving.remove(&task) {
                    return match proceed {
                        true => self.receive(receiving, false),
                        false => Ok(()),
                    };
                }
                let Some(prepared) = self.prepared.take() else {
                    return Ok(());
                };
                if prepared.task != task {
                    return Err(Error::Protocol(format!(
                        "go for task {task} while task {} is prepared",
                        prepared.task
                    )));
                }
                if proceed {
                    let ranks = prepared.group.world_ranks();
                    let buf = prepared
                        .lending
                        .buf()
                        .ok_or_else(|| Error::Protocol("lent value lost its buffer".into()))?;
                    match prepared.reduce {
                        Some(op) => self.mpi.reduce_send(prepared.group.id, &ranks, buf, op)?,
                        None => self
                            .mpi
                            .gather_send(prepared.group.id, &ranks, buf, pieces)?,
                    }
                }
                // Dropping `prepared` resumes the execution thread.
                Ok(())
            }
        }
    }

    /// Receives a scatter's or broadcast's elements into `r.buf` and has
    /// them stored; or, when `ready`, queues their store (so that what
    /// follows in the stream sees them), keeps the buffer and tells the
    /// controller it is ready: the receive then runs on its `Go`.
    pub(super) fn receive(&mut self, mut r: AwaitingGo, ready: bool) -> Result<()> {
        if ready {
            let (later, value) = std::sync::mpsc::channel();
            self.inbox.push(Job::Store {
                task: r.task,
                name: r.name.clone(),
                value: Incoming::Later(value),
            });
            r.later = Some(later);
            let (task, len) = (r.task, r.buf.len() as u64);
            let shape = r.shape.clone();
            self.receiving.insert(task, r);
            return self.send(Reply::Ready { task, len, shape });
        }
        self.mpi
            .receive(r.group.id, &r.group.world_ranks(), r.how, &mut r.buf)?;
        // The collective is over: a value that cannot be stored fails the
        // task, not the engine.
        let incoming = incoming(r.value, r.buf, r.shape);
        match (r.later, incoming) {
            (Some(later), incoming) => {
                let _ = later.send(incoming);
                Ok(())
            }
            (None, Ok(value)) => {
                self.inbox.push(Job::Store {
                    task: r.task,
                    name: r.name,
                    value,
                });
                Ok(())
            }
            (None, Err(e)) => self.fail(r.task, e),
        }
    }

    /// A scatter or broadcast about to receive `count` elements of `name`,
    /// into the old value's memory if it can be reused
    /// ([`recycled`](Comm::recycled)), else into fresh memory.
    pub(super) fn receiving(
        &mut self,
        task: TaskId,
        group: GroupSpec,
        how: Receive,
        arriving: Arriving,
        count: usize,
    ) -> AwaitingGo {
        let Arriving { name, value, shape } = arriving;
        let kind = value.bulk.unwrap_or(ElemKind::U8);
        let buf = self
            .recycled(&name, &value, count, &shape)
            .unwrap_or_else(|| BulkVec::for_receive(kind, count));
        AwaitingGo {
            task,
            group,
            how,
            name,
            value,
            shape,
            buf,
            later: None,
        }
    }

    /// The memory of the value `name` that a scatter or broadcast is about
    /// to replace, when it can receive the new one: a numeric value of the
    /// same type and shape that nothing holds, with the execution thread
    /// idle (nothing queued or running that could still read the old value,
    /// which is replaced in stream order anyway). Otherwise `None`: the new
    /// value gets fresh memory and the old one stays until it is replaced.
    pub(super) fn recycled(
        &mut self,
        name: &str,
        value: &ValueSpec,
        count: usize,
        shape: &[u64],
    ) -> Option<BulkVec> {
        let kind = value.bulk?;
        if !self.inbox.idle() {
            return None;
        }
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let buf = if ON_EXECUTION_THREAD.with(|on| on.get()) {
            // This pass runs on the (idle) execution thread itself.
            recycle(name, value.fingerprint, &shape)?
        } else {
            let (reply, recycled) = std::sync::mpsc::channel();
            self.inbox.push(Job::Recycle {
                name: name.to_string(),
                fingerprint: value.fingerprint,
                shape,
                reply,
            });
            recycled.recv().ok().flatten()?
        };
        (buf.len() == count && buf.as_ref().kind() == kind).then_some(buf)
    }

    /// The execution thread lent a value: tell the controller.
    pub(super) fn lent(
        &mut self,
        task: TaskId,
        lent: Result<Lending>,
        resume: Sender<()>,
    ) -> Result<()> {
        let Some((group, reduce)) = self.reduces.remove(&task) else {
            return Err(Error::Protocol(format!(
                "lent value for unknown task {task}"
            )));
        };
        match lent {
            Ok(lending) => {
                let len = lending.buf().map(|b| b.len()).unwrap_or(0) as u64;
                let shape = lending.shape();
                self.prepared = Some(Prepared {
                    task,
                    group,
                    lending,
                    reduce,
                    _resume: resume,
                });
                self.send(Reply::Ready { task, len, shape })
            }
            Err(e) => {
                drop(resume);
                self.fail(task, e)
            }
        }
    }
}
