//! Borrows made `'static` for MPI requests: a task's buffers lent to a
//! team operation (`team.rs`), and the scratch buffer of a small
//! allreduce's steps (`doubling.rs`), each kept alive by its owner until
//! the requests that use it have completed (or leaked with them). One place
//! for that reasoning, for both kinds of operation.

use mpi::request::Request;

/// Extends the borrow of an operation's buffer to `'static` for a request.
pub(super) fn forever<T>(slice: &[T]) -> &'static [T] {
    // SAFETY: the callers pass three kinds of buffer only:
    // - a buffer lent by a task through a `Loan` (the arms of `start`, on
    //   `Loan::buf`, and the same slices kept in a `Doubling`): the lender's
    //   memory stays borrowed, unmoved and alive, until that loan is dropped
    //   (`loan::lend`'s guarantee); the loan is kept beside the operation in
    //   `Running.loans` and is dropped only after the operation has
    //   completed (`Teams::poll`), or is leaked with it (`Teams`'s drop);
    // - a task's buffers given to `Teams::start_here` (kept in a
    //   `Doubling`), whose safety contract makes its caller keep them
    //   borrowed until the allreduce has completed, or for ever;
    // - the `incoming` vector of a `Doubling`, which is neither resized nor
    //   freed while one of its requests is pending (a step's requests all
    //   complete before the next step touches it, and `Doubling`'s drop
    //   leaks it with any request still pending);
    // so the slice outlives every use MPI makes of it.
    unsafe { std::slice::from_raw_parts(slice.as_ptr(), slice.len()) }
}

/// [`forever`] for a buffer MPI writes.
pub(super) fn forever_mut<T>(slice: &mut [T]) -> &'static mut [T] {
    // SAFETY: as for `forever`; in addition a task's buffer was lent
    // writable (`loan::lend_mut`: an exclusive borrow of the lender's
    // buffer), and nothing but the request touches the buffer until the
    // request completes (a `Doubling` combines only after its step's
    // requests have all completed).
    unsafe { std::slice::from_raw_parts_mut(slice.as_mut_ptr(), slice.len()) }
}

/// A request with its buffer type forgotten, so that requests of every
/// operation can wait in one list (the buffers are kept by their loans).
pub(super) fn erase<D: ?Sized>(request: Request<'static, D>) -> Request<'static, ()> {
    // SAFETY: `into_raw` hands over the live MPI request without completing
    // or freeing it, and `from_raw` takes it back: the request handle is the
    // same and still owned once. The data reference rsmpi keeps is only
    // handed back by `wait_for_data`/`test_with_data`, which are not used;
    // the buffer itself stays alive through its loan (see `forever`).
    unsafe {
        let (raw, _, scope) = request.into_raw();
        Request::from_raw(raw, &(), scope)
    }
}
