//! The wire protocol between the controller (rank 0) and the engines.
//!
//! Typed message enums and their encoding, and nothing else: no MPI, no
//! threads, so that every message can be round-trip tested alone. Decoding is
//! bounded by the codec; a malformed message is a [`Error::Protocol`].
//!
//! ## Message ordering
//!
//! Each engine receives [`Request`]s from the controller in the order they were
//! sent (MPI's non-overtaking rule on one communicator and tag) and executes
//! them in that order, so a `Push` followed by an `Apply` always sees the
//! pushed value, whatever else is in flight (see the controller's "Message
//! ordering" for collectives). Replies from one engine arrive in the order it
//! finished them.
//!
//! ## Bytes
//!
//! Every byte-string field (encoded values, arguments, results) is encoded
//! as one length and a block of bytes (`serde_bytes`), not element by
//! element. A field of a megabyte or more is not wrapped at all: it travels
//! beside its message as a raw attachment ([`framed`]), so an encoded value
//! is never copied into or out of a message.

mod framed;
mod message;

pub(crate) use self::framed::{decode_head, encode_framed, read_framed, Blobs, Framed};
pub(crate) use self::message::{
    encode, CollectiveOp, Done, Each, Failure, GroupOutcome, GroupSpec, Outcome, Packed, Peer,
    Reply, Request, TeamSpec, ValueSpec, WireTask, Work,
};
pub use self::message::{WireArg, WireArgs};
pub(crate) use crate::codec::Typed;
use crate::error::Result;
pub(crate) use crate::scheduler::TaskId;

/// Decodes `bytes` as a `Reply` (engine → controller) when `reply`, else
/// as a `Request`, and re-encodes what it decoded: the entry point of the
/// protocol fuzz test (`tests/protocol_fuzz.rs`), which cannot name these
/// crate-private types (a head's attachments are not received). Not public
/// API. (`Peer` messages are fuzzed by
/// this module's own tests.)
#[doc(hidden)]
pub fn fuzz_decode(bytes: &[u8], reply: bool) -> Result<Vec<u8>> {
    if reply {
        encode(decode_head::<Reply>(bytes)?.message())
    } else {
        encode(decode_head::<Request>(bytes)?.message())
    }
}

#[cfg(test)]
mod tests;
