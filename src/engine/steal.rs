//! Work stealing, the engine's side: taking load-balanced tasks from the
//! controller into the local queue, answering a thief, and receiving what
//! a victim gave (whom to steal from is the scheduler's `Thief`).

use crate::capture::{self};
use crate::error::Result;
use crate::protocol::{self, Peer, Reply, WireTask, Work};
use crate::scheduler::{EngineId, Fence, Queued};

use super::comm::Comm;

impl Comm {
    /// Queues load-balanced tasks from the controller, and takes its load
    /// figures (alone, without tasks, when they changed while this engine
    /// was idle).
    pub(super) fn tasks(&mut self, loads: &[u32], fence: Vec<u64>, tasks: Vec<WireTask>) {
        let fence = Fence::new(fence);
        self.thief.update(loads, &fence);
        if tasks.is_empty() {
            return;
        }
        let queued = tasks
            .into_iter()
            .map(|t| t.into_queued(fence.clone(), None))
            .collect();
        self.inbox.add(queued);
    }

    /// A message from another engine: a steal request or its answer.
    pub(super) fn peer(&mut self, source: usize, bytes: &[u8]) -> Result<()> {
        let peer = source - 1;
        let message =
            protocol::read_framed::<Peer>(bytes, |lens| self.mpi.receive_blobs(source, lens))?;
        match message {
            // Answered now, or once this engine has received what the
            // thief's estimate counted on (`Inbox::received` then gives it).
            Ok(Peer::Steal { max, seen }) => match self.inbox.steal(max as usize, peer, seen) {
                Some((given, left)) => self.give(peer, given, left),
                None => Ok(()),
            },
            Ok(Peer::Give { tasks, left }) => {
                self.thief.answered(peer, left);
                if tasks.is_empty() {
                    return Ok(());
                }
                // The controller hears of the steal before anything else
                // this engine says about these tasks.
                let notice = Reply::Stolen {
                    victim: u32::try_from(peer).unwrap_or(u32::MAX),
                    tasks: tasks.iter().map(|(t, _)| (t.work.task(), t.hops)).collect(),
                };
                self.send(notice)?;
                let queued = tasks
                    .into_iter()
                    .map(|(t, fence)| t.into_queued(Fence::new(fence), Some(peer)))
                    .collect();
                self.inbox.add(queued);
                Ok(())
            }
            Ok(group) => self.group_peer(peer, group),
            Err(e) => {
                capture::report(&format!("rankview: from rank {source}: {e}"));
                Ok(())
            }
        }
    }

    /// Answers a steal by `thief`: the tasks given (maybe none) and its
    /// share left.
    pub(super) fn give(
        &mut self,
        thief: EngineId,
        given: Vec<Queued<Work>>,
        left: usize,
    ) -> Result<()> {
        let tasks = given
            .into_iter()
            .map(|q| {
                let fence = q.fence.counts();
                (WireTask::from_queued(q), fence)
            })
            .collect();
        let left = u32::try_from(left).unwrap_or(u32::MAX);
        self.send_to(thief + 1, Peer::Give { tasks, left })
    }
}
