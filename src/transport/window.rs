//! The shared windows of tasks' teams: when every engine of a team runs on
//! one node, an MPI-3 shared window (`MPI_Win_allocate_shared`) of one
//! segment per member, through which a task's small allreduce goes without
//! MPI calls (`taskcomm/shm.rs` owns what is in the segments). Made with the
//! team's communicator, on the engine's MPI thread, and kept for the job.
//!
//! `RANKVIEW_TEAM_SHM=0` (on every rank) leaves teams without one: their
//! small allreduces go as point-to-point steps (`doubling.rs`). So do the
//! teams an engine joins after its first [`MAX_WINDOWS`] windows: a window
//! holds a communicator of its own, and MPI implementations allow a
//! process about 2,000 (MPICH), which the teams' own communicators
//! (`RANKVIEW_MAX_TEAMS`, 1000) already draw on.

use std::sync::Arc;

use mpi::collective::{CommunicatorCollectives, SystemOperation};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::AsRaw;

use crate::taskcomm::shm::{Seg, ShmTeam};

/// The segments' alignment, which [`Seg`] needs. MPI aligns a member's
/// part of the window less (Open MPI: to 8 bytes), so each member's part has
/// room to start its segment at the next multiple; the mapping is
/// page-aligned in every process, so all members find the same offsets.
const ALIGN: usize = 64;

/// Bytes of a member's part of the window.
const PART: usize = Seg::SIZE + ALIGN;

/// The most windows an engine makes.
pub(super) const MAX_WINDOWS: usize = 256;

/// Gives the team of `engines`, whose communicator is `comm`, a shared
/// window when its members all share a node and allow it (`room`: this
/// engine has made fewer than [`MAX_WINDOWS`]); `None` otherwise.
/// Collective over `comm`: every member calls it at the same point, and all
/// come to the same answer.
pub(super) fn shared(
    comm: &SimpleCommunicator,
    engine: usize,
    engines: &[u32],
    room: bool,
) -> Option<Arc<ShmTeam>> {
    let allowed = room && std::env::var("RANKVIEW_TEAM_SHM").map_or(true, |v| v.trim() != "0");
    let size = comm.size();
    // SAFETY: an MPI handle is a plain pointer or integer, for which zeroes
    // are a valid value; the call below writes it before any use.
    let mut node: mpi::ffi::MPI_Comm = unsafe { std::mem::zeroed() };
    let mut on_node = 0;
    // SAFETY: `comm` is a live communicator; `node` receives a new one
    // (freed below in either case), and `on_node` its size.
    unsafe {
        mpi::ffi::MPI_Comm_split_type(
            comm.as_raw(),
            mpi::ffi::RSMPI_COMM_TYPE_SHARED,
            0,
            mpi::ffi::RSMPI_INFO_NULL,
            &mut node,
        );
        mpi::ffi::MPI_Comm_size(node, &mut on_node);
    }
    // Every member must agree, or some would wait in the window's creation
    // for ever.
    let mine = i32::from(allowed && on_node == size);
    let mut all = 0;
    comm.all_reduce_into(&mine, &mut all, SystemOperation::min());
    if all == 0 {
        // SAFETY: `node` was made above and is used by nothing else.
        unsafe { mpi::ffi::MPI_Comm_free(&mut node) };
        return None;
    }
    let mut base: *mut u8 = std::ptr::null_mut();
    // SAFETY: an MPI handle is a plain pointer or integer, for which zeroes
    // are a valid value; it is written by the call below before any use.
    let mut window: mpi::ffi::MPI_Win = unsafe { std::mem::zeroed() };
    // SAFETY: collective over `node` (all members reach it, see above);
    // `base` receives this member's part of `PART` bytes, which nothing
    // else writes before the barrier below. The window is never freed: the
    // segments are used until the process ends; `node` is freed once the
    // window holds it (MPI keeps what the window needs).
    let segs = unsafe {
        mpi::ffi::MPI_Win_allocate_shared(
            PART as mpi::ffi::MPI_Aint,
            1,
            mpi::ffi::RSMPI_INFO_NULL,
            node,
            (&mut base as *mut *mut u8).cast(),
            &mut window,
        );
        std::ptr::write_bytes(base, 0, PART);
        let segs: Vec<*const Seg> = (0..size)
            .map(|rank| {
                let (mut bytes, mut unit) = (0, 0);
                let mut part: *mut u8 = std::ptr::null_mut();
                mpi::ffi::MPI_Win_shared_query(
                    window,
                    rank,
                    &mut bytes,
                    &mut unit,
                    (&mut part as *mut *mut u8).cast(),
                );
                if part.is_null() || usize::try_from(bytes).map_or(true, |b| b < PART) {
                    return std::ptr::null();
                }
                part.add(part.align_offset(ALIGN))
                    .cast::<Seg>()
                    .cast_const()
            })
            .collect();
        mpi::ffi::MPI_Barrier(node);
        mpi::ffi::MPI_Comm_free(&mut node);
        segs
    };
    // Every member sees the same parts, so all agree here too.
    if segs.iter().any(|s| s.is_null()) {
        return None;
    }
    let rank = usize::try_from(comm.rank()).ok()?;
    // SAFETY: `segs` are every member's segment in the window, in rank
    // order (`node` keeps `comm`'s order: one key for all), each of
    // `Seg::SIZE` bytes inside its member's part, aligned, zeroed by its
    // owner before the barrier, and mapped until the process ends (never
    // freed).
    let team = unsafe { ShmTeam::new(segs, rank, engine, engines.to_vec()) };
    Some(Arc::new(team))
}
