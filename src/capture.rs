//! Per-task capture of an engine's stdout and stderr.
//!
//! On an engine, file descriptors 1 and 2 are pointed at two anonymous files
//! for the whole life of the engine (and pointed there again after every
//! task that closed or moved them); after each task the execution thread
//! takes what the task wrote and ships it in the task's metadata, where
//! `display_outputs` prints it as ipyparallel's `[stdout:N]` blocks. Output
//! of native libraries is captured too, since the redirection happens at the
//! descriptor level. Deciding where output is shown is left to the client.
//!
//! ## What it costs
//!
//! A load-balanced task that wrote nothing costs no system call. Between
//! tasks each capture file holds a mark ([`MARK`]) at the offset where
//! writing starts, and the engine maps that page of the file: any write
//! through descriptor 1 or 2 lands on the mark, which the execution thread
//! then sees changed in its own memory. An exact check (two `lseek`s, see
//! [`Capture::take_exact`]) runs after every direct request, after any
//! task whose mark changed, and at least once a millisecond of the
//! engine's time; a file system without the mapping makes every check
//! exact. Under a file size limit (`ulimit -f`) below twice [`BASE`], the
//! files are written from offset 0 and every task's output is read.
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
//! - Two cases no text output meets are seen only by the next exact check
//!   (within the millisecond, or at the next direct request), and their
//!   output goes to the task that ends then: output whose first byte is
//!   `0xFF` (never the start of UTF-8 text), and a load-balanced task that
//!   closes or moves descriptor 1 or 2 (the descriptors are pointed back
//!   then; until then, later tasks' output follows the task's change).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

/// The byte each capture file holds at [`BASE`] between tasks: a write
/// through the descriptor overwrites it. No UTF-8 text starts with it.
const MARK: u8 = 0xFF;

/// The longest a load-balanced task's output is trusted to the marks alone:
/// an exact check runs at least this often.
const EXACT_EVERY: Duration = Duration::from_millis(1);

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
    /// The mapped byte at `base` of each file (stdout's, stderr's); `None`
    /// where the files cannot be sealed and mapped: every check is exact.
    marks: Option<[Mark; 2]>,
    /// When the last exact check ran.
    exact_at: Instant,
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
        // Under a file size limit (`ulimit -f`) below the far offset, a
        // write there (or sizing a file past it) is SIGXFSZ, which ends the
        // engine: start at 0 then, and read every task's output.
        let far = far_offsets_allowed();
        let sealed_pair = match far {
            true => sealable().zip(sealable()),
            false => None,
        };
        let (mut out, mut err, sealed) = match sealed_pair {
            Some((out, err)) => (out, err, true),
            None => (
                tempfile::tempfile().map_err(|e| io_error("tempfile", e))?,
                tempfile::tempfile().map_err(|e| io_error("tempfile", e))?,
                false,
            ),
        };
        let base = match (
            far,
            out.seek(SeekFrom::Start(BASE)),
            err.seek(SeekFrom::Start(BASE)),
        ) {
            (true, Ok(_), Ok(_)) => BASE,
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
        let marks = marks(&out, &err, sealed, base);
        nix::unistd::dup2_stdout(&out).map_err(|e| io_error("dup2", e))?;
        nix::unistd::dup2_stderr(&err).map_err(|e| io_error("dup2", e))?;
        Ok(Capture {
            out,
            err,
            saved_out,
            saved_err,
            limit,
            base,
            marks,
            exact_at: Instant::now(),
        })
    }

    /// What a load-balanced task that ended at `now` wrote: nothing,
    /// without a system call, when both marks are intact and the last exact
    /// check is recent; otherwise [`take_exact`](Capture::take_exact).
    pub(crate) fn take(&mut self, now: Instant) -> (String, String) {
        flush_streams();
        if let Some(marks) = &self.marks {
            if marks.iter().all(Mark::intact)
                && now.saturating_duration_since(self.exact_at) < EXACT_EVERY
            {
                return (String::new(), String::new());
            }
        }
        self.check_exactly()
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
    /// read, nothing re-pointed. The marks are set again either way.
    pub(crate) fn take_exact(&mut self) -> (String, String) {
        flush_streams();
        self.check_exactly()
    }

    /// [`take_exact`](Capture::take_exact) once the streams are flushed.
    fn check_exactly(&mut self) -> (String, String) {
        self.exact_at = Instant::now();
        let at_base = |fd: std::os::fd::BorrowedFd<'_>| {
            nix::unistd::lseek(fd, 0, Whence::SeekCur).ok() == i64::try_from(self.base).ok()
        };
        if self.base > 0 && at_base(io::stdout().as_fd()) && at_base(io::stderr().as_fd()) {
            self.marks.iter().flatten().for_each(Mark::set);
            return (String::new(), String::new());
        }
        let sealed = self.marks.is_some();
        let taken = (
            drain(&mut self.out, self.limit, self.base, sealed),
            drain(&mut self.err, self.limit, self.base, sealed),
        );
        // Cannot fail on a valid descriptor (and these stay open): dup2
        // closes whatever 1 and 2 are now, and points them at the files.
        let _ = nix::unistd::dup2_stdout(&self.out);
        let _ = nix::unistd::dup2_stderr(&self.err);
        self.marks.iter().flatten().for_each(Mark::set);
        taken
    }

    /// Puts the original descriptors back and writes out anything left over.
    pub(crate) fn stop(mut self) {
        let (out, err) = self.take_exact();
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

/// Flushes Rust's stdout and stderr and every C stdio stream, so that what
/// a task left in their buffers counts as its output.
fn flush_streams() {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    // SAFETY: `fflush(NULL)` takes no pointer from us: it flushes every
    // open C stdio output stream, locking each one, and is safe to call
    // from any thread at any time.
    unsafe {
        libc::fflush(std::ptr::null_mut());
    }
}

/// An anonymous file that can never shrink below the page holding [`BASE`]
/// (a `memfd` sealed against shrinking), so that the page can be mapped and
/// read whatever a task does to the file; `None` where the system has no
/// such files.
#[cfg(target_os = "linux")]
fn sealable() -> Option<File> {
    let name = c"rankview-capture";
    // SAFETY: `name` is a valid NUL-terminated string that outlives the
    // call; the kernel copies it.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just returned by `memfd_create` and nothing else
    // owns it.
    let file = unsafe { File::from_raw_fd(fd) };
    let page = page_size()?;
    file.set_len(BASE / page * page + page).ok()?;
    // SAFETY: `fcntl` with `F_ADD_SEALS` takes an integer, not a pointer,
    // on a descriptor this function owns.
    let sealed = unsafe {
        libc::fcntl(
            file.as_raw_fd(),
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL,
        )
    };
    (sealed == 0).then_some(file)
}

#[cfg(not(target_os = "linux"))]
fn sealable() -> Option<File> {
    None
}

/// The marks of the two capture files at `base`, when they are `sealed`
/// memfds: the page of an ordinary file could be cut off under the mapping
/// (a SIGBUS on the next read), and an empty one does not reach `base`.
fn marks(out: &File, err: &File, sealed: bool, base: u64) -> Option<[Mark; 2]> {
    if !sealed || base == 0 {
        return None;
    }
    Some([Mark::new(out, base)?, Mark::new(err, base)?])
}

/// No file size limit stops a write at [`BASE`] and a task's output after
/// it (at least as far again).
fn far_offsets_allowed() -> bool {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` into `limit`, which lives
    // across the call.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit) } == 0;
    read && (limit.rlim_cur == libc::RLIM_INFINITY || limit.rlim_cur >= 2 * BASE)
}

/// The system's page size.
fn page_size() -> Option<u64> {
    // SAFETY: `sysconf` takes an integer and reads no memory of ours.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().filter(|p| p.is_power_of_two())
}

/// Empties a capture file: its pages are given back. A sealed file keeps its
/// size (it may not shrink) and becomes one hole.
fn empty(file: &File, sealed: bool) {
    if !sealed {
        let _ = file.set_len(0);
        return;
    }
    #[cfg(target_os = "linux")]
    if let Ok(len) = file.metadata().map(|m| m.len()) {
        // Whole pages: a hole that ends inside a page only zeroes its part.
        let page = page_size().unwrap_or(1);
        let whole = len.div_ceil(page) * page;
        // SAFETY: `fallocate` takes integers, not pointers, on a descriptor
        // `file` keeps open.
        unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                0,
                libc::off_t::try_from(whole).unwrap_or(libc::off_t::MAX),
            );
        }
    }
}

/// The byte at [`BASE`] of a sealed capture file, mapped shared: what a
/// write through the file's descriptor puts there shows in this memory.
struct Mark {
    /// The mapped page.
    page: NonNull<libc::c_void>,
    len: usize,
    /// [`BASE`]'s offset in the page.
    at: usize,
}

impl Mark {
    /// Maps the page of `file` that holds `base`; `None` when that fails.
    /// `file` must come from [`sealable`] (never shrinking past that page).
    fn new(file: &File, base: u64) -> Option<Mark> {
        let page = page_size()?;
        let start = libc::off_t::try_from(base / page * page).ok()?;
        let len = usize::try_from(page).ok()?;
        // SAFETY: a fresh shared mapping of one page of a file this engine
        // keeps open; the kernel picks the address. The file was sealed
        // against shrinking past this page when created (`sealable`), so
        // reading it can never fault with SIGBUS.
        let mapped = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                start,
            )
        };
        if mapped == libc::MAP_FAILED {
            return None;
        }
        let mark = Mark {
            page: NonNull::new(mapped)?,
            len,
            at: usize::try_from(base % page).ok()?,
        };
        mark.set();
        Some(mark)
    }

    /// The mapped byte, as an atomic: the kernel writes it behind our back.
    fn byte(&self) -> &AtomicU8 {
        // SAFETY: `at < len`, so the byte is inside the mapping, which lives
        // as long as `self`; `AtomicU8` has the layout of `u8` and any
        // alignment fits it.
        unsafe {
            &*self
                .page
                .as_ptr()
                .cast::<u8>()
                .add(self.at)
                .cast::<AtomicU8>()
        }
    }

    /// The mark is still there: nothing was written at the base since it
    /// was set.
    fn intact(&self) -> bool {
        self.byte().load(Ordering::Acquire) == MARK
    }

    /// Puts the mark back (after the file was emptied, or read).
    fn set(&self) {
        self.byte().store(MARK, Ordering::Release);
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `Mark::new` made; nothing else
        // refers to it.
        unsafe {
            libc::munmap(self.page.as_ptr(), self.len);
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
/// at `base` again; a `sealed` one keeps its size).
fn drain(file: &mut File, limit: u64, base: u64, sealed: bool) -> String {
    let written = match file.stream_position() {
        Ok(end) if end > base => end - base,
        _ => return String::new(),
    };
    let mut cut = written.saturating_sub(limit);
    let mut bytes = Vec::with_capacity(usize::try_from(written - cut).unwrap_or(0));
    let read = file
        .seek(SeekFrom::Start(base + cut))
        .and_then(|_| Read::take(&mut *file, written - cut).read_to_end(&mut bytes));
    empty(file, sealed);
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
        assert_eq!(drain(&mut file, DEFAULT_LIMIT, 0, false), "hello\nworld\n");
        assert_eq!(file.stream_position().unwrap(), 0);
        assert_eq!(file.metadata().unwrap().len(), 0);
        assert_eq!(drain(&mut file, DEFAULT_LIMIT, 0, false), "");
        file.write_all(b"next").unwrap();
        assert_eq!(drain(&mut file, DEFAULT_LIMIT, 0, false), "next");
    }

    #[test]
    fn output_written_from_the_base_is_read_from_there() {
        let mut file = tempfile::tempfile().unwrap();
        file.seek(SeekFrom::Start(BASE)).unwrap();
        assert_eq!(drain(&mut file, DEFAULT_LIMIT, BASE, false), "");
        file.write_all(b"hello\n").unwrap();
        assert_eq!(drain(&mut file, DEFAULT_LIMIT, BASE, false), "hello\n");
        assert_eq!(file.stream_position().unwrap(), BASE);
        assert_eq!(file.metadata().unwrap().len(), 0, "the hole is given back");
        file.write_all(b"abcdef").unwrap();
        assert_eq!(
            drain(&mut file, 2, BASE, false),
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
        let text = drain(&mut file, limit, 0, false);
        let cut = output.len() - limit as usize;
        let (first, rest) = text.split_once('\n').unwrap();
        assert_eq!(first, format!("[rankview: {cut} earlier bytes cut]"));
        assert_eq!(rest.len(), limit as usize);
        assert!(rest.ends_with("line 199999\n"));
        assert_eq!(rest.as_bytes(), &output[cut..]);
        assert_eq!(file.metadata().unwrap().len(), 0);
        assert_eq!(drain(&mut file, 0, 0, false), "");
        file.write_all(b"abc").unwrap();
        assert_eq!(
            drain(&mut file, 0, 0, false),
            "[rankview: 3 earlier bytes cut]\n"
        );
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        // "é" is two bytes: a limit of 3 lands in the middle of the first one.
        let mut file = file_with("ééé".as_bytes());
        assert_eq!(
            drain(&mut file, 3, 0, false),
            "[rankview: 4 earlier bytes cut]\né"
        );
    }

    /// A sealed capture file at its base, its mark set, and a second handle
    /// on the same open file (as descriptor 1 is after `dup2`).
    fn marked() -> (File, File, Mark) {
        let mut file = sealable().expect("a sealed memfd");
        file.seek(SeekFrom::Start(BASE)).unwrap();
        let mark = Mark::new(&file, BASE).expect("the base's page mapped");
        let descriptor = file.try_clone().unwrap();
        (file, descriptor, mark)
    }

    #[test]
    fn any_write_through_the_descriptor_clears_the_mark_and_draining_sets_it_again() {
        let (mut file, mut descriptor, mark) = marked();
        assert!(mark.intact());
        assert_eq!(drain(&mut file, DEFAULT_LIMIT, BASE, true), "");
        // Every first byte but the mark's own is seen, NUL included.
        for first in (0..=u8::MAX).filter(|&b| b != MARK) {
            mark.set();
            descriptor.write_all(&[first, b'!']).unwrap();
            assert!(!mark.intact(), "a write starting with {first:#04x}");
            let taken = drain(&mut file, DEFAULT_LIMIT, BASE, true);
            assert_eq!(taken.len(), String::from_utf8_lossy(&[first, b'!']).len());
        }
        mark.set();
        assert!(mark.intact());
        descriptor.write_all(b"hello\n").unwrap();
        assert!(!mark.intact());
        assert_eq!(drain(&mut file, DEFAULT_LIMIT, BASE, true), "hello\n");
        mark.set();
        assert!(mark.intact());
        assert_eq!(descriptor.stream_position().unwrap(), BASE);
    }

    #[test]
    fn a_sealed_file_cannot_shrink_under_its_mark_and_gives_back_its_pages() {
        use std::os::unix::fs::MetadataExt;
        let (mut file, mut descriptor, mark) = marked();
        let size = file.metadata().unwrap().len();
        assert!(size > BASE);
        // A task truncating its stdout cannot take the mapped page away.
        assert!(descriptor.set_len(0).is_err());
        assert!(mark.intact());
        descriptor.write_all(&vec![b'x'; 4 << 20]).unwrap();
        assert!(file.metadata().unwrap().blocks() * 512 >= 4 << 20);
        let taken = drain(&mut file, 1024, BASE, true);
        assert!(taken.ends_with(&"x".repeat(1024)));
        mark.set();
        let page = page_size().unwrap();
        assert!(
            file.metadata().unwrap().blocks() * 512 <= page,
            "only the mark's page is kept"
        );
        assert!(file.metadata().unwrap().len() >= size);
        assert!(mark.intact());
    }

    /// The fallback files (no memfd) are never mapped: their page at the
    /// base lies past their end, where a read would be a SIGBUS.
    #[test]
    fn ordinary_capture_files_get_no_marks() {
        let mut out = tempfile::tempfile().unwrap();
        let mut err = tempfile::tempfile().unwrap();
        out.seek(SeekFrom::Start(BASE)).unwrap();
        err.seek(SeekFrom::Start(BASE)).unwrap();
        assert!(marks(&out, &err, false, BASE).is_none());
        let (out, err) = (sealable().unwrap(), sealable().unwrap());
        assert!(marks(&out, &err, true, 0).is_none());
        assert!(marks(&out, &err, true, BASE).is_some_and(|m| m.iter().all(Mark::intact)));
    }

    #[test]
    fn an_output_starting_with_the_mark_byte_is_left_to_the_exact_check() {
        let (mut file, mut descriptor, mark) = marked();
        descriptor.write_all(&[MARK, b'a']).unwrap();
        assert!(mark.intact(), "the one first byte the mark cannot see");
        assert_eq!(drain(&mut file, DEFAULT_LIMIT, BASE, true), "\u{FFFD}a");
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
