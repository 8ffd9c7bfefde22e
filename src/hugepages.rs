//! Huge-page advice: how rankview asks the kernel to back large buffers.
//!
//! Large receives, encodings and loans touch many pages; on Linux with
//! transparent huge pages, 2 MiB pages cut their page faults (and the pages
//! MPI's single-copy shared memory pins) by 512. This module owns every
//! `madvise` rankview makes: marking fresh buffers ([`advise_huge`],
//! [`advise_huge_spare`]), faulting pages in ahead of a copy on another core
//! ([`prefaulting`]), and moving a buffer lent again onto huge pages
//! ([`collapse_when_lent_again`]). It is only advice: it never changes a
//! byte, and a kernel that does not know an advice just does without.
//! Which buffers are large and when they are written is left to the
//! callers (`bulk`, `codec`, the transport, the loans, the controller).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Asks the kernel to back a large fresh buffer with huge pages before it
/// is first written (a 64 MiB receive then takes 32 page faults instead of
/// 16,384). Only advice: ignored where transparent huge pages are off.
pub(crate) fn advise_huge(bytes: &mut [u8]) {
    advise_range(
        bytes.as_mut_ptr() as usize,
        bytes.len(),
        libc::MADV_HUGEPAGE,
    );
}

/// [`advise_huge`] for the room a vector has reserved but not written yet
/// (a value about to be encoded into it).
pub(crate) fn advise_huge_spare(bytes: &mut Vec<u8>) {
    let spare = bytes.spare_capacity_mut();
    advise_range(
        spare.as_mut_ptr() as usize,
        spare.len(),
        libc::MADV_HUGEPAGE,
    );
}

/// Runs `fill`, which writes every byte of `bytes` (fresh memory, most of
/// it not touched yet), while a helper thread faults its pages in ahead of
/// `fill` with `MADV_POPULATE_WRITE`, which maps a page without changing a
/// byte of it. The kernel zeroes every new page: for a large receive that
/// costs about half as much as the copy itself, and the helper moves it to
/// another core where there is one. Small buffers, one-core machines and
/// kernels without the advice (before Linux 5.14) just run `fill`; so does
/// a process that cannot start a thread.
pub(crate) fn prefaulting<R>(bytes: &mut [u8], fill: impl FnOnce(&mut [u8]) -> R) -> R {
    /// Below this a thread costs more than the faults it saves.
    const FROM: usize = 8 << 20;
    /// The helper's step: a couple of huge pages, so that it stops soon
    /// after `fill` has finished.
    const STEP: usize = 4 << 20;
    const HUGE: usize = 2 << 20;
    const PAGE: usize = 4 << 10;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if bytes.len() < FROM || cores < 2 {
        return fill(bytes);
    }
    // madvise takes page-aligned ranges: whole pages only, from the first
    // huge page boundary one step ahead of `fill`, which starts at the front.
    let first = (bytes.as_ptr() as usize).div_ceil(HUGE) * HUGE + STEP;
    let end = (bytes.as_ptr() as usize + bytes.len()) / PAGE * PAGE;
    let done = &AtomicBool::new(false);
    std::thread::scope(|scope| {
        let help = move || {
            let mut at = first;
            while at < end && !done.load(Ordering::Relaxed) {
                let n = STEP.min(end - at);
                // SAFETY: `[at, at + n)` lies inside `bytes`, which this
                // function borrows exclusively until the scope has joined
                // this thread. MADV_POPULATE_WRITE only maps pages (a page
                // already mapped is left as it is); it never changes a
                // byte, so it cannot disturb what `fill` writes meanwhile.
                // Failing (an old kernel) only ends the help.
                let advised =
                    unsafe { libc::madvise(at as *mut libc::c_void, n, libc::MADV_POPULATE_WRITE) };
                if advised != 0 {
                    return;
                }
                at += n;
            }
        };
        // Without a helper (no thread to be had), `fill` faults alone.
        let _helper = std::thread::Builder::new()
            .name("rankview-prefault".into())
            .spawn_scoped(scope, help);
        let out = fill(bytes);
        done.store(true, Ordering::Relaxed);
        out
    })
}

/// Huge-page advice (`MADV_HUGEPAGE` or `MADV_COLLAPSE`) for the whole
/// huge pages inside `[start, start + len)`, memory the caller borrows;
/// false if the kernel does not know the advice (`EINVAL`: too old, or
/// transparent huge pages off), true otherwise (it may still have found
/// nothing to do, or failed for want of a free huge page).
fn advise_range(start: usize, len: usize, advice: libc::c_int) -> bool {
    const HUGE: usize = 2 << 20;
    if len < 4 * HUGE {
        return true;
    }
    let aligned = start.div_ceil(HUGE) * HUGE;
    let end = (start + len) / HUGE * HUGE;
    if end <= aligned {
        return true;
    }
    // SAFETY: `[aligned, end)` lies inside `[start, start + len)`, memory
    // this process owns and the caller borrows (a slice or a vector's spare
    // capacity). Both advices change how its pages are backed, never their
    // contents: MADV_HUGEPAGE only marks the range (a no-op for pages
    // already there), MADV_COLLAPSE copies its pages into huge ones under
    // the kernel's locks, so threads reading the range meanwhile see the
    // same bytes. A failure (an old kernel, no huge page to be had) leaves
    // the pages as they were.
    let advised = unsafe { libc::madvise(aligned as *mut libc::c_void, end - aligned, advice) };
    advised == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL)
}

/// Moves a buffer of 8 MiB or more that rank 0 lends to a collective again
/// onto huge pages (`MADV_COLLAPSE`, Linux 6.1 and later). The same address
/// and length lent again is most often a loop that broadcasts or scatters
/// kept data; the engines then read it (single-copy shared memory) from 32
/// huge pages instead of pinning 16,384 small ones per 64 MiB. Measured on
/// a 2-core machine: a broadcast of 64 MiB to two ranks took 17 ms from
/// such a buffer instead of 26 ms; collapsing it took 26–92 ms once, and
/// 0.01–0.07 ms on each later loan (nothing left to do).
///
/// A buffer lent once is left alone. Memory freed and allocated again at
/// the same place looks the same but is back on small pages: its collapse
/// is slow again. After two such slow collapses in a row (a program that
/// lends a fresh buffer every time) the address is given up, so such a
/// program pays at most three collapses per address. Only advice: the bytes
/// never change, and a kernel that does not know it is not asked again.
pub(crate) fn collapse_when_lent_again(bytes: &[u8]) {
    static LENT: Mutex<LentBuffers> = Mutex::new(LentBuffers::new());
    let (start, len) = (bytes.as_ptr() as usize, bytes.len());
    // Most loans are small: they take no lock.
    if len < LentBuffers::FROM {
        return;
    }
    let lock = || LENT.lock().unwrap_or_else(|p| p.into_inner());
    if !lock().lent(start, len) {
        return;
    }
    let began = Instant::now();
    let advised = advise_range(start, len, libc::MADV_COLLAPSE);
    lock().collapsed(start, len, advised, began.elapsed());
}

/// The last few large buffers lent and what collapsing them cost (see
/// [`collapse_when_lent_again`]); the oldest is forgotten first.
struct LentBuffers {
    ranges: Vec<LentRange>,
    /// The kernel does not know the advice: never ask again.
    refused: bool,
}

struct LentRange {
    start: usize,
    len: usize,
    /// Collapses made so far.
    collapses: u32,
    /// Slow collapses in a row after the first (the memory was replaced).
    slow_in_a_row: u32,
    given_up: bool,
}

impl LentBuffers {
    /// Below this the engines' reads cost little either way.
    const FROM: usize = 8 << 20;
    const REMEMBERED: usize = 8;
    /// A collapse taking longer than this moved pages: the range was on
    /// small pages.
    const SLOW: Duration = Duration::from_millis(1);

    const fn new() -> LentBuffers {
        LentBuffers {
            ranges: Vec::new(),
            refused: false,
        }
    }

    /// Records a loan; true when the range should be collapsed now (lent
    /// before, and not given up).
    fn lent(&mut self, start: usize, len: usize) -> bool {
        if len < Self::FROM || self.refused {
            return false;
        }
        let before = self
            .ranges
            .iter()
            .position(|r| (r.start, r.len) == (start, len))
            .map(|at| self.ranges.remove(at));
        if self.ranges.len() >= Self::REMEMBERED {
            self.ranges.remove(0);
        }
        let collapse = before.as_ref().is_some_and(|r| !r.given_up);
        self.ranges.push(before.unwrap_or(LentRange {
            start,
            len,
            collapses: 0,
            slow_in_a_row: 0,
            given_up: false,
        }));
        collapse
    }

    /// Records how a collapse of the range went.
    fn collapsed(&mut self, start: usize, len: usize, advised: bool, took: Duration) {
        if !advised {
            self.refused = true;
            return;
        }
        let Some(range) = self
            .ranges
            .iter_mut()
            .find(|r| (r.start, r.len) == (start, len))
        else {
            return;
        };
        if took < Self::SLOW {
            range.slow_in_a_row = 0;
        } else if range.collapses > 0 {
            range.slow_in_a_row += 1;
            range.given_up = range.slow_in_a_row >= 2;
        }
        range.collapses += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bulk::Element;

    #[test]
    fn prefaulting_never_changes_a_byte() {
        let len = 48 << 20;
        let mut buf = vec![0u8; len];
        advise_huge(&mut buf);
        // Bytes written before the call, in the half `fill` leaves alone:
        // the helper maps pages there and must keep them as they are.
        let marks: Vec<usize> = (0..len / 2).step_by(1 << 20).map(|k| len - 1 - k).collect();
        for &m in &marks {
            buf[m] = 7;
        }
        let written = prefaulting(&mut buf, |bytes| {
            // The front half, slowly enough for the helper to run meanwhile.
            for chunk in bytes[..len / 2].chunks_mut(1 << 20) {
                chunk.fill(3);
                std::thread::yield_now();
            }
            len / 2
        });
        assert_eq!(written, len / 2);
        assert!(buf[..len / 2].iter().all(|&b| b == 3));
        let back = &buf[len / 2..];
        assert_eq!(back.iter().filter(|&&b| b != 0).count(), marks.len());
        assert!(marks.iter().all(|&m| buf[m] == 7));
        // A small buffer is filled without a helper, the same way.
        let mut small = vec![0u8; 1000];
        assert_eq!(prefaulting(&mut small, |b| b.len()), 1000);
    }

    #[test]
    fn a_buffer_lent_again_is_collapsed_until_it_keeps_being_replaced() {
        let (slow, cheap) = (Duration::from_millis(30), Duration::from_micros(40));
        let mut lent = LentBuffers::new();
        let (at, len) = (1usize << 40, 16usize << 20);
        assert!(!lent.lent(at, len), "a first loan is left alone");
        assert!(lent.lent(at, len), "the second loan collapses");
        lent.collapsed(at, len, true, slow);
        // A kept buffer: each later loan asks again, and it costs nothing.
        for _ in 0..5 {
            assert!(lent.lent(at, len));
            lent.collapsed(at, len, true, cheap);
        }
        // Freed and allocated again at the same place once: collapsed again.
        assert!(lent.lent(at, len));
        lent.collapsed(at, len, true, slow);
        assert!(lent.lent(at, len));
        lent.collapsed(at, len, true, cheap);
        // A fresh buffer on every loan: two slow collapses in a row and the
        // address is given up.
        assert!(lent.lent(at, len));
        lent.collapsed(at, len, true, slow);
        assert!(lent.lent(at, len));
        lent.collapsed(at, len, true, slow);
        assert!(!lent.lent(at, len) && !lent.lent(at, len));
        // Another length is another buffer; small buffers are never kept.
        assert!(!lent.lent(at, len + 8));
        assert!(lent.lent(at, len + 8));
        assert!(!lent.lent(at, 1 << 20) && !lent.lent(at, 1 << 20));
        // Forgotten after REMEMBERED other buffers: new again.
        let other = at + (1 << 36);
        assert!(!lent.lent(other, len));
        for k in 1..=LentBuffers::REMEMBERED {
            lent.lent(other + k * (1 << 30), len);
        }
        assert!(!lent.lent(other, len));
        assert!(lent.lent(other, len));
        assert!(lent.ranges.len() <= LentBuffers::REMEMBERED);
        // A kernel that does not know the advice is not asked again.
        lent.collapsed(other, len, false, cheap);
        assert!(!lent.lent(other, len));
    }

    #[test]
    fn collapsing_never_changes_a_byte() {
        let data: Vec<u64> = (0..4u64 << 20)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let bytes = Element::slice(&data[..]).as_bytes();
        // The advice itself (whatever the kernel makes of it), then the
        // policy's two loans.
        advise_range(bytes.as_ptr() as usize, bytes.len(), libc::MADV_COLLAPSE);
        collapse_when_lent_again(bytes);
        collapse_when_lent_again(bytes);
        assert!(data
            .iter()
            .enumerate()
            .all(|(i, &x)| x == (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    }
}
