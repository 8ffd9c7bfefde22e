//! Per-task capture of an engine's stdout and stderr.
//!
//! On an engine, file descriptors 1 and 2 are pointed at two anonymous files
//! for the whole life of the engine; after each task the execution thread
//! takes what the task wrote (two `lseek`s when it wrote nothing) and ships it
//! in the task's metadata, where `display_outputs` prints it as ipyparallel's
//! `[stdout:N]` blocks. Output of native libraries is captured too, since the
//! redirection happens at the descriptor level. Deciding where output is shown
//! is left to the client.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The engine's redirected stdout and stderr.
pub(crate) struct Capture {
    out: File,
    err: File,
    saved_out: OwnedFd,
    saved_err: OwnedFd,
}

/// The process's stderr from before the capture, for rankview's own messages.
static REAL_STDERR: OnceLock<File> = OnceLock::new();

/// Writes one line of rankview's own to the process's real stderr, even
/// while task output is being captured.
pub(crate) fn report(line: &str) {
    match REAL_STDERR.get() {
        Some(mut stderr) => {
            let _ = writeln!(stderr, "{line}");
        }
        None => eprintln!("{line}"),
    }
}

fn io_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Usage(format!("cannot capture engine output ({what}): {e}"))
}

impl Capture {
    /// Redirects this process's stdout and stderr into fresh anonymous files.
    pub(crate) fn start() -> Result<Capture> {
        io::stdout().flush().map_err(|e| io_error("flush", e))?;
        let saved_out = nix::unistd::dup(io::stdout()).map_err(|e| io_error("dup", e))?;
        let saved_err = nix::unistd::dup(io::stderr()).map_err(|e| io_error("dup", e))?;
        if let Ok(real) = nix::unistd::dup(io::stderr()) {
            let _ = REAL_STDERR.set(File::from(real));
        }
        let out = tempfile::tempfile().map_err(|e| io_error("tempfile", e))?;
        let err = tempfile::tempfile().map_err(|e| io_error("tempfile", e))?;
        nix::unistd::dup2_stdout(&out).map_err(|e| io_error("dup2", e))?;
        nix::unistd::dup2_stderr(&err).map_err(|e| io_error("dup2", e))?;
        Ok(Capture {
            out,
            err,
            saved_out,
            saved_err,
        })
    }

    /// What was written since the last call: `(stdout, stderr)`.
    pub(crate) fn take(&mut self) -> (String, String) {
        let _ = io::stdout().flush();
        let _ = io::stderr().flush();
        (drain(&mut self.out), drain(&mut self.err))
    }

    /// Puts the original descriptors back and writes out anything left over.
    pub(crate) fn stop(mut self) {
        let (out, err) = self.take();
        let _ = nix::unistd::dup2_stdout(&self.saved_out);
        let _ = nix::unistd::dup2_stderr(&self.saved_err);
        if !out.is_empty() {
            print!("{out}");
            let _ = io::stdout().flush();
        }
        if !err.is_empty() {
            eprint!("{err}");
        }
    }
}

/// Reads a capture file from the start and empties it.
fn drain(file: &mut File) -> String {
    let written = match file.stream_position() {
        Ok(0) | Err(_) => return String::new(),
        Ok(n) => n,
    };
    let mut bytes = Vec::with_capacity(usize::try_from(written).unwrap_or(0));
    let read = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes));
    let _ = file.set_len(0);
    let _ = file.seek(SeekFrom::Start(0));
    match read {
        Ok(_) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("<output lost: {e}>"),
    }
}
