//! The MPI transport: initialization, non-blocking point-to-point messages,
//! and the raw-buffer collectives.
//!
//! One thread per rank owns the [`Mpi`] handle (MPI is initialized with
//! `MPI_THREAD_FUNNELED`; rankview never needs `MPI_THREAD_MULTIPLE`). Control
//! messages travel on a private duplicate of `MPI_COMM_WORLD`, so user code
//! using the world communicator in a prelude cannot intercept them; each view
//! gets a sub-communicator of rank 0 and its engines for the collectives
//! (scatter, gather, broadcast, reduce), created on first use. Sends are
//! non-blocking (`MPI_Isend`) so that two ranks sending large messages to each
//! other cannot deadlock; receives use matched probes (`MPI_Improbe` +
//! `MPI_Mrecv`) so messages of any size arrive whole.

use std::collections::HashMap;
use std::sync::{mpsc, Arc};

use mpi::collective::{Root, SystemOperation};
use mpi::datatype::{AsDatatype, Partition, PartitionMut};
use mpi::environment::Universe;
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::raw::AsRaw;
use mpi::request::{Request, StaticScope};
use mpi::topology::{Communicator, Group as _, Process, SimpleCommunicator};
use mpi::{Count, Threading};

use crate::bulk::{BufRef, BulkVec, ReduceOp};
use crate::error::{Error, Result};

/// `MPI_COMM_WORLD` as rsmpi represents it, for user code running raw MPI.
pub use ::mpi::topology::SimpleCommunicator as World;

/// A named piece of raw MPI code run on every rank's MPI thread.
pub(crate) type Section = Box<dyn FnMut(&World) + Send>;

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
    sections: HashMap<String, Section>,
    groups: HashMap<u32, SimpleCommunicator>,
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
            sections: HashMap::new(),
            groups: HashMap::new(),
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

/// A buffer lent to the MPI thread by a thread that waits until it comes back.
///
/// Made by [`lend`]; dropping the loan (anywhere, after any use) returns the
/// buffer, and only then does `lend` return. This is what lets a collective
/// on rank 0 read the caller's data in place instead of copying it.
pub(crate) struct Loan {
    buf: BufRef<'static>,
    _returned: mpsc::Sender<()>,
}

impl Loan {
    /// The lent buffer.
    pub(crate) fn buf(&self) -> BufRef<'_> {
        self.buf
    }
}

/// Lends `buf` to `f` and blocks until the [`Loan`] given to `f` has been
/// dropped, wherever `f` sent it.
pub(crate) fn lend<R>(buf: BufRef<'_>, f: impl FnOnce(Loan) -> R) -> R {
    let (returned_tx, returned_rx) = mpsc::channel::<()>();
    // SAFETY: the `'static` lifetime is a lie that this function makes true:
    // 1. the loan is the only holder of the extended reference, and holds
    //    the only sender of `returned_rx`;
    // 2. this function does not return before `returned_rx.recv()` reports
    //    that every sender is gone, i.e. the loan was dropped (or leaked, in
    //    which case this function never returns and `buf` stays borrowed);
    // so `buf` is borrowed for as long as the loan can reach it.
    let buf: BufRef<'static> = unsafe { std::mem::transmute::<BufRef<'_>, BufRef<'static>>(buf) };
    let result = f(Loan {
        buf,
        _returned: returned_tx,
    });
    // Err means disconnected: the loan is gone.
    let _ = returned_rx.recv();
    result
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

fn counts_of(counts: &[usize]) -> Result<Vec<Count>> {
    counts
        .iter()
        .map(|&c| crate::bulk::check_count(c))
        .collect()
}

/// Displacements of consecutive blocks laid out in `order` (sub-rank order
/// of the blocks in the buffer).
fn displacements(counts: &[usize], order: &[usize]) -> Result<Vec<Count>> {
    let mut displs = vec![0; counts.len()];
    let mut offset = 0usize;
    for &sub in order {
        displs[sub] = crate::bulk::check_count(offset)?;
        offset += counts[sub];
    }
    crate::bulk::check_count(offset)?;
    Ok(displs)
}

/// Which collective a non-root rank takes part in with [`Mpi::receive`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Receive {
    /// Its block of an `MPI_Scatterv`.
    Scatter,
    /// The whole of an `MPI_Bcast`.
    Broadcast,
}

fn mismatch(what: &str) -> Error {
    Error::Mpi(format!("{what}: buffers of different element types"))
}

fn reduce_op(op: ReduceOp) -> SystemOperation {
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
    /// over those ranks only.
    fn group(&mut self, id: u32, ranks: &[usize]) -> Result<&SimpleCommunicator> {
        if !self.groups.contains_key(&id) {
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
    /// keeps nothing (its count must be 0).
    pub(crate) fn scatter_root(
        &mut self,
        id: u32,
        ranks: &[usize],
        send: BufRef<'_>,
        counts: &[usize],
        order: &[usize],
    ) -> Result<()> {
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
    /// elements, laid out in `recv` in `order`.
    pub(crate) fn gather_root(
        &mut self,
        id: u32,
        ranks: &[usize],
        recv: &mut BulkVec,
        counts: &[usize],
        order: &[usize],
    ) -> Result<()> {
        let counts32 = counts_of(counts)?;
        let displs = displacements(counts, order)?;
        let root = self.root(id, ranks)?;
        with_vec!(recv, v => {
            let nothing = v[..0].to_vec();
            let mut partition = PartitionMut::new(&mut v[..], &counts32[..], &displs[..]);
            root.gather_varcount_into_root(&nothing[..], &mut partition);
        });
        Ok(())
    }

    /// Non-root side of `MPI_Gatherv`.
    pub(crate) fn gather_send(&mut self, id: u32, ranks: &[usize], send: BufRef<'_>) -> Result<()> {
        let root = self.root(id, ranks)?;
        with_buf!(send, v => root.gather_varcount_into(v));
        Ok(())
    }

    /// Root side of `MPI_Bcast`, from a buffer the root only reads.
    pub(crate) fn broadcast_root(
        &mut self,
        id: u32,
        ranks: &[usize],
        send: BufRef<'_>,
    ) -> Result<()> {
        crate::bulk::check_count(send.len())?;
        let comm = self.group(id, ranks)?;
        with_buf!(send, v => {
            let (count, datatype) = (v.len() as Count, v.as_datatype());
            // SAFETY: MPI_Bcast only reads the buffer at the root (MPI 4.0
            // §6.4); the pointer and count describe `v`, a live slice of
            // `count` elements of the datatype rsmpi derives for its type,
            // borrowed for the whole (blocking) call.
            unsafe {
                mpi::ffi::MPI_Bcast(
                    v.as_ptr() as *mut std::ffi::c_void,
                    count,
                    datatype.as_raw(),
                    0,
                    comm.as_raw(),
                );
            }
        });
        Ok(())
    }

    /// Non-root side of a scatter or broadcast from rank 0 of group `id`:
    /// fills `recv` (sized by the caller).
    pub(crate) fn receive(
        &mut self,
        id: u32,
        ranks: &[usize],
        how: Receive,
        recv: &mut BulkVec,
    ) -> Result<()> {
        crate::bulk::check_count(recv.len())?;
        let root = self.root(id, ranks)?;
        match how {
            Receive::Scatter => with_vec!(recv, v => root.scatter_varcount_into(&mut v[..])),
            Receive::Broadcast => with_vec!(recv, v => root.broadcast_into(&mut v[..])),
        }
        Ok(())
    }

    /// Root side of `MPI_Reduce`: the root contributes `own` (the identity)
    /// and receives the reduction into `recv`.
    pub(crate) fn reduce_root(
        &mut self,
        id: u32,
        ranks: &[usize],
        own: &BulkVec,
        recv: &mut BulkVec,
        op: ReduceOp,
    ) -> Result<()> {
        crate::bulk::check_count(own.len())?;
        let root = self.root(id, ranks)?;
        macro_rules! arm {
            ($variant:ident) => {
                if let (BulkVec::$variant(send), BulkVec::$variant(out)) = (own, &mut *recv) {
                    root.reduce_into_root(&send[..], &mut out[..], reduce_op(op));
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

    /// Non-root side of `MPI_Reduce`.
    pub(crate) fn reduce_send(
        &mut self,
        id: u32,
        ranks: &[usize],
        send: BufRef<'_>,
        op: ReduceOp,
    ) -> Result<()> {
        let root = self.root(id, ranks)?;
        with_buf!(send, v => root.reduce_into(v, reduce_op(op)));
        Ok(())
    }
}
