//! Per-task capture of an engine's stdout and stderr.
//!
//! On an engine, file descriptors 1 and 2 are pointed at two anonymous files
//! for the whole life of the engine (and pointed there again after every
//! task that closed or moved them); after each task the execution thread
//! takes what the task wrote and ships it in the task's metadata, where
//! `display_outputs` prints it as ipyparallel's `[stdout:N]` blocks. A task
//! that wrote nothing costs two `lseek`s (see [`Capture::take`]). Output of native libraries is captured too, since the
//! redirection happens at the descriptor level. Deciding where output is shown
//! is left to the client.
//!
//! ## What a task's output is
//!
//! A task's stdout (stderr alike) is every byte that reached the engine
//! process's descriptor 1 from the moment the previous task's output was
//! taken until this task returned, whoever wrote it: Rust's `print!`, C
//! stdio (`printf`, `puts`, C++ streams synced with it), raw `write(2)`,
//! child processes that inherited the descriptor. At the end of the task,
//! Rust's stdout and stderr and every C stdio stream (`fflush(NULL)`) are
//! flushed first, so buffered output is the task's own. Consequences:
//!
//! - Output of a thread the task started that is still running lands in
//!   whatever request the engine is answering when it is written, or in the
//!   next one; bytes it writes in the instant the engine takes a task's
//!   output (between reading the file and emptying it) are lost.
//! - Output written between tasks (by such threads, or by a library on its
//!   own) lands in the next request the engine answers: any request that
//!   the execution thread answers takes the output, a `pull`, `keys` or
//!   non-broadcast `push` included; collectives (scatter, gather, broadcast
//!   push, reduce) carry none. What is left when the engine stops is
//!   written to the engine's real stdout and stderr.
//! - Output kept in a buffer that is neither Rust's nor C stdio's (a
//!   Fortran unit, a `BufWriter` the task keeps) counts when it is flushed.
//! - Only the last [`DEFAULT_LIMIT`] bytes of each stream are kept per task
//!   (`RANKVIEW_CAPTURE_LIMIT` in the engines' environment changes that, in
//!   bytes or with a `K`, `M` or `G` suffix); a cut output starts with a line
//!   `[rankview: N earlier bytes cut]`. The rest is skipped on disk, never
//!   read into memory. Bytes that are not UTF-8 are replaced by `U+FFFD`.
//! - rankview's own messages go to the real stderr ([`report`]), never into
//!   a task's output.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;

use nix::unistd::Whence;

use crate::error::{Error, Result};

/// Bytes of each stream kept per task unless `RANKVIEW_CAPTURE_LIMIT` says
/// otherwise: 1 MiB.
pub(crate) const DEFAULT_LIMIT: u64 = 1 << 20;

/// Where a capture file's writing starts when the file system allows it: an
/// offset no other file a task leaves on descriptor 1 or 2 is expected to
/// be at (4 GiB and a few bytes, in a sparse file), so that one `lseek` on
/// the descriptor tells both that it is still the capture file and that
/// nothing was written.
const BASE: u64 = (1 << 32) + 0x5256;

/// The engine's redirected stdout and stderr.
pub(crate) struct Capture {
    out: File,
    err: File,
    saved_out: OwnedFd,
    saved_err: OwnedFd,
    /// Bytes kept per stream and task.
    limit: u64,
    /// Where each file's writing starts ([`BASE`], or 0 on a file system
    /// that cannot seek that far: every task's output is then read).
    base: u64,
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
        let mut out = tempfile::tempfile().map_err(|e| io_error("tempfile", e))?;
        let mut err = tempfile::tempfile().map_err(|e| io_error("tempfile", e))?;
        let base = match (
            out.seek(SeekFrom::Start(BASE)),
            err.seek(SeekFrom::Start(BASE)),
        ) {
            (Ok(_), Ok(_)) => BASE,
            _ => {
                out.rewind().map_err(|e| io_error("seek", e))?;
                err.rewind().map_err(|e| io_error("seek", e))?;
                0
            }
        };
        let limit = match std::env::var("RANKVIEW_CAPTURE_LIMIT") {
            Ok(text) => parse_limit(&text).unwrap_or_else(|| {
                report(&format!(
                    "rankview: RANKVIEW_CAPTURE_LIMIT={text:?} is not a size \
                     (like 65536, 64K, 1M); keeping {DEFAULT_LIMIT} bytes"
                ));
                DEFAULT_LIMIT
            }),
            Err(_) => DEFAULT_LIMIT,
        };
        nix::unistd::dup2_stdout(&out).map_err(|e| io_error("dup2", e))?;
        nix::unistd::dup2_stderr(&err).map_err(|e| io_error("dup2", e))?;
        Ok(Capture {
            out,
            err,
            saved_out,
            saved_err,
            limit,
            base,
        })
    }

    /// What was written since the last call, flushed first and cut to the
    /// limit: `(stdout, stderr)`. Descriptors 1 and 2 are then the capture
    /// files again, whatever the task did to them (closed them, as a C
    /// library's `fclose(stdout)` does, or pointed them elsewhere): the next
    /// task's output is captured, and a file it opens can never be given
    /// descriptor 1 or 2 and receive its prints.
    ///
    /// When both descriptors are at the capture files' [`BASE`] (still the
    /// capture files, nothing written) that is all: two `lseek`s, nothing
    /// read, nothing re-pointed.
    pub(crate) fn take(&mut self) -> (String, String) {
        let _ = io::stdout().flush();
        let _ = io::stderr().flush();
        // SAFETY: `fflush(NULL)` takes no pointer from us: it flushes every
        // open C stdio output stream, locking each one, and is safe to call
        // from any thread at any time.
        unsafe {
            libc::fflush(std::ptr::null_mut());
        }
        let at_base = |fd: std::os::fd::BorrowedFd<'_>| {
            nix::unistd::lseek(fd, 0, Whence::SeekCur).ok() == i64::try_from(self.base).ok()
        };
        if self.base > 0 && at_base(io::stdout().as_fd()) && at_base(io::stderr().as_fd()) {
            return (String::new(), String::new());
        }
        let taken = (
            drain(&mut self.out, self.limit, self.base),
            drain(&mut self.err, self.limit, self.base),
        );
        // Cannot fail on a valid descriptor (and these stay open): dup2
        // closes whatever 1 and 2 are now, and points them at the files.
        let _ = nix::unistd::dup2_stdout(&self.out);
        let _ = nix::unistd::dup2_stderr(&self.err);
        taken
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

/// A size in bytes, with an optional binary `K`, `M` or `G` suffix.
fn parse_limit(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last()? {
        (at, 'k' | 'K') => (&text[..at], 1 << 10),
        (at, 'm' | 'M') => (&text[..at], 1 << 20),
        (at, 'g' | 'G') => (&text[..at], 1 << 30),
        _ => (text, 1),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(unit)
}

/// Reads the last `limit` bytes written to a capture file from `base` on,
/// noting how many came before them, and empties the file (writing starts
/// at `base` again).
fn drain(file: &mut File, limit: u64, base: u64) -> String {
    let written = match file.stream_position() {
        Ok(end) if end > base => end - base,
        _ => return String::new(),
    };
    let mut cut = written.saturating_sub(limit);
    let mut bytes = Vec::with_capacity(usize::try_from(written - cut).unwrap_or(0));
    let read = file
        .seek(SeekFrom::Start(base + cut))
        .and_then(|_| Read::take(&mut *file, written - cut).read_to_end(&mut bytes));
    let _ = file.set_len(0);
    let _ = file.seek(SeekFrom::Start(base));
    if let Err(e) = read {
        return format!("<output lost: {e}>");
    }
    let mut text = String::new();
    if cut > 0 {
        // Start at a character boundary: skip the rest of a cut character.
        let partial = bytes
            .iter()
            .take(3)
            .take_while(|&&b| b & 0xC0 == 0x80)
            .count();
        bytes.drain(..partial);
        cut += partial as u64;
        text = format!("[rankview: {cut} earlier bytes cut]\n");
    }
    text.push_str(&String::from_utf8_lossy(&bytes));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    #[test]
    fn short_output_is_kept_whole_and_the_file_emptied() {
        let mut file = file_with(b"hello\nworld\n");
        assert_eq!(drain(&mut file, DEFAULT_LIMIT, 0), "hello\nworld\n");
        assert_eq!(file.stream_position().unwrap(), 0);
        assert_eq!(file.metadata().unwrap().len(), 0);
        assert_eq!(drain(&mut file, DEFAULT_LIMIT, 0), "");
        file.write_all(b"next").unwrap();
        assert_eq!(drain(&mut file, DEFAULT_LIMIT, 0), "next");
    }

    #[test]
    fn output_written_from_the_base_is_read_from_there() {
        let mut file = tempfile::tempfile().unwrap();
        file.seek(SeekFrom::Start(BASE)).unwrap();
        assert_eq!(drain(&mut file, DEFAULT_LIMIT, BASE), "");
        file.write_all(b"hello\n").unwrap();
        assert_eq!(drain(&mut file, DEFAULT_LIMIT, BASE), "hello\n");
        assert_eq!(file.stream_position().unwrap(), BASE);
        assert_eq!(file.metadata().unwrap().len(), 0, "the hole is given back");
        file.write_all(b"abcdef").unwrap();
        assert_eq!(
            drain(&mut file, 2, BASE),
            "[rankview: 4 earlier bytes cut]\nef"
        );
    }

    #[test]
    fn long_output_keeps_its_tail_and_says_how_much_was_cut() {
        let mut output = Vec::new();
        for line in 0..200_000 {
            output.extend_from_slice(format!("line {line}\n").as_bytes());
        }
        let mut file = file_with(&output);
        let limit = 64 << 10;
        let text = drain(&mut file, limit, 0);
        let cut = output.len() - limit as usize;
        let (first, rest) = text.split_once('\n').unwrap();
        assert_eq!(first, format!("[rankview: {cut} earlier bytes cut]"));
        assert_eq!(rest.len(), limit as usize);
        assert!(rest.ends_with("line 199999\n"));
        assert_eq!(rest.as_bytes(), &output[cut..]);
        assert_eq!(file.metadata().unwrap().len(), 0);
        assert_eq!(drain(&mut file, 0, 0), "");
        file.write_all(b"abc").unwrap();
        assert_eq!(drain(&mut file, 0, 0), "[rankview: 3 earlier bytes cut]\n");
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        // "é" is two bytes: a limit of 3 lands in the middle of the first one.
        let mut file = file_with("ééé".as_bytes());
        assert_eq!(drain(&mut file, 3, 0), "[rankview: 4 earlier bytes cut]\né");
    }

    #[test]
    fn limits_parse_with_binary_suffixes() {
        assert_eq!(parse_limit("65536"), Some(65536));
        assert_eq!(parse_limit(" 64K "), Some(64 << 10));
        assert_eq!(parse_limit("2m"), Some(2 << 20));
        assert_eq!(parse_limit("1G"), Some(1 << 30));
        assert_eq!(parse_limit("0"), Some(0));
        for bad in ["", "K", "-1", "1.5M", "lots", "99999999999999999999G"] {
            assert_eq!(parse_limit(bad), None, "{bad:?}");
        }
    }
}
