//! The collective operations of a `DirectView`: scatter, gather, broadcast
//! push, reduce and map.
//!
//! Each view's collectives run on a sub-communicator of rank 0 and the view's
//! engines. Bulk numeric data ([`Element`](crate::Element) vectors and `ndarray` arrays)
//! moves as raw MPI buffers (`MPI_Scatterv`, `MPI_Gatherv`, `MPI_Bcast`,
//! `MPI_Reduce`); other serde data moves as codec bytes through the same
//! collectives. [`Scatter`] and [`Gather`] say how a container is split and
//! put back together (`containers.rs`, re-exported here); the controller
//! runs the MPI side.

use std::borrow::Cow;
use std::sync::Arc;

use serde::de::DeserializeOwned;

pub use crate::view::arity::OneArg;
pub use crate::view::containers::{
    Fill, Gather, GatherInto, GatherSpec, Reducible, Scatter, ScatterPlan,
};

use crate::bulk::{self, Distribution, ReduceOp};
use crate::client::Client;
use crate::codec;
use crate::contract::{finish_units, Buffer, CollectiveKind, Filling};
use crate::error::{Error, Result};
use crate::loan;
use crate::namespace::Value;
use crate::protocol::Request;
use crate::registry::registry;
use crate::remote::{IntoArg, RemoteFn};
use crate::result::{AsyncResult, Payload};
use crate::view::containers::PlanData;
use crate::view::direct::DirectView;
use crate::view::queue::encode_item;
use crate::view::shape::{Many, Shape};

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
            PlanData::Borrowed(buf) => loan::lend(buf, |loan| submit(Buffer::Lent(loan))),
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
    /// a slice or `Vec` of an [`Element`](crate::Element) type (filled over its current
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
            loan::lend_mut(buf, |loan| {
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
            match encode_item(item) {
                Ok(bytes) => encoded.push(bytes),
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
mod tests {
    use super::*;
    use crate::bulk::BulkVec;
    use crate::result::{Gathered, ResultState};

    /// A finished gather over two engines whose data is `data`.
    fn gathered<C: Gather>(data: BulkVec, parts: Vec<(usize, Vec<usize>)>) -> AsyncResult<C> {
        let state = ResultState::new(1, &[0, 1], &"gather", false);
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
