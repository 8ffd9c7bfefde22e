//! The job's output on its way through the launcher.
//!
//! Owns copying the MPI launcher's stdout and stderr to ours as they come
//! (byte for byte, partial lines included, so prompts show), and keeping the
//! last few lines in them that `verdict` reads (the MPI launcher's own words
//! about the processes that failed), with the stream each came on: chatty
//! output never pushes the launcher's verdict, which comes last, out. The
//! first byte of output also removes the
//! start-up spinner for good, so that the spinner never sits on a line the
//! ranks print to. Open MPI's banners about how the job ended (`Primary job
//! terminated normally, but 1 process returned a non-zero exit code`,
//! `mpirun noticed that process rank 2 ... exited on signal 9`) are held
//! back and dropped from stderr: the summary says the same in one line
//! (the verdict still reads them). What the lines mean is `verdict`'s
//! business.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::progress::SpinnerSlot;
use crate::verdict::{self, Note};

/// At most this many lines are kept for the verdict (the last ones).
const KEPT_LINES: usize = 256;

/// Copies the job's two output streams; see the module docs.
pub struct Relay {
    shared: Arc<Shared>,
}

struct Shared {
    spinner: SpinnerSlot,
    printed: AtomicBool,
    open_streams: AtomicUsize,
    kept: Mutex<VecDeque<Note>>,
}

/// Which of our streams a copy writes to.
#[derive(Debug, Clone, Copy)]
pub enum To {
    /// Our stdout.
    Stdout,
    /// Our stderr.
    Stderr,
}

impl Relay {
    /// A relay that removes `spinner`'s spinner when the job first prints.
    pub fn new(spinner: SpinnerSlot) -> Relay {
        Relay {
            shared: Arc::new(Shared {
                spinner,
                printed: AtomicBool::new(false),
                open_streams: AtomicUsize::new(0),
                kept: Mutex::new(VecDeque::new()),
            }),
        }
    }

    /// Copies `from` to `to` on a thread of its own until `from` ends.
    pub fn copy(&self, from: impl Read + Send + 'static, to: To) {
        let shared = Arc::clone(&self.shared);
        shared.open_streams.fetch_add(1, Ordering::SeqCst);
        let spawned = thread::Builder::new().name("rankview-relay".into()).spawn({
            let shared = Arc::clone(&shared);
            move || {
                pump(from, to, &shared);
                shared.open_streams.fetch_sub(1, Ordering::SeqCst);
            }
        });
        if spawned.is_err() {
            // No thread, no copy: the stream is dropped, and the job sees a
            // closed pipe. Count it as ended so nobody waits for it.
            shared.open_streams.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Whether the job has printed anything yet.
    pub fn printed(&self) -> bool {
        self.shared.printed.load(Ordering::SeqCst)
    }

    /// Waits up to `limit` for both streams to end (they end when the last
    /// process holding them exits).
    pub fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.shared.open_streams.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The lines kept for the verdict, in the order they arrived.
    pub fn kept_notes(&self) -> Vec<Note> {
        self.shared
            .kept
            .lock()
            .map(|notes| notes.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The copy loop of one stream.
fn pump(mut from: impl Read, to: To, shared: &Shared) {
    let mut buffer = [0u8; 8192];
    let mut line = Vec::new();
    let mut banners = Banners::default();
    let mut out = Vec::with_capacity(buffer.len());
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if !shared.printed.swap(true, Ordering::SeqCst) {
            if let Ok(mut slot) = shared.spinner.lock() {
                if let Some(spinner) = slot.take() {
                    spinner.finish_and_clear();
                }
            }
        }
        // A closed stdout (`| head`) must not stop the job: keep reading,
        // drop what cannot be written.
        let _ = match to {
            To::Stdout => write_all(io::stdout().lock(), &buffer[..n]),
            To::Stderr => {
                out.clear();
                banners.pass(&buffer[..n], &mut out);
                write_all(io::stderr().lock(), &out)
            }
        };
        for &byte in &buffer[..n] {
            if byte == b'\n' {
                keep(shared, to, &line);
                line.clear();
            } else if line.len() < 4096 {
                line.push(byte);
            }
        }
    }
    keep(shared, to, &line);
    if matches!(to, To::Stderr) {
        out.clear();
        banners.finish(&mut out);
        let _ = write_all(io::stderr().lock(), &out);
    }
}

/// What Open MPI's banners about the end of a job say: the summary says it.
const END_BANNERS: &[&str] = &[
    "Primary job  terminated normally",
    "mpirun detected that one or more processes exited with non-zero status",
    "mpirun noticed that process rank",
    "mpirun noticed that the job aborted",
];

/// Holds Open MPI's banners (a block between two lines of dashes) until
/// their closing line, then drops those of [`END_BANNERS`] and lets the
/// others through; everything else passes at once, partial lines included.
#[derive(Default)]
struct Banners {
    /// A line starting with `-` whose end is not known yet.
    pending: Vec<u8>,
    /// The bytes of a block since its opening line of dashes.
    held: Option<Vec<u8>>,
    /// The next byte starts a line.
    mid_line: bool,
}

/// A line of dashes (and an end of line) as Open MPI draws around a banner.
fn is_rule(line: &[u8]) -> bool {
    let bare = line.strip_suffix(b"\n").unwrap_or(line);
    let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
    bare.len() >= 20 && bare.iter().all(|&b| b == b'-')
}

impl Banners {
    /// Adds to `out` what of `bytes` may be written now.
    fn pass(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        for &b in bytes {
            if let Some(held) = &mut self.held {
                held.push(b);
                if b == b'\n' {
                    let start = held[..held.len() - 1]
                        .iter()
                        .rposition(|&c| c == b'\n')
                        .map_or(0, |at| at + 1);
                    // The closing rule (not the opening one, the block's
                    // first line).
                    if start > 0 && is_rule(&held[start..]) {
                        let text = String::from_utf8_lossy(held);
                        if !END_BANNERS.iter().any(|b| text.contains(b)) {
                            out.extend_from_slice(held);
                        }
                        self.held = None;
                    }
                }
                continue;
            }
            if !self.pending.is_empty() || (!self.mid_line && b == b'-') {
                self.pending.push(b);
                if b == b'\n' {
                    if is_rule(&self.pending) {
                        self.held = Some(std::mem::take(&mut self.pending));
                    } else {
                        out.append(&mut self.pending);
                    }
                    self.mid_line = false;
                } else if b != b'-' && b != b'\r' {
                    out.append(&mut self.pending);
                    self.mid_line = true;
                }
                continue;
            }
            out.push(b);
            self.mid_line = b != b'\n';
        }
    }

    /// The stream ended: whatever is held is written after all.
    fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.pending);
        if let Some(mut held) = self.held.take() {
            out.append(&mut held);
        }
    }
}

fn write_all(mut out: impl Write, bytes: &[u8]) -> io::Result<()> {
    out.write_all(bytes)?;
    out.flush()
}

/// Keeps `line`, which came to `to`, if the verdict may need it (dropping
/// the oldest kept line when there are too many).
fn keep(shared: &Shared, to: To, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    if !verdict::is_note(&text) {
        return;
    }
    if let Ok(mut kept) = shared.kept.lock() {
        if kept.len() == KEPT_LINES {
            kept.pop_front();
        }
        kept.push_back(Note {
            stderr: matches!(to, To::Stderr),
            text: text.trim_end().to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filtered(chunks: &[&str]) -> String {
        let mut banners = Banners::default();
        let mut out = Vec::new();
        for chunk in chunks {
            banners.pass(chunk.as_bytes(), &mut out);
        }
        banners.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn end_banners_are_dropped_and_the_rest_passes() {
        let rule = "-".repeat(74);
        let end = format!(
            "{rule}\nPrimary job  terminated normally, but 1 process returned\na non-zero exit code.\n{rule}\n"
        );
        let other = format!("{rule}\nThere are not enough slots available\n{rule}\n");
        let text = format!("rank says hi\n{end}-- a line of the program\n{other}bye");
        assert_eq!(
            filtered(&[&text]),
            format!("rank says hi\n-- a line of the program\n{other}bye")
        );
        // Split anywhere, the same.
        let bytes: Vec<String> = text.chars().map(String::from).collect();
        let pieces: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(filtered(&pieces), filtered(&[&text]));
        // A block that never closes is written when the stream ends.
        assert_eq!(
            filtered(&[&format!("{rule}\nhalf")]),
            format!("{rule}\nhalf")
        );
        // A partial line is not held.
        assert_eq!(filtered(&["prompt> "]), "prompt> ");
    }

    #[test]
    fn keeps_the_verdict_lines_and_ends() {
        let relay = Relay::new(SpinnerSlot::default());
        let text = "hello\n  Process name: [[1,1],2]\n  Exit code:    3\nbye";
        relay.copy(io::Cursor::new(text.as_bytes().to_vec()), To::Stderr);
        relay.drain(Duration::from_secs(5));
        assert!(relay.printed());
        let kept: Vec<(bool, String)> = relay
            .kept_notes()
            .into_iter()
            .map(|n| (n.stderr, n.text))
            .collect();
        assert_eq!(
            kept,
            [
                (true, "  Process name: [[1,1],2]".to_string()),
                (true, "  Exit code:    3".to_string())
            ]
        );
    }

    #[test]
    fn keeps_the_last_lines_of_chatty_output() {
        let relay = Relay::new(SpinnerSlot::default());
        let mut text = "  Exit code:    1\n".repeat(KEPT_LINES * 2);
        text.push_str("  Process name: [[1,1],2]\n  Exit code:    3\n");
        relay.copy(io::Cursor::new(text.into_bytes()), To::Stdout);
        relay.drain(Duration::from_secs(5));
        let kept = relay.kept_notes();
        assert_eq!(kept.len(), KEPT_LINES);
        assert_eq!(kept[KEPT_LINES - 1].text, "  Exit code:    3");
        assert!(!kept[0].stderr);
    }
}
