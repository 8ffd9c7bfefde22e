//! Panics on an engine: the process's panic hook, which sends a task's
//! panic (location, backtrace) to that task's captured stderr and any other
//! to the rank's real stderr, and calling a remote function with its panic
//! turned into a remote error.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use crate::capture::{self};
use crate::error::{Error, PanicSlot, Result};
use crate::protocol::WireArgs;
use crate::registry::RemoteEntry;
use crate::remote::ArgReader;

thread_local! {
    /// `Some` while a task runs on this thread; holds the panic record if it panicked.
    static IN_TASK: PanicSlot = const { RefCell::new(None) };
}

/// Records panics of tasks (location, backtrace) and lets the default hook
/// print them to the task's captured stderr; any other panic on an engine
/// (an internal failure) is printed on the process's real stderr.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if crate::error::record_panic(&IN_TASK, info) {
                // A task's panic: its message goes to the task's stderr.
                previous(info);
            } else {
                // rankview's own threads: the captured stderr would lose it.
                let thread = std::thread::current();
                capture::report(&format!(
                    "thread '{}' {info}",
                    thread.name().unwrap_or("<unnamed>")
                ));
            }
        }));
    });
}

/// Calls `entry` with `args`, turning a panic into a remote error.
pub(super) fn invoke(entry: &RemoteEntry, args: WireArgs) -> Result<Vec<u8>> {
    let mut reader = ArgReader::new(args);
    guarded(entry, || (entry.invoke)(&mut reader))
}

/// Runs `entry`'s raw `map` loop over `items` (their bytes), appending the
/// results' bytes to `out`; a panic becomes a remote error, with `out`
/// holding the results of the items before the one that panicked. `None`
/// when the function has no raw loop.
pub(super) fn invoke_raw(
    entry: &RemoteEntry,
    items: &[u8],
    out: &mut Vec<u8>,
) -> Option<Result<()>> {
    let mut raw = false;
    let ran = guarded(entry, || match (entry.map_raw)(items, out) {
        Some(result) => {
            raw = true;
            result
        }
        None => Ok(()),
    });
    // A panic comes from inside the loop, so the function has one.
    (raw || ran.is_err()).then_some(ran)
}

/// Runs `call` (a call of `entry`) with its panic turned into a remote error.
fn guarded<T>(entry: &RemoteEntry, call: impl FnOnce() -> Result<T>) -> Result<T> {
    IN_TASK.with(|t| *t.borrow_mut() = Some(None));
    let ran = panic::catch_unwind(AssertUnwindSafe(call));
    let panicked = IN_TASK.with(|t| t.borrow_mut().take()).flatten();
    match ran {
        Ok(result) => result,
        Err(payload) => {
            let message = crate::error::panic_message(payload.as_ref());
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
