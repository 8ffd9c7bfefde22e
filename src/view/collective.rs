//! The collective operations of a `DirectView`: scatter, gather, broadcast
//! push, reduce and map.
//!
//! Each view's collectives run on a sub-communicator of rank 0 and the view's
//! engines. Bulk numeric data ([`Element`] vectors and `ndarray` arrays)
//! moves as raw MPI buffers (`MPI_Scatterv`, `MPI_Gatherv`, `MPI_Bcast`,
//! `MPI_Reduce`); other serde data moves as codec bytes through the same
//! collectives. [`Scatter`] and [`Gather`] say how a container is split and
//! put back together; the controller runs the MPI side.

use std::any::{type_name, Any};
use std::borrow::Cow;
use std::sync::Arc;

use ndarray::{Array, ArrayBase, Axis, Data, Dimension, RemoveAxis};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crate::view::arity::OneArg;

use crate::bulk::{
    self, for_each_element, BufMut, BufRef, BulkVec, Distribution, Element, ReduceOp,
};
use crate::client::Client;
use crate::codec;
use crate::contract::{finish_units, stacked_shape, Buffer, CollectiveKind, Filling};
use crate::error::{Error, Result};
use crate::namespace::Value;
use crate::protocol::{Request, ValueSpec, WireArg};
use crate::registry::registry;
use crate::remote::{IntoArg, RemoteFn};
use crate::result::{AsyncResult, Gathered, Payload};
use crate::transport;
use crate::view::direct::DirectView;
use crate::view::shape::{Many, Shape};

/// How a container is split for a scatter: the data (borrowed when it can be
/// sent in place), what each target gets and the type stored on engines.
#[doc(hidden)]
pub struct ScatterPlan<'a> {
    data: PlanData<'a>,
    /// Elements (bulk) or bytes (codec) per target, in target order.
    counts: Vec<usize>,
    /// Shape of each target's block (bulk only).
    shapes: Vec<Vec<usize>>,
    value: ValueSpec,
}

enum PlanData<'a> {
    Borrowed(BufRef<'a>),
    Owned(BulkVec),
}

/// A container that [`DirectView::scatter`] can split along its first axis:
/// `Vec<T>` of any serde type, and `ndarray` arrays (owned or views, any
/// layout) of an [`Element`] type with 1 to 6 dimensions or `IxDyn`.
pub trait Scatter {
    #[doc(hidden)]
    fn plan(&self, parts: usize, distribution: Distribution) -> Result<ScatterPlan<'_>>;
}

/// A container that [`DirectView::gather`] can assemble: `Vec<T>` of any
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

/// Memory that [`DirectView::gather_into`] and [`DirectView::reduce_into`]
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

/// A numeric value that [`DirectView::reduce`] combines with `MPI_Reduce`:
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

/// Puts the outcomes of a collective with one assembled payload together:
/// reads the payload where it is, or moves it out when the result's last
/// handle hands it over as [`Payload::Movable`].
fn finish_gathered<T: Gather>(outcomes: &mut [(usize, Result<Payload>)]) -> Result<T> {
    let errors: Vec<Error> = outcomes
        .iter()
        .filter_map(|(_, o)| o.as_ref().err().cloned())
        .collect();
    if let Some(error) = crate::error::combine(errors) {
        return Err(error);
    }
    for (_, outcome) in outcomes.iter_mut() {
        match outcome {
            Ok(Payload::Gathered(g)) => return T::assemble(Cow::Borrowed(g)),
            Ok(payload @ Payload::Movable(_)) => {
                if let Payload::Movable(g) = std::mem::replace(payload, Payload::Taken) {
                    return T::assemble(Cow::Owned(g));
                }
            }
            _ => {}
        }
    }
    Err(Error::Protocol(
        "the collective brought no data back".into(),
    ))
}

impl<S: Shape> DirectView<S> {
    fn client(&self) -> &Client {
        &self.client
    }

    /// Splits `data` along its first axis and stores one block on each engine
    /// of the view under `name` (ipyparallel's `scatter`): `n / p` items each,
    /// the first `n % p` engines one more. Fewer items than engines leave some
    /// engines with empty blocks. Numeric data moves by `MPI_Scatterv`
    /// straight from `data`; this call returns once the data has been sent,
    /// and the result completes when every engine has stored its block.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(rc: &rankview::Client) -> rankview::Result<()> {
    /// let dv = rc.all();
    /// let user_ids: Vec<u64> = (0..1000).collect();
    /// dv.scatter("user_id_chunk", &user_ids).get()?;
    /// let back: Vec<u64> = dv.gather("user_id_chunk").get()?;
    /// assert_eq!(back, user_ids);
    /// # Ok(()) }
    /// ```
    pub fn scatter<C: Scatter + ?Sized>(&self, name: &str, data: &C) -> AsyncResult<()> {
        self.scatter_with(name, data, Distribution::Block)
    }

    /// [`scatter`](DirectView::scatter) with a choice of distribution
    /// ([`Distribution::RoundRobin`] deals items out one at a time).
    pub fn scatter_with<C: Scatter + ?Sized>(
        &self,
        name: &str,
        data: &C,
        distribution: Distribution,
    ) -> AsyncResult<()> {
        let plan = match data.plan(self.len(), distribution) {
            Ok(plan) => plan,
            Err(e) => return AsyncResult::failed(e),
        };
        let kind = |buffer| CollectiveKind::Scatter {
            name: name.to_string(),
            value: plan.value.clone(),
            data: buffer,
            counts: plan.counts.clone(),
            shapes: plan.shapes.clone(),
        };
        let submit = |buffer| {
            self.client()
                .collective(&self.targets, kind(buffer), finish_units)
        };
        match plan.data {
            PlanData::Borrowed(buf) => transport::lend(buf, |loan| submit(Buffer::Lent(loan))),
            PlanData::Owned(owned) => submit(Buffer::Owned(owned)),
        }
    }

    /// Brings `name` back from every engine of the view and puts the blocks
    /// together in target order (ipyparallel's `gather`): vectors are
    /// concatenated, arrays stacked along axis 0. Numeric data moves by
    /// `MPI_Gatherv` into the returned container.
    ///
    /// A missing name is [`Error::NameError`] for that engine (an
    /// [`Error::Composite`] when several lack it), another type
    /// [`Error::TypeMismatch`]. The result keeps the gathered data: each
    /// `get` (or `.await`) assembles a new container from it (for numeric
    /// data, one copy), and `get` can be called again.
    /// [`AsyncResult::into_value`] on the only handle moves the data into the
    /// container without that copy.
    pub fn gather<C: Gather>(&self, name: &str) -> AsyncResult<C> {
        let spec = match C::spec() {
            Ok(spec) => spec,
            Err(e) => return AsyncResult::failed(e),
        };
        self.client().collective(
            &self.targets,
            CollectiveKind::Gather {
                name: name.to_string(),
                value: spec.value,
                into: None,
            },
            finish_gathered::<C>,
        )
    }

    /// Combines the numeric value `name` of every engine of the view with
    /// `op`, element-wise, by `MPI_Reduce`.
    pub fn reduce<T: Reducible>(&self, name: &str, op: ReduceOp) -> AsyncResult<T> {
        let spec = match T::spec() {
            Ok(spec) => spec,
            Err(e) => return AsyncResult::failed(e),
        };
        self.client().collective(
            &self.targets,
            CollectiveKind::Reduce {
                name: name.to_string(),
                value: spec.value,
                op,
                into: None,
            },
            finish_gathered::<T>,
        )
    }

    /// [`gather`](DirectView::gather) into memory the caller already has:
    /// a slice or `Vec` of an [`Element`] type (filled over its current
    /// length, which must equal the total the engines hold) or an `ndarray`
    /// array (whose shape must be the stacked shape). The data lands in
    /// `out` directly (`MPI_Gatherv` into it) for a slice, a `Vec` or a
    /// standard-layout array; a non-contiguous array costs one copy (it is
    /// filled from a staging buffer). Blocks until the data is there.
    ///
    /// A buffer of the wrong length, shape or element type is
    /// [`Error::Usage`] before any data moves; the engines' values stay.
    /// This is the form for loops that gather the same array again and
    /// again: nothing is allocated.
    pub fn gather_into<C: GatherInto + ?Sized>(&self, name: &str, out: &mut C) -> Result<()> {
        self.collect_into(name, None, out)
    }

    /// [`reduce`](DirectView::reduce) into memory the caller already has, on
    /// the terms of [`gather_into`](DirectView::gather_into): `out` has the
    /// length (and for an array the shape) of one engine's value.
    pub fn reduce_into<C: GatherInto + ?Sized>(
        &self,
        name: &str,
        op: ReduceOp,
        out: &mut C,
    ) -> Result<()> {
        self.collect_into(name, Some(op), out)
    }

    fn collect_into<C: GatherInto + ?Sized>(
        &self,
        name: &str,
        op: Option<ReduceOp>,
        out: &mut C,
    ) -> Result<()> {
        let value = C::spec()?.value;
        out.fill(&mut |buf, shape| {
            let shape = shape.map(<[usize]>::to_vec);
            transport::lend_mut(buf, |loan| {
                let into = Some(Filling {
                    loan,
                    shape,
                    pull: None,
                });
                let (name, value) = (name.to_string(), value.clone());
                let kind = match op {
                    None => CollectiveKind::Gather { name, value, into },
                    Some(op) => CollectiveKind::Reduce {
                        name,
                        value,
                        op,
                        into,
                    },
                };
                self.client().collective(&self.targets, kind, finish_units)
            })
            .get()
        })
    }

    /// Combines the value `name` of every engine of the view with `f`, in
    /// target order, on the client: for any serde type and any function.
    pub fn reduce_with<T, F>(&self, name: &str, f: F) -> AsyncResult<T>
    where
        T: Value,
        F: Fn(T, T) -> T + Send + Sync + 'static,
    {
        let view: DirectView<Many> = DirectView::new(self.client.clone(), self.targets.to_vec());
        view.pull::<T>(name).and_then(move |values| {
            values
                .into_iter()
                .reduce(&f)
                .ok_or_else(|| Error::Usage("nothing to reduce".into()))
        })
    }

    /// Calls `f` on every engine of the view and combines the results with
    /// `g`, in target order, on the client.
    pub fn apply_reduce<F, M, A, G>(&self, f: F, args: A, g: G) -> AsyncResult<F::Output>
    where
        F: RemoteFn<M>,
        A: crate::remote::Args<M>,
        F::Output: Send,
        G: Fn(F::Output, F::Output) -> F::Output + Send + Sync + 'static,
    {
        let view: DirectView<Many> = DirectView::new(self.client.clone(), self.targets.to_vec());
        view.apply(f, args).and_then(move |values| {
            values
                .into_iter()
                .reduce(&g)
                .ok_or_else(|| Error::Usage("nothing to reduce".into()))
        })
    }

    /// Calls the one-argument remote function `f` on every item, spreading
    /// the items over the view's engines by the scatter rule (one task per
    /// engine); the results come back in input order (ipyparallel's
    /// `DirectView.map`).
    pub fn map<F, M, P, I>(
        &self,
        f: F,
        items: impl IntoIterator<Item = I>,
    ) -> AsyncResult<Vec<F::Output>>
    where
        F: RemoteFn<M>,
        M: OneArg<P>,
        I: IntoArg<P>,
    {
        let _ = f;
        let function = match registry().id_of::<F>() {
            Ok(id) => id,
            Err(e) => return AsyncResult::failed(e),
        };
        let mut encoded = Vec::new();
        for item in items {
            match item.into_wire() {
                Ok(WireArg::Value(bytes)) => encoded.push(bytes),
                Ok(WireArg::Ref(name)) => {
                    return AsyncResult::failed(Error::Usage(format!(
                        "map takes values, not references (Ref {name:?})"
                    )))
                }
                Err(e) => return AsyncResult::failed(e),
            }
        }
        let parts = self.len();
        let counts = bulk::block_counts(encoded.len(), parts);
        let mut items = encoded.into_iter();
        let mut blocks: Vec<Vec<Vec<u8>>> = counts
            .iter()
            .map(|&c| items.by_ref().take(c).collect())
            .collect();
        // One request per engine, each with its own block.
        let view: DirectView<Many> = DirectView::new(self.client.clone(), self.targets.to_vec());
        let results: Vec<AsyncResult<Vec<Vec<F::Output>>>> = self
            .targets
            .iter()
            .zip(blocks.iter_mut())
            .map(|(&engine, block)| {
                let block = std::mem::take(block);
                view.client.submit::<Many, Vec<F::Output>>(
                    &Arc::from(vec![engine]),
                    move |task| {
                        Ok(Request::Map {
                            task,
                            function,
                            items: block,
                        })
                    },
                    decode_many::<F::Output>,
                )
            })
            .collect();
        AsyncResult::join(results)
            .and_then(|per_engine| Ok(per_engine.into_iter().flatten().flatten().collect()))
    }

    /// [`map`](DirectView::map) and wait.
    pub fn map_sync<F, M, P, I>(
        &self,
        f: F,
        items: impl IntoIterator<Item = I>,
    ) -> Result<Vec<F::Output>>
    where
        F: RemoteFn<M>,
        M: OneArg<P>,
        I: IntoArg<P>,
    {
        self.map(f, items).get()
    }
}

fn decode_many<R: DeserializeOwned>(_: usize, payload: &mut Payload) -> Result<Vec<R>> {
    match payload {
        Payload::Many(items) => items.iter().map(|b| codec::decode(b)).collect(),
        other => Err(Error::Protocol(format!("unexpected reply {other:?}"))),
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::result::ResultState;

    /// A finished gather over two engines whose data is `data`.
    fn gathered<C: Gather>(data: BulkVec, parts: Vec<(usize, Vec<usize>)>) -> AsyncResult<C> {
        let state = ResultState::new(1, &[0, 1], "gather", None);
        let result = AsyncResult::new(state.clone(), finish_gathered::<C>);
        state.resolve(
            0,
            Ok(Payload::Gathered(Gathered {
                data,
                value: None,
                parts,
            })),
        );
        state.resolve(1, Ok(Payload::Unit));
        result
    }

    #[test]
    fn a_gathered_value_can_be_inspected_and_read_again() {
        let result: AsyncResult<Vec<u64>> = gathered(
            BulkVec::U64(vec![1, 2, 3]),
            vec![(2, vec![2]), (1, vec![1])],
        );
        assert!(result.successful());
        assert_eq!(result.get().unwrap(), vec![1, 2, 3]);
        assert!(result.successful());
        assert_eq!(result.get().unwrap(), vec![1, 2, 3]);
        // A clone is another handle: into_value copies and leaves the data.
        assert_eq!(result.clone().into_value().unwrap(), vec![1, 2, 3]);
        assert_eq!(result.get().unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn into_value_of_the_only_handle_moves_the_data() {
        let data = vec![1.5f64; 1000];
        let at = data.as_ptr();
        let result: AsyncResult<Vec<f64>> =
            gathered(BulkVec::F64(data), vec![(500, vec![500]), (500, vec![500])]);
        let copy = result.get().unwrap();
        assert_ne!(copy.as_ptr(), at, "get copies");
        let moved = result.into_value().unwrap();
        assert_eq!(moved, copy);
        assert_eq!(moved.as_ptr(), at, "into_value moves the buffer");
    }

    #[test]
    fn gathered_arrays_and_encoded_values_read_twice() {
        let result: AsyncResult<ndarray::Array2<i32>> = gathered(
            BulkVec::I32((0..6).collect()),
            vec![(4, vec![2, 2]), (2, vec![1, 2])],
        );
        let expected = ndarray::Array2::from_shape_vec((3, 2), (0..6).collect()).unwrap();
        assert_eq!(result.get().unwrap(), expected);
        assert_eq!(result.get().unwrap(), expected);
        assert_eq!(result.into_value().unwrap(), expected);

        let first = codec::encode(&vec!["a".to_string()]).unwrap();
        let second = codec::encode(&vec!["b".to_string(), "c".to_string()]).unwrap();
        let parts = vec![(first.len(), Vec::new()), (second.len(), Vec::new())];
        let result: AsyncResult<Vec<String>> =
            gathered(BulkVec::U8([first, second].concat()), parts);
        assert_eq!(result.get().unwrap(), ["a", "b", "c"]);
        assert_eq!(result.get().unwrap(), ["a", "b", "c"]);
        assert!(result.successful());
    }
}
