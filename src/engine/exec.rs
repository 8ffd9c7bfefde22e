//! The execution thread (the engine's main thread): takes jobs from the
//! inbox in stream order, owns the namespace, runs remote functions with
//! their output captured, and encodes replies for the MPI thread. The
//! local executor runs tasks through [`run_work`] as well.

use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::Thread;
use std::time::Instant;

use smallvec::smallvec;

use crate::bulk::{self, BulkVec, Lent};
use crate::capture::Capture;
use crate::error::{Error, Result};
use crate::helping::{self};
use crate::namespace;
use crate::protocol::{
    self, Done, Each, Failure, Outcome, Packed, Reply, Request, TaskId, Typed, ValueSpec, WireArg,
    WireArgs, Work,
};
use crate::registry::{registry, RemoteEntry};

use super::group;
use super::inbox::{Inbox, Next};
use super::job::{now_us, quiet_done, wall_us, ExecOut, Incoming, Job, Lending};
use super::panics::{install_panic_hook, invoke, invoke_raw};

thread_local! {
    /// True on an engine's execution thread (which owns the namespace).
    pub(super) static ON_EXECUTION_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs the execution thread (the engine's main thread) until the MPI thread
/// closes the inbox.
pub(crate) fn execute(engine: usize, inbox: &Inbox, out: Sender<ExecOut>, comm: Thread) {
    ON_EXECUTION_THREAD.with(|on| on.set(true));
    namespace::install(engine);
    install_panic_hook();
    let mut capture = if std::env::var_os("RANKVIEW_NO_CAPTURE").is_some() {
        None
    } else {
        match Capture::start() {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("rankview: engine {engine}: {e}; output will not be captured");
                None
            }
        }
    };
    while let Some(next) = inbox.next() {
        let job = match next {
            Next::Job(job) => job,
            Next::Task(queued) => {
                let done = if matches!(queued.payload, Work::Group { .. }) {
                    match group::lead(queued, &mut capture, &out, &comm, run_balanced) {
                        Some(done) => done,
                        None => break,
                    }
                } else {
                    run_work(queued.payload, queued.hops, &mut capture)
                };
                // The reply waits in the inbox; the MPI thread's pass
                // reports it with the others (see `inbox::Progress`).
                if inbox.task_done(done) && !helping::help() {
                    comm.unpark();
                }
                continue;
            }
        };
        let went = run_job(job, &mut capture, &out, &comm);
        inbox.finished();
        if !went {
            break;
        }
    }
    if let Some(capture) = capture {
        capture.stop();
    }
}

/// Runs one load-balanced task on this thread: on an engine's execution
/// thread, or on a [`LocalPool`](crate::LocalPool) thread of rank 0 (no
/// `capture` there).
pub(crate) fn run_work(work: Work, hops: u32, capture: &mut Option<Capture>) -> Done {
    crate::taskcomm::balanced(|| run_balanced(work, hops, capture))
}

/// [`run_work`] without its scope: a group task's part runs in its group's
/// (`group::lead`, `group::member`).
fn run_balanced(work: Work, hops: u32, capture: &mut Option<Capture>) -> Done {
    let started_us = now_us();
    let (task, outcome) = match work {
        Work::Apply {
            task,
            function,
            args,
        } => (
            task,
            call(function, args)
                .map_or_else(|e| Outcome::Failed(Failure::from_error(e)), Outcome::Value),
        ),
        Work::Map {
            task,
            function,
            items,
            raw: false,
        } => (task, Outcome::Each(map_items(function, &items))),
        Work::Map {
            task,
            function,
            items,
            raw: true,
        } => (task, Outcome::Each(map_raw(function, &items))),
        // Only a group's leader runs these, through `group::lead`.
        Work::Group { work, .. } => (
            work.task(),
            Outcome::Failed(Failure::Usage(
                "a group task can only run on a group's leader".into(),
            )),
        ),
    };
    ended(task, started_us, hops, outcome, capture, false)
}

/// Calls `function` on each item of a `map` task; one item's failure (a
/// panic, say) does not stop the others.
pub(super) fn map_items(function: u64, items: &Packed) -> Each {
    let mut each = Each {
        values: Packed::with_capacity(items.len(), items.len() * 8),
        failed: Vec::new(),
    };
    let entry = lookup(function);
    for index in 0..items.len() {
        let called = entry.as_ref().map_err(Clone::clone).and_then(|entry| {
            items
                .get(index)
                .and_then(|item| invoke(entry, smallvec![WireArg::Value(item.to_vec())]))
        });
        match called {
            Ok(value) => each.values.push(&value),
            Err(e) => {
                each.values.push(&[]);
                each.failed.push((index as u64, Failure::from_error(e)));
            }
        }
    }
    each
}

/// Runs a raw `map` task: the function's monomorphized loop over the
/// items' bytes (`items` holds one string), the results' bytes back in one
/// string. An item that panics fails alone (zeroes stand in for its
/// result) and the loop goes on after it; a task that cannot run at all
/// comes back with no string and its one failure.
pub(super) fn map_raw(function: u64, items: &Packed) -> Each {
    let mut each = Each::default();
    let task = match RawTask::new(function, items) {
        Ok(task) => task,
        Err(e) => {
            // No results at all: the client fails the whole task with it.
            each.failed.push((0, Failure::from_error(e)));
            return each;
        }
    };
    let (bytes, item_size, result_size) = (task.bytes, task.item_size, task.result_size);
    let count = bytes.len() / item_size;
    let mut out = Vec::with_capacity(count * result_size);
    let mut next = 0;
    while next < count {
        match invoke_raw(task.entry, &bytes[next * item_size..], &mut out) {
            Some(Ok(())) if out.len() == count * result_size => break,
            Some(Ok(())) => {
                let failure = Failure::Protocol("the raw map loop lost results".into());
                let done = (out.len() / result_size) as u64;
                each.failed
                    .extend((done..count as u64).map(|i| (i, failure.clone())));
                break;
            }
            outcome => {
                // The item after the last result failed (it panicked).
                let failed = out.len() / result_size;
                let error = match outcome {
                    Some(Err(e)) => e,
                    _ => Error::Protocol("the raw map loop is gone".into()),
                };
                each.failed
                    .push((failed as u64, Failure::from_error(error)));
                out.resize((failed + 1) * result_size, 0);
                next = failed + 1;
            }
        }
    }
    out.resize(count * result_size, 0);
    each.values.push(&out);
    each
}

/// A raw `map` task, checked: its items' bytes, its function, and the
/// sizes of an item and a result.
struct RawTask<'a> {
    bytes: &'a [u8],
    entry: &'static RemoteEntry,
    item_size: usize,
    result_size: usize,
}

impl<'a> RawTask<'a> {
    fn new(function: u64, items: &'a Packed) -> Result<RawTask<'a>> {
        let entry = lookup(function)?;
        let (param, result) = (entry.raw_kinds)().ok_or_else(|| {
            Error::Protocol(format!(
                "{} was sent a raw map but takes no raw items",
                entry.path
            ))
        })?;
        let bytes = match items.len() {
            0 => &[][..],
            _ => items.get(0)?,
        };
        if items.len() > 1 || bytes.len() % param.size() != 0 {
            return Err(Error::Protocol(format!(
                "a raw map task of {} bytes in {} strings for items of {} bytes",
                bytes.len(),
                items.len(),
                param.size()
            )));
        }
        Ok(RawTask {
            bytes,
            entry,
            item_size: param.size(),
            result_size: result.size(),
        })
    }
}

/// The end of a task that ran from `started_us` until now, with the output
/// it wrote: checked exactly for a `direct` request, else as a
/// load-balanced task's (see [`Capture::take`]).
pub(super) fn ended(
    task: TaskId,
    started_us: u64,
    hops: u32,
    outcome: Outcome,
    capture: &mut Option<Capture>,
    direct: bool,
) -> Done {
    let end = Instant::now();
    let completed_us = wall_us(end);
    let (stdout, stderr) = match capture {
        Some(capture) if direct => capture.take_exact(),
        Some(capture) => capture.take(end),
        None => Default::default(),
    };
    Done {
        task,
        started_us,
        completed_us,
        stdout,
        stderr,
        hops,
        outcome,
    }
}

/// A received scatter block or broadcast as the value to store.
pub(super) fn incoming(value: ValueSpec, buf: BulkVec, shape: Vec<u64>) -> Result<Incoming> {
    match value.bulk {
        Some(_) => {
            let entry = bulk::table().get(&value.fingerprint).ok_or_else(|| {
                Error::Protocol(format!("{} is not a bulk type here", value.type_name))
            })?;
            let shape = shape.iter().map(|&d| d as usize).collect();
            Ok(Incoming::Decoded((entry.build)(buf, shape)?))
        }
        None => match buf {
            BulkVec::U8(bytes) => Ok(Incoming::Encoded(Typed {
                fingerprint: value.fingerprint,
                type_name: value.type_name,
                bytes: Arc::new(bytes),
            })),
            _ => Err(Error::Protocol("encoded data must be bytes".into())),
        },
    }
}

/// Runs one direct job; false when the MPI thread is gone.
pub(super) fn run_job(
    job: Job,
    capture: &mut Option<Capture>,
    out: &Sender<ExecOut>,
    comm: &Thread,
) -> bool {
    match job {
        job @ Job::Member { .. } => group::member(job, capture, out, comm, run_balanced),
        Job::Lend { task, name, value } => {
            let (resume, resumed) = std::sync::mpsc::channel::<()>();
            let lent = lend(&name, &value);
            if out.send(ExecOut::Lent { task, lent, resume }).is_err() {
                return false;
            }
            // Only the MPI thread's passes bring the collective's end.
            helping::hand_back();
            comm.unpark();
            // Keep the namespace still until the collective is over.
            let _ = resumed.recv();
            true
        }
        Job::Recycle {
            name,
            fingerprint,
            shape,
            reply,
        } => {
            let _ = reply.send(recycle(&name, fingerprint, &shape));
            true
        }
        Job::Store { task, name, value } => {
            let value = match value {
                Incoming::Later(value) => {
                    // Only the MPI thread's passes bring the collective.
                    helping::hand_back();
                    comm.unpark();
                    value.recv().unwrap_or_else(|_| {
                        Err(Error::Protocol(format!(
                            "the collective that was to store {name:?} did not run"
                        )))
                    })
                }
                value => Ok(value),
            };
            let now = now_us();
            let mut displaced = None;
            let outcome = value
                .and_then(|value| {
                    namespace::with(|ns| {
                        displaced = Some(match value {
                            Incoming::Decoded(stored) => ns.insert_stored(name, stored),
                            Incoming::Encoded(typed) => ns.insert_typed(name, typed),
                            Incoming::Later(_) => {
                                return Err(Error::Protocol("a value stored twice later".into()))
                            }
                        });
                        Ok(Outcome::Unit)
                    })
                })
                .unwrap_or_else(|e| Outcome::Failed(Failure::from_error(e)));
            if !reply(out, quiet_done(task, now, now, outcome)) {
                return false;
            }
            comm.unpark();
            // Free a replaced value only once the client has its answer.
            drop(displaced);
            true
        }
        Job::Request(request) => {
            if let Request::Pull { task, names } = &request {
                if let Some((value, data)) = raw_pull(names) {
                    return send_raw(*task, value, data, out, comm);
                }
            }
            let started_us = now_us();
            let Some((task, outcome)) = handle(request) else {
                return true;
            };
            if !reply(out, ended(task, started_us, 0, outcome, capture, true)) {
                return false;
            }
            // Send it from this thread when MPI allows; else wake the MPI thread.
            if !helping::help() {
                comm.unpark();
            }
            true
        }
    }
}

/// Sends a pull's reply announcing raw data, then the data itself straight
/// from the stored value; returns (true) once it has been sent, false when
/// the MPI thread is gone.
pub(super) fn send_raw(
    task: TaskId,
    value: ValueSpec,
    data: Lent,
    out: &Sender<ExecOut>,
    comm: &Thread,
) -> bool {
    let (resume, resumed) = std::sync::mpsc::channel::<()>();
    let now = now_us();
    let len = data.buf().map_or(0, |b| b.len()) as u64;
    let shape = data.shape.iter().map(|&d| d as u64).collect();
    let done = quiet_done(task, now, now, Outcome::Bulk { value, len, shape });
    let reply = match protocol::encode(&Reply::Done(done)) {
        Ok(reply) => reply,
        Err(e) => {
            let failed = Outcome::Failed(Failure::from_error(e));
            return self::reply(out, quiet_done(task, now, now, failed));
        }
    };
    if out
        .send(ExecOut::Data {
            reply,
            data,
            resume,
        })
        .is_err()
    {
        return false;
    }
    // Only the MPI thread's passes complete the send.
    helping::hand_back();
    comm.unpark();
    // Keep the value unchanged (and not borrowed) until it has been sent.
    let _ = resumed.recv();
    true
}

/// Encodes and sends one reply; false when the MPI thread is gone. A reply
/// that cannot be encoded is replaced by the encoding error.
pub(super) fn reply(out: &Sender<ExecOut>, done: Done) -> bool {
    let mut reply = Reply::Done(done);
    let framed = match protocol::encode_framed(&mut reply) {
        Ok(framed) => framed,
        Err(e) => {
            let Reply::Done(mut done) = reply else {
                return true;
            };
            done.outcome = Outcome::Failed(Failure::from_error(e));
            match protocol::encode_framed(&mut Reply::Done(done)) {
                Ok(framed) => framed,
                Err(_) => return true,
            }
        }
    };
    out.send(ExecOut::Reply(framed)).is_ok()
}

/// Takes the value `name` apart for its memory if it has the type with
/// `fingerprint` and exactly `shape` and nothing else holds it; a value of
/// another shape stays where it is.
pub(super) fn recycle(name: &str, fingerprint: u64, shape: &[usize]) -> Option<BulkVec> {
    // A scalar has no buffer worth keeping.
    if shape.is_empty() {
        return None;
    }
    let entry = bulk::table().get(&fingerprint)?;
    namespace::with(|ns| {
        let Some(stored) = ns.take_unshared(name, fingerprint) else {
            return Ok(None);
        };
        let fits =
            (entry.view)(stored.clone().into_any().as_ref()).is_some_and(|(_, held)| held == shape);
        if !fits {
            drop(ns.insert_stored(name.to_string(), stored));
            return Ok(None);
        }
        Ok((entry.recycle)(stored))
    })
    .ok()
    .flatten()
}

/// The one pulled name, lent as raw elements, when it holds a numeric value
/// (a `Vec` or array of an [`Element`](crate::Element) type, decoded here
/// first if it arrived encoded): such a pull travels as a raw buffer.
pub(super) fn raw_pull(names: &[String]) -> Option<(ValueSpec, Lent)> {
    let [name] = names else {
        return None;
    };
    let (entry, stored) = namespace::with(|ns| {
        let Some(fingerprint) = ns.fingerprint(name) else {
            return Ok(None);
        };
        let Some(entry) = bulk::table().get(&fingerprint) else {
            return Ok(None);
        };
        let stored = ns.stored(name, fingerprint, entry.type_name, entry.decode)?;
        Ok(Some((entry, stored)))
    })
    .ok()
    .flatten()?;
    let fingerprint = stored.fingerprint();
    let lent = (entry.lend)(stored)?;
    lent.buf()?;
    let value = ValueSpec {
        fingerprint,
        type_name: entry.type_name.to_string(),
        bulk: Some(entry.elem),
    };
    Some((value, lent))
}

/// Finds `name` for a gather or reduce, checking its type.
pub(super) fn lend(name: &str, value: &ValueSpec) -> Result<Lending> {
    namespace::with(|ns| match value.bulk {
        Some(_) => {
            let entry = bulk::table().get(&value.fingerprint).ok_or_else(|| {
                Error::Protocol(format!("{} is not a bulk type here", value.type_name))
            })?;
            let stored = ns.stored(name, value.fingerprint, entry.type_name, entry.decode)?;
            (entry.lend)(stored).map(Lending::Bulk).ok_or_else(|| {
                Error::Protocol(format!("cannot lend {name} as {}", entry.type_name))
            })
        }
        None => {
            let typed = ns.pull(name)?;
            if typed.fingerprint != value.fingerprint {
                return Err(Error::TypeMismatch {
                    engine: 0,
                    name: name.to_string(),
                    expected: value.type_name.clone(),
                    found: typed.type_name,
                });
            }
            Ok(Lending::Bytes(typed.bytes))
        }
    })
}

/// Serves one request on the execution thread: its task id and outcome.
pub(super) fn handle(request: Request) -> Option<(TaskId, Outcome)> {
    let (task, result) = match request {
        Request::Apply {
            task,
            function,
            args,
            team,
        } => {
            let run = || call(function, args);
            let value = match &team {
                Some(team) if team.communicator => crate::taskcomm::scoped(team, run),
                Some(_) => crate::taskcomm::over_limit(run),
                None => crate::taskcomm::single(run),
            };
            (task, value.map(Outcome::Value))
        }
        Request::Map {
            task,
            function,
            items,
        } => (
            task,
            crate::taskcomm::mapped(|| {
                items
                    .into_iter()
                    .map(|item| call(function, smallvec![WireArg::Value(item)]))
                    .collect::<Result<Vec<_>>>()
                    .map(Outcome::Many)
            }),
        ),
        Request::Push { task, items } => (
            task,
            namespace::with(|ns| {
                for (name, value) in items {
                    drop(ns.insert_typed(name, value));
                }
                Ok(Outcome::Unit)
            }),
        ),
        Request::Pull { task, names } => (
            task,
            namespace::with(|ns| {
                names
                    .iter()
                    .map(|n| ns.pull(n))
                    .collect::<Result<Vec<_>>>()
                    .map(Outcome::Values)
            }),
        ),
        Request::Keys { task } => (task, namespace::with(|ns| Ok(Outcome::Keys(ns.keys())))),
        Request::Clear { task } => (
            task,
            namespace::with(|ns| {
                ns.clear();
                Ok(Outcome::Unit)
            }),
        ),
        Request::Collective { .. }
        | Request::Shutdown { .. }
        | Request::Exit
        | Request::Tasks { .. }
        | Request::Abort { .. } => return None,
    };
    Some((
        task,
        result.unwrap_or_else(|e| Outcome::Failed(Failure::from_error(e))),
    ))
}

/// Calls a registered function, turning a panic into a remote error.
pub(super) fn call(function: u64, args: WireArgs) -> Result<Vec<u8>> {
    invoke(lookup(function)?, args)
}

/// The registered function with id `function`.
pub(super) fn lookup(function: u64) -> Result<&'static RemoteEntry> {
    registry().entry(function).ok_or_else(|| {
        Error::Protocol(format!(
            "no remote function with id {function:#x} on this engine"
        ))
    })
}
