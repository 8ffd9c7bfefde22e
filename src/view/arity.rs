//! What `map` accepts: remote functions of exactly one parameter
//! ([`OneArg`]), for a direct view's, a load-balanced view's and an
//! executor's `map` alike.

/// Marks the functions `map` accepts: one parameter, of type `P`.
#[diagnostic::on_unimplemented(
    message = "`map` takes a function of one parameter",
    label = "this function does not take exactly one parameter",
    note = "each item is the one argument: for several parameters, take a tuple parameter, or use `apply` per call"
)]
pub trait OneArg<P> {}

impl<K, P, R> OneArg<P> for (K, fn(P) -> R) {}
