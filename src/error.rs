//! The one public error type of rankview, and its `Result` alias.
//!
//! Every fallible call in the library returns [`Error`]. Variants carry what a
//! user needs to act on the failure (engine id, task id, names and types);
//! constructing them is left to the modules that detect each failure.
//! [`ShellStatus`] (how a shell command ended) is here because
//! [`Error::Shell`] carries it; running commands is `view/shell.rs`'s.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `Result` with [`Error`] as its default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a rankview job.
///
/// Errors raised on an engine travel back to the client and keep the engine
/// id and task id they happened in, like ipyparallel's `RemoteError`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A task panicked, or its function returned `Err`. The engine keeps working.
    #[error("engine {engine}: task {task} failed ({kind}): {message}")]
    Remote {
        /// Engine id (0-based) the task ran on; for a
        /// [`LocalPool`](crate::LocalPool), the pool thread's index.
        engine: usize,
        /// Task id, as in [`Metadata::task`](crate::Metadata::task).
        task: u64,
        /// `"panic"` for a panic, otherwise the type name of the returned error.
        kind: String,
        /// The panic message or the error's `Display`.
        message: String,
        /// The engine-side backtrace, when `RUST_BACKTRACE` enabled one.
        backtrace: Option<String>,
    },
    /// A name is not defined in an engine's namespace.
    #[error("engine {engine}: name '{name}' is not defined")]
    NameError {
        /// Engine id where the name was looked up.
        engine: usize,
        /// The missing name.
        name: String,
    },
    /// A value exists but has another type than the one asked for.
    #[error("engine {engine}: '{name}' holds a {found}, not a {expected}")]
    TypeMismatch {
        /// Engine id holding the value.
        engine: usize,
        /// The value's name.
        name: String,
        /// The type asked for.
        expected: String,
        /// The type the value has.
        found: String,
    },
    /// A value is mutably borrowed by a running task and cannot be used now.
    #[error("engine {engine}: '{name}' is borrowed by the running task")]
    Borrowed {
        /// Engine id holding the value.
        engine: usize,
        /// The value's name.
        name: String,
    },
    /// A result was not ready within the given time. The task goes on and its
    /// result can still be fetched later.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Several targets failed; one error per failed engine, in target order.
    #[error("{} of the view's engines failed: {}", .0.len(), Composite(.0))]
    Composite(Vec<Error>),
    /// An engine index or target list does not name existing engines.
    #[error("no engine {index}: the job has {engines} engines (ids 0..{engines})")]
    InvalidTarget {
        /// The index asked for (negative counts from the end).
        index: i64,
        /// How many engines the job has.
        engines: usize,
    },
    /// A function passed to `apply` was not registered with `#[rankview::remote]`.
    #[error("{function} is not a remote function: mark it #[rankview::remote] (generic functions: #[rankview::remote(<Type>)])")]
    NotRegistered {
        /// The function's type name.
        function: String,
    },
    /// A value could not be encoded or decoded.
    #[error("could not {action} a {type_name}: {message}")]
    Codec {
        /// `"encode"` or `"decode"`.
        action: &'static str,
        /// The Rust type involved.
        type_name: String,
        /// The codec's message.
        message: String,
    },
    /// A message broke the wire protocol (malformed, truncated or hostile).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Ranks of the job do not run the same binary or the same remote-function registry.
    #[error("ranks {ranks:?} run a different binary than rank 0 ({detail})")]
    BinaryMismatch {
        /// The ranks that differ from rank 0.
        ranks: Vec<usize>,
        /// What differs.
        detail: String,
    },
    /// The MPI library failed or is unsuitable (too few ranks, thread level).
    #[error("MPI: {0}")]
    Mpi(String),
    /// The call needs a context it does not have (e.g. `globals()` outside a task).
    #[error("{0}")]
    Usage(String),
    /// [`comm`](crate::comm) was called where there is no task
    /// communicator: outside a task, in a load-balanced task, or in a task
    /// that a direct view sent to one engine only. Says which.
    #[error("rankview::comm(): {0}")]
    NoComm(String),
    /// The controller has shut down; nothing more can be submitted.
    #[error("the rankview controller has shut down")]
    Shutdown,
    /// A load-balanced task's dependencies can never be met (a dependency
    /// failed while the task waits for successes only, `follow` targets ran
    /// on different engines, or on an engine outside the view, ...). The task
    /// never ran; this is reported as soon as it is known.
    #[error("task {task} can never run: dependency {dependency} {reason}")]
    ImpossibleDependency {
        /// The task that cannot run.
        task: u64,
        /// The dependency that makes it impossible.
        dependency: u64,
        /// Why, completing "dependency N ...".
        reason: String,
    },
    /// A load-balanced task's dependencies were not met within its
    /// `timeout`; the task never ran.
    #[error("task {task}: dependencies not met within {timeout:?}")]
    DependencyTimeout {
        /// The task that timed out.
        task: u64,
        /// The timeout it was given.
        timeout: Duration,
    },
    /// One item of a load-balanced or [`Executor`](crate::Executor) `map`
    /// failed (its index in the input); the other items still have their
    /// results.
    #[error("item {index} of the map failed: {error}")]
    MapItem {
        /// The item's index in the map's input.
        index: usize,
        /// Why it failed.
        error: Box<Error>,
    },
    /// A shell command ([`DirectView::shell`](crate::DirectView::shell))
    /// exited with a non-zero status or was killed by a signal on an engine
    /// (a command `sh` cannot find exits with 127).
    #[error("engine {engine}: shell command {status}: {stderr}")]
    Shell {
        /// Engine id the command ran on.
        engine: usize,
        /// How the command ended.
        status: ShellStatus,
        /// The last lines of what the command wrote to stderr (at most
        /// 2,000 bytes).
        stderr: String,
    },
    /// Writing or drawing a file failed (a timeline picture, say).
    #[error("could not {what}: {message}")]
    Io {
        /// What was being done, e.g. `"write timeline.svg"`.
        what: String,
        /// The system's (or the drawing library's) message.
        message: String,
    },
    /// A load-balanced task, or a direct-view request, was aborted before
    /// it started ([`AsyncResult::abort`](crate::AsyncResult::abort)).
    #[error("task {task} was aborted before it started")]
    TaskAborted {
        /// The aborted task.
        task: u64,
    },
}

/// How a shell command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShellStatus {
    /// It exited with this code (0 is success; `sh` exits with 127 when it
    /// cannot find the command and 126 when it cannot run it).
    Exited(i32),
    /// It was killed by this signal.
    Signalled(i32),
}

impl ShellStatus {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        *self == ShellStatus::Exited(0)
    }

    /// The exit code, if the command exited.
    pub fn code(&self) -> Option<i32> {
        match self {
            ShellStatus::Exited(code) => Some(*code),
            ShellStatus::Signalled(_) => None,
        }
    }
}

impl fmt::Display for ShellStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShellStatus::Exited(code) => write!(f, "exited with status {code}"),
            ShellStatus::Signalled(signal) => write!(f, "was killed by signal {signal}"),
        }
    }
}

/// Display helper for the list inside [`Error::Composite`].
struct Composite<'a>(&'a [Error]);

impl fmt::Display for Composite<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// The error of a multi-part result: `None` when there is none, the error
/// itself when there is one (after removing repeats, e.g. one failure of
/// rank 0 recorded for every engine), else [`Error::Composite`].
pub(crate) fn combine(mut errors: Vec<Error>) -> Option<Error> {
    errors.dedup();
    match errors.len() {
        0 => None,
        1 => errors.pop(),
        _ => Some(Error::Composite(errors)),
    }
}

/// The message of a caught panic (`&str` and `String` payloads; anything
/// else is named as such).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into())
}

/// Where a panic happened (`file:line:column`) and, when `RUST_BACKTRACE`
/// asks for one, its backtrace: what the panic hooks of a task (on an
/// engine) and of the client (on rank 0) record instead of printing.
pub(crate) type PanicRecord = (String, Option<String>);

/// A thread's slot for the panic of the code it runs: `Some` while armed,
/// holding the [`PanicRecord`] once that code panicked.
pub(crate) type PanicSlot = std::cell::RefCell<Option<Option<PanicRecord>>>;

/// In a panic hook: records the panic `info` describes in this thread's
/// `slot` when it is armed; false when it is not (the panic is someone
/// else's).
#[allow(deprecated)] // PanicInfo: the MSRV (1.80) predates PanicHookInfo.
pub(crate) fn record_panic(
    slot: &'static std::thread::LocalKey<PanicSlot>,
    info: &std::panic::PanicInfo<'_>,
) -> bool {
    slot.with(|slot| match slot.try_borrow_mut() {
        Ok(mut slot) => match slot.as_mut() {
            Some(record) => {
                *record = Some(panic_record(info));
                true
            }
            None => false,
        },
        Err(_) => false,
    })
}

/// The [`PanicRecord`] of the panic `info` describes, taken in its hook.
#[allow(deprecated)] // PanicInfo: the MSRV (1.80) predates PanicHookInfo.
pub(crate) fn panic_record(info: &std::panic::PanicInfo<'_>) -> PanicRecord {
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_default();
    let trace = std::backtrace::Backtrace::capture();
    let trace =
        (trace.status() == std::backtrace::BacktraceStatus::Captured).then(|| trace.to_string());
    (location, trace)
}

impl Error {
    /// The engine this error happened on, when it happened on one.
    pub fn engine(&self) -> Option<usize> {
        match self {
            Error::Remote { engine, .. }
            | Error::NameError { engine, .. }
            | Error::TypeMismatch { engine, .. }
            | Error::Borrowed { engine, .. }
            | Error::Shell { engine, .. } => Some(*engine),
            Error::MapItem { error, .. } => error.engine(),
            _ => None,
        }
    }
}
