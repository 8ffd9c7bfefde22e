//! How the controller talks to engines: sending one request to several
//! engines, reading a reply with its attachments, taking announced raw data
//! off the wire (into new memory or the caller's), and ending the job when
//! an engine's stream goes out of step.

use std::sync::Arc;

use crate::bulk::{BulkVec, ElemKind};
use crate::contract::Filling;
use crate::error::{Error, Result};
use crate::protocol::{self, Reply, Request};
use crate::result::Gathered;
use crate::transport::{Mpi, SendBuf};

/// Decodes a reply from `rank` and receives its attachments. Attachments
/// that do not arrive as announced leave that engine's data messages out of
/// step with its replies: the job ends, saying why.
pub(super) fn read_reply(mpi: &mut Mpi, rank: usize, bytes: &[u8]) -> Result<Reply> {
    match protocol::read_framed::<Reply>(bytes, |lens| mpi.receive_blobs(rank, lens)) {
        Ok(reply) => reply,
        Err(e) => internal(mpi, &format!("a reply from rank {rank}: {e}")),
    }
}

/// Receives the raw elements a reply from `rank` announced. Always called
/// for such a reply, known task or not: the engine has started sending them
/// and waits until they are taken.
pub(super) fn receive_data(
    mpi: &mut Mpi,
    rank: usize,
    outcome: &protocol::Outcome,
) -> Result<Gathered> {
    let protocol::Outcome::Bulk { value, len, shape } = outcome else {
        return Err(Error::Protocol("no raw data announced".into()));
    };
    let kind = value.bulk.unwrap_or(ElemKind::U8);
    let len = usize::try_from(*len)
        .map_err(|_| Error::Protocol(format!("{len} elements do not fit here")))?;
    let mut data = BulkVec::for_receive(kind, len);
    crate::hugepages::prefaulting(data.as_bytes_mut(), |bytes| mpi.receive_data(rank, bytes))?;
    Ok(Gathered {
        data,
        value: Some(value.clone()),
        parts: vec![(len, shape.iter().map(|&d| d as usize).collect())],
    })
}

/// Receives the raw elements a reply from `rank` announced straight into
/// the caller's memory, after checking that they fit it (type, length,
/// shape); if they do not, they are taken off the wire into scratch memory
/// and the caller's stays untouched.
pub(super) fn receive_into(
    mpi: &mut Mpi,
    rank: usize,
    engine: usize,
    outcome: &protocol::Outcome,
    mut filling: Filling,
) -> Result<()> {
    let protocol::Outcome::Bulk { value, len, shape } = outcome else {
        return Err(Error::Protocol("no raw data announced".into()));
    };
    let len = usize::try_from(*len)
        .map_err(|_| Error::Protocol(format!("{len} elements do not fit here")))?;
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let kind = value.bulk.unwrap_or(ElemKind::U8);
    let checked = match &filling.pull {
        Some((name, wanted)) if wanted.fingerprint != value.fingerprint => {
            Err(Error::TypeMismatch {
                engine,
                name: name.clone(),
                expected: wanted.type_name.clone(),
                found: value.type_name.clone(),
            })
        }
        _ => filling.check("pull_into", kind, len, "the value has", || Ok(shape)),
    };
    match (checked, filling.loan.buf_mut()) {
        (Ok(()), Some(buf)) => mpi.receive_data(rank, buf.into_bytes()),
        (checked, _) => {
            let mut scratch = BulkVec::zeroed(kind, len);
            mpi.receive_data(rank, scratch.as_bytes_mut())?;
            Err(checked
                .err()
                .unwrap_or_else(|| Error::Protocol("pull_into: no buffer".into())))
        }
    }
}

/// Sends the same request to every engine in `engines`.
pub(super) fn send_all(mpi: &mut Mpi, engines: &[usize], request: &Request) -> Result<()> {
    let bytes = Arc::new(protocol::encode(request)?);
    for &engine in engines {
        mpi.send(engine + 1, SendBuf::Shared(bytes.clone()))?;
    }
    Ok(())
}

/// An internal failure that would leave results unfinished forever (a
/// load-balanced task whose messages cannot be sent, an engine's stream out
/// of step): end the job, saying why.
pub(super) fn internal(mpi: &Mpi, why: &str) -> ! {
    let _ = std::io::Write::flush(&mut std::io::stdout());
    eprintln!("rankview: internal error: {why}; aborting the job");
    mpi.abort(1)
}
