//! Bulk data: the numeric containers that travel as raw MPI buffers.
//!
//! `Vec<E>` and `ndarray` arrays of a plain numeric element `E` ([`Element`])
//! never go through the codec: they are split, sent and rebuilt as typed
//! buffers. This module owns the closed set of such types (ten element types
//! times a scalar, `Vec` and arrays of 1 to 6 dimensions or `IxDyn`), their type-erased forms ([`BulkVec`], [`BufRef`])
//! that the transport moves, the table that rebuilds a typed value from a
//! buffer on an engine, and the partition rule of `scatter`. Running the
//! collectives is left to the transport; deciding when to the controller.

use std::any::{type_name, Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ndarray::{Array, ArrayD, Dimension, Ix1, Ix2, Ix3, Ix4, Ix5, Ix6, IxDyn};

use crate::codec;
use crate::error::{Error, Result};
use crate::namespace::{Stored, Value};

mod sealed {
    pub trait Sealed {}
}

/// A plain numeric element type that travels as a raw MPI buffer:
/// `f32`, `f64`, `i8` to `i64` and `u8` to `u64`.
pub trait Element: sealed::Sealed + Value + Copy + Default + PartialOrd {
    #[doc(hidden)]
    fn wrap(values: Vec<Self>) -> BulkVec;
    #[doc(hidden)]
    fn unwrap(bulk: BulkVec) -> Option<Vec<Self>>;
    #[doc(hidden)]
    fn slice(values: &[Self]) -> BufRef<'_>;
    #[doc(hidden)]
    fn slice_mut(values: &mut [Self]) -> BufMut<'_>;
    /// The identity of a reduction on this type.
    #[doc(hidden)]
    fn identity(op: ReduceOp) -> Self;
}

/// A reduction of numeric values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReduceOp {
    /// Element-wise sum.
    Sum,
    /// Element-wise product.
    Prod,
    /// Element-wise minimum.
    Min,
    /// Element-wise maximum.
    Max,
}

macro_rules! elements {
    ($($t:ident => $v:ident, $min:expr, $max:expr;)*) => {
        /// An owned typed buffer of any element type.
        #[doc(hidden)]
        #[derive(Debug, Clone, PartialEq)]
        pub enum BulkVec { $($v(Vec<$t>),)* }

        /// A borrowed typed buffer of any element type.
        #[doc(hidden)]
        #[derive(Debug, Clone, Copy)]
        pub enum BufRef<'a> { $($v(&'a [$t]),)* }

        /// A mutably borrowed typed buffer of any element type.
        #[doc(hidden)]
        #[derive(Debug)]
        pub enum BufMut<'a> { $($v(&'a mut [$t]),)* }

        /// Which element type a buffer holds.
        #[doc(hidden)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum ElemKind { $($v,)* }

        $(
            impl sealed::Sealed for $t {}
            impl Element for $t {
                fn wrap(values: Vec<Self>) -> BulkVec { BulkVec::$v(values) }
                fn unwrap(bulk: BulkVec) -> Option<Vec<Self>> {
                    match bulk { BulkVec::$v(v) => Some(v), _ => None }
                }
                fn slice(values: &[Self]) -> BufRef<'_> { BufRef::$v(values) }
                fn slice_mut(values: &mut [Self]) -> BufMut<'_> { BufMut::$v(values) }
                fn identity(op: ReduceOp) -> Self {
                    match op {
                        ReduceOp::Sum => 0 as $t,
                        ReduceOp::Prod => 1 as $t,
                        ReduceOp::Min => $max,
                        ReduceOp::Max => $min,
                    }
                }
            }
        )*

        impl BulkVec {
            /// A zeroed buffer of `len` elements of `kind`.
            pub(crate) fn zeroed(kind: ElemKind, len: usize) -> BulkVec {
                match kind { $(ElemKind::$v => BulkVec::$v(vec![<$t>::default(); len]),)* }
            }
            /// A zeroed buffer about to be received into: a large one is
            /// backed by huge pages where the kernel allows (see [`advise_huge`]).
            pub(crate) fn for_receive(kind: ElemKind, len: usize) -> BulkVec {
                let mut buf = BulkVec::zeroed(kind, len);
                advise_huge(buf.as_bytes_mut());
                buf
            }
            /// Number of elements.
            pub(crate) fn len(&self) -> usize {
                match self { $(BulkVec::$v(v) => v.len(),)* }
            }
            /// `len` copies of the identity of `op` for `kind`.
            pub(crate) fn identity(kind: ElemKind, op: ReduceOp, len: usize) -> BulkVec {
                match kind { $(ElemKind::$v => BulkVec::$v(vec![<$t as Element>::identity(op); len]),)* }
            }
            /// The buffer, borrowed.
            pub(crate) fn as_ref(&self) -> BufRef<'_> {
                match self { $(BulkVec::$v(v) => BufRef::$v(v),)* }
            }
            /// The buffer, mutably borrowed.
            pub(crate) fn as_mut(&mut self) -> BufMut<'_> {
                match self { $(BulkVec::$v(v) => BufMut::$v(v),)* }
            }
            /// The elements' bytes, writable (raw data is received into them).
            pub(crate) fn as_bytes_mut(&mut self) -> &mut [u8] {
                self.as_mut().into_bytes()
            }
        }

        impl<'a> BufMut<'a> {
            /// The elements' bytes, writable (raw data is received into them).
            pub(crate) fn into_bytes(self) -> &'a mut [u8] {
                match self {
                    $(BufMut::$v(v) => {
                        let len = std::mem::size_of_val(&*v);
                        // SAFETY: the bytes of a live slice of a plain numeric
                        // type, exclusively borrowed for `'a` (the borrow moves
                        // into the result); every bit pattern is a valid value
                        // of these types, so any bytes written leave valid
                        // elements.
                        unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
                    })*
                }
            }
        }

        impl BufMut<'_> {
            /// Number of elements.
            pub(crate) fn len(&self) -> usize {
                match self { $(BufMut::$v(v) => v.len(),)* }
            }
            /// Which element type this is.
            pub(crate) fn kind(&self) -> ElemKind {
                match self { $(BufMut::$v(_) => ElemKind::$v,)* }
            }
            /// The same buffer, reborrowed.
            pub(crate) fn reborrow(&mut self) -> BufMut<'_> {
                match self { $(BufMut::$v(v) => BufMut::$v(v),)* }
            }
            /// The same buffer, read only.
            pub(crate) fn as_ref(&self) -> BufRef<'_> {
                match self { $(BufMut::$v(v) => BufRef::$v(v),)* }
            }
        }

        impl<'a> BufRef<'a> {
            /// The elements' bytes, in memory order (the form in which raw
            /// data travels point to point).
            pub(crate) fn as_bytes(&self) -> &'a [u8] {
                match *self {
                    $(BufRef::$v(v) => {
                        // SAFETY: `v` is a live slice of a plain numeric type
                        // (no padding, no invalid bytes); reading its
                        // `size_of_val(v)` bytes as `u8` (alignment 1) stays
                        // inside the same allocation, borrowed for `'a`.
                        unsafe {
                            std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v))
                        }
                    })*
                }
            }
        }

        impl BufRef<'_> {
            /// Number of elements.
            pub(crate) fn len(&self) -> usize {
                match self { $(BufRef::$v(v) => v.len(),)* }
            }
            /// Which element type this is.
            pub(crate) fn kind(&self) -> ElemKind {
                match self { $(BufRef::$v(_) => ElemKind::$v,)* }
            }
        }

        /// Expands `$mac!(T)` for every element type `T`.
        macro_rules! for_each_element {
            ($mac:ident) => { $($mac!($t);)* };
        }
    };
}

elements! {
    f32 => F32, f32::NEG_INFINITY, f32::INFINITY;
    f64 => F64, f64::NEG_INFINITY, f64::INFINITY;
    i8 => I8, i8::MIN, i8::MAX;
    i16 => I16, i16::MIN, i16::MAX;
    i32 => I32, i32::MIN, i32::MAX;
    i64 => I64, i64::MIN, i64::MAX;
    u8 => U8, u8::MIN, u8::MAX;
    u16 => U16, u16::MIN, u16::MAX;
    u32 => U32, u32::MIN, u32::MAX;
    u64 => U64, u64::MIN, u64::MAX;
}

#[allow(clippy::single_component_path_imports)]
pub(crate) use for_each_element;

/// How a stored bulk value is laid out: its shape (rows first).
pub(crate) type Shape = Vec<usize>;

/// What the engine knows about one bulk type, found by fingerprint.
pub(crate) struct BulkType {
    pub elem: ElemKind,
    pub type_name: &'static str,
    /// Rebuilds a value of this type from a buffer and a shape.
    pub build: fn(BulkVec, Shape) -> Result<Arc<dyn Stored>>,
    /// Rebuilds a value of this type from a buffer and a shape, boxed for
    /// the client (which asks for it by type).
    pub build_boxed: fn(BulkVec, Shape) -> Result<Box<dyn Any>>,
    /// Decodes a value of this type from codec bytes.
    pub decode: fn(&[u8]) -> Result<Arc<dyn Stored>>,
    /// Views a value of this type in place, if it is laid out row-major.
    pub view: fn(&dyn Any) -> Option<(BufRef<'_>, Shape)>,
    /// Views a stored value of this type as a buffer and its shape, copying
    /// only when the value is not in standard (row-major contiguous) layout.
    pub lend: fn(Arc<dyn Stored>) -> Option<Lent>,
    /// Takes a stored value of this type apart into its buffer,
    /// if nothing else holds it and it is laid out row-major (so that a
    /// new value of the same shape can be received into its memory).
    pub recycle: fn(Arc<dyn Stored>) -> Option<BulkVec>,
}

/// A bulk value lent by the execution thread to the MPI thread.
pub(crate) struct Lent {
    holder: Arc<dyn Any + Send + Sync>,
    view: fn(&(dyn Any + Send + Sync)) -> Option<BufRef<'_>>,
    pub shape: Shape,
}

impl Lent {
    /// The lent elements, in row-major order.
    pub(crate) fn buf(&self) -> Option<BufRef<'_>> {
        (self.view)(&*self.holder)
    }
}

/// A container of elements that can be rebuilt from a flat buffer.
trait Container: Value + Sized {
    type Elem: Element;
    fn build(data: Vec<Self::Elem>, shape: &[usize]) -> Result<Self>;
    /// Row-major contiguous elements, if the value is laid out that way.
    fn contiguous(&self) -> Option<&[Self::Elem]>;
    fn shape(&self) -> Shape;
    fn standard_copy(&self) -> Vec<Self::Elem>;
    /// The elements, row-major, without copying; `None` if they are not
    /// laid out that way.
    fn into_elements(self) -> Option<Vec<Self::Elem>>;
}

impl<E: Element> Container for E {
    type Elem = E;
    fn build(data: Vec<E>, _: &[usize]) -> Result<Self> {
        match data.as_slice() {
            [one] => Ok(*one),
            other => Err(Error::Protocol(format!(
                "{} values for one scalar",
                other.len()
            ))),
        }
    }
    fn contiguous(&self) -> Option<&[E]> {
        Some(std::slice::from_ref(self))
    }
    fn shape(&self) -> Shape {
        Vec::new()
    }
    fn standard_copy(&self) -> Vec<E> {
        vec![*self]
    }
    fn into_elements(self) -> Option<Vec<E>> {
        None
    }
}

impl<E: Element> Container for Vec<E> {
    type Elem = E;
    fn build(data: Vec<E>, _: &[usize]) -> Result<Self> {
        Ok(data)
    }
    fn contiguous(&self) -> Option<&[E]> {
        Some(self)
    }
    fn shape(&self) -> Shape {
        vec![self.len()]
    }
    fn standard_copy(&self) -> Vec<E> {
        self.clone()
    }
    fn into_elements(self) -> Option<Vec<E>> {
        Some(self)
    }
}

impl<E: Element, D: Dimension + serde::Serialize + serde::de::DeserializeOwned + 'static> Container
    for Array<E, D>
{
    type Elem = E;
    fn build(data: Vec<E>, shape: &[usize]) -> Result<Self> {
        let dyn_array = ArrayD::from_shape_vec(IxDyn(shape), data)
            .map_err(|e| Error::Protocol(format!("bad array shape {shape:?}: {e}")))?;
        dyn_array
            .into_dimensionality::<D>()
            .map_err(|e| Error::Protocol(format!("bad array dimension {shape:?}: {e}")))
    }
    fn contiguous(&self) -> Option<&[E]> {
        self.as_slice()
    }
    fn shape(&self) -> Shape {
        self.shape().to_vec()
    }
    fn standard_copy(&self) -> Vec<E> {
        self.iter().copied().collect()
    }
    fn into_elements(self) -> Option<Vec<E>> {
        if !self.is_standard_layout() {
            return None;
        }
        let len = self.len();
        let (data, offset) = self.into_raw_vec_and_offset();
        (data.len() == len && offset.unwrap_or(0) == 0).then_some(data)
    }
}

/// The elements of `data` as `C`'s element type.
fn elements_of<C: Container>(data: BulkVec) -> Result<Vec<C::Elem>> {
    C::Elem::unwrap(data).ok_or_else(|| {
        Error::Protocol(format!(
            "buffer of the wrong element type for {}",
            type_name::<C>()
        ))
    })
}

fn build_of<C: Container>(data: BulkVec, shape: Shape) -> Result<Arc<dyn Stored>> {
    Ok(Arc::new(C::build(elements_of::<C>(data)?, &shape)?))
}

fn build_boxed_of<C: Container>(data: BulkVec, shape: Shape) -> Result<Box<dyn Any>> {
    Ok(Box::new(C::build(elements_of::<C>(data)?, &shape)?))
}

fn decode_of<C: Container>(bytes: &[u8]) -> Result<Arc<dyn Stored>> {
    Ok(Arc::new(codec::decode::<C>(bytes)?))
}

fn borrow_of<C: Container>(value: &dyn Any) -> Option<(BufRef<'_>, Shape)> {
    let value = value.downcast_ref::<C>()?;
    Some((C::Elem::slice(value.contiguous()?), value.shape()))
}

fn view_of<C: Container>(holder: &(dyn Any + Send + Sync)) -> Option<BufRef<'_>> {
    if let Some(value) = holder.downcast_ref::<C>() {
        return value.contiguous().map(C::Elem::slice);
    }
    holder
        .downcast_ref::<Vec<C::Elem>>()
        .map(|v| C::Elem::slice(v))
}

fn lend_of<C: Container>(stored: Arc<dyn Stored>) -> Option<Lent> {
    let any: Arc<dyn Any + Send + Sync> = stored.into_any();
    let value = any.downcast_ref::<C>()?;
    let shape = value.shape();
    if value.contiguous().is_some() {
        return Some(Lent {
            holder: any,
            view: view_of::<C>,
            shape,
        });
    }
    // Not row-major contiguous: lend a standard-layout copy instead.
    let copy: Arc<dyn Any + Send + Sync> = Arc::new(value.standard_copy());
    Some(Lent {
        holder: copy,
        view: view_of::<C>,
        shape,
    })
}

fn recycle_of<C: Container>(stored: Arc<dyn Stored>) -> Option<BulkVec> {
    let value = Arc::try_unwrap(stored.into_any().downcast::<C>().ok()?).ok()?;
    Some(C::Elem::wrap(value.into_elements()?))
}

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

/// A typed buffer as `Box<dyn Any>` holding its `Vec<E>`.
pub(crate) fn boxed(data: BulkVec) -> Box<dyn Any> {
    macro_rules! arm {
        ($($v:ident),*) => {
            match data { $(BulkVec::$v(v) => Box::new(v),)* }
        };
    }
    arm!(F32, F64, I8, I16, I32, I64, U8, U16, U32, U64)
}

/// An array of `shape` from row-major elements.
pub(crate) fn array_from<E: Element, D>(data: Vec<E>, shape: &[usize]) -> Result<Array<E, D>>
where
    D: Dimension + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    <Array<E, D> as Container>::build(data, shape)
}

/// Every bulk type, by fingerprint.
pub(crate) fn table() -> &'static HashMap<u64, BulkType> {
    static TABLE: OnceLock<HashMap<u64, BulkType>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = HashMap::new();
        fn add<C: Container>(table: &mut HashMap<u64, BulkType>) {
            let elem = C::Elem::slice(&[]).kind();
            table.insert(
                codec::fingerprint::<C>(),
                BulkType {
                    elem,
                    type_name: type_name::<C>(),
                    build: build_of::<C>,
                    build_boxed: build_boxed_of::<C>,
                    decode: decode_of::<C>,
                    view: borrow_of::<C>,
                    lend: lend_of::<C>,
                    recycle: recycle_of::<C>,
                },
            );
        }
        macro_rules! add_all {
            ($t:ty) => {
                add::<$t>(&mut table);
                add::<Vec<$t>>(&mut table);
                add::<Array<$t, Ix1>>(&mut table);
                add::<Array<$t, Ix2>>(&mut table);
                add::<Array<$t, Ix3>>(&mut table);
                add::<Array<$t, Ix4>>(&mut table);
                add::<Array<$t, Ix5>>(&mut table);
                add::<Array<$t, Ix6>>(&mut table);
                add::<Array<$t, IxDyn>>(&mut table);
            };
        }
        for_each_element!(add_all);
        table
    })
}

/// True if `T` is one of the element types.
pub(crate) fn is_element<T: 'static>() -> bool {
    macro_rules! check {
        ($t:ty) => {
            if TypeId::of::<T>() == TypeId::of::<$t>() {
                return true;
            }
        };
    }
    for_each_element!(check);
    false
}

/// How `scatter` deals items out to engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Distribution {
    /// ipyparallel's default: engine `k` gets one contiguous block; the
    /// first `n % p` engines get one item more (1000 over 7: six of 143, one of 142).
    #[default]
    Block,
    /// Item `i` goes to engine `i % p`, like ipyparallel's `RoundRobinMap`.
    RoundRobin,
}

/// How many items each of `parts` engines gets under the block rule.
pub(crate) fn block_counts(items: usize, parts: usize) -> Vec<usize> {
    let base = items / parts.max(1);
    let extra = items % parts.max(1);
    (0..parts).map(|k| base + usize::from(k < extra)).collect()
}

/// The item indices engine `k` of `parts` gets under `distribution`, in
/// order (computed, not stored: a scatter of 2^25 rows allocates nothing here).
pub(crate) fn indices(
    items: usize,
    parts: usize,
    k: usize,
    distribution: Distribution,
) -> std::iter::StepBy<std::ops::Range<usize>> {
    match distribution {
        Distribution::Block => {
            let base = items / parts.max(1);
            let extra = items % parts.max(1);
            let start = k * base + k.min(extra);
            let count = base + usize::from(k < extra);
            (start..start + count).step_by(1)
        }
        Distribution::RoundRobin => (k.min(items)..items).step_by(parts.max(1)),
    }
}

/// Refuses element counts MPI's `int` counts cannot express.
pub(crate) fn check_count(elements: usize) -> Result<i32> {
    i32::try_from(elements).map_err(|_| {
        Error::Usage(format!(
            "{elements} elements exceed MPI's count limit of {} per collective; \
             split the data into smaller pieces",
            i32::MAX
        ))
    })
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn block_rule_matches_ipyparallel() {
        let counts = block_counts(1000, 7);
        assert_eq!(counts, vec![143, 143, 143, 143, 143, 143, 142]);
        assert_eq!(block_counts(2, 4), vec![1, 1, 0, 0]);
        let list = |n, p, k, d| indices(n, p, k, d).collect::<Vec<_>>();
        assert_eq!(list(10, 3, 1, Distribution::Block), vec![4, 5, 6]);
        assert_eq!(list(10, 3, 2, Distribution::Block), vec![7, 8, 9]);
        assert_eq!(list(10, 3, 1, Distribution::RoundRobin), vec![1, 4, 7]);
        assert_eq!(list(2, 4, 3, Distribution::RoundRobin), Vec::<usize>::new());
        assert_eq!(list(2, 4, 3, Distribution::Block), Vec::<usize>::new());
    }

    /// Fails unless the table has an entry for `C`, naming `C`.
    fn listed<C: 'static>(t: &HashMap<u64, BulkType>) {
        let entry = t.get(&codec::fingerprint::<C>());
        assert_eq!(
            entry.map(|e| e.type_name),
            Some(type_name::<C>()),
            "the table's entry for {}",
            type_name::<C>()
        );
    }

    #[test]
    fn table_rebuilds_and_lends_every_container() {
        let t = table();
        // What the module promises: each element type as a scalar, in a
        // `Vec`, and in arrays of 1 to 6 dimensions and of dynamic ones.
        macro_rules! promised {
            ($($e:ty),*) => {$(
                listed::<$e>(t);
                listed::<Vec<$e>>(t);
                listed::<ndarray::Array1<$e>>(t);
                listed::<ndarray::Array2<$e>>(t);
                listed::<ndarray::Array3<$e>>(t);
                listed::<ndarray::Array4<$e>>(t);
                listed::<ndarray::Array5<$e>>(t);
                listed::<ndarray::Array6<$e>>(t);
                listed::<ndarray::ArrayD<$e>>(t);
            )*};
        }
        promised!(f32, f64, i8, i16, i32, i64, u8, u16, u32, u64);
        let entry = &t[&codec::fingerprint::<ndarray::Array2<f64>>()];
        let value =
            (entry.build)(BulkVec::F64(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), vec![3, 2]).unwrap();
        let lent = (entry.lend)(value).unwrap();
        assert_eq!(lent.shape, vec![3, 2]);
        assert_eq!(lent.buf().unwrap().len(), 6);
        // A transposed (non-contiguous) array is lent as a row-major copy.
        let m = ndarray::arr2(&[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]);
        let t_owned: ndarray::Array2<f64> = m.t().to_owned();
        let stored: Arc<dyn Stored> = Arc::new(t_owned.clone());
        let lent = (entry.lend)(stored).unwrap();
        match lent.buf().unwrap() {
            BufRef::F64(v) => assert_eq!(v, t_owned.iter().copied().collect::<Vec<_>>()),
            other => panic!("{other:?}"),
        }
        assert!(is_element::<u16>() && !is_element::<String>());
        assert!(check_count(usize::MAX).is_err());
    }

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
