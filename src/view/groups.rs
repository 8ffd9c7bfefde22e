//! Views over groups of engines ([`Client::groups`]): a load-balanced view
//! whose workers are groups of `k` engines, each task running SPMD on every
//! engine of one group (an ensemble of small MPI runs).
//!
//! The view is a [`LoadBalancedView`] over the groups' leaders, so
//! everything it does (`apply`, `map`, `imap`, dependencies, retries,
//! aborts, the queue status, timelines) works on groups unchanged, and
//! stealing moves whole tasks between leaders. How a leader runs a task on
//! its group is the engine's (`src/engine/group.rs`).

use crate::client::Client;
use crate::error::{Error, Result};
use crate::view::load_balanced::LoadBalancedView;

/// Nothing: run once by every group's engines as a direct-view task of
/// the group, which makes the group's communicator on each of them (a
/// team's communicator is made when its first task arrives, at the same
/// point of every member's stream from the controller).
#[rankview_macros::remote]
fn join_group() {}

impl Client {
    /// A load-balanced view over groups of `size` engines: engines
    /// `0..size` are the first group, `size..2 * size` the second, and so
    /// on; engines left over (`len() % size` of them, the last ones) are in
    /// no group, as `MPI_Comm_split` leaves out ranks of no colour. Each
    /// task runs on every engine of one group at once (SPMD), and
    /// [`comm()`](crate::comm) inside it is the group's communicator (ranks
    /// in engine order, the leader rank 0); its result is the
    /// group leader's (its first engine) value, its
    /// [`metadata`](crate::AsyncResult::metadata) the leader's and then
    /// each member's. A failure on any engine of the group fails the task,
    /// naming that engine ([`Error::Remote`]'s `engine`).
    ///
    /// The view's [`targets`](LoadBalancedView::targets) are the leaders:
    /// load balancing, work stealing (between leaders only: a task moves
    /// between groups, never splits), retries (on another group),
    /// dependencies, aborts, the queue status and timelines (one lane per
    /// group, the leader's) treat each group as one engine.
    ///
    /// Like `MPI_Comm_split`, this makes each group's communicator (on the
    /// group's engines, once per group; a later call with the same size
    /// reuses them) and returns once they are made. [`Error::Usage`] if
    /// `size` is 0 or larger than the job's engines, or if a group could
    /// not have its communicator because the job has made as many as
    /// `RANKVIEW_MAX_TEAMS` allows (see [`comm`](crate::comm)).
    ///
    /// ```no_run
    /// use rankview::ReduceOp;
    ///
    /// /// Each engine of the group adds its share; the sum is the group's.
    /// #[rankview::remote]
    /// fn total(n: u64) -> rankview::TaskResult<u64> {
    ///     let comm = rankview::comm()?;
    ///     let (rank, size) = (comm.rank() as u64, comm.size() as u64);
    ///     let mine: u64 = (0..n).filter(|i| i % size == rank).sum();
    ///     Ok(comm.all_reduce(mine, ReduceOp::Sum)?)
    /// }
    ///
    /// rankview::launch(|rc| -> rankview::Result<()> {
    ///     let groups = rc.groups(2)?;
    ///     let ar = groups.apply(total, (100u64,));
    ///     assert_eq!(ar.get()?, 4950);
    ///     assert_eq!(ar.metadata().len(), 2, "the leader's and its member's");
    ///     let sums = groups.map_sync(total, [10u64, 20, 30])?;
    ///     assert_eq!(sums, [45, 190, 435]);
    ///     Ok(())
    /// });
    /// ```
    pub fn groups(&self, size: usize) -> Result<LoadBalancedView> {
        let engines = self.len();
        if size == 0 || size > engines {
            return Err(Error::Usage(format!(
                "groups of {size} engines: the job has {engines} engine(s); \
                 a group has 1 to {engines}"
            )));
        }
        let size32 = u32::try_from(size)
            .map_err(|_| Error::Usage(format!("groups of {size} engines: too large")))?;
        let leaders: Vec<usize> = (0..engines / size).map(|g| g * size).collect();
        if size > 1 {
            // Each group's communicator counts against the job's limit:
            // refuse groups that could not have one.
            for &leader in &leaders {
                if !self
                    .team(&(leader..leader + size).collect::<Vec<_>>())
                    .communicator
                {
                    return Err(Error::Usage(format!(
                        "groups of {size} engines: the group of engines {leader}..{} gets no \
                         communicator, the job has made as many as RANKVIEW_MAX_TEAMS allows \
                         (1000 by default)",
                        leader + size
                    )));
                }
            }
            let joins = leaders
                .iter()
                .map(|&leader| {
                    Ok(self
                        .view((leader..leader + size).collect::<Vec<_>>())?
                        .apply(join_group, ()))
                })
                .collect::<Result<Vec<_>>>()?;
            for join in joins {
                join.get()?;
            }
        }
        Ok(LoadBalancedView::over_groups(self.clone(), leaders, size32))
    }
}

impl LoadBalancedView {
    /// The engines of each group a view over groups
    /// ([`Client::groups`]) runs tasks on, leader first; one engine per
    /// "group" for another view.
    pub fn groups(&self) -> Vec<Vec<usize>> {
        let size = self.group_size();
        self.targets()
            .iter()
            .map(|&leader| (leader..leader + size).collect())
            .collect()
    }

    /// The engines each task runs on: the group size of a view over
    /// groups, 1 for another view.
    pub fn group_size(&self) -> usize {
        self.group().map_or(1, |size| size as usize)
    }
}
