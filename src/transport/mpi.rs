//! The MPI transport: initialization, non-blocking point-to-point messages,
//! and the raw-buffer collectives.
//!
//! One thread per rank owns the [`Mpi`] handle (MPI is initialized with
//! `MPI_THREAD_FUNNELED`; rankview never needs `MPI_THREAD_MULTIPLE`). Control
//! messages travel on a private duplicate of `MPI_COMM_WORLD`, so user code
//! using the world communicator in a prelude cannot intercept them. Sends are
//! non-blocking (`MPI_Isend`) so that two ranks sending large messages to each
//! other cannot deadlock; receives use matched probes (`MPI_Improbe` +
//! `MPI_Mrecv`) so messages of any size arrive whole.

use std::sync::Arc;

use mpi::environment::Universe;
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::request::{Request, StaticScope};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::Threading;

use crate::error::{Error, Result};

/// Tag of every control message.
const CONTROL_TAG: i32 = 7;

/// A send buffer whose heap allocation stays put while MPI reads it.
#[derive(Debug, Clone)]
pub(crate) enum SendBuf {
    /// A buffer owned by this one send.
    Owned(Vec<u8>),
    /// A buffer shared by several sends (the same request to many engines).
    Shared(Arc<[u8]>),
}

impl SendBuf {
    fn as_slice(&self) -> &[u8] {
        match self {
            SendBuf::Owned(v) => v,
            SendBuf::Shared(a) => a,
        }
    }
}

/// A send in flight and the buffer it reads from.
struct PendingSend {
    /// Always `Some` until the request completes.
    request: Option<Request<'static, [u8]>>,
    /// Keeps the bytes alive until `request` completes. Never mutated.
    buffer: SendBuf,
}

/// The rank's MPI state. Dropping it completes every pending send and then
/// finalizes MPI.
pub(crate) struct Mpi {
    // Field order is drop order: pending sends, then communicators, then the
    // universe (MPI_Finalize).
    pending: Vec<PendingSend>,
    control: SimpleCommunicator,
    world: SimpleCommunicator,
    _universe: Universe,
}

impl Mpi {
    /// Initializes MPI with `MPI_THREAD_FUNNELED` on the calling thread, which
    /// becomes the rank's MPI thread.
    pub(crate) fn init() -> Result<Mpi> {
        let (universe, granted) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or_else(|| Error::Mpi("MPI was already initialized in this process".into()))?;
        if granted == Threading::Single {
            return Err(Error::Mpi(
                "the MPI library granted MPI_THREAD_SINGLE; rankview needs MPI_THREAD_FUNNELED"
                    .into(),
            ));
        }
        let world = universe.world();
        let control = world.duplicate();
        Ok(Mpi {
            pending: Vec::new(),
            control,
            world,
            _universe: universe,
        })
    }

    /// This process's rank in the job.
    pub(crate) fn rank(&self) -> usize {
        usize::try_from(self.world.rank()).unwrap_or(0)
    }

    /// Number of ranks in the job.
    pub(crate) fn size(&self) -> usize {
        usize::try_from(self.world.size()).unwrap_or(0)
    }

    /// `MPI_COMM_WORLD`, for user code that runs raw MPI beside rankview.
    pub(crate) fn world(&self) -> &SimpleCommunicator {
        &self.world
    }

    /// Starts sending `buffer` to `dest` and returns at once.
    pub(crate) fn send(&mut self, dest: usize, buffer: SendBuf) -> Result<()> {
        let dest = i32::try_from(dest).map_err(|_| Error::Mpi(format!("no rank {dest}")))?;
        let bytes = buffer.as_slice();
        if i32::try_from(bytes.len()).is_err() {
            return Err(Error::Mpi(format!(
                "a {}-byte message is larger than MPI's 2 GiB count limit",
                bytes.len()
            )));
        }
        // SAFETY: the slice points into `buffer`'s heap allocation (a Vec's or
        // an Arc's), which does not move when `buffer` itself is moved below.
        // 1. `buffer` is stored beside the request in `self.pending` and is
        //    neither mutated nor dropped until the request has completed
        //    (`progress` drops it only after `test` succeeds; `Drop` waits
        //    for every request first).
        // 2. The `'static` slice is handed only to MPI through the request and
        //    is not kept anywhere else.
        let slice: &'static [u8] =
            unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) };
        let request = self.control.process_at_rank(dest).immediate_send_with_tag(
            StaticScope,
            slice,
            CONTROL_TAG,
        );
        self.pending.push(PendingSend {
            request: Some(request),
            buffer,
        });
        Ok(())
    }

    /// Completes the sends that have finished; true if any did.
    pub(crate) fn progress(&mut self) -> bool {
        let before = self.pending.len();
        self.pending.retain_mut(|p| match p.request.take() {
            Some(request) => match request.test() {
                Ok(_) => false,
                Err(request) => {
                    p.request = Some(request);
                    true
                }
            },
            None => false,
        });
        self.pending.len() != before
    }

    /// Receives one waiting control message, if any: `(source rank, bytes)`.
    pub(crate) fn try_recv(&mut self) -> Option<(usize, Vec<u8>)> {
        let probed = self
            .control
            .any_process()
            .immediate_matched_probe_with_tag(CONTROL_TAG)?;
        let (bytes, status) = probed.matched_receive_vec::<u8>();
        Some((usize::try_from(status.source_rank()).unwrap_or(0), bytes))
    }

    /// Waits for every pending send.
    pub(crate) fn flush(&mut self) {
        for p in self.pending.drain(..) {
            if let Some(request) = p.request {
                request.wait();
            }
            drop(p.buffer);
        }
    }

    /// Ends the whole job at once (`MPI_Abort`).
    pub(crate) fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

impl Drop for Mpi {
    fn drop(&mut self) {
        self.flush();
    }
}
