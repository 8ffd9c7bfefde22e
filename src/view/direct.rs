//! `DirectView`: a fixed set of engines addressed together.
//!
//! Applies functions on every engine of the view and moves named values in
//! and out of their namespaces (push/pull, keys, clear). Each call is one
//! request per engine, executed in submission order on each engine. Building
//! requests and decoding replies happens here; sending them is the client's
//! job. The client's views of its engines ([`Client::engine`],
//! [`Client::view`], [`Client::all`]) are made here too.

use std::any::type_name;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::bulk::{self, BulkVec};
use crate::client::{Client, Targets};
use crate::codec;
use crate::contract::{finish_units, Buffer, CollectiveKind, Filling};
use crate::error::{Error, Result};
use crate::loan;
use crate::namespace::Value;
use crate::protocol::{Request, Typed, ValueSpec, WireArgs};
use crate::registry::encode_call;
use crate::remote::{Args, RemoteFn};
use crate::result::{AsyncResult, Gathered, Payload};
use crate::view::containers::GatherInto;
use crate::view::shape::{Many, One, Shape};

/// A set of engines driven together (ipyparallel's `DirectView`).
///
/// `S` is [`One`] for `rc.engine(i)` (calls return the value) and
/// [`Many`] for `rc.view(..)` and `rc.all()` (calls return a `Vec` in target
/// order). Cheap to clone.
///
/// # Examples
///
/// ```no_run
/// #[rankview::remote]
/// fn mul_by_a(b: f64) -> rankview::TaskResult<f64> {
///     Ok(*rankview::globals().get::<f64>("a")? * b)
/// }
///
/// rankview::launch(|rc| -> rankview::Result<()> {
///     let dv = rc.all();
///     dv.set("a", &2.0f64)?;                       // dv['a'] = 2.0
///     let products = dv.apply_sync(mul_by_a, (10.0,))?;
///     assert!(products.iter().all(|&p| p == 20.0));
///     let a: Vec<f64> = dv.get("a")?;              // dv['a']
///     assert_eq!(a.len(), rc.len());
///     Ok(())
/// });
/// ```
pub struct DirectView<S: Shape = Many> {
    pub(crate) client: Client,
    pub(super) targets: Arc<[usize]>,
    _shape: PhantomData<S>,
}

impl<S: Shape> Clone for DirectView<S> {
    fn clone(&self) -> Self {
        DirectView {
            client: self.client.clone(),
            targets: self.targets.clone(),
            _shape: PhantomData,
        }
    }
}

impl<S: Shape> fmt::Debug for DirectView<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<DirectView {:?}>", &*self.targets)
    }
}

/// Several named values to push at once, possibly of different types.
///
/// # Examples
///
/// ```no_run
/// # fn demo(e0: rankview::DirectView<rankview::One>) -> rankview::Result<()> {
/// let values = rankview::Values::new().with("a", &1.03234f64)?.with("b", &3453i64)?;
/// e0.push_values(values).get()?;     // e0.push(dict(a=1.03234, b=3453))
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Values {
    items: Vec<(String, Typed)>,
}

impl Values {
    /// No values yet.
    pub fn new() -> Self {
        Values::default()
    }

    /// Adds `value` under `name` (encoded now).
    pub fn with<T: Value>(mut self, name: impl Into<String>, value: &T) -> Result<Self> {
        self.items.push((name.into(), typed(value)?));
        Ok(self)
    }
}

fn typed<T: Value>(value: &T) -> Result<Typed> {
    Ok(Typed {
        fingerprint: codec::fingerprint::<T>(),
        type_name: type_name::<T>().to_string(),
        bytes: Arc::new(codec::encode(value)?),
    })
}

pub(super) fn decode_value<R: DeserializeOwned>(_: usize, payload: &mut Payload) -> Result<R> {
    match payload {
        Payload::Value(bytes) => codec::decode(bytes),
        other => Err(unexpected(other)),
    }
}

fn decode_unit(_: usize, payload: &mut Payload) -> Result<()> {
    match payload {
        Payload::Unit => Ok(()),
        other => Err(unexpected(other)),
    }
}

fn decode_keys(_: usize, payload: &mut Payload) -> Result<Vec<String>> {
    match payload {
        Payload::Keys(keys) => Ok(keys.clone()),
        other => Err(unexpected(other)),
    }
}

/// Decodes the single value of a one-name pull, checking its type.
fn decode_pulled<T: DeserializeOwned + 'static>(
    engine: usize,
    name: &str,
    payload: &mut Payload,
) -> Result<T> {
    match payload {
        Payload::Values(values) if values.len() == 1 => {
            let value = &values[0];
            check_type::<T>(engine, name, value.fingerprint, &value.type_name)?;
            codec::decode(&value.bytes)
        }
        Payload::Gathered(Gathered {
            value: Some(value), ..
        })
        | Payload::Movable(Gathered {
            value: Some(value), ..
        }) => {
            check_type::<T>(engine, name, value.fingerprint, &value.type_name)?;
            let entry = bulk::table().get(&value.fingerprint).ok_or_else(|| {
                Error::Protocol(format!("{} is not a bulk type here", value.type_name))
            })?;
            // The only handle moves the received elements out; others copy.
            let gathered = match std::mem::replace(payload, Payload::Taken) {
                Payload::Movable(g) => g,
                Payload::Gathered(g) => {
                    let copy = g.data.clone();
                    let shape = g.parts.first().map(|p| p.1.clone()).unwrap_or_default();
                    *payload = Payload::Gathered(g);
                    Gathered {
                        data: copy,
                        value: None,
                        parts: vec![(0, shape)],
                    }
                }
                other => return Err(unexpected(&other)),
            };
            let shape = gathered
                .parts
                .into_iter()
                .next()
                .map(|p| p.1)
                .unwrap_or_default();
            let value = (entry.build_boxed)(gathered.data, shape)?;
            value.downcast::<T>().map(|v| *v).map_err(|_| {
                Error::Protocol(format!("{} rebuilt as another type", type_name::<T>()))
            })
        }
        other => Err(unexpected(other)),
    }
}

/// A pulled value of another type than `T` is [`Error::TypeMismatch`].
fn check_type<T: 'static>(engine: usize, name: &str, fingerprint: u64, found: &str) -> Result<()> {
    if fingerprint == codec::fingerprint::<T>() {
        return Ok(());
    }
    Err(Error::TypeMismatch {
        engine,
        name: name.to_string(),
        expected: type_name::<T>().to_string(),
        found: found.to_string(),
    })
}

fn unexpected(payload: &Payload) -> Error {
    Error::Protocol(format!("unexpected reply {payload:?}"))
}

/// Direct views of the client's engines (ipyparallel's `rc[i]`,
/// `rc[a:b]`, `rc[:]`).
impl Client {
    /// A view of one engine; negative indices count from the end (`-1` is the last).
    pub fn engine(&self, index: i64) -> Result<DirectView<One>> {
        let engines = self.len();
        let resolved = if index < 0 {
            i64::try_from(engines).ok().map(|n| n + index)
        } else {
            Some(index)
        };
        match resolved.and_then(|i| usize::try_from(i).ok()) {
            Some(i) if i < engines => Ok(DirectView::new(self.clone(), vec![i])),
            _ => Err(Error::InvalidTarget { index, engines }),
        }
    }

    /// A view of several engines: a range (`1..3`, `..`, `2..`) or a list.
    pub fn view(&self, targets: impl Targets) -> Result<DirectView<Many>> {
        let engines = self.len();
        let list = targets.resolve(engines)?;
        if list.is_empty() {
            return Err(Error::Usage("a view needs at least one engine".into()));
        }
        for (i, &t) in list.iter().enumerate() {
            if t >= engines {
                return Err(Error::InvalidTarget {
                    index: i64::try_from(t).unwrap_or(i64::MAX),
                    engines,
                });
            }
            if list[..i].contains(&t) {
                return Err(Error::Usage(format!("engine {t} is listed twice")));
            }
        }
        Ok(DirectView::new(self.clone(), list))
    }

    /// A view of every engine (`rc[:]`).
    pub fn all(&self) -> DirectView<Many> {
        DirectView::new(self.clone(), self.ids())
    }
}

impl<S: Shape> DirectView<S> {
    pub(crate) fn new(client: Client, targets: Vec<usize>) -> Self {
        DirectView {
            client,
            targets: targets.into(),
            _shape: PhantomData,
        }
    }

    /// The engine ids of this view, in order.
    pub fn targets(&self) -> &[usize] {
        &self.targets
    }

    /// Number of engines in the view.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Always false: a view has at least one engine.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Runs `f(args)` on every engine of the view (ipyparallel's
    /// `view.apply(f, *args)`). `f` must be marked `#[rankview::remote]`;
    /// `args` is a tuple whose items are values, references to values, or
    /// [`Ref`](crate::Ref)s to engine values.
    pub fn apply<F, M, A>(&self, f: F, args: A) -> AsyncResult<S::Out<F::Output>>
    where
        F: RemoteFn<M>,
        A: Args<M>,
    {
        let _ = f;
        match encode_call::<F, M, A>(args) {
            Ok((function, wire)) => self.apply_wire(function, wire),
            Err(e) => AsyncResult::failed(e),
        }
    }

    /// Runs the registered function `function` with arguments already
    /// encoded on every engine of the view.
    pub(crate) fn apply_wire<R: DeserializeOwned + 'static>(
        &self,
        function: u64,
        wire: WireArgs,
    ) -> AsyncResult<S::Out<R>> {
        // Several engines: the task gets their communicator (`rankview::comm`).
        let team = (self.targets.len() > 1).then(|| self.client.team(&self.targets));
        self.client.submit::<S, R>(
            &self.targets,
            move |task| {
                Ok(Request::Apply {
                    task,
                    function,
                    args: wire,
                    team,
                })
            },
            decode_value::<R>,
        )
    }

    /// [`apply`](DirectView::apply) and wait for the value.
    pub fn apply_sync<F, M, A>(&self, f: F, args: A) -> Result<S::Out<F::Output>>
    where
        F: RemoteFn<M>,
        A: Args<M>,
    {
        self.apply(f, args).get()
    }

    /// Stores `value` under `name` on every engine of the view.
    ///
    /// Numeric data (an [`Element`](crate::Element), a `Vec` or an `ndarray`
    /// array of them) is broadcast as a raw buffer (`MPI_Bcast`, read in
    /// place; this call returns once it has been sent). Other values are
    /// encoded once and broadcast to a view of several engines, or sent
    /// point to point to a single engine.
    pub fn push<T: Value>(&self, name: &str, value: &T) -> AsyncResult<()> {
        let fingerprint = codec::fingerprint::<T>();
        if let Some(entry) = bulk::table().get(&fingerprint) {
            if let Some((buf, shape)) = (entry.view)(value) {
                let spec = ValueSpec {
                    fingerprint,
                    type_name: entry.type_name.to_string(),
                    bulk: Some(entry.elem),
                };
                return loan::lend(buf, |loan| {
                    self.broadcast(name, spec, Buffer::Lent(loan), shape)
                });
            }
        }
        if self.len() > 1 {
            let spec = ValueSpec {
                fingerprint,
                type_name: type_name::<T>().to_string(),
                bulk: None,
            };
            return match codec::encode(value) {
                Ok(bytes) => {
                    self.broadcast(name, spec, Buffer::Owned(BulkVec::U8(bytes)), Vec::new())
                }
                Err(e) => AsyncResult::failed(e),
            };
        }
        match Values::new().with(name, value) {
            Ok(values) => self.push_values(values),
            Err(e) => AsyncResult::failed(e),
        }
    }

    fn broadcast(
        &self,
        name: &str,
        value: ValueSpec,
        data: Buffer,
        shape: Vec<usize>,
    ) -> AsyncResult<()> {
        self.client.collective(
            &self.targets,
            CollectiveKind::Broadcast {
                name: name.to_string(),
                value,
                data,
                shape,
            },
            finish_units,
        )
    }

    /// Stores several named values on every engine of the view.
    pub fn push_values(&self, values: Values) -> AsyncResult<()> {
        let result = self.client.submit::<Many, ()>(
            &self.targets,
            move |task| {
                Ok(Request::Push {
                    task,
                    items: values.items,
                })
            },
            decode_unit,
        );
        unit(result)
    }

    /// [`push`](DirectView::push) and wait (`dv['a'] = x`).
    pub fn set<T: Value>(&self, name: &str, value: &T) -> Result<()> {
        self.push(name, value).get()
    }

    /// Fetches `name` from every engine of the view as a `T`. A missing name
    /// is [`Error::NameError`], another type [`Error::TypeMismatch`].
    ///
    /// A numeric value (an [`Element`](crate::Element), a `Vec` or an
    /// `ndarray` array of them) travels as a raw buffer, sent straight from
    /// the engine's value and received once on rank 0;
    /// [`into_value`](AsyncResult::into_value) (and [`get`](DirectView::get))
    /// hand that buffer over, while `AsyncResult::get` copies it (the result
    /// keeps its own). Other values are encoded once on the engine and decoded once here.
    pub fn pull<T: DeserializeOwned + 'static>(&self, name: &str) -> AsyncResult<S::Out<T>> {
        let owned = name.to_string();
        let name = owned.clone();
        self.client.submit::<S, T>(
            &self.targets,
            move |task| {
                Ok(Request::Pull {
                    task,
                    names: vec![owned],
                })
            },
            move |engine, payload| decode_pulled::<T>(engine, &name, payload),
        )
    }

    /// [`pull`](DirectView::pull) of a numeric value into memory the caller
    /// already has, on the terms of
    /// [`gather_into`](DirectView::gather_into): a slice or `Vec` (filled
    /// over its current length) for a `Vec` on the engine, an `ndarray`
    /// array of the same shape for an array. The elements are received
    /// straight into `out` (a non-contiguous array costs one copy); nothing
    /// is allocated, which is the form for loops. Blocks until they are
    /// there. Another type is [`Error::TypeMismatch`], another length or
    /// shape [`Error::Usage`], and `out` is then left as it was.
    pub fn pull_into<C: GatherInto + ?Sized>(&self, name: &str, out: &mut C) -> Result<()> {
        let [_] = *self.targets else {
            return Err(Error::Usage(format!(
                "pull_into reads one engine's value; this view has {} engines",
                self.targets.len()
            )));
        };
        let wanted = C::spec()?.value;
        out.fill(&mut |buf, shape| {
            let (owned, label, expected) = (name.to_string(), name.to_string(), wanted.clone());
            loan::lend_mut(buf, |loan| {
                let filling = Filling {
                    loan,
                    shape: shape.map(<[usize]>::to_vec),
                    pull: Some((owned.clone(), expected.clone())),
                };
                self.client.submit_into::<One, ()>(
                    &self.targets,
                    move |task| {
                        Ok(Request::Pull {
                            task,
                            names: vec![owned],
                        })
                    },
                    // A value that is not numeric comes back encoded.
                    move |engine, payload| match payload {
                        Payload::Unit => Ok(()),
                        Payload::Values(values) => Err(Error::TypeMismatch {
                            engine,
                            name: label.clone(),
                            expected: expected.type_name.clone(),
                            found: values
                                .first()
                                .map(|v| v.type_name.clone())
                                .unwrap_or_default(),
                        }),
                        other => Err(unexpected(other)),
                    },
                    Some(filling),
                )
            })
            .get()
        })
    }

    /// [`pull`](DirectView::pull) and wait (`dv['a']`). Numeric data is
    /// moved out of the received buffer, not copied.
    pub fn get<T: DeserializeOwned + 'static>(&self, name: &str) -> Result<S::Out<T>> {
        self.pull(name).into_value()
    }

    /// The names defined on each engine, sorted (`%who`).
    pub fn keys(&self) -> AsyncResult<S::Out<Vec<String>>> {
        self.client.submit::<S, Vec<String>>(
            &self.targets,
            |task| Ok(Request::Keys { task }),
            decode_keys,
        )
    }

    /// Removes every name on every engine of the view.
    pub fn clear(&self) -> AsyncResult<()> {
        unit(self.client.submit::<Many, ()>(
            &self.targets,
            |task| Ok(Request::Clear { task }),
            decode_unit,
        ))
    }
}

/// Collapses the per-engine `()`s of a many-engine call into one `()`.
fn unit(result: AsyncResult<Vec<()>>) -> AsyncResult<()> {
    result.map(|_| ())
}
