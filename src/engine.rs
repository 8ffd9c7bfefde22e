//! The engine: what every rank except rank 0 runs.
//!
//! Two threads. The MPI thread ([`serve`]) receives requests from the
//! controller, hands them to the execution thread in order, and sends replies
//! back; it stays responsive while a long task runs, and backs off to sleep
//! when idle. The execution thread ([`execute`]) owns the namespace, runs
//! remote functions (catching panics), captures their output, and encodes
//! replies. Placement decisions are never made here.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Once;
use std::thread::Thread;
use std::time::{Duration, Instant, SystemTime};

use crate::backoff::Backoff;
use crate::capture::Capture;
use crate::error::{Error, Result};
use crate::namespace;
use crate::protocol::{self, Done, Failure, Outcome, Reply, Request};
use crate::registry::registry;
use crate::remote::ArgReader;
use crate::transport::{Mpi, SendBuf};

/// How an engine's MPI thread ended.
pub(crate) enum Ending {
    /// Clean shutdown: the execution thread has finished.
    Clean,
    /// The client failed: the process must exit non-zero now.
    ClientFailed,
    /// The engine could not serve.
    Broken(Error),
}

/// Runs an engine's MPI thread until shutdown.
pub(crate) fn serve(
    mut mpi: Mpi,
    to_exec: Sender<Request>,
    from_exec: Receiver<Vec<u8>>,
) -> Ending {
    let (binary, registry) = crate::controller::identity();
    let hello = Reply::Hello {
        binary,
        registry,
        pid: std::process::id(),
        host: hostname(),
    };
    if let Err(e) = protocol::encode(&hello).and_then(|b| mpi.send(0, SendBuf::Owned(b))) {
        return Ending::Broken(e);
    }
    let mut backoff = Backoff::new(Duration::from_millis(1));
    let mut to_exec = Some(to_exec);
    loop {
        let mut busy = false;
        while let Some((source, bytes)) = mpi.try_recv() {
            busy = true;
            if source != 0 {
                eprintln!("rankview: ignoring a message from rank {source}");
                continue;
            }
            match protocol::decode::<Request>(&bytes) {
                Ok(Request::Shutdown { failed: true }) => {
                    say_goodbye(&mut mpi);
                    return Ending::ClientFailed;
                }
                // Close the execution queue; keep forwarding its replies
                // until it has finished.
                Ok(Request::Shutdown { failed: false }) => to_exec = None,
                Ok(request) => {
                    if let Some(tx) = &to_exec {
                        if tx.send(request).is_err() {
                            return Ending::Broken(Error::Usage(
                                "the execution thread stopped".into(),
                            ));
                        }
                    }
                }
                Err(e) => eprintln!("rankview: {e}"),
            }
        }
        loop {
            match from_exec.try_recv() {
                Ok(reply) => {
                    busy = true;
                    if let Err(e) = mpi.send(0, SendBuf::Owned(reply)) {
                        return Ending::Broken(e);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if to_exec.is_none() {
                        say_goodbye(&mut mpi);
                        return Ending::Clean;
                    }
                    return Ending::Broken(Error::Usage("the execution thread stopped".into()));
                }
            }
        }
        busy |= mpi.progress();
        if busy {
            backoff.reset();
        } else {
            backoff.snooze();
        }
    }
}

fn say_goodbye(mpi: &mut Mpi) {
    if let Ok(bytes) = protocol::encode(&Reply::Goodbye) {
        let _ = mpi.send(0, SendBuf::Owned(bytes));
    }
    mpi.flush();
}

/// The host name, for the hello message and status reports.
pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Runs the execution thread (the engine's main thread) until the MPI thread
/// closes the request queue.
pub(crate) fn execute(
    engine: usize,
    requests: Receiver<Request>,
    replies: Sender<Vec<u8>>,
    comm: Thread,
) {
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
    while let Some(request) = next_request(&requests) {
        let started_us = now_us();
        let outcome = handle(request.clone_task(), request);
        let completed_us = now_us();
        let (stdout, stderr) = capture.as_mut().map(Capture::take).unwrap_or_default();
        let Some((task, outcome)) = outcome else {
            continue;
        };
        let reply = Reply::Done(Done {
            task,
            started_us,
            completed_us,
            stdout,
            stderr,
            outcome,
        });
        let bytes = match protocol::encode(&reply) {
            Ok(bytes) => bytes,
            Err(e) => {
                let Reply::Done(mut done) = reply else {
                    continue;
                };
                done.outcome = Outcome::Failed(Failure::from_error(e));
                match protocol::encode(&Reply::Done(done)) {
                    Ok(bytes) => bytes,
                    Err(_) => continue,
                }
            }
        };
        if replies.send(bytes).is_err() {
            break;
        }
        comm.unpark();
    }
    if let Some(capture) = capture {
        capture.stop();
    }
}

/// Waits for the next request: spins briefly, then blocks.
fn next_request(requests: &Receiver<Request>) -> Option<Request> {
    let spin_until = Instant::now() + Duration::from_micros(100);
    loop {
        match requests.try_recv() {
            Ok(r) => return Some(r),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if Instant::now() < spin_until => std::thread::yield_now(),
            Err(TryRecvError::Empty) => break,
        }
    }
    loop {
        match requests.recv_timeout(Duration::from_secs(3600)) {
            Ok(r) => return Some(r),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Request {
    /// The task id of a request that produces a reply.
    fn clone_task(&self) -> Option<protocol::TaskId> {
        match self {
            Request::Apply { task, .. }
            | Request::Push { task, .. }
            | Request::Pull { task, .. }
            | Request::Keys { task }
            | Request::Clear { task } => Some(*task),
            Request::Shutdown { .. } => None,
        }
    }
}

/// Serves one request on the execution thread.
fn handle(task: Option<protocol::TaskId>, request: Request) -> Option<(protocol::TaskId, Outcome)> {
    let task = task?;
    let result = match request {
        Request::Apply { function, args, .. } => run_function(function, args),
        Request::Push { items, .. } => namespace::with(|ns| {
            for (name, value) in items {
                ns.insert_typed(name, value);
            }
            Ok(Outcome::Unit)
        }),
        Request::Pull { names, .. } => namespace::with(|ns| {
            names
                .iter()
                .map(|n| ns.pull(n))
                .collect::<Result<Vec<_>>>()
                .map(Outcome::Values)
        }),
        Request::Keys { .. } => namespace::with(|ns| Ok(Outcome::Keys(ns.keys()))),
        Request::Clear { .. } => namespace::with(|ns| {
            ns.clear();
            Ok(Outcome::Unit)
        }),
        Request::Shutdown { .. } => return None,
    };
    Some((
        task,
        result.unwrap_or_else(|e| Outcome::Failed(Failure::from_error(e))),
    ))
}

/// Runs a registered function, turning a panic into a remote error.
fn run_function(function: u64, args: Vec<protocol::WireArg>) -> Result<Outcome> {
    let entry = registry().entry(function).ok_or_else(|| {
        Error::Protocol(format!(
            "no remote function with id {function:#x} on this engine"
        ))
    })?;
    let mut reader = ArgReader::new(args);
    IN_TASK.with(|t| *t.borrow_mut() = Some(None));
    let ran = panic::catch_unwind(AssertUnwindSafe(|| (entry.invoke)(&mut reader)));
    let panicked = IN_TASK.with(|t| t.borrow_mut().take()).flatten();
    match ran {
        Ok(Ok(bytes)) => Ok(Outcome::Value(bytes)),
        Ok(Err(e)) => Err(e),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic payload".into());
            let (location, backtrace) = panicked.unwrap_or_default();
            Err(Error::Remote {
                engine: 0,
                task: 0,
                kind: "panic".into(),
                message: if location.is_empty() {
                    format!("{} panicked: {message}", entry.path)
                } else {
                    format!("{} panicked at {location}: {message}", entry.path)
                },
                backtrace,
            })
        }
    }
}

/// What the panic hook recorded: location and (when enabled) backtrace.
type PanicRecord = (String, Option<String>);

thread_local! {
    /// `Some` while a task runs on this thread; holds the panic record if it panicked.
    static IN_TASK: RefCell<Option<Option<PanicRecord>>> = const { RefCell::new(None) };
}

/// Records panics of tasks (location, backtrace) and lets the default hook
/// print them to the task's captured stderr.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let recorded = IN_TASK.with(|t| match t.try_borrow_mut() {
                Ok(mut slot) => match slot.as_mut() {
                    Some(record) => {
                        let location = info
                            .location()
                            .map(|l| format!("{}:{}", l.file(), l.line()))
                            .unwrap_or_default();
                        let trace = std::backtrace::Backtrace::capture();
                        let trace = (trace.status() == std::backtrace::BacktraceStatus::Captured)
                            .then(|| trace.to_string());
                        *record = Some((location, trace));
                        true
                    }
                    None => false,
                },
                Err(_) => false,
            });
            let _ = recorded;
            previous(info);
        }));
    });
}
