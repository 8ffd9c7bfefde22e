//! The shape of a view: what a call returns when each engine gives a
//! value ([`Shape`]: [`One`] engine gives the value itself, [`Many`] a
//! `Vec` in target order).
//!
//! Below the client, which puts per-engine replies together by a view's
//! shape, and the views, which are generic over it.

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
    /// [`wrap`](Shape::wrap) of one engine's value, without a `Vec` for a
    /// view of one engine.
    #[doc(hidden)]
    fn wrap_one<R>(value: R) -> Result<Self::Out<R>>;
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
    fn wrap_one<R>(value: R) -> Result<R> {
        Ok(value)
    }
}

impl Shape for Many {
    type Out<R> = Vec<R>;
    const SINGLE: bool = false;
    fn wrap<R>(values: Vec<R>) -> Result<Vec<R>> {
        Ok(values)
    }
    fn wrap_one<R>(value: R) -> Result<Vec<R>> {
        Ok(vec![value])
    }
}
