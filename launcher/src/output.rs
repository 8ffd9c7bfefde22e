//! The launcher's own lines on stdout and stderr.
//!
//! Owns writing them so that a closed or broken pipe (`rankview info | head
//! -1`) is not a panic: `println!` would panic there, and the launcher must
//! never panic. Write errors are dropped; the exit code still tells how the
//! command went. What the lines say is decided by their callers.

use std::fmt::Display;
use std::io::{self, Write as _};

/// Writes `text` and a newline to stdout.
pub fn out(text: impl Display) {
    let mut stdout = io::stdout().lock();
    // Nowhere to report a failed write to stdout; see the module docs.
    let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
}

/// Writes `text` and a newline to stderr.
pub fn err(text: impl Display) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}
