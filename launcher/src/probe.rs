//! Asking helper tools a question: `mpirun --version`, `ompi_info --parsable`,
//! `mpichversion`.
//!
//! Owns running a short-lived command with its output captured, stdin
//! closed, and a time limit (a broken MPI installation must not hang the
//! launcher). What the answer means is left to the caller (`mpiexec`,
//! `info`).

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a helper tool may take before it is killed.
pub const PROBE_LIMIT: Duration = Duration::from_secs(20);

/// What a helper printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its stdout followed by its stderr, lossily decoded.
    pub text: String,
}

/// Runs `program args...` and returns what it printed, or an error if it
/// could not be started or ran longer than `limit` (it is then killed).
pub fn ask(program: &Path, args: &[&str], limit: Duration) -> io::Result<Answer> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            // Already exited or not killable: either way we stop waiting.
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {} s", limit.as_secs()),
            ));
        }
        thread::sleep(Duration::from_millis(10));
    };
    let mut text = collect(stdout);
    text.push_str(&collect(stderr));
    Ok(Answer {
        success: status.success(),
        text,
    })
}

/// Reads a pipe to the end on its own thread (so neither pipe can fill up
/// and block the child while we read the other).
fn drain(mut pipe: impl io::Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        // A read error just ends the output early.
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// The text a drain thread collected (empty if it panicked or never ran).
fn collect(handle: Option<thread::JoinHandle<Vec<u8>>>) -> String {
    handle
        .and_then(|h| h.join().ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let answer = ask(
            Path::new("/bin/sh"),
            &["-c", "echo out; echo err >&2; exit 3"],
            PROBE_LIMIT,
        )
        .unwrap();
        assert!(!answer.success);
        assert_eq!(answer.text, "out\nerr\n");
    }

    #[test]
    fn gives_up_on_a_hung_tool() {
        let started = Instant::now();
        let err = ask(Path::new("/bin/sleep"), &["30"], Duration::from_millis(200)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
