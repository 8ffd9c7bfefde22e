//! Views: the ways a client addresses engines.
//!
//! A [`DirectView`] is a fixed set of engines (MPI ranks). Its shape
//! ([`One`] or [`Many`]) decides what a call returns: a view of one engine
//! (`rc.engine(0)`) gives the value itself, a view of several (`rc.view(..)`,
//! `rc.all()`) a `Vec` in target order, as ipyparallel's `rc[0]` and `rc[:]`
//! do. A [`LoadBalancedView`] runs each task once, on whichever of its
//! engines is free. Sending and tracking requests is left to the client and
//! controller.

pub mod collective;
pub mod direct;
pub mod load_balanced;
pub mod shell;

pub use collective::{Gather, GatherInto, OneArg, Reducible, Scatter};
pub use direct::DirectView;
pub use load_balanced::{AsyncMap, Dependencies, IMap, LoadBalancedView};
pub use shell::{ShellOutput, ShellStatus};

use crate::error::{Error, Result};

mod sealed {
    pub trait Sealed {}
}

/// The shape of a view: how per-engine results are returned.
pub trait Shape: sealed::Sealed + Send + Sync + 'static {
    /// What a call returns when each engine gives an `R`.
    type Out<R>;
    /// Whether errors come one by one (one engine) or as [`Error::Composite`].
    #[doc(hidden)]
    const SINGLE: bool;
    /// Builds the output from the per-engine values, in target order.
    #[doc(hidden)]
    fn wrap<R>(values: Vec<R>) -> Result<Self::Out<R>>;
}

/// A view of exactly one engine: calls return the engine's value.
#[derive(Debug, Clone, Copy)]
pub enum One {}

/// A view of one or more engines: calls return a `Vec`, in target order.
#[derive(Debug, Clone, Copy)]
pub enum Many {}

impl sealed::Sealed for One {}
impl sealed::Sealed for Many {}

impl Shape for One {
    type Out<R> = R;
    const SINGLE: bool = true;
    fn wrap<R>(values: Vec<R>) -> Result<R> {
        values
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol("no reply from the view's engine".into()))
    }
}

impl Shape for Many {
    type Out<R> = Vec<R>;
    const SINGLE: bool = false;
    fn wrap<R>(values: Vec<R>) -> Result<Vec<R>> {
        Ok(values)
    }
}
