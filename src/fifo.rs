//! The client's queue of commands to the controller thread: an unbounded
//! first-in first-out queue with one sender and one receiver, whose two
//! buffers are swapped and reused rather than allocated per message.
//!
//! `std::sync::mpsc` allocates a block per 31 messages on the sending
//! thread and frees it on the receiving one. A program submitting a
//! million load-balanced tasks sends a million commands from the thread
//! that also allocates the million results it holds, so the freed blocks
//! stayed between the results as holes of 7 to 15 KiB that no trim
//! returns (half of rank 0's memory growth in `w13` in some jobs). Here
//! the sender pushes into the shared buffer and the receiver takes the
//! whole buffer at once in exchange for its own empty one; a buffer that
//! grew past [`KEEP_BYTES`] during a burst is given back when it has been
//! drained; a smaller one is kept, so that bursts of a few thousand
//! commands do not grow a fresh buffer (copies, and page faults) each time.

use std::collections::VecDeque;
use std::sync::mpsc::{RecvError, SendError, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Bytes a drained buffer keeps room for (4 MiB: 18,000 commands); a
/// larger one is freed.
const KEEP_BYTES: usize = 4 << 20;

/// Values a drained buffer of `T` keeps room for (see [`KEEP_BYTES`]).
fn keep<T>() -> usize {
    KEEP_BYTES / std::mem::size_of::<T>().max(1)
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Signalled for a receiver blocked in [`Receiver::recv`].
    arrived: Condvar,
}

struct State<T> {
    queue: VecDeque<T>,
    sender: bool,
    receiver: bool,
    /// The receiver waits in [`Receiver::recv`].
    waiting: bool,
}

impl<T> Shared<T> {
    /// The state; no code panics while holding the lock, so a poisoned
    /// lock is still consistent.
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A new queue: its sending and its receiving end.
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            sender: true,
            receiver: true,
            waiting: false,
        }),
        arrived: Condvar::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver {
            shared,
            taken: VecDeque::new(),
        },
    )
}

/// The sending end; dropping it disconnects the receiver once the queue
/// is drained.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `value`; gives it back when the receiver is gone.
    pub(crate) fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut state = self.shared.lock();
        if !state.receiver {
            return Err(SendError(value));
        }
        state.queue.push_back(value);
        if state.waiting {
            self.shared.arrived.notify_one();
        }
        Ok(())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.lock().sender = false;
        self.shared.arrived.notify_one();
    }
}

/// The receiving end: takes the values in the order they were sent.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// Values taken from the shared buffer and not returned yet.
    taken: VecDeque<T>,
}

impl<T> Receiver<T> {
    /// The next value, without waiting.
    pub(crate) fn try_recv(&mut self) -> Result<T, TryRecvError> {
        if let Some(value) = self.taken.pop_front() {
            return Ok(value);
        }
        let mut state = self.shared.lock();
        refill(&mut self.taken, &mut state);
        let connected = state.sender;
        drop(state);
        match self.taken.pop_front() {
            Some(value) => Ok(value),
            None if connected => Err(TryRecvError::Empty),
            None => Err(TryRecvError::Disconnected),
        }
    }

    /// The next value, waiting for one; an error once the sender is gone
    /// and every value was taken.
    pub(crate) fn recv(&mut self) -> Result<T, RecvError> {
        if let Some(value) = self.taken.pop_front() {
            return Ok(value);
        }
        let mut state = self.shared.lock();
        loop {
            refill(&mut self.taken, &mut state);
            if let Some(value) = self.taken.pop_front() {
                return Ok(value);
            }
            if !state.sender {
                return Err(RecvError);
            }
            state.waiting = true;
            state = self
                .shared
                .arrived
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting = false;
        }
    }
}

/// Takes the shared buffer's values into `taken` (drained), leaving the
/// shared side `taken`'s buffer. A drained buffer that grew large in a
/// burst is freed here, at once, rather than kept for the next burst.
fn refill<T>(taken: &mut VecDeque<T>, state: &mut State<T>) {
    if taken.capacity() > keep::<T>() {
        *taken = VecDeque::new();
    }
    if !state.queue.is_empty() {
        std::mem::swap(taken, &mut state.queue);
    }
}

impl<T> Drop for Receiver<T> {
    /// Later sends fail; the values still queued are dropped here.
    fn drop(&mut self) {
        let queued = {
            let mut state = self.shared.lock();
            state.receiver = false;
            std::mem::take(&mut state.queue)
        };
        drop(queued);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_in_order_across_refills_and_then_disconnect() {
        let (tx, mut rx) = channel();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        for i in 0..3 {
            tx.send(i).unwrap();
        }
        assert_eq!(rx.try_recv(), Ok(0));
        tx.send(3).unwrap();
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Ok(3));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        tx.send(4).unwrap();
        drop(tx);
        assert_eq!(rx.try_recv(), Ok(4));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
        assert_eq!(rx.recv(), Err(RecvError));
    }

    #[test]
    fn a_burst_buffer_is_freed_once_drained() {
        let (tx, mut rx) = channel();
        let keep = keep::<usize>();
        for i in 0..10 * keep {
            tx.send(i).unwrap();
        }
        for i in 0..10 * keep {
            assert_eq!(rx.try_recv(), Ok(i));
        }
        // The call that finds the burst drained frees its buffer.
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        assert!(rx.taken.capacity() <= keep && rx.shared.lock().queue.capacity() <= keep);
        tx.send(0).unwrap();
        assert_eq!(rx.try_recv(), Ok(0));
    }

    /// A burst of a few thousand command-sized values, sent then taken,
    /// twice: the second finds both buffers grown and allocates nothing.
    #[test]
    fn a_burst_within_the_kept_size_reuses_its_buffers() {
        let (tx, mut rx) = channel::<[u8; 232]>();
        let mut burst = || {
            for _ in 0..4000 {
                tx.send([7; 232]).unwrap();
            }
            for _ in 0..4000 {
                assert_eq!(rx.try_recv(), Ok([7; 232]));
            }
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        };
        burst();
        burst();
        let ((), usage) = crate::codec::allocations::measure(burst);
        assert_eq!(usage.allocations, 0, "the second burst allocated");
    }

    #[test]
    fn recv_waits_for_a_value_from_another_thread_and_for_the_end() {
        let (tx, mut rx) = channel();
        let sender = std::thread::spawn(move || {
            for i in 0..100 {
                tx.send(i).unwrap();
                if i % 10 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        });
        let got: Vec<i32> = std::iter::from_fn(|| rx.recv().ok()).collect();
        sender.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn sends_fail_once_the_receiver_is_gone() {
        let (tx, rx) = channel();
        tx.send(1).unwrap();
        drop(rx);
        assert_eq!(tx.send(2), Err(SendError(2)));
    }
}
