//! The MPI transport: initialization, non-blocking point-to-point messages,
//! and the raw-buffer collectives.
//!
//! One thread per rank owns the [`Mpi`] handle. MPI is initialized asking
//! for `MPI_THREAD_SERIALIZED`: when granted, rank 0's client threads may
//! make the controller's pass themselves, one thread at a time under a lock
//! (see the controller's `help`); `MPI_THREAD_FUNNELED` is enough, and then
//! (or with `RANKVIEW_FUNNELED=1`) only the MPI thread calls MPI. rankview
//! never needs `MPI_THREAD_MULTIPLE`. Control
//! messages travel on a private duplicate of `MPI_COMM_WORLD`, so user code
//! using the world communicator in a prelude cannot intercept them; each view
//! gets a sub-communicator of rank 0 and its engines for the collectives
//! (scatter, gather, broadcast, reduce), created on first use. Sends are
//! non-blocking (`MPI_Isend`) so that two ranks sending large messages to each
//! other cannot deadlock; receives use matched probes (`MPI_Improbe` +
//! `MPI_Mrecv`) so messages of any size arrive whole.
//!
//! ## Past MPI's 2^31 count limit
//!
//! MPI counts are C `int`s. A control message longer than [`MAX_MESSAGE`]
//! bytes travels as a short header on the control tag (so it keeps its place
//! among the control messages) followed by pieces on [`PIECE_TAG`]; a
//! collective whose counts or displacements do not fit in an `int` moves in
//! pieces of at most [`PIECE`] elements (`MPI_Bcast` and `MPI_Reduce` piece by
//! piece, `MPI_Scatterv`/`MPI_Gatherv` as point-to-point pieces between the
//! root and each rank). Every rank derives the same choice from sizes it
//! knows, so they all make matching calls.

use std::collections::HashMap;
use std::sync::{mpsc, Arc};

use mpi::collective::{Root, SystemOperation};
use mpi::datatype::{AsDatatype, Equivalence, Partition, PartitionMut};
use mpi::environment::Universe;
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::raw::AsRaw;
use mpi::request::{Request, StaticScope};
use mpi::topology::{Communicator, Group as _, Process, SimpleCommunicator};
use mpi::{Count, Threading};

use crate::bulk::{BufMut, BufRef, BulkVec, Lent, ReduceOp};
use crate::error::{Error, Result};

/// `MPI_COMM_WORLD` as rsmpi represents it, for user code running raw MPI.
pub use ::mpi::topology::SimpleCommunicator as World;

/// A named piece of raw MPI code run on every rank's MPI thread.
pub(crate) type Section = Box<dyn FnMut(&World) + Send>;

/// Tag of every control message.
const CONTROL_TAG: i32 = 7;

/// Tag of the pieces of a control message longer than [`MAX_MESSAGE`], and of
/// the point-to-point pieces of an oversized scatter or gather.
const PIECE_TAG: i32 = 8;

/// Tag of the raw data that follows a message announcing it (a pulled
/// numeric value, or the attachments of a head, see
/// [`send_framed`](Mpi::send_framed)): received right after that message,
/// from the same rank.
const DATA_TAG: i32 = 9;

/// The longest control message sent in one piece.
const MAX_MESSAGE: usize = 1 << 30;

/// The most elements one call of an oversized collective moves.
const PIECE: usize = 1 << 27;

/// First bytes of the header announcing a message sent in pieces. A protocol
/// message never starts with `0xff` (no bincode variant index does), so the
/// header cannot be mistaken for one.
const LONG_MAGIC: &[u8; 16] = b"\xffrankview-pieces";

/// A send buffer whose heap allocation stays put while MPI reads it.
pub(crate) enum SendBuf {
    /// A buffer owned by this one send.
    Owned(Vec<u8>),
    /// A buffer shared by several sends (the same request to many engines).
    Shared(Arc<Vec<u8>>),
    /// A stored numeric value lent by the execution thread, sent as its raw
    /// bytes; dropping the sender (when the send completes) resumes that
    /// thread.
    Lent {
        data: Lent,
        _resume: mpsc::Sender<()>,
    },
}

impl SendBuf {
    fn as_slice(&self) -> &[u8] {
        match self {
            SendBuf::Owned(v) => v,
            SendBuf::Shared(a) => a,
            SendBuf::Lent { data, .. } => data.buf().map_or(&[], |b| b.as_bytes()),
        }
    }
}

/// A send in flight (one message, or the pieces of a long one) and the
/// buffer it reads from.
struct PendingSend {
    /// The requests still in flight.
    requests: Vec<Request<'static, [u8]>>,
    /// Keeps the bytes alive until every request completes. Never mutated.
    buffer: SendBuf,
}

/// The size from which a send counts as bulk for [`Mpi::sending_bulk`]:
/// past the eager limits of Open MPI's transports a message goes by
/// rendezvous, in fragments that may each wait for the sender's next
/// progress call, so the sender's loop keeps polling meanwhile.
const BULK_SEND: usize = 64 << 10;

/// The rank's MPI state. Dropping it completes every pending send and then
/// finalizes MPI.
pub(crate) struct Mpi {
    // Field order is drop order: pending sends, then communicators, then the
    // universe (MPI_Finalize).
    pending: Vec<PendingSend>,
    /// Threads other than the MPI thread may call MPI, one at a time.
    serialized: bool,
    /// Control messages sent to each rank so far.
    sent: Vec<u64>,
    sections: HashMap<String, Section>,
    groups: HashMap<u32, SimpleCommunicator>,
    control: SimpleCommunicator,
    world: SimpleCommunicator,
    _universe: Universe,
}

impl Mpi {
    /// Initializes MPI on the calling thread, which becomes the rank's MPI
    /// thread, asking for `MPI_THREAD_SERIALIZED` (see the module's
    /// "Threads"); `MPI_THREAD_FUNNELED` is enough.
    pub(crate) fn init() -> Result<Mpi> {
        let (universe, granted) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| Error::Mpi("MPI was already initialized in this process".into()))?;
        if granted == Threading::Single {
            return Err(Error::Mpi(
                "the MPI library granted MPI_THREAD_SINGLE; rankview needs MPI_THREAD_FUNNELED"
                    .into(),
            ));
        }
        let serialized =
            granted >= Threading::Serialized && std::env::var_os("RANKVIEW_FUNNELED").is_none();
        let world = universe.world();
        let control = world.duplicate();
        let size = usize::try_from(world.size()).unwrap_or(0);
        Ok(Mpi {
            serialized,
            pending: Vec::new(),
            sent: vec![0; size],
            sections: HashMap::new(),
            groups: HashMap::new(),
            control,
            world,
            _universe: universe,
        })
    }

    /// True when MPI granted `MPI_THREAD_SERIALIZED` (and
    /// `RANKVIEW_FUNNELED` is not set): any thread may call MPI while no
    /// other does, so a client thread may make the controller's pass itself.
    pub(crate) fn serialized(&self) -> bool {
        self.serialized
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

    /// The private duplicate of `MPI_COMM_WORLD` rankview's own messages and
    /// sub-communicators live on.
    pub(crate) fn control(&self) -> &SimpleCommunicator {
        &self.control
    }

    /// Installs the raw MPI sections this rank can run.
    pub(crate) fn set_sections(&mut self, sections: HashMap<String, Section>) {
        self.sections = sections;
    }

    /// True if a section called `name` is installed.
    pub(crate) fn has_section(&self, name: &str) -> bool {
        self.sections.contains_key(name)
    }

    /// Runs the section `name` with `MPI_COMM_WORLD`.
    pub(crate) fn run_section(&mut self, name: &str) -> Result<()> {
        let section = self.sections.get_mut(name).ok_or_else(|| {
            Error::Usage(format!(
                "no MPI section called {name:?} on rank {}",
                self.world.rank()
            ))
        })?;
        section(&self.world);
        Ok(())
    }

    /// Starts sending `buffer` to `dest` and returns at once. A message
    /// longer than [`MAX_MESSAGE`] goes as a header and pieces.
    pub(crate) fn send(&mut self, dest: usize, buffer: SendBuf) -> Result<()> {
        if let Some(count) = self.sent.get_mut(dest) {
            *count += 1;
        }
        let dest = i32::try_from(dest).map_err(|_| Error::Mpi(format!("no rank {dest}")))?;
        let len = buffer.as_slice().len();
        if len > MAX_MESSAGE {
            let mut header = LONG_MAGIC.to_vec();
            header.extend_from_slice(&(len as u64).to_le_bytes());
            self.start_sends(dest, SendBuf::Owned(header), CONTROL_TAG, MAX_MESSAGE);
            self.start_sends(dest, buffer, PIECE_TAG, MAX_MESSAGE);
        } else {
            self.start_sends(dest, buffer, CONTROL_TAG, MAX_MESSAGE);
        }
        Ok(())
    }

    /// Starts sending the raw bytes of a lent value to `dest` as a data
    /// message (in pieces of at most [`MAX_MESSAGE`] bytes), after the reply
    /// that announces it; returns at once. Data messages are not control
    /// messages: they do not count in [`sent_counts`](Mpi::sent_counts).
    pub(crate) fn send_data(&mut self, dest: usize, buffer: SendBuf) -> Result<()> {
        let dest = i32::try_from(dest).map_err(|_| Error::Mpi(format!("no rank {dest}")))?;
        self.start_sends(dest, buffer, DATA_TAG, MAX_MESSAGE);
        Ok(())
    }

    /// Receives the data message `source` announced into `into`, which has
    /// exactly the announced size (the same pieces as [`send_data`](Mpi::send_data)).
    /// Blocks until it has arrived; its sender started it right after the
    /// announcement.
    pub(crate) fn receive_data(&mut self, source: usize, into: &mut [u8]) -> Result<()> {
        let source = i32::try_from(source).map_err(|_| Error::Mpi(format!("no rank {source}")))?;
        let from = self.control.process_at_rank(source);
        if into.is_empty() {
            from.receive_into_with_tag(into, DATA_TAG);
        }
        for chunk in into.chunks_mut(MAX_MESSAGE) {
            from.receive_into_with_tag(chunk, DATA_TAG);
        }
        Ok(())
    }

    /// Starts sending a message and its attachments to `dest` (see the
    /// protocol's `framed`): the head as a control message, then each
    /// attachment as a data message, with no other send between them.
    pub(crate) fn send_framed(
        &mut self,
        dest: usize,
        head: &Arc<Vec<u8>>,
        blobs: &[Arc<Vec<u8>>],
    ) -> Result<()> {
        self.send(dest, SendBuf::Shared(head.clone()))?;
        for blob in blobs {
            self.send_data(dest, SendBuf::Shared(blob.clone()))?;
        }
        Ok(())
    }

    /// Receives the attachments of a head from `source`, which announced
    /// their lengths `lens`: each into a buffer of its own (a large one backed
    /// by huge pages where the kernel allows). Blocks until they have
    /// arrived; their sender started them right after the head. Each piece
    /// is probed before anything is allocated for it: an attachment whose
    /// first piece is not there with the announced size is an error, not an
    /// allocation of whatever the head claimed.
    pub(crate) fn receive_blobs(&mut self, source: usize, lens: &[u64]) -> Result<Vec<Vec<u8>>> {
        let rank = i32::try_from(source).map_err(|_| Error::Mpi(format!("no rank {source}")))?;
        let from = self.control.process_at_rank(rank);
        let mut blobs = Vec::with_capacity(lens.len());
        for &len in lens {
            let len = usize::try_from(len)
                .map_err(|_| Error::Protocol(format!("an attachment of {len} bytes")))?;
            let mut blob = Vec::new();
            // An empty attachment is one empty message, as it was sent.
            for k in 0..len.div_ceil(MAX_MESSAGE).max(1) {
                let at = k * MAX_MESSAGE;
                let piece = (len - at).min(MAX_MESSAGE);
                let (message, status) = from.matched_probe_with_tag(DATA_TAG);
                let arrived = usize::try_from(status.count(u8::equivalent_datatype())).unwrap_or(0);
                if arrived != piece {
                    // Take it off the queue, then report the mismatch.
                    let mut sink = vec![0u8; arrived];
                    message.matched_receive_into(&mut sink[..]);
                    return Err(Error::Protocol(format!(
                        "rank {source} announced an attachment of {len} bytes \
                         and sent a piece of {arrived} bytes"
                    )));
                }
                if k == 0 {
                    // Zeroed by the allocator (pages not touched yet), so
                    // the advice comes before the first write.
                    blob = vec![0u8; len];
                    crate::hugepages::advise_huge(&mut blob);
                }
                message.matched_receive_into(&mut blob[at..at + piece]);
            }
            blobs.push(blob);
        }
        Ok(blobs)
    }

    /// Starts one `MPI_Isend` per `piece` bytes of `buffer` (one for an
    /// empty buffer) and keeps the buffer until they complete.
    fn start_sends(&mut self, dest: i32, buffer: SendBuf, tag: i32, piece: usize) {
        let bytes = buffer.as_slice();
        // SAFETY: the slice points into `buffer`'s heap allocation (a Vec's, an
        // Arc's, or the elements of the value a `Lent` keeps alive through its
        // Arc), which does not move when `buffer` itself is moved below.
        // 1. `buffer` is stored beside the requests in `self.pending` and is
        //    neither mutated nor dropped until every request has completed
        //    (`progress` drops it only after the last `test` succeeds; `Drop`
        //    and `flush` wait for every request first).
        // 2. The `'static` slice is handed only to MPI through the requests
        //    and is not kept anywhere else.
        let all: &'static [u8] = unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) };
        let process = self.control.process_at_rank(dest);
        let requests = if all.is_empty() {
            vec![process.immediate_send_with_tag(StaticScope, all, tag)]
        } else {
            all.chunks(piece)
                .map(|chunk| process.immediate_send_with_tag(StaticScope, chunk, tag))
                .collect()
        };
        self.pending.push(PendingSend { requests, buffer });
    }

    /// How many control messages (long ones counting once) this rank has
    /// sent to each of ranks `1..=engines`: the controller's stream fence.
    pub(crate) fn sent_counts(&self, engines: usize) -> Vec<u64> {
        (1..=engines)
            .map(|rank| self.sent.get(rank).copied().unwrap_or(0))
            .collect()
    }

    /// A send of [`BULK_SEND`] bytes or more is still in flight (see
    /// [`progress`](Mpi::progress)).
    pub(crate) fn sending_bulk(&self) -> bool {
        self.pending
            .iter()
            .any(|p| p.buffer.as_slice().len() >= BULK_SEND)
    }

    /// Completes the sends that have finished; true if any did.
    pub(crate) fn progress(&mut self) -> bool {
        let before = self.pending.len();
        self.pending.retain_mut(|p| {
            let mut waiting = Vec::with_capacity(p.requests.len());
            for request in p.requests.drain(..) {
                if let Err(request) = request.test() {
                    waiting.push(request);
                }
            }
            p.requests = waiting;
            !p.requests.is_empty()
        });
        self.pending.len() != before
    }

    /// Receives one waiting control message, if any: `(source rank, bytes)`.
    /// A message sent in pieces is received whole (this call then waits for
    /// its pieces, which its sender has already started sending).
    pub(crate) fn try_recv(&mut self) -> Option<(usize, Vec<u8>)> {
        self.receive_probed(false)
    }

    /// [`try_recv`](Mpi::try_recv), probing twice before saying nothing
    /// came when `thorough` (a loop that has just slept). A probe may only
    /// move an arrived message into MPI's queues (its progress step) and see
    /// it on the next call, so a single probe would find it one sleep late.
    /// Not on every poll: an empty probe costs a progress step, and Open MPI
    /// yields the core in it when oversubscribed.
    pub(crate) fn try_recv_thorough(&mut self, thorough: bool) -> Option<(usize, Vec<u8>)> {
        self.receive_probed(thorough)
    }

    fn receive_probed(&mut self, twice: bool) -> Option<(usize, Vec<u8>)> {
        let any = self.control.any_process();
        let probed = match any.immediate_matched_probe_with_tag(CONTROL_TAG) {
            Some(probed) => probed,
            None if twice => any.immediate_matched_probe_with_tag(CONTROL_TAG)?,
            None => return None,
        };
        let (bytes, status) = probed.matched_receive_vec::<u8>();
        let source = status.source_rank();
        let bytes = match long_length(&bytes) {
            Some(len) => {
                let mut whole = vec![0u8; len];
                let from = self.control.process_at_rank(source);
                for chunk in whole.chunks_mut(MAX_MESSAGE) {
                    from.receive_into_with_tag(chunk, PIECE_TAG);
                }
                whole
            }
            None => bytes,
        };
        Some((usize::try_from(source).unwrap_or(0), bytes))
    }

    /// Waits for every pending send.
    pub(crate) fn flush(&mut self) {
        for p in self.pending.drain(..) {
            for request in p.requests {
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

/// The length announced by a long-message header, if `bytes` is one.
fn long_length(bytes: &[u8]) -> Option<usize> {
    let rest = bytes.strip_prefix(LONG_MAGIC.as_slice())?;
    let len: [u8; 8] = rest.try_into().ok()?;
    usize::try_from(u64::from_le_bytes(len)).ok()
}

/// Ends the whole job at once from any thread: `MPI_Abort` on
/// `MPI_COMM_WORLD` while MPI is running, otherwise `exit(code)`. For
/// failures that leave no `Mpi` handle to call [`Mpi::abort`] on (a panic
/// that unwound through it); never finalizes, which would wait for the
/// other ranks.
pub(crate) fn abort_job(code: i32) -> ! {
    if mpi::environment::is_initialized() && !mpi::environment::is_finalized() {
        // SAFETY: MPI is initialized and not finalized (checked just above;
        // `MPI_Initialized` and `MPI_Finalized` may be called from any
        // thread). `RSMPI_COMM_WORLD` is a valid predefined handle while MPI
        // is up. This may run on a thread other than the MPI thread, or while
        // the MPI thread is inside a call; Open MPI and MPICH implement
        // `MPI_Abort` by having their runtime kill the job, which does not
        // depend on the calling thread, and the process ends right after
        // either way (`exit` below if the call returns).
        unsafe {
            mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, code);
        }
    }
    std::process::exit(code)
}

impl Drop for Mpi {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Runs `$body` with `$v` bound to the typed slice inside a `BufRef`.
macro_rules! with_buf {
    ($buf:expr, $v:ident => $body:expr) => {
        match $buf {
            BufRef::F32($v) => $body,
            BufRef::F64($v) => $body,
            BufRef::I8($v) => $body,
            BufRef::I16($v) => $body,
            BufRef::I32($v) => $body,
            BufRef::I64($v) => $body,
            BufRef::U8($v) => $body,
            BufRef::U16($v) => $body,
            BufRef::U32($v) => $body,
            BufRef::U64($v) => $body,
        }
    };
}

/// Runs `$body` with `$v` bound to the typed slice inside a `BufMut`.
macro_rules! with_mut {
    ($buf:expr, $v:ident => $body:expr) => {
        match $buf {
            BufMut::F32($v) => $body,
            BufMut::F64($v) => $body,
            BufMut::I8($v) => $body,
            BufMut::I16($v) => $body,
            BufMut::I32($v) => $body,
            BufMut::I64($v) => $body,
            BufMut::U8($v) => $body,
            BufMut::U16($v) => $body,
            BufMut::U32($v) => $body,
            BufMut::U64($v) => $body,
        }
    };
}

pub(crate) use {with_buf, with_mut};

/// Runs `$body` with `$v` bound to the typed vector inside a `BulkVec`.
macro_rules! with_vec {
    ($buf:expr, $v:ident => $body:expr) => {
        match $buf {
            BulkVec::F32($v) => $body,
            BulkVec::F64($v) => $body,
            BulkVec::I8($v) => $body,
            BulkVec::I16($v) => $body,
            BulkVec::I32($v) => $body,
            BulkVec::I64($v) => $body,
            BulkVec::U8($v) => $body,
            BulkVec::U16($v) => $body,
            BulkVec::U32($v) => $body,
            BulkVec::U64($v) => $body,
        }
    };
}

/// True when a scatter or gather of `total` elements must move in pieces:
/// its counts or displacements would not fit MPI's `int`.
pub(crate) fn needs_pieces(total: usize) -> bool {
    i32::try_from(total).is_err()
}

fn counts_of(counts: &[usize]) -> Result<Vec<Count>> {
    counts
        .iter()
        .map(|&c| crate::bulk::check_count(c))
        .collect()
}

/// Offsets (in elements) of consecutive blocks laid out in `order` (sub-rank
/// order of the blocks in the buffer).
fn offsets(counts: &[usize], order: &[usize]) -> Vec<usize> {
    let mut offsets = vec![0; counts.len()];
    let mut offset = 0usize;
    for &sub in order {
        offsets[sub] = offset;
        offset += counts[sub];
    }
    offsets
}

/// [`offsets`] as MPI displacements (only when [`needs_pieces`] is false).
fn displacements(counts: &[usize], order: &[usize]) -> Result<Vec<Count>> {
    counts_of(&offsets(counts, order))
}

/// Which collective a non-root rank takes part in with [`Mpi::receive`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Receive {
    /// Its block of an `MPI_Scatterv` of `total` elements in all (which
    /// decides whether it moves in pieces, see [`needs_pieces`]).
    Scatter { total: usize },
    /// The whole of an `MPI_Bcast`.
    Broadcast,
}

fn mismatch(what: &str) -> Error {
    Error::Mpi(format!("{what}: buffers of different element types"))
}

pub(crate) fn reduce_op(op: ReduceOp) -> SystemOperation {
    match op {
        ReduceOp::Sum => SystemOperation::sum(),
        ReduceOp::Prod => SystemOperation::product(),
        ReduceOp::Min => SystemOperation::min(),
        ReduceOp::Max => SystemOperation::max(),
    }
}

impl Mpi {
    /// The sub-communicator `id` of the world `ranks` (sorted, rank 0
    /// first), created with `MPI_Comm_create_group` on first use: collective
    /// over those ranks only. Once it exists, `ranks` may be empty.
    fn group(&mut self, id: u32, ranks: &[usize]) -> Result<&SimpleCommunicator> {
        if !self.groups.contains_key(&id) {
            if ranks.is_empty() {
                return Err(Error::Protocol(format!(
                    "group {id} is used before its ranks were sent"
                )));
            }
            let ranks: Vec<i32> = ranks
                .iter()
                .map(|&r| i32::try_from(r).map_err(|_| Error::Mpi(format!("no rank {r}"))))
                .collect::<Result<_>>()?;
            let tag = i32::try_from(id % 30_000).unwrap_or(0) + 100;
            let group = self.control.group().include(&ranks);
            let comm = self
                .control
                .split_by_subgroup_with_tag(&group, tag)
                .ok_or_else(|| {
                    Error::Mpi(format!("rank {} is not in group {ranks:?}", self.rank()))
                })?;
            self.groups.insert(id, comm);
        }
        self.groups
            .get(&id)
            .ok_or_else(|| Error::Mpi(format!("group {id} vanished")))
    }

    /// Rank 0 of group `id`, the root of every collective rankview runs.
    fn root(&mut self, id: u32, ranks: &[usize]) -> Result<Process<'_>> {
        Ok(self.group(id, ranks)?.process_at_rank(0))
    }

    /// Creates (if needed) the sub-communicator of a view.
    pub(crate) fn ensure_group(&mut self, id: u32, ranks: &[usize]) -> Result<()> {
        self.group(id, ranks).map(|_| ())
    }

    /// Root side of `MPI_Scatterv` on group `id`: block `k` of `send` (in
    /// `order`, sub-rank per block) goes to sub-rank `order[k]`; the root
    /// keeps nothing (its count must be 0). Past the count limit, each block
    /// goes to its rank as point-to-point pieces.
    pub(crate) fn scatter_root(
        &mut self,
        id: u32,
        ranks: &[usize],
        send: BufRef<'_>,
        counts: &[usize],
        order: &[usize],
    ) -> Result<()> {
        let total: usize = counts.iter().sum();
        if needs_pieces(total) {
            let starts = offsets(counts, order);
            let comm = self.group(id, ranks)?;
            with_buf!(send, v => {
                for (sub, (&count, &start)) in counts.iter().zip(&starts).enumerate().skip(1) {
                    let to = comm.process_at_rank(sub as i32);
                    for piece in v[start..start + count].chunks(PIECE) {
                        to.send_with_tag(piece, PIECE_TAG);
                    }
                }
            });
            return Ok(());
        }
        let counts32 = counts_of(counts)?;
        let displs = displacements(counts, order)?;
        let root = self.root(id, ranks)?;
        with_buf!(send, v => {
            let partition = Partition::new(v, &counts32[..], &displs[..]);
            let mut nothing = v[..0].to_vec();
            root.scatter_varcount_into_root(&partition, &mut nothing[..]);
        });
        Ok(())
    }

    /// Root side of `MPI_Gatherv`: sub-rank `s` contributes `counts[s]`
    /// elements, laid out in `recv` in `order`. Past the count limit, each
    /// rank's block comes as point-to-point pieces.
    pub(crate) fn gather_root(
        &mut self,
        id: u32,
        ranks: &[usize],
        recv: BufMut<'_>,
        counts: &[usize],
        order: &[usize],
    ) -> Result<()> {
        let total: usize = counts.iter().sum();
        if needs_pieces(total) {
            let starts = offsets(counts, order);
            let comm = self.group(id, ranks)?;
            with_mut!(recv, v => {
                for (sub, (&count, &start)) in counts.iter().zip(&starts).enumerate().skip(1) {
                    let from = comm.process_at_rank(sub as i32);
                    for piece in v[start..start + count].chunks_mut(PIECE) {
                        from.receive_into_with_tag(piece, PIECE_TAG);
                    }
                }
            });
            return Ok(());
        }
        let counts32 = counts_of(counts)?;
        let displs = displacements(counts, order)?;
        let root = self.root(id, ranks)?;
        with_mut!(recv, v => {
            let nothing = v[..0].to_vec();
            let mut partition = PartitionMut::new(&mut v[..], &counts32[..], &displs[..]);
            root.gather_varcount_into_root(&nothing[..], &mut partition);
        });
        Ok(())
    }

    /// Non-root side of `MPI_Gatherv`; `pieces` when the root said the
    /// gather moves in pieces ([`needs_pieces`] of the total).
    pub(crate) fn gather_send(
        &mut self,
        id: u32,
        ranks: &[usize],
        send: BufRef<'_>,
        pieces: bool,
    ) -> Result<()> {
        let root = self.root(id, ranks)?;
        if pieces {
            with_buf!(send, v => {
                for piece in v.chunks(PIECE) {
                    root.send_with_tag(piece, PIECE_TAG);
                }
            });
            return Ok(());
        }
        crate::bulk::check_count(send.len())?;
        with_buf!(send, v => root.gather_varcount_into(v));
        Ok(())
    }

    /// Root side of `MPI_Bcast`, from a buffer the root only reads; in
    /// pieces of at most [`PIECE`] elements.
    pub(crate) fn broadcast_root(
        &mut self,
        id: u32,
        ranks: &[usize],
        send: BufRef<'_>,
    ) -> Result<()> {
        let comm = self.group(id, ranks)?;
        with_buf!(send, v => {
            for piece in v.chunks(PIECE) {
                let (count, datatype) = (piece.len() as Count, piece.as_datatype());
                // SAFETY: MPI_Bcast only reads the buffer at the root (MPI 4.0
                // §6.4); the pointer and count describe `piece`, a live slice
                // of `count` (≤ PIECE, so it fits) elements of the datatype
                // rsmpi derives for its type, borrowed for the whole
                // (blocking) call.
                unsafe {
                    mpi::ffi::MPI_Bcast(
                        piece.as_ptr() as *mut std::ffi::c_void,
                        count,
                        datatype.as_raw(),
                        0,
                        comm.as_raw(),
                    );
                }
            }
        });
        Ok(())
    }

    /// Non-root side of a scatter or broadcast from rank 0 of group `id`:
    /// fills `recv` (sized by the caller), in the same pieces as the root.
    pub(crate) fn receive(
        &mut self,
        id: u32,
        ranks: &[usize],
        how: Receive,
        recv: &mut BulkVec,
    ) -> Result<()> {
        let root = self.root(id, ranks)?;
        match how {
            Receive::Scatter { total } if needs_pieces(total) => with_vec!(recv, v => {
                for piece in v.chunks_mut(PIECE) {
                    root.receive_into_with_tag(piece, PIECE_TAG);
                }
            }),
            Receive::Scatter { .. } => {
                crate::bulk::check_count(recv.len())?;
                with_vec!(recv, v => root.scatter_varcount_into(&mut v[..]))
            }
            Receive::Broadcast => with_vec!(recv, v => {
                for piece in v.chunks_mut(PIECE) {
                    root.broadcast_into(piece);
                }
            }),
        }
        Ok(())
    }

    /// Root side of `MPI_Reduce`: the root contributes `own` (the identity)
    /// and receives the reduction into `recv`, in pieces of at most
    /// [`PIECE`] elements.
    pub(crate) fn reduce_root(
        &mut self,
        id: u32,
        ranks: &[usize],
        own: &BulkVec,
        mut recv: BufMut<'_>,
        op: ReduceOp,
    ) -> Result<()> {
        let root = self.root(id, ranks)?;
        macro_rules! arm {
            ($variant:ident) => {
                if let (BulkVec::$variant(send), BufMut::$variant(out)) = (own, &mut recv) {
                    for (mine, into) in send.chunks(PIECE).zip(out.chunks_mut(PIECE)) {
                        root.reduce_into_root(mine, into, reduce_op(op));
                    }
                    return Ok(());
                }
            };
        }
        arm!(F32);
        arm!(F64);
        arm!(I8);
        arm!(I16);
        arm!(I32);
        arm!(I64);
        arm!(U8);
        arm!(U16);
        arm!(U32);
        arm!(U64);
        Err(mismatch("reduce"))
    }

    /// Non-root side of `MPI_Reduce`, in the root's pieces.
    pub(crate) fn reduce_send(
        &mut self,
        id: u32,
        ranks: &[usize],
        send: BufRef<'_>,
        op: ReduceOp,
    ) -> Result<()> {
        let root = self.root(id, ranks)?;
        with_buf!(send, v => {
            for piece in v.chunks(PIECE) {
                root.reduce_into(piece, reduce_op(op));
            }
        });
        Ok(())
    }

    /// Frees the sub-communicator `id` (a no-op if this rank never made it).
    /// Every rank of the group frees it at the same point of its collective
    /// order.
    pub(crate) fn free_group(&mut self, id: u32) {
        // Dropping an rsmpi communicator calls `MPI_Comm_free`.
        drop(self.groups.remove(&id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_message_headers_are_recognised() {
        let mut header = LONG_MAGIC.to_vec();
        header.extend_from_slice(&(3u64 << 31).to_le_bytes());
        assert_eq!(long_length(&header), Some(3 << 31));
        assert_eq!(long_length(&header[..20]), None);
        assert_eq!(long_length(b"\x00\x01"), None);
        assert!(needs_pieces(1 << 31) && !needs_pieces((1 << 31) - 1));
    }
}
