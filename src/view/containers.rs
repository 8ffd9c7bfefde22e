//! The containers the collectives move: how one is split for a scatter
//! ([`Scatter`]), put back together from a gather or reduce ([`Gather`],
//! [`Reducible`]), or filled in place ([`GatherInto`]): `Vec`s of serde
//! values, [`Element`] vectors and `ndarray` arrays.
//!
//! Plain conversions between containers and buffers (raw elements, or
//! codec bytes), with no view and no MPI: the direct view's calls that
//! use them are in `collective.rs` and `direct.rs`.

use std::any::{type_name, Any};
use std::borrow::Cow;

use ndarray::{Array, ArrayBase, Axis, Data, Dimension, RemoveAxis};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bulk::{self, for_each_element, BufMut, BufRef, BulkVec, Distribution, Element};
use crate::codec;
use crate::contract::stacked_shape;
use crate::error::{Error, Result};
use crate::namespace::Value;
use crate::protocol::ValueSpec;
use crate::result::Gathered;

/// How a container is split for a scatter: the data (borrowed when it can be
/// sent in place), what each target gets and the type stored on engines.
#[doc(hidden)]
pub struct ScatterPlan<'a> {
    pub(crate) data: PlanData<'a>,
    /// Elements (bulk) or bytes (codec) per target, in target order.
    pub(crate) counts: Vec<usize>,
    /// Shape of each target's block (bulk only).
    pub(crate) shapes: Vec<Vec<usize>>,
    pub(crate) value: ValueSpec,
}

/// The data of a [`ScatterPlan`]: the caller's, sent in place, or a
/// reordered copy.
pub(crate) enum PlanData<'a> {
    Borrowed(BufRef<'a>),
    Owned(BulkVec),
}

/// A container that [`DirectView::scatter`](crate::DirectView::scatter) can split along its first axis:
/// `Vec<T>` of any serde type, and `ndarray` arrays (owned or views, any
/// layout) of an [`Element`] type with 1 to 6 dimensions or `IxDyn`.
pub trait Scatter {
    #[doc(hidden)]
    fn plan(&self, parts: usize, distribution: Distribution) -> Result<ScatterPlan<'_>>;
}

/// A container that [`DirectView::gather`](crate::DirectView::gather) can assemble: `Vec<T>` of any
/// serde type (the engines' vectors concatenated in target order), and
/// `ndarray` arrays of an [`Element`] type (stacked along axis 0).
pub trait Gather: Sized + 'static {
    #[doc(hidden)]
    fn spec() -> Result<GatherSpec>;
    /// Builds the container from data that is borrowed (the result keeps
    /// it for a later `get`: numeric data is copied once) or owned (moved
    /// into the container as it is).
    #[doc(hidden)]
    fn assemble(gathered: Cow<'_, Gathered>) -> Result<Self>;
}

/// The gathered buffer itself: moved out when owned, copied when borrowed.
fn owned_data(gathered: Cow<'_, Gathered>) -> BulkVec {
    match gathered {
        Cow::Owned(g) => g.data,
        Cow::Borrowed(g) => g.data.clone(),
    }
}

/// What [`GatherInto::fill`] calls with the memory to gather into and its
/// shape (`None` for a flat buffer).
#[doc(hidden)]
pub type Fill<'f> = &'f mut dyn FnMut(BufMut<'_>, Option<&[usize]>) -> Result<()>;

/// Memory that [`DirectView::gather_into`](crate::DirectView::gather_into) and [`DirectView::reduce_into`](crate::DirectView::reduce_into)
/// fill in place: a slice or `Vec` of an [`Element`] type, or an `ndarray`
/// array of one.
pub trait GatherInto {
    /// What the engines must hold (a `Vec` for slices and `Vec`s, the same
    /// array type for arrays).
    #[doc(hidden)]
    fn spec() -> Result<GatherSpec>;
    /// Calls `gather` with this memory (or a staging buffer copied into it
    /// after) and its shape, if it has one.
    #[doc(hidden)]
    fn fill(&mut self, gather: Fill<'_>) -> Result<()>;
}

impl<E: Element> GatherInto for [E] {
    fn spec() -> Result<GatherSpec> {
        Ok(GatherSpec {
            value: bulk_spec::<Vec<E>>()?,
        })
    }
    fn fill(&mut self, gather: Fill<'_>) -> Result<()> {
        gather(E::slice_mut(self), None)
    }
}

impl<E: Element> GatherInto for Vec<E> {
    fn spec() -> Result<GatherSpec> {
        <[E]>::spec()
    }
    fn fill(&mut self, gather: Fill<'_>) -> Result<()> {
        GatherInto::fill(self.as_mut_slice(), gather)
    }
}

impl<E, D> GatherInto for Array<E, D>
where
    E: Element,
    D: Dimension + Serialize + DeserializeOwned + 'static,
{
    fn spec() -> Result<GatherSpec> {
        <Array<E, D> as Gather>::spec()
    }
    fn fill(&mut self, gather: Fill<'_>) -> Result<()> {
        let shape = self.shape().to_vec();
        if let Some(data) = self.as_slice_mut() {
            return gather(E::slice_mut(data), Some(&shape));
        }
        // Not in standard layout: one copy, from a staging buffer.
        let mut staging = vec![E::default(); self.len()];
        gather(E::slice_mut(&mut staging), Some(&shape))?;
        self.iter_mut()
            .zip(staging)
            .for_each(|(to, from)| *to = from);
        Ok(())
    }
}

/// What a gather asks of every engine.
#[doc(hidden)]
pub struct GatherSpec {
    pub(crate) value: ValueSpec,
}

/// A numeric value that [`DirectView::reduce`](crate::DirectView::reduce) combines with `MPI_Reduce`:
/// an [`Element`], a `Vec` of them, or an `ndarray` array of them
/// (element-wise; every engine's value must have the same length).
pub trait Reducible: Gather {}

impl<E: Element> Reducible for E {}
impl<E: Element> Reducible for Vec<E> {}
impl<E: Element, D: Dimension + Serialize + DeserializeOwned + 'static> Reducible for Array<E, D> {}

fn bulk_spec<C: 'static>() -> Result<ValueSpec> {
    let fingerprint = codec::fingerprint::<C>();
    let entry = bulk::table().get(&fingerprint).ok_or_else(|| {
        Error::Usage(format!(
            "{} cannot travel as a raw buffer (arrays need 1 to 6 dimensions or IxDyn)",
            type_name::<C>()
        ))
    })?;
    Ok(ValueSpec {
        fingerprint,
        type_name: entry.type_name.to_string(),
        bulk: Some(entry.elem),
    })
}

fn codec_spec<C: 'static>() -> ValueSpec {
    ValueSpec {
        fingerprint: codec::fingerprint::<C>(),
        type_name: type_name::<C>().to_string(),
        bulk: None,
    }
}

/// Elements and shape of every target's block of `rows` rows of `row`
/// elements (`rest` is the shape after axis 0).
fn blocks(
    rows: usize,
    row: usize,
    rest: &[usize],
    parts: usize,
    distribution: Distribution,
) -> (Vec<usize>, Vec<Vec<usize>>) {
    (0..parts)
        .map(|k| {
            let n = bulk::indices(rows, parts, k, distribution).len();
            let shape = std::iter::once(n).chain(rest.iter().copied()).collect();
            (n * row, shape)
        })
        .unzip()
}

/// Splits a slice of row-major elements into blocks, in place when the
/// distribution keeps rows in order.
fn element_plan<'a, E: Element>(
    values: &'a [E],
    row: usize,
    rest: &[usize],
    rows: usize,
    parts: usize,
    distribution: Distribution,
    value: ValueSpec,
) -> ScatterPlan<'a> {
    let data = match distribution {
        Distribution::Block => PlanData::Borrowed(E::slice(values)),
        Distribution::RoundRobin => {
            let mut reordered = Vec::with_capacity(values.len());
            for k in 0..parts {
                for r in bulk::indices(rows, parts, k, distribution) {
                    reordered.extend_from_slice(&values[r * row..(r + 1) * row]);
                }
            }
            PlanData::Owned(E::wrap(reordered))
        }
    };
    let (counts, shapes) = blocks(rows, row, rest, parts, distribution);
    ScatterPlan {
        data,
        counts,
        shapes,
        value,
    }
}

impl<T: Value> Scatter for Vec<T> {
    fn plan(&self, parts: usize, distribution: Distribution) -> Result<ScatterPlan<'_>> {
        let any: &dyn Any = self;
        macro_rules! try_element {
            ($t:ty) => {
                if let Some(values) = any.downcast_ref::<Vec<$t>>() {
                    let value = bulk_spec::<Vec<$t>>()?;
                    return Ok(element_plan(
                        values,
                        1,
                        &[],
                        values.len(),
                        parts,
                        distribution,
                        value,
                    ));
                }
            };
        }
        for_each_element!(try_element);
        // Any other serde type: each target's block encoded as a Vec<T>.
        let mut bytes = Vec::new();
        let mut counts = Vec::with_capacity(parts);
        for k in 0..parts {
            let block: Vec<&T> = bulk::indices(self.len(), parts, k, distribution)
                .map(|i| &self[i])
                .collect();
            let encoded = codec::encode(&block)?;
            counts.push(encoded.len());
            bytes.extend_from_slice(&encoded);
        }
        Ok(ScatterPlan {
            data: PlanData::Owned(BulkVec::U8(bytes)),
            counts,
            shapes: vec![Vec::new(); parts],
            value: codec_spec::<Vec<T>>(),
        })
    }
}

impl<E, S, D> Scatter for ArrayBase<S, D>
where
    E: Element,
    S: Data<Elem = E>,
    D: Dimension + RemoveAxis + Serialize + DeserializeOwned + 'static,
{
    fn plan(&self, parts: usize, distribution: Distribution) -> Result<ScatterPlan<'_>> {
        let value = bulk_spec::<Array<E, D>>()?;
        let shape = self.shape();
        let Some((&rows, rest)) = shape.split_first() else {
            return Err(Error::Usage("cannot scatter a 0-dimensional array".into()));
        };
        let row: usize = rest.iter().product();
        match self.as_slice() {
            // Standard layout: blocks of rows are contiguous, send in place.
            Some(values) => Ok(element_plan(
                values,
                row,
                rest,
                rows,
                parts,
                distribution,
                value,
            )),
            // Any other layout (transposed, stepped): copy rows in order.
            None => {
                let mut data = Vec::with_capacity(rows * row);
                for k in 0..parts {
                    for r in bulk::indices(rows, parts, k, distribution) {
                        data.extend(self.index_axis(Axis(0), r).iter().copied());
                    }
                }
                let (counts, shapes) = blocks(rows, row, rest, parts, distribution);
                Ok(ScatterPlan {
                    data: PlanData::Owned(E::wrap(data)),
                    counts,
                    shapes,
                    value,
                })
            }
        }
    }
}

impl<T: Value> Gather for Vec<T> {
    fn spec() -> Result<GatherSpec> {
        let value = if bulk::is_element::<T>() {
            bulk_spec::<Vec<T>>()?
        } else {
            codec_spec::<Vec<T>>()
        };
        Ok(GatherSpec { value })
    }

    fn assemble(gathered: Cow<'_, Gathered>) -> Result<Self> {
        match &gathered.data {
            // Decoded from the bytes where they are, owned or not.
            BulkVec::U8(bytes) if !bulk::is_element::<T>() => {
                let mut all = Vec::new();
                let mut offset = 0;
                for (len, _) in &gathered.parts {
                    let mut part: Vec<T> = codec::decode(&bytes[offset..offset + len])?;
                    all.append(&mut part);
                    offset += len;
                }
                Ok(all)
            }
            _ => {
                let boxed: Box<dyn Any> = bulk::boxed(owned_data(gathered));
                boxed.downcast::<Vec<T>>().map(|b| *b).map_err(|_| {
                    Error::Protocol(format!(
                        "gathered buffer is not a {}",
                        type_name::<Vec<T>>()
                    ))
                })
            }
        }
    }
}

impl<E: Element> Gather for E {
    fn spec() -> Result<GatherSpec> {
        Ok(GatherSpec {
            value: bulk_spec::<E>()?,
        })
    }

    fn assemble(gathered: Cow<'_, Gathered>) -> Result<Self> {
        let values = E::unwrap(owned_data(gathered))
            .ok_or_else(|| Error::Protocol("gathered buffer of the wrong type".into()))?;
        match values.as_slice() {
            [one] => Ok(*one),
            other => Err(Error::Usage(format!(
                "expected one {} per engine, got {} values",
                type_name::<E>(),
                other.len()
            ))),
        }
    }
}

impl<E, D> Gather for Array<E, D>
where
    E: Element,
    D: Dimension + Serialize + DeserializeOwned + 'static,
{
    fn spec() -> Result<GatherSpec> {
        Ok(GatherSpec {
            value: bulk_spec::<Array<E, D>>()?,
        })
    }

    fn assemble(gathered: Cow<'_, Gathered>) -> Result<Self> {
        let shape = stacked_shape(&gathered.parts)?;
        let values = E::unwrap(owned_data(gathered))
            .ok_or_else(|| Error::Protocol("gathered buffer of the wrong type".into()))?;
        bulk::array_from(values, &shape)
    }
}
