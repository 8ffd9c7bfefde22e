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
use std::ops::{Add, Mul};
use std::sync::{Arc, OnceLock};

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
    /// `lower op upper` (see `Combine`).
    #[doc(hidden)]
    fn combine(op: ReduceOp, lower: Self, upper: Self) -> Self;
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

/// How two elements combine in a reduction done in Rust (a task's small
/// allreduce, `transport/doubling.rs` and `taskcomm/shm.rs`): integer sum and
/// product wrap as MPI's do; min and max keep the lower rank's operand on
/// a tie or a NaN, so every rank that combines the same operands in the
/// same order gets the same bits.
trait Combine: Copy + Default + 'static {
    /// `lower op upper`, the lower rank's operand first.
    fn combine(op: ReduceOp, lower: Self, upper: Self) -> Self;
}

macro_rules! combine {
    ($add:ident, $mul:ident; $($t:ty),*) => {$(
        impl Combine for $t {
            fn combine(op: ReduceOp, lower: Self, upper: Self) -> Self {
                match op {
                    ReduceOp::Sum => lower.$add(upper),
                    ReduceOp::Prod => lower.$mul(upper),
                    ReduceOp::Min => if upper < lower { upper } else { lower },
                    ReduceOp::Max => if upper > lower { upper } else { lower },
                }
            }
        }
    )*};
}

combine!(wrapping_add, wrapping_mul; i8, i16, i32, i64, u8, u16, u32, u64);
combine!(add, mul; f32, f64);

/// Combines `into` with `from` element-wise, `into[i] = lower op upper`
/// where the lower operand is `from`'s when `from_lower`, else `into`'s.
pub(crate) fn combine_into<T: Element>(op: ReduceOp, from: &[T], into: &mut [T], from_lower: bool) {
    for (into, &from) in into.iter_mut().zip(from) {
        *into = match from_lower {
            true => <T as Element>::combine(op, from, *into),
            false => <T as Element>::combine(op, *into, from),
        };
    }
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
                fn combine(op: ReduceOp, lower: Self, upper: Self) -> Self {
                    <$t as Combine>::combine(op, lower, upper)
                }
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

        impl ElemKind {
            /// Bytes per element.
            pub(crate) fn size(self) -> usize {
                match self { $(ElemKind::$v => std::mem::size_of::<$t>(),)* }
            }
        }

        impl BulkVec {
            /// A zeroed buffer of `len` elements of `kind`.
            pub(crate) fn zeroed(kind: ElemKind, len: usize) -> BulkVec {
                match kind { $(ElemKind::$v => BulkVec::$v(vec![<$t>::default(); len]),)* }
            }
            /// A zeroed buffer about to be received into: a large one is
            /// backed by huge pages where the kernel allows (see
            /// [`advise_huge`](crate::hugepages::advise_huge)).
            pub(crate) fn for_receive(kind: ElemKind, len: usize) -> BulkVec {
                let mut buf = BulkVec::zeroed(kind, len);
                crate::hugepages::advise_huge(buf.as_bytes_mut());
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

/// The element type of `E`.
pub(crate) fn kind_of<E: Element>() -> ElemKind {
    E::slice(&[]).kind()
}

/// The elements whose bytes (in memory order, at any alignment) are
/// `bytes`; `None` when `bytes` is not a whole number of elements.
pub(crate) fn elements_from_bytes<E: Element>(bytes: &[u8]) -> Option<Vec<E>> {
    let kind = kind_of::<E>();
    if bytes.len() % kind.size() != 0 {
        return None;
    }
    let mut buf = BulkVec::zeroed(kind, bytes.len() / kind.size());
    buf.as_bytes_mut().copy_from_slice(bytes);
    E::unwrap(buf)
}

/// Appends the bytes of `values` (in memory order) to `out`.
pub(crate) fn extend_bytes<E: Element>(values: &[E], out: &mut Vec<u8>) {
    out.extend_from_slice(E::slice(values).as_bytes());
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
mod tests {
    use super::*;

    #[test]
    fn elements_round_trip_through_unaligned_bytes() {
        let values = [1u64, u64::MAX, 42];
        let mut bytes = vec![0u8];
        extend_bytes(&values, &mut bytes);
        assert_eq!(
            elements_from_bytes::<u64>(&bytes[1..]),
            Some(values.to_vec())
        );
        assert_eq!(elements_from_bytes::<u64>(&bytes[2..]), None);
        assert_eq!(kind_of::<f64>().size(), 8);
        assert_eq!(kind_of::<i8>(), ElemKind::I8);
    }

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
    fn integers_wrap_as_mpi_does_and_the_lower_operand_comes_first() {
        assert_eq!(<u8 as Element>::combine(ReduceOp::Sum, 250, 10), 4);
        assert_eq!(<i8 as Element>::combine(ReduceOp::Prod, 64, 4), 0);
        assert_eq!(<i64 as Element>::combine(ReduceOp::Min, -3, 7), -3);
        assert_eq!(<u32 as Element>::combine(ReduceOp::Max, 3, 7), 7);
        let mut into = [1.0f64, 5.0, -2.0];
        combine_into(ReduceOp::Max, &[4.0, 2.0, -1.0], &mut into, true);
        assert_eq!(into, [4.0, 5.0, -1.0]);
        combine_into(ReduceOp::Sum, &[1.0, 1.0, 1.0], &mut into, false);
        assert_eq!(into, [5.0, 6.0, 0.0]);
    }

    #[test]
    fn a_tie_or_a_nan_is_settled_the_same_way_on_every_rank() {
        // Equal operands of different bits (0.0 and -0.0), and NaN: the
        // lower operand wins unless the upper one compares strictly
        // better, so the rank that holds either operand picks the same.
        let (lower, upper) = (0.0f64, -0.0f64);
        let a = <f64 as Element>::combine(ReduceOp::Min, lower, upper);
        assert_eq!(a.to_bits(), lower.to_bits());
        let mut into = [upper];
        combine_into(ReduceOp::Min, &[lower], &mut into, true);
        assert_eq!(into[0].to_bits(), a.to_bits());
        assert!(<f32 as Element>::combine(ReduceOp::Max, f32::NAN, 1.0).is_nan());
        assert_eq!(<f32 as Element>::combine(ReduceOp::Max, 1.0, f32::NAN), 1.0);
    }
}
