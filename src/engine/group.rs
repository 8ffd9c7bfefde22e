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
//! the engine it happened on) and every member's timing and output
//! ([`Outcome::Group`]). Every part runs in the scope of the group's team
//! ([`scoped`]): `rankview::comm()` there is the group's communicator,
//! which `Client::groups` had made on every engine of the group.
//!
//! ## A part that ends while another waits for it
//!
//! When one part of a task ends (it returned, panicked or failed) while
//! others still run, those others learn it (the leader's MPI thread from
//! the member's end, or a [`Peer::GroupAbandon`] it sends the members
//! still running). A part still waiting in an operation on the group's
//! communicator [`GRACE`] after both began waits for a part that will
//! never take part: the engine ends the job, saying which part ended, how,
//! and where the other waits (MPI cannot cancel a collective, so the
//! group's communicator could not be used again).

use std::sync::mpsc::{self, Sender};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::capture::Capture;
use crate::error::{Error, Result};
use crate::namespace::globals;
use crate::protocol::{Done, Failure, GroupOutcome, Outcome, Peer, TaskId, TeamSpec, Work};
use crate::scheduler::Queued;

use super::comm::Comm;
use super::job::{now_us, quiet_done, ExecOut, GroupOut, Job, Leading, PartEnded};

/// How long a part may wait on the group's communicator after another part
/// of its task has ended (`RANKVIEW_GROUP_GRACE` seconds, 2 by default).
pub(crate) const GRACE: Duration = Duration::from_secs(2);

/// [`GRACE`] or the user's `RANKVIEW_GROUP_GRACE`, read once (the loop
/// asks on every pass while a part waits).
fn grace() -> Duration {
    static GROUP_GRACE: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *GROUP_GRACE.get_or_init(|| crate::settings::seconds("RANKVIEW_GROUP_GRACE", GRACE))
}

/// The engines of the group led by `leader`, leader first.
fn engines(leader: usize, size: u32) -> Vec<usize> {
    (leader..leader + size as usize).collect()
}

/// Runs `f`, one part of a task of the group `leader..leader + size`, in
/// the scope of the group's team: `rankview::comm()` inside `f` is the
/// group's communicator.
fn scoped<R>(leader: usize, size: u32, f: impl FnOnce() -> R) -> R {
    crate::taskcomm::scoped(&TeamSpec::new(&engines(leader, size)), f)
}

/// How the execution thread runs one part: `exec::run_work`.
pub(super) type RunPart = fn(Work, u32, &mut Option<Capture>) -> Done;

/// Runs a group task this engine leads (see the module doc), on the
/// execution thread, its own part by `run`: the task's reply for the
/// group; `None` when the MPI thread is gone.
pub(super) fn lead(
    queued: Queued<Work>,
    capture: &mut Option<Capture>,
    out: &Sender<ExecOut>,
    comm: &Thread,
    run: RunPart,
) -> Option<Done> {
    let task = queued.task;
    let hops = queued.hops;
    let Work::Group { size, work } = queued.payload else {
        let now = now_us();
        let why = Error::Protocol(format!("task {task} is not a group task"));
        return Some(quiet_done(task, now, now, failed(why)));
    };
    let leader = match globals().engine() {
        Ok(leader) => leader,
        Err(e) => {
            let now = now_us();
            return Some(quiet_done(task, now, now, failed(e)));
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
    out.send(ExecOut::Group(forward)).ok()?;
    comm.unpark();
    let mut done = scoped(leader, size, || run(*work, hops, capture));
    let why = ended_how(leader, &done.outcome);
    out.send(ExecOut::Group(GroupOut::LeaderEnded { task, why }))
        .ok()?;
    comm.unpark();
    let mut members: Vec<(u32, Done)> = Vec::with_capacity(size as usize);
    for _ in 1..size {
        match arrived.recv() {
            Ok((engine, end)) => members.push((u32::try_from(engine).unwrap_or(u32::MAX), end)),
            // The MPI thread dropped the sender: it is ending.
            Err(_) => return None,
        }
    }
    members.sort_by_key(|(engine, _)| *engine);
    let outcome = combine(
        std::mem::replace(&mut done.outcome, Outcome::Unit),
        &mut members,
    );
    done.outcome = Outcome::Group(Box::new(GroupOutcome { outcome, members }));
    Some(done)
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
    let done = scoped(leader, size, || run(work, hops, capture));
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
                let group = engines(leader, size);
                let members = group[1..].to_vec();
                let engines_here = self.mpi.size().saturating_sub(1);
                if let Some(&missing) = members.iter().find(|&&m| m >= engines_here) {
                    // Not a group of this job (the view makes none such):
                    // every member's end is this failure.
                    for &m in &members {
                        let error = Error::Usage(format!(
                            "group task {task}: engine {missing} does not exist"
                        ));
                        let now = now_us();
                        let _ = ends.send((m, quiet_done(task, now, now, failed(error))));
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
                    engines: group.iter().map(|&e| e as u32).collect(),
                    running: members,
                    leader_ended: false,
                };
                self.groups.leading.insert(task, leading);
                Ok(())
            }
            GroupOut::MemberDone { leader, done } => {
                self.groups.parts.remove(&done.task);
                self.part_over(done.task);
                self.send_to(leader + 1, Peer::GroupDone { done })
            }
            GroupOut::LeaderEnded { task, why } => {
                self.part_over(task);
                let Some(leading) = self.groups.leading.get_mut(&task) else {
                    return Ok(());
                };
                leading.leader_ended = true;
                // The members still running learn that the leader's part
                // is over.
                let size = leading.engines.len() as u32;
                let running = leading.running.clone();
                for m in running {
                    let why = why.clone();
                    self.send_to(m + 1, Peer::GroupAbandon { task, size, why })?;
                }
                self.forget_finished(task);
                Ok(())
            }
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
                self.groups.parts.insert(work.task());
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
                let why = ended_how(from, &done.outcome);
                let Some(leading) = self.groups.leading.get_mut(&task) else {
                    return Ok(());
                };
                leading.running.retain(|&m| m != from);
                let _ = leading.ends.send((from, done));
                let engines = leading.engines.clone();
                let size = engines.len() as u32;
                let (leader_running, running) = (!leading.leader_ended, leading.running.clone());
                if leader_running {
                    self.groups.ended.get_or_insert_with(|| PartEnded {
                        task,
                        engines,
                        why: why.clone(),
                        since: Instant::now(),
                    });
                }
                for m in running {
                    let why = why.clone();
                    self.send_to(m + 1, Peer::GroupAbandon { task, size, why })?;
                }
                self.forget_finished(task);
                Ok(())
            }
            Peer::GroupAbandon { task, size, why } => {
                // Kept until this engine's own part of the task ends (it
                // may not have started yet); the first part that ended is
                // the one to name.
                if self.groups.ended.is_none() && self.groups.parts.contains(&task) {
                    self.groups.ended = Some(PartEnded {
                        task,
                        engines: engines(from, size).iter().map(|&e| e as u32).collect(),
                        why,
                        since: Instant::now(),
                    });
                }
                Ok(())
            }
            Peer::Steal { .. } | Peer::Give { .. } => Ok(()),
        }
    }

    /// Drops a led task once every part of it has ended.
    fn forget_finished(&mut self, task: TaskId) {
        if self
            .groups
            .leading
            .get(&task)
            .is_some_and(|l| l.leader_ended && l.running.is_empty())
        {
            self.groups.leading.remove(&task);
        }
    }

    /// This engine's part of `task` ended: nothing of it waits any more.
    fn part_over(&mut self, task: TaskId) {
        if self.groups.ended.as_ref().is_some_and(|e| e.task == task) {
            self.groups.ended = None;
        }
    }

    /// Ends the job (`MPI_Abort`, after saying why on stderr) when this
    /// engine's part of a group task has waited [`GRACE`] on the group's
    /// communicator for a part that has ended (see the module doc); called
    /// on every pass of the loop.
    pub(super) fn check_group_wait(&mut self) {
        let Some(ended) = &self.groups.ended else {
            return;
        };
        let grace = grace();
        if ended.since.elapsed() < grace {
            return;
        }
        let me = self.mpi.rank().saturating_sub(1);
        let Some((what, waited, engines)) = self.waiting_in_group(ended) else {
            return;
        };
        if waited < grace {
            return;
        }
        // Not an internal failure: the user's task waits for ever. Say so
        // and end the job from here.
        crate::capture::report(&format!(
            "rankview: engine {me}: group task {}: {}, and engine {me} has waited {:.1} s in \
             {what} on the group's communicator (engines {engines:?}) for it; ending the job",
            ended.task,
            ended.why,
            waited.as_secs_f64()
        ));
        crate::transport::abort_job(1)
    }

    /// The longest wait of this engine's operations on the group's
    /// communicator of `ended`'s task.
    fn waiting_in_group(&self, ended: &PartEnded) -> Option<(&'static str, Duration, Vec<u32>)> {
        let (what, waited) = self.teams.waiting_on(&ended.engines)?;
        Some((what, waited, ended.engines.clone()))
    }
}

/// How a part on engine `engine` ended, for the message that ends the job.
fn ended_how(engine: usize, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Failed(Failure::Remote { kind, message, .. }) => {
            format!("the part on engine {engine} failed ({kind}: {message})")
        }
        Outcome::Failed(f) => format!("the part on engine {engine} failed ({f:?})"),
        _ => format!("the part on engine {engine} returned"),
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
