//! Messages whose large byte fields travel beside them, not inside them.
//!
//! An encoded value (a pushed value, an argument, a result, a pulled value)
//! of [`ATTACH_FROM`] bytes or more is not copied into its message's
//! encoding: the message goes as a small *head* with that field left empty,
//! and each such field follows as one raw data message from the same rank
//! (the transport's data messages, as a numeric `pull` uses). The value is
//! encoded once, sent from the buffer it was encoded into, received into a
//! buffer of its own and decoded from there: no envelope copies on either
//! side.
//!
//! A head with attachments starts with [`FRAMED`] (no bincode variant index
//! is that large) and holds, before the message, which fields were detached
//! (their index in [`Blobs::blobs`] order) and their lengths. The receiver
//! decodes the head ([`decode_head`]), receives exactly those lengths from the
//! same source, in order, and puts them back ([`Head::attach`]). A head that
//! names a field the message does not have, or that is not empty, is a
//! protocol error.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::message::{
    decode, Done, Outcome, Packed, Peer, Reply, Request, WireArg, WireTask, Work,
};
use crate::codec::{self, Typed};
use crate::error::{Error, Result};

/// Byte fields this long or longer travel as attachments.
pub(crate) const ATTACH_FROM: usize = 1 << 20;

/// Bytes a head's buffer starts with: most heads fit.
const HEAD_CAPACITY: usize = 128;

/// First byte of a head with attachments.
const FRAMED: u8 = 0xfe;

/// One byte field of a message, as [`Blobs::blobs`] visits it.
pub(crate) enum BlobField<'a> {
    /// A field the message owns alone.
    Owned(&'a mut Vec<u8>),
    /// A field whose bytes may also be held elsewhere (a namespace's
    /// encoded value): detaching it shares them instead of copying.
    Shared(&'a mut Arc<Vec<u8>>),
}

impl BlobField<'_> {
    fn len(&self) -> usize {
        match self {
            BlobField::Owned(v) => v.len(),
            BlobField::Shared(a) => a.len(),
        }
    }

    /// Takes the bytes out, leaving the field empty.
    fn take(self) -> Arc<Vec<u8>> {
        match self {
            BlobField::Owned(v) => Arc::new(std::mem::take(v)),
            BlobField::Shared(a) => std::mem::take(a),
        }
    }

    /// Puts received bytes into the (empty) field.
    fn put(self, bytes: Vec<u8>) {
        match self {
            BlobField::Owned(v) => *v = bytes,
            BlobField::Shared(a) => *a = Arc::new(bytes),
        }
    }
}

/// A message whose byte fields can be visited, always in the same order.
pub(crate) trait Blobs {
    /// Calls `each` on every byte field that may be large.
    fn blobs(&mut self, each: &mut dyn FnMut(BlobField<'_>));
}

/// A message ready to send: its head, then each attachment in order.
#[derive(Clone)]
pub(crate) struct Framed {
    pub head: Arc<Vec<u8>>,
    pub blobs: Vec<Arc<Vec<u8>>>,
}

/// Encodes `message`, detaching every byte field of [`ATTACH_FROM`] bytes
/// or more (the message is left with those fields empty).
pub(crate) fn encode_framed<M: Serialize + Blobs>(message: &mut M) -> Result<Framed> {
    let mut attached: Vec<(u32, u64)> = Vec::new();
    let mut blobs = Vec::new();
    let mut index = 0u32;
    message.blobs(&mut |field| {
        if field.len() >= ATTACH_FROM {
            attached.push((index, field.len() as u64));
            blobs.push(field.take());
        }
        index += 1;
    });
    if blobs.is_empty() {
        // One pass, into a buffer that grows: a head is small, or a batch
        // of small tasks, and sizing it first would serialize it twice (on
        // the hot path of every load-balanced task). Growing copies each
        // byte about once more, what the sizing pass cost too.
        let mut head = Vec::with_capacity(HEAD_CAPACITY);
        codec::encode_into(&*message, &mut head)?;
        return Ok(Framed {
            head: Arc::new(head),
            blobs,
        });
    }
    let mut head = vec![FRAMED];
    codec::encode_into(&(&attached, &*message), &mut head)?;
    Ok(Framed {
        head: Arc::new(head),
        blobs,
    })
}

/// A decoded head: the message, and the attachments still to receive.
#[derive(Debug)]
pub(crate) struct Head<M> {
    message: M,
    /// Index of each detached field and its length.
    attached: Vec<(u32, u64)>,
}

/// Decodes a head (or a whole message without attachments); any defect is
/// an [`Error::Protocol`].
pub(crate) fn decode_head<M: DeserializeOwned>(bytes: &[u8]) -> Result<Head<M>> {
    match bytes.split_first() {
        Some((&FRAMED, rest)) => {
            let (attached, message): (Vec<(u32, u64)>, M) = decode(rest)?;
            if attached.windows(2).any(|w| w[0].0 >= w[1].0) || attached.is_empty() {
                return Err(Error::Protocol(
                    "malformed message: attachments out of order".into(),
                ));
            }
            Ok(Head { message, attached })
        }
        _ => Ok(Head {
            message: decode(bytes)?,
            attached: Vec::new(),
        }),
    }
}

/// Reads a message that arrived as `bytes`, receiving its attachments
/// with `receive` (see [`Head::receive`]). The outer error means its
/// attachments did not arrive as announced: the sender's data messages are
/// now out of step with its messages, and the caller ends the job. The
/// inner one means the head itself was malformed: that message alone is
/// lost.
pub(crate) fn read_framed<M: DeserializeOwned + Blobs>(
    bytes: &[u8],
    receive: impl FnOnce(&[u64]) -> Result<Vec<Vec<u8>>>,
) -> Result<Result<M>> {
    match decode_head::<M>(bytes) {
        Ok(head) => head.receive(receive).map(Ok),
        Err(e) => Ok(Err(e)),
    }
}

impl<M: Blobs> Head<M> {
    /// The lengths of the attachments to receive, in order.
    pub(crate) fn lens(&self) -> Vec<u64> {
        self.attached.iter().map(|&(_, len)| len).collect()
    }

    /// The message with the received attachments (`blobs`, in the order of
    /// [`lens`](Head::lens)) put back into their fields.
    pub(crate) fn attach(mut self, blobs: Vec<Vec<u8>>) -> Result<M> {
        if blobs.len() != self.attached.len() {
            return Err(Error::Protocol(format!(
                "{} attachments announced, {} received",
                self.attached.len(),
                blobs.len()
            )));
        }
        let mut wanted = self.attached.iter().map(|&(i, _)| i).peekable();
        let mut blobs = blobs.into_iter();
        let mut index = 0u32;
        let mut misplaced = false;
        self.message.blobs(&mut |field| {
            if wanted.peek() == Some(&index) {
                wanted.next();
                misplaced |= field.len() != 0;
                if let Some(bytes) = blobs.next() {
                    field.put(bytes);
                }
            }
            index += 1;
        });
        if misplaced || wanted.next().is_some() {
            return Err(Error::Protocol(
                "malformed message: an attachment names a field the message does not have".into(),
            ));
        }
        Ok(self.message)
    }

    /// The message as decoded, attachments not yet in place.
    pub(crate) fn message(&self) -> &M {
        &self.message
    }

    /// The whole message: `receive` gets the attachments (given their
    /// lengths, in order) from wherever the head came from, and they are
    /// put in place. `receive` is not called when there are none.
    pub(crate) fn receive(self, receive: impl FnOnce(&[u64]) -> Result<Vec<Vec<u8>>>) -> Result<M> {
        if self.attached.is_empty() {
            return Ok(self.message);
        }
        let blobs = receive(&self.lens())?;
        self.attach(blobs)
    }
}

impl Blobs for WireArg {
    fn blobs(&mut self, each: &mut dyn FnMut(BlobField<'_>)) {
        if let WireArg::Value(bytes) = self {
            each(BlobField::Owned(bytes));
        }
    }
}

impl Blobs for Typed {
    fn blobs(&mut self, each: &mut dyn FnMut(BlobField<'_>)) {
        each(BlobField::Shared(&mut self.bytes));
    }
}

impl Blobs for Packed {
    fn blobs(&mut self, each: &mut dyn FnMut(BlobField<'_>)) {
        each(BlobField::Owned(&mut self.bytes));
    }
}

/// Lists of any kind (`Vec`, a call's `WireArgs`) through their items.
impl<T: Blobs> Blobs for [T] {
    fn blobs(&mut self, each: &mut dyn FnMut(BlobField<'_>)) {
        for item in self {
            item.blobs(each);
        }
    }
}

impl Blobs for Vec<u8> {
    fn blobs(&mut self, each: &mut dyn FnMut(BlobField<'_>)) {
        each(BlobField::Owned(self));
    }
}

impl Blobs for Work {
    fn blobs(&mut self, each: &mut dyn FnMut(BlobField<'_>)) {
        match self {
            Work::Apply { args, .. } => args.blobs(each),
            Work::Map { items, .. } => items.blobs(each),
            Work::Group { work, .. } => work.blobs(each),
        }
    }
}

impl Blobs for WireTask {
    fn blobs(&mut self, each: &mut dyn FnMut(BlobField<'_>)) {
        self.work.blobs(each);
    }
}

impl Blobs for Request {
    fn blobs(&mut self, each: &mut dyn FnMut(BlobField<'_>)) {
        match self {
            Request::Apply { args, .. } => args.blobs(each),
            Request::Push { items, .. } => {
                for (_, typed) in items {
                    typed.blobs(each);
                }
            }
            Request::Map { items, .. } => items.blobs(each),
            Request::Tasks { tasks, .. } => tasks.blobs(each),
            Request::Pull { .. }
            | Request::Keys { .. }
            | Request::Clear { .. }
            | Request::Collective { .. }
            | Request::Abort { .. }
            | Request::Shutdown { .. }
            | Request::Exit => {}
        }
    }
}

impl Blobs for Outcome {
    fn blobs(&mut self, each: &mut dyn FnMut(BlobField<'_>)) {
        match self {
            Outcome::Value(bytes) => bytes.blobs(each),
            Outcome::Values(values) => values.blobs(each),
            Outcome::Many(items) => items.blobs(each),
            Outcome::Each(e) => e.values.blobs(each),
            Outcome::Group(group) => group.outcome.blobs(each),
            Outcome::Keys(_) | Outcome::Unit | Outcome::Failed(_) | Outcome::Bulk { .. } => {}
        }
    }
}

impl Blobs for Done {
    fn blobs(&mut self, each: &mut dyn FnMut(BlobField<'_>)) {
        self.outcome.blobs(each);
    }
}

impl Blobs for Reply {
    fn blobs(&mut self, each: &mut dyn FnMut(BlobField<'_>)) {
        match self {
            Reply::Done(done) => done.blobs(each),
            Reply::Progress { done, .. } => done.blobs(each),
            Reply::Hello { .. }
            | Reply::Ready { .. }
            | Reply::Stolen { .. }
            | Reply::Aborted { .. }
            | Reply::Quiet
            | Reply::Goodbye => {}
        }
    }
}

impl Blobs for Peer {
    fn blobs(&mut self, each: &mut dyn FnMut(BlobField<'_>)) {
        match self {
            Peer::Give { tasks, .. } => {
                for (task, _) in tasks {
                    task.blobs(each);
                }
            }
            Peer::GroupRun { work, .. } => work.blobs(each),
            Peer::GroupDone { done } => done.blobs(each),
            Peer::Steal { .. } | Peer::GroupAbandon { .. } => {}
        }
    }
}
