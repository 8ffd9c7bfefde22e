//! Loans: a caller's buffer lent to the MPI thread for the length of one
//! collective, without a copy.
//!
//! A collective on rank 0 reads (scatter, broadcast, reduce) or fills (a
//! gather into a kept buffer) the caller's own memory. The client thread
//! lends that memory with [`lend`] or [`lend_mut`], hands the [`Loan`] to the
//! controller, and waits: the lending call returns only once the loan has
//! been dropped, wherever it went. That wait is what makes the borrow sound
//! (see [`lend`]'s `SAFETY`), so this module is a wait primitive as much as
//! a buffer: it owns the loan and its return, and nothing else. Which
//! collective reads the buffer is left to the controller and the transport;
//! the typed buffers themselves are `bulk`'s.
//!
//! ## Return
//!
//! Lender and loan share a [`Returned`] latch. Dropping the loan sets it,
//! under its lock, once the loan can no longer reach the buffer; the lender
//! waits for it when the lending call ends, also while unwinding from a
//! panic in the closure, and only then gives the buffer back to its caller.
//! A leaked loan never sets it, and the lender never returns (the buffer
//! stays borrowed, which is safe). The loom model `loom_tests` checks that
//! the lender never has its buffer back while the loan's holder may still
//! read it.

use std::sync::PoisonError;

use crate::bulk::{BufMut, BufRef};
use crate::sync::{Arc, Condvar, Mutex};

/// A buffer lent to the MPI thread by a thread that waits until it comes back.
///
/// Made by [`lend`] (read only) or [`lend_mut`] (to be written: a gather
/// into the caller's memory); dropping the loan (anywhere, after any use)
/// returns the buffer, and only then does the lending call return. This is
/// what lets a collective on rank 0 read or fill the caller's data in place
/// instead of copying it.
pub(crate) struct Loan {
    buf: Lendable<'static>,
    returned: Arc<Returned>,
}

impl Drop for Loan {
    fn drop(&mut self) {
        // `buf` is not used past this point (its drop does nothing).
        self.returned.set();
    }
}

/// The latch a lender waits on: set once, when its [`Loan`] is dropped.
struct Returned {
    state: Mutex<Latch>,
    cond: Condvar,
}

/// [`Returned`]'s state.
#[derive(Default)]
struct Latch {
    done: bool,
    /// The lender sleeps on the condition variable: setting must wake it.
    /// A loan returned before the lender waits (a short operation) costs
    /// no wake-up.
    sleeping: bool,
}

impl Returned {
    fn new() -> Returned {
        Returned {
            state: Mutex::new(Latch::default()),
            cond: Condvar::new(),
        }
    }

    /// The loan is back: wakes the lender if it sleeps.
    fn set(&self) {
        // Nothing panics under this lock: a poisoned one is still sound.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.done = true;
        if state.sleeping {
            self.cond.notify_one();
        }
    }

    /// Blocks until [`set`](Returned::set).
    fn wait(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !state.done {
            state.sleeping = true;
            state = self
                .cond
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// What a [`Loan`] holds.
enum Lendable<'a> {
    Ref(BufRef<'a>),
    Mut(BufMut<'a>),
}

impl Loan {
    /// The lent buffer.
    pub(crate) fn buf(&self) -> BufRef<'_> {
        match &self.buf {
            Lendable::Ref(buf) => *buf,
            Lendable::Mut(buf) => buf.as_ref(),
        }
    }

    /// The lent buffer, writable; `None` if it was lent read only.
    pub(crate) fn buf_mut(&mut self) -> Option<BufMut<'_>> {
        match &mut self.buf {
            Lendable::Ref(_) => None,
            Lendable::Mut(buf) => Some(buf.reborrow()),
        }
    }
}

/// Lends `buf` to `f` and blocks until the [`Loan`] given to `f` has been
/// dropped, wherever `f` sent it — also when `f` panics (the wait happens
/// while unwinding). A large buffer lent for the second time is first moved
/// onto huge pages (see [`collapse_when_lent_again`](crate::hugepages::collapse_when_lent_again)).
pub(crate) fn lend<R>(buf: BufRef<'_>, f: impl FnOnce(Loan) -> R) -> R {
    crate::hugepages::collapse_when_lent_again(buf.as_bytes());
    lend_any(Lendable::Ref(buf), f)
}

/// [`lend`] for a buffer the loan's holder may write.
pub(crate) fn lend_mut<R>(buf: BufMut<'_>, f: impl FnOnce(Loan) -> R) -> R {
    lend_any(Lendable::Mut(buf), f)
}

fn lend_any<R>(buf: Lendable<'_>, f: impl FnOnce(Loan) -> R) -> R {
    /// Waits, when dropped, until the loan has been dropped.
    struct Waiting(Arc<Returned>);
    impl Drop for Waiting {
        fn drop(&mut self) {
            self.0.wait();
        }
    }
    let returned = Arc::new(Returned::new());
    let _waiting = Waiting(returned.clone());
    // SAFETY: the `'static` lifetime is a lie that this function makes true:
    // 1. the loan is the only holder of the extended borrow (shared or
    //    exclusive, as the caller's was), and the only one that sets
    //    `returned`, which it does in its drop, after its last use of it;
    // 2. `_waiting` is dropped before this function returns or finishes
    //    unwinding (a panic in `f` unwinds through it), and its drop waits
    //    until `returned` is set, i.e. the loan was dropped (or leaked, in
    //    which case this function never returns and `buf` stays borrowed);
    // so `buf` is borrowed for as long as the loan can reach it.
    let buf: Lendable<'static> =
        unsafe { std::mem::transmute::<Lendable<'_>, Lendable<'static>>(buf) };
    f(Loan { buf, returned })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_panic_after_lending_waits_for_the_loan() {
        let data = vec![1.0f64, 2.0, 3.0];
        let released = Arc::new(AtomicBool::new(false));
        let seen = released.clone();
        let holder = std::sync::Mutex::new(None);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lend(BufRef::F64(&data), |loan| {
                let released = released.clone();
                let handle = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(200));
                    let BufRef::F64(v) = loan.buf() else {
                        panic!("lent buffer changed type");
                    };
                    let sum: f64 = v.iter().sum();
                    released.store(true, Ordering::SeqCst);
                    drop(loan);
                    sum
                });
                *holder.lock().unwrap() = Some(handle);
                panic!("the lender panics while the loan is out");
            })
        }));
        assert!(unwound.is_err());
        assert!(
            seen.load(Ordering::SeqCst),
            "lend unwound before the loan came back"
        );
        let sum = holder.lock().unwrap().take().unwrap().join().unwrap();
        assert_eq!(sum, 6.0);
    }
}

/// Loom models of the loan's return (`ci/test-loom.sh`). The buffer's own
/// memory is invisible to loom, so each model gives it a shadow cell that
/// is touched wherever the buffer is: loom fails a model if two touches
/// are not ordered, or if the lender could wait forever.
#[cfg(all(test, loom))]
mod loom_tests {
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{AtomicBool, Ordering};
    use loom::sync::Arc;

    use super::*;

    #[test]
    fn loom_a_lent_buffer_is_never_read_after_lend_returns() {
        loom::model(|| {
            let data = vec![1.0f64, 2.0];
            let shadow = Arc::new(UnsafeCell::new(()));
            let freed = Arc::new(AtomicBool::new(false));
            let holder = lend(BufRef::F64(&data), |loan| {
                let (shadow, freed) = (shadow.clone(), freed.clone());
                loom::thread::spawn(move || {
                    // The holder (the MPI thread) reads the lent buffer...
                    let BufRef::F64(v) = loan.buf() else {
                        panic!("the lent buffer changed type");
                    };
                    shadow.with(|_| ());
                    assert!(
                        !freed.load(Ordering::Relaxed),
                        "the loan was read after lend returned"
                    );
                    let sum: f64 = v.iter().sum();
                    drop(loan);
                    sum
                })
            });
            // ... and the lender has it back: it may free or change it.
            freed.store(true, Ordering::Relaxed);
            shadow.with_mut(|_| ());
            assert_eq!(holder.join().ok(), Some(3.0));
        });
    }

    #[test]
    fn loom_what_the_holder_writes_is_the_lenders_once_lend_mut_returns() {
        loom::model(|| {
            let mut data = vec![0u64; 2];
            let shadow = Arc::new(UnsafeCell::new(()));
            let holder = lend_mut(BufMut::U64(&mut data), |mut loan| {
                let shadow = shadow.clone();
                loom::thread::spawn(move || {
                    // A gather filling the caller's buffer.
                    if let Some(BufMut::U64(v)) = loan.buf_mut() {
                        v.fill(7);
                    }
                    shadow.with_mut(|_| ());
                })
            });
            shadow.with(|_| ());
            assert_eq!(
                data,
                vec![7, 7],
                "the lender saw the buffer before the loan came back"
            );
            holder.join().expect("the holder panicked");
        });
    }
}
