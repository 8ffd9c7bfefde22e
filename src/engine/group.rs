//! Group tasks, the engine's side: the load-balanced tasks of a view over
//! groups of engines ([`Client::groups`](crate::Client::groups)), each run
//! SPMD by every engine of one group.
//!
//! Only group leaders receive (and steal) group tasks. When a leader's
//! execution thread starts one ([`lead`]), its MPI thread forwards the
//! task to the members (a [`Peer::GroupRun`] each), which queue their part
//! ahead of everything else and run it as a direct job ([`member`]); each
//! member's MPI thread sends the end of its part back ([`Peer::GroupDone`]).
//! The leader runs its own part meanwhile, waits for every member's end,
//! and reports the task once: its own value (or the first failure, naming
//! the member it happened on) and every member's timing and output
//! ([`Outcome::Group`]). Every part runs inside [`scoped`], the seam where
//! the group's communicator is set for the task.
//!
//! When a part fails, the leader's MPI thread tells the members still
//! running ([`Peer::GroupAbandon`]) so that they give up what they wait for
//! on the group's communicator ([`Comm::abandon`]); the leader reports once
//! every member has ended.

use std::cell::Cell;
use std::sync::mpsc::{self, Sender};
use std::thread::Thread;

use crate::capture::Capture;
use crate::error::{Error, Result};
use crate::namespace::globals;
use crate::protocol::{Done, Failure, GroupOutcome, Outcome, Peer, TaskId, Work};
use crate::scheduler::Queued;

use super::comm::Comm;
use super::job::{now_us, quiet_done, ExecOut, GroupOut, Job, Leading};

thread_local! {
    /// The group of the part running on this thread: its engines' ids, in
    /// rank order (leader first), and the task.
    static CURRENT: Cell<Option<(usize, u32, TaskId)>> = const { Cell::new(None) };
}

/// The group of the task part running on this thread: its leader's engine
/// id, its size and the task; `None` outside a group task.
#[allow(dead_code)] // Read by the task communicator once it lands.
pub(crate) fn current() -> Option<(usize, u32, TaskId)> {
    CURRENT.with(Cell::get)
}

/// Runs `f`, one part of group task `task` of the group `leader..leader +
/// size`, with that group as the current one (the task communicator's
/// seam: `rankview::comm()` inside `f` is the group's).
fn scoped<R>(leader: usize, size: u32, task: TaskId, f: impl FnOnce() -> R) -> R {
    struct Reset(Option<(usize, u32, TaskId)>);
    impl Drop for Reset {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(CURRENT.with(|c| c.replace(Some((leader, size, task)))));
    f()
}

/// How the execution thread runs one part: `exec::run_work`.
pub(super) type RunPart = fn(Work, u32, &mut Option<Capture>) -> Done;

/// Runs a group task this engine leads (see the module doc), on the
/// execution thread, its own part by `run`; false when the MPI thread is
/// gone.
pub(super) fn lead(
    queued: Queued<Work>,
    capture: &mut Option<Capture>,
    out: &Sender<ExecOut>,
    comm: &Thread,
    run: RunPart,
) -> bool {
    let task = queued.task;
    let hops = queued.hops;
    let Work::Group { size, work } = queued.payload else {
        return false;
    };
    if out.send(ExecOut::Started(task)).is_err() {
        return false;
    }
    let leader = match globals().engine() {
        Ok(leader) => leader,
        Err(e) => {
            let now = now_us();
            let done = quiet_done(task, now, now, failed(e));
            return out.send(ExecOut::Finished(done)).is_ok();
        }
    };
    let (ends, arrived) = mpsc::channel();
    let forward = GroupOut::Forward {
        leader,
        size,
        hops,
        work: (*work).clone(),
        ends,
    };
    if out.send(ExecOut::Group(forward)).is_err() {
        return false;
    }
    comm.unpark();
    let mut done = scoped(leader, size, task, || run(*work, hops, capture));
    if !done.outcome.succeeded() {
        if out
            .send(ExecOut::Group(GroupOut::LeaderFailed { task }))
            .is_err()
        {
            return false;
        }
        comm.unpark();
    }
    let mut members: Vec<(u32, Done)> = Vec::with_capacity(size as usize);
    for _ in 1..size {
        match arrived.recv() {
            Ok((engine, end)) => members.push((u32::try_from(engine).unwrap_or(u32::MAX), end)),
            // The MPI thread dropped the sender: it is ending.
            Err(_) => return false,
        }
    }
    members.sort_by_key(|(engine, _)| *engine);
    let outcome = combine(
        std::mem::replace(&mut done.outcome, Outcome::Unit),
        &mut members,
    );
    done.outcome = Outcome::Group(Box::new(GroupOutcome { outcome, members }));
    out.send(ExecOut::Finished(done)).is_ok()
}

/// Runs this engine's part of a group task led by `leader`, on the
/// execution thread (by `run`), and hands its end to the MPI thread; false
/// when that thread is gone.
pub(super) fn member(
    job: Job,
    capture: &mut Option<Capture>,
    out: &Sender<ExecOut>,
    comm: &Thread,
    run: RunPart,
) -> bool {
    let Job::Member {
        leader,
        size,
        hops,
        work,
    } = job
    else {
        return true;
    };
    let task = work.task();
    let done = scoped(leader, size, task, || run(work, hops, capture));
    let sent = out
        .send(ExecOut::Group(GroupOut::MemberDone { leader, done }))
        .is_ok();
    comm.unpark();
    sent
}

/// The outcome of a group task from its leader's part (`leader`) and its
/// members' ends (in rank order): the leader's value when every part
/// succeeded; else the first failure that is the task's own (a panic or an
/// error it returned) in rank order, or else the first failure, a member's
/// naming that member. Each member's value is dropped (only the leader's
/// is returned); a failed item of a member's `map` part fails that item.
fn combine(leader: Outcome, members: &mut [(u32, Done)]) -> Outcome {
    let mut first: Option<Failure> = None;
    let mut own: Option<Failure> = None;
    let mut note = |failure: &Failure| {
        if own.is_none() && is_own(failure) {
            own = Some(failure.clone());
        }
        first.get_or_insert_with(|| failure.clone());
    };
    if let Outcome::Failed(f) = &leader {
        note(f);
    }
    let mut items: Vec<(u64, Failure)> = Vec::new();
    for (engine, done) in members.iter_mut() {
        let tagged = |failure: Failure| Failure::Member {
            engine: *engine,
            failure: Box::new(failure),
        };
        match std::mem::replace(&mut done.outcome, Outcome::Unit) {
            Outcome::Failed(f) => {
                note(&tagged(f.clone()));
                done.outcome = Outcome::Failed(f);
            }
            Outcome::Each(each) => {
                items.extend(each.failed.iter().map(|(i, f)| (*i, tagged(f.clone()))));
            }
            _ => {}
        }
    }
    if let Some(failure) = own.or(first) {
        return Outcome::Failed(failure);
    }
    match leader {
        Outcome::Each(mut each) if !items.is_empty() => {
            for (index, failure) in items {
                if !each.failed.iter().any(|(i, _)| *i == index) {
                    each.failed.push((index, failure));
                }
            }
            each.failed.sort_by_key(|(i, _)| *i);
            Outcome::Each(each)
        }
        leader => leader,
    }
}

/// A failure the task itself caused (a panic or an error it returned), as
/// opposed to one of the runtime.
fn is_own(failure: &Failure) -> bool {
    match failure {
        Failure::Member { failure, .. } => is_own(failure),
        Failure::Remote { .. } => true,
        _ => false,
    }
}

fn failed(error: Error) -> Outcome {
    Outcome::Failed(Failure::from_error(error))
}

impl Comm {
    /// What the execution thread hands over about a group task.
    pub(super) fn group_out(&mut self, out: GroupOut) -> Result<()> {
        match out {
            GroupOut::Forward {
                leader,
                size,
                hops,
                work,
                ends,
            } => {
                let task = work.task();
                let members: Vec<usize> = (leader + 1..leader + size as usize).collect();
                let engines = self.mpi.size().saturating_sub(1);
                if let Some(&missing) = members.iter().find(|&&m| m >= engines) {
                    // Not a group of this job (the view makes none such):
                    // every member's end is this failure.
                    for &m in &members {
                        let error = Error::Usage(format!(
                            "group task {task}: engine {missing} does not exist"
                        ));
                        let now = now_us();
                        let end = quiet_done(task, now, now, failed(error));
                        let _ = ends.send((m, end));
                    }
                    return Ok(());
                }
                for &m in &members {
                    let run = Peer::GroupRun {
                        leader: u32::try_from(leader).unwrap_or(u32::MAX),
                        size,
                        hops,
                        work: work.clone(),
                    };
                    self.send_to(m + 1, run)?;
                }
                let leading = Leading {
                    ends,
                    running: members,
                    abandoned: false,
                };
                self.leading.insert(task, leading);
                Ok(())
            }
            GroupOut::MemberDone { leader, done } => {
                self.send_to(leader + 1, Peer::GroupDone { done })
            }
            GroupOut::LeaderFailed { task } => self.abandon_group(task),
        }
    }

    /// A group task's message from engine `from` (see [`Peer`]).
    pub(super) fn group_peer(&mut self, from: usize, message: Peer) -> Result<()> {
        match message {
            Peer::GroupRun {
                leader,
                size,
                hops,
                work,
            } => {
                let leader = leader as usize;
                if self.closing {
                    // The execution thread will take nothing more.
                    let now = now_us();
                    let error = Error::Usage("the engine is shutting down".into());
                    let done = quiet_done(work.task(), now, now, failed(error));
                    return self.send_to(leader + 1, Peer::GroupDone { done });
                }
                self.inbox.push_front(Job::Member {
                    leader,
                    size,
                    hops,
                    work,
                });
                Ok(())
            }
            Peer::GroupDone { done } => {
                let task = done.task;
                let failed = !done.outcome.succeeded();
                let Some(leading) = self.leading.get_mut(&task) else {
                    return Ok(());
                };
                leading.running.retain(|&m| m != from);
                let _ = leading.ends.send((from, done));
                let finished = leading.running.is_empty();
                if failed {
                    self.abandon_group(task)?;
                }
                if finished {
                    self.leading.remove(&task);
                }
                Ok(())
            }
            Peer::GroupAbandon { task } => {
                self.abandon(task);
                Ok(())
            }
            Peer::Steal { .. } | Peer::Give { .. } => Ok(()),
        }
    }

    /// A part of group task `task` (which this engine leads) failed: the
    /// members still running, and the leader's own part, give up what they
    /// wait for on the group's communicator. Once per task.
    fn abandon_group(&mut self, task: TaskId) -> Result<()> {
        let Some(leading) = self.leading.get_mut(&task) else {
            return Ok(());
        };
        if std::mem::replace(&mut leading.abandoned, true) {
            return Ok(());
        }
        let running = leading.running.clone();
        for m in running {
            self.send_to(m + 1, Peer::GroupAbandon { task })?;
        }
        self.abandon(task);
        Ok(())
    }

    /// Gives up what this engine's part of group task `task` waits for on
    /// the group's communicator, failing those operations in the task (the
    /// task communicator's hook; without one, a part waits for nothing).
    fn abandon(&mut self, task: TaskId) {
        let _ = task;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Each;

    fn end(outcome: Outcome) -> Done {
        Done {
            task: 7,
            started_us: 1,
            completed_us: 2,
            stdout: String::new(),
            stderr: String::new(),
            hops: 0,
            outcome,
        }
    }

    fn panic_failure(message: &str) -> Failure {
        Failure::Remote {
            kind: "panic".into(),
            message: message.into(),
            backtrace: None,
        }
    }

    #[test]
    fn the_leaders_value_when_every_part_succeeds() {
        let mut members = vec![(3, end(Outcome::Value(vec![9])))];
        let outcome = combine(Outcome::Value(vec![1, 2]), &mut members);
        assert_eq!(outcome, Outcome::Value(vec![1, 2]));
        assert_eq!(
            members[0].1.outcome,
            Outcome::Unit,
            "a member's value is dropped"
        );
    }

    #[test]
    fn a_members_panic_names_the_member_over_a_runtime_failure() {
        let mut members = vec![
            (
                2,
                end(Outcome::Failed(Failure::Protocol("abandoned".into()))),
            ),
            (3, end(Outcome::Failed(panic_failure("boom")))),
        ];
        let leader = Outcome::Failed(Failure::Usage("abandoned".into()));
        let Outcome::Failed(failure) = combine(leader, &mut members) else {
            panic!("a failed part fails the task");
        };
        match failure.into_error(1, 7) {
            Error::Remote {
                engine, message, ..
            } => assert_eq!((engine, message.as_str()), (3, "boom")),
            other => panic!("expected the member's panic, got {other:?}"),
        }
        assert!(matches!(members[1].1.outcome, Outcome::Failed(_)), "kept");
    }

    #[test]
    fn a_members_failed_item_fails_that_item() {
        let mut values = crate::protocol::Packed::with_capacity(2, 2);
        values.push(&[1]);
        values.push(&[2]);
        let leader = Outcome::Each(Each {
            values,
            failed: Vec::new(),
        });
        let member = Outcome::Each(Each {
            values: crate::protocol::Packed::default(),
            failed: vec![(1, panic_failure("item"))],
        });
        let mut members = vec![(5, end(member))];
        let Outcome::Each(each) = combine(leader, &mut members) else {
            panic!("a map part stays a map part");
        };
        assert!(each.item(0).is_ok());
        assert!(matches!(
            each.item(1),
            Err(Failure::Member { engine: 5, .. })
        ));
    }
}
