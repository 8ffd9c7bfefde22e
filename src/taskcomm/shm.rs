//! A task's small allreduce through shared memory ([`ShmTeam`]): when
//! every engine of a team runs on one node, the engine's MPI thread gives
//! the team's communicator an MPI-3 shared window (`transport/window.rs`),
//! one [`Seg`] per member, and a task's allreduce of up to [`SHM_BYTES`]
//! goes through it on the task's own thread: no MPI call, no lock, a third
//! to a half of a blocking `MPI_Allreduce`'s time for one value (bench
//! `w12`).
//!
//! Each member writes its operand into its own slot and publishes it with
//! the operation's number; every member waits for every slot to carry that
//! number and combines the operands in rank order, so that every member
//! gets the same bits. Operations alternate between two slots, and a member
//! reuses a slot only once every member has said it read that slot's last
//! operand (its `done`). A member that never enters leaves the others
//! waiting, as in MPI: they note it on stderr after
//! `RANKVIEW_COMM_WAIT_NOTE`, and the engine's MPI thread, which keeps
//! serving meanwhile, sees the wait ([`ShmTeam::waiting`]).

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::bulk::{combine_into, kind_of, Element, ReduceOp};
use crate::error::{Error, Result};

/// The largest allreduce, in bytes per member, that goes through shared
/// memory; larger ones go through MPI.
pub(crate) const SHM_BYTES: usize = 1024;

/// What a task waits in during such an allreduce, for the notes on long
/// waits.
pub(crate) const SHM_ALLREDUCE: &str = "an allreduce (shared memory)";

/// One operand: the number of the operation it belongs to (0 for none
/// yet), its shape (bytes and element type, to catch members that pass
/// different buffers), and its bytes.
#[repr(C, align(64))]
struct Slot {
    op: AtomicU64,
    shape: AtomicU64,
    data: UnsafeCell<[u64; SHM_BYTES / 8]>,
}

/// What each member owns in the window: two slots, used by odd and even
/// operations in turn, and the number of the last operation whose operands
/// it has read.
#[repr(C)]
pub(crate) struct Seg {
    slots: [Slot; 2],
    done: Padded,
}

#[repr(C, align(64))]
struct Padded(AtomicU64);

impl Seg {
    /// Bytes of a member's segment in the window.
    pub(crate) const SIZE: usize = std::mem::size_of::<Seg>();
}

/// A team's shared segments, as seen from one member.
pub(crate) struct ShmTeam {
    /// Every member's segment, in rank order, mapped into this process.
    segs: Vec<*const Seg>,
    rank: usize,
    /// This engine's id and the team's engines, for the note on a long
    /// wait.
    engine: usize,
    engines: Vec<u32>,
    /// Operations so far; only the engine's execution thread runs them.
    ops: AtomicU64,
    /// When the operation now waiting began to wait, for the engine's MPI
    /// thread (`Teams::waiting_on`).
    waiting: Mutex<Option<Instant>>,
    /// Operations in a row that had to yield (see [`MOVE_AFTER`]).
    yielded: AtomicU32,
}

// SAFETY: the segments are shared memory that lives as long as the process
// (the window is never freed), and every access to them goes through
// atomics or is ordered by them (see `all_reduce`); the rest is `Sync`.
unsafe impl Send for ShmTeam {}
// SAFETY: as above.
unsafe impl Sync for ShmTeam {}

impl ShmTeam {
    /// A member's view of the team's segments.
    ///
    /// # Safety
    ///
    /// `segs` are the segments of every member in rank order, each of
    /// [`Seg::SIZE`] bytes, 64-byte aligned, zeroed before any member uses
    /// them, and mapped for the rest of the process's life.
    pub(crate) unsafe fn new(
        segs: Vec<*const Seg>,
        rank: usize,
        engine: usize,
        engines: Vec<u32>,
    ) -> ShmTeam {
        ShmTeam {
            segs,
            rank,
            engine,
            engines,
            ops: AtomicU64::new(0),
            waiting: Mutex::new(None),
            yielded: AtomicU32::new(0),
        }
    }

    /// Since when a task of this team has waited for a member's operand,
    /// if one waits now.
    pub(crate) fn waiting(&self) -> Option<Instant> {
        *self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn seg(&self, rank: usize) -> &Seg {
        // SAFETY: see `new`: the segment is mapped for the process's life.
        unsafe { &*self.segs[rank] }
    }

    /// Reduces `send` with `op` over every member into `recv` (both of the
    /// same length, at most [`SHM_BYTES`]), on the task's thread.
    pub(crate) fn all_reduce<T: Element>(
        &self,
        send: &[T],
        recv: &mut [T],
        op: ReduceOp,
    ) -> Result<()> {
        let (bytes, kind) = (std::mem::size_of_val(send), kind_of::<T>());
        // The caller's checks (`TaskComm::all_reduce_into`); here too, as
        // the copy below relies on them.
        if bytes > SHM_BYTES || send.len() != recv.len() {
            return Err(Error::Usage(format!(
                "all_reduce_into: {} elements into {} through shared memory (at most {SHM_BYTES} \
                 bytes)",
                send.len(),
                recv.len()
            )));
        }
        let number = self.ops.load(Ordering::Relaxed) + 1;
        self.ops.store(number, Ordering::Relaxed);
        let parity = (number % 2) as usize;
        let mut wait = Wait::new(self);
        // The slot last held operation `number - 2`: every member must have
        // read it.
        if number > 2 {
            for rank in 0..self.segs.len() {
                let done = &self.seg(rank).done.0;
                while done.load(Ordering::Acquire) < number - 2 {
                    wait.snooze();
                }
            }
        }
        let mine = &self.seg(self.rank).slots[parity];
        // SAFETY: this member alone writes its slot, and no member reads it
        // now: each has read operation `number - 2` (above) and waits for
        // `op` to reach `number` before reading `number` (the release
        // below). `bytes` fits the slot.
        unsafe {
            std::ptr::copy_nonoverlapping(
                send.as_ptr().cast::<u8>(),
                mine.data.get().cast::<u8>(),
                bytes,
            );
        }
        let shape = (bytes as u64) << 8 | kind as u64;
        mine.shape.store(shape, Ordering::Relaxed);
        mine.op.store(number, Ordering::Release);
        let mut mismatch = None;
        for rank in 0..self.segs.len() {
            let slot = &self.seg(rank).slots[parity];
            while slot.op.load(Ordering::Acquire) != number {
                wait.snooze();
            }
            if slot.shape.load(Ordering::Relaxed) != shape {
                mismatch = Some(rank);
                continue;
            }
            // SAFETY: the acquire above saw the member publish `number`,
            // written after its operand of `bytes` bytes of `T`
            // (`shape` matches), which it leaves alone until this member's
            // `done` says it was read (the wait at the top of its next use
            // of the slot). The slot's words are aligned for any element.
            let theirs =
                unsafe { std::slice::from_raw_parts(slot.data.get().cast::<T>(), send.len()) };
            if rank == 0 {
                recv.copy_from_slice(theirs);
            } else {
                combine_into(op, theirs, recv, false);
            }
        }
        self.seg(self.rank).done.0.store(number, Ordering::Release);
        drop(wait);
        match mismatch {
            None => Ok(()),
            Some(rank) => Err(Error::Usage(format!(
                "all_reduce_into: rank {rank} of the communicator passed a buffer of another \
                 length or element type ({bytes} bytes of {kind:?} here)"
            ))),
        }
    }
}

/// A task's wait for the other members: spins briefly, then yields, then
/// sleeps (the engine's MPI thread serves meanwhile); marks the team as
/// waiting once it no longer spins, and says so on stderr after the note's
/// delay.
struct Wait<'a> {
    team: &'a ShmTeam,
    backoff: Backoff,
    spins: u32,
    since: Option<Instant>,
    noted: bool,
}

/// Spins before a wait yields the core (about a microsecond: a member on
/// another core is usually there by then) and counts as a wait. Longer
/// spins cost microseconds a call when two members share a core (bench
/// `w12`).
const SPINS: u32 = 16;

/// The longest sleep between two looks at the other members' slots.
const LONGEST_NAP: Duration = Duration::from_millis(1);

/// After this many operations in a row that each had to yield, the next
/// wait sleeps [`MOVE_NAP`] first. Two members whose threads the kernel put
/// on one core (it wakes a task's thread where it can, and a core that rank
/// 0 polls on is not free then) take turns there at every operation,
/// about 1.2 µs each instead of 0.25, and the kernel keeps such busy
/// threads where they are for milliseconds; a thread that wakes from a
/// sleep is placed on an idle core (bench `w12`).
const MOVE_AFTER: u32 = 32;
const MOVE_NAP: Duration = Duration::from_micros(50);

impl<'a> Wait<'a> {
    fn new(team: &'a ShmTeam) -> Wait<'a> {
        Wait {
            team,
            backoff: Backoff::yielding(LONGEST_NAP),
            spins: 0,
            since: None,
            noted: false,
        }
    }

    /// Called before each further look at a member's segment.
    fn snooze(&mut self) {
        if self.spins < SPINS {
            self.spins += 1;
            std::hint::spin_loop();
            return;
        }
        if self.since.is_none() && self.team.yielded.load(Ordering::Relaxed) >= MOVE_AFTER {
            self.team.yielded.store(0, Ordering::Relaxed);
            std::thread::sleep(MOVE_NAP);
        }
        let since = *self.since.get_or_insert_with(|| {
            let now = Instant::now();
            *self.team.waiting.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
            now
        });
        if !self.noted && since.elapsed() >= super::wait_note() {
            self.noted = true;
            super::note_long_wait(self.team.engine, since, SHM_ALLREDUCE, &self.team.engines);
        }
        self.backoff.snooze();
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let yielded = &self.team.yielded;
        if self.since.is_some() {
            *self.team.waiting.lock().unwrap_or_else(|p| p.into_inner()) = None;
            yielded.store(yielded.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        } else if yielded.load(Ordering::Relaxed) != 0 {
            yielded.store(0, Ordering::Relaxed);
        }
    }
}

/// The teams of this process that have shared segments, by their engines.
fn registry() -> &'static Mutex<HashMap<Vec<u32>, Arc<ShmTeam>>> {
    static TEAMS: OnceLock<Mutex<HashMap<Vec<u32>, Arc<ShmTeam>>>> = OnceLock::new();
    TEAMS.get_or_init(Default::default)
}

/// Makes `team` the shared segments of the team of `engines` for the tasks
/// of this process (the engine's MPI thread, once it made them).
pub(crate) fn publish(team: Arc<ShmTeam>) {
    (registry().lock().unwrap_or_else(|p| p.into_inner())).insert(team.engines.clone(), team);
}

/// How many teams of this process have shared segments.
pub(crate) fn published() -> usize {
    registry().lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// The shared segments of the team of `engines`, if it has them.
pub(crate) fn find(engines: &[u32]) -> Option<Arc<ShmTeam>> {
    (registry().lock().unwrap_or_else(|p| p.into_inner()))
        .get(engines)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` members' views of `n` segments in this process's memory (each
    /// member on its own thread, as engines are processes).
    fn team(n: usize) -> (Vec<Seg>, Vec<Arc<ShmTeam>>) {
        // SAFETY: all-zero bytes are a valid `Seg` (atomics and integers),
        // and the state a window's segments start in.
        let segs: Vec<Seg> = (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
        let ptrs: Vec<*const Seg> = segs.iter().map(|s| s as *const Seg).collect();
        let engines: Vec<u32> = (0..n as u32).collect();
        let members = (0..n)
            // SAFETY: `segs` outlive every member (the test joins its
            // threads before dropping them), aligned and zeroed.
            .map(|r| Arc::new(unsafe { ShmTeam::new(ptrs.clone(), r, r, engines.clone()) }))
            .collect();
        (segs, members)
    }

    #[test]
    fn members_on_threads_agree_bit_for_bit_over_many_allreduces() {
        for n in [2, 3, 4] {
            let (_segs, members) = team(n);
            let results: Vec<Vec<u64>> = std::thread::scope(|s| {
                let handles: Vec<_> = (members.iter().enumerate())
                    .map(|(r, m)| {
                        s.spawn(move || {
                            let mut bits = Vec::new();
                            for i in 0..3_000u32 {
                                // Sums whose value depends on the order of
                                // the additions, and lengths that vary.
                                let len = 1 + (i as usize % 7);
                                let x = (r as f64 + 1.0) * 1e16f64.powi(i as i32 % 3 - 1) + 0.1;
                                let send = vec![x; len];
                                let mut recv = vec![0.0f64; len];
                                m.all_reduce(&send, &mut recv, ReduceOp::Sum)
                                    .expect("the lengths agree");
                                bits.extend(recv.iter().map(|v| v.to_bits()));
                                let mut max = [0u8];
                                m.all_reduce(&[r as u8 * 40], &mut max, ReduceOp::Max)
                                    .expect("the lengths agree");
                                assert_eq!(max[0], (n as u8 - 1) * 40);
                            }
                            bits
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("no panic"))
                    .collect()
            });
            assert!(
                results.windows(2).all(|w| w[0] == w[1]),
                "{n} members disagree"
            );
        }
    }

    #[test]
    fn members_that_pass_different_lengths_all_get_an_error() {
        let (_segs, members) = team(2);
        let errors: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (members.iter().enumerate())
                .map(|(r, m)| {
                    s.spawn(move || {
                        let send = vec![1i32; r + 1];
                        let mut recv = vec![0i32; r + 1];
                        let e = m.all_reduce(&send, &mut recv, ReduceOp::Sum);
                        // The next one, of one length again, still works.
                        let mut one = [0i32];
                        m.all_reduce(&[2], &mut one, ReduceOp::Sum)
                            .expect("the lengths agree");
                        assert_eq!(one[0], 4);
                        matches!(e, Err(Error::Usage(_)))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .collect()
        });
        assert_eq!(errors, [true, true]);
    }

    #[test]
    fn a_member_that_is_late_is_waited_for_and_seen_waiting() {
        let (_segs, members) = team(2);
        let (early, late) = (members[0].clone(), members[1].clone());
        std::thread::scope(|s| {
            let waiter = s.spawn(move || {
                let mut out = [0u64];
                early
                    .all_reduce(&[5u64], &mut out, ReduceOp::Sum)
                    .map(|()| out[0])
            });
            let start = Instant::now();
            while members[0].waiting().is_none() {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "never seen waiting"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(20));
            let mut out = [0u64];
            late.all_reduce(&[7u64], &mut out, ReduceOp::Sum)
                .expect("the lengths agree");
            assert_eq!(out[0], 12);
            assert_eq!(
                waiter.join().expect("no panic").expect("the lengths agree"),
                12
            );
        });
        assert!(members[0].waiting().is_none());
    }
}
