//! Views: the ways a client addresses engines.
//!
//! A [`DirectView`] is a fixed set of engines (MPI ranks). Its shape
//! ([`One`] or [`Many`]) decides what a call returns: a view of one engine
//! (`rc.engine(0)`) gives the value itself, a view of several (`rc.view(..)`,
//! `rc.all()`) a `Vec` in target order, as ipyparallel's `rc[0]` and `rc[:]`
//! do. A [`LoadBalancedView`] runs each task once, on whichever of its
//! engines is free. Sending and tracking requests is left to the client and
//! controller.

pub(crate) mod arity;
pub(crate) mod async_map;
pub mod collective;
pub(crate) mod containers;
pub mod direct;
pub(crate) mod groups;
pub mod load_balanced;
pub(crate) mod queue;
pub(crate) mod shape;
pub mod shell;

pub use arity::OneArg;
pub use async_map::AsyncMap;
pub use containers::{Gather, GatherInto, Reducible, Scatter};
pub use direct::DirectView;
pub use load_balanced::{Dependencies, IMap, LoadBalancedView};
pub use shape::{Many, One, Shape};
pub use shell::{ShellOutput, ShellStatus};
