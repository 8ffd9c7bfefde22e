//! Shell commands on engines: rankview's answer to ipyparallel's `%px !cmd`.
//!
//! [`DirectView::shell`] runs a command line through `sh -c` on every engine
//! of a view, as an ordinary task of a remote function that this crate
//! registers (no protocol of its own). The command's stdout and stderr are
//! read through pipes of their own, never through the engine's captured
//! descriptors, so nothing the command (or a process it leaves behind)
//! writes can land in a later task's output; the task then writes what it
//! read to its own output, which is how it reaches the result's metadata
//! and [`display_outputs`](crate::AsyncResult::display_outputs).

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

pub use crate::error::ShellStatus;

use crate::error::{Error, Result};
use crate::protocol::Request;
use crate::registry::registry;
use crate::remote::{IntoArg, TaskResult};
use crate::result::{AsyncResult, Payload};
use crate::view::direct::DirectView;
use crate::view::shape::Shape;

/// What a shell command did on one engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellOutput {
    /// The engine it ran on.
    pub engine: usize,
    /// How it ended.
    pub status: ShellStatus,
    /// Everything it wrote to stdout (bytes that are not UTF-8 become
    /// `U+FFFD`).
    pub stdout: String,
    /// Everything it wrote to stderr, as `stdout`.
    pub stderr: String,
}

/// What the engine sends back; the client adds the engine id.
#[derive(Debug, Serialize, Deserialize)]
struct Ran {
    status: ShellStatus,
    stdout: String,
    stderr: String,
}

/// Bytes of stderr an [`Error::Shell`] keeps (its end).
const STDERR_TAIL: usize = 2000;

/// Runs `cmdline` through `sh -c` with stdin empty and stdout and stderr
/// piped, waits for it (and for every process holding its pipes), and
/// echoes its output into the task's own.
#[rankview_macros::remote]
fn shell_command(cmdline: String) -> TaskResult<Ran> {
    let output = Command::new("sh")
        .arg("-c")
        .arg(&cmdline)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()?;
    let status = match (output.status.code(), output.status.signal()) {
        (Some(code), _) => ShellStatus::Exited(code),
        (None, Some(signal)) => ShellStatus::Signalled(signal),
        (None, None) => ShellStatus::Exited(-1),
    };
    let ran = Ran {
        status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    // Into the task's captured output, for the metadata and display_outputs.
    let mut out = std::io::stdout().lock();
    out.write_all(ran.stdout.as_bytes())?;
    out.flush()?;
    let mut err = std::io::stderr().lock();
    err.write_all(ran.stderr.as_bytes())?;
    err.flush()?;
    Ok(ran)
}

/// The id of a registered function, from a value of its type.
fn id_of<F: 'static>(_: F) -> Result<u64> {
    registry().id_of::<F>()
}

/// The end of `text`, at most [`STDERR_TAIL`] bytes, cut at a character.
fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(STDERR_TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].trim_end()
}

impl<S: Shape> DirectView<S> {
    /// Runs the command line `cmdline` through `sh -c` on every engine of
    /// the view, capturing its stdout, stderr and exit status per engine
    /// (rankview's `%px !cmd`). One engine: a [`ShellOutput`]; several: a
    /// `Vec` of them in target order.
    ///
    /// A command that exits with a non-zero status or is killed (a command
    /// `sh` cannot find exits with 127) is [`Error::Shell`] naming the
    /// engine, the status and the end of its stderr (several engines:
    /// [`Error::Composite`]); [`shell_status`](DirectView::shell_status)
    /// returns the statuses instead. The output also lands in the result's
    /// [`metadata`](AsyncResult::metadata), so
    /// [`display_outputs`](AsyncResult::display_outputs) prints it as
    /// `[stdout:N]` blocks (the last 1 MiB of it, as for any task; the
    /// [`ShellOutput`] has all of it).
    ///
    /// The command runs in the engine's working directory and environment,
    /// with stdin empty and its own pipes for stdout and stderr; the task
    /// ends when the command has exited and every process it started has
    /// closed those pipes (a `cmd &` left running keeps the task waiting
    /// unless its output goes elsewhere). Like any task, it runs after the
    /// tasks sent to that engine before it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// rankview::launch(|rc| -> rankview::Result<()> {
    ///     let ar = rc.all().shell("hostname && nproc");
    ///     for out in ar.get()? {
    ///         println!("engine {}: {}", out.engine, out.stdout.trim());
    ///     }
    ///     ar.display_outputs(); // [stdout:0] ..., [stdout:1] ...
    ///     let status = rc.engine(0)?.shell_status("exit 3").get()?.status;
    ///     assert_eq!(status.code(), Some(3));
    ///     Ok(())
    /// });
    /// ```
    pub fn shell(&self, cmdline: &str) -> AsyncResult<S::Out<ShellOutput>> {
        self.run_shell(cmdline, true)
    }

    /// [`shell`](DirectView::shell), with a non-zero exit returned in
    /// [`ShellOutput::status`] instead of as an error.
    pub fn shell_status(&self, cmdline: &str) -> AsyncResult<S::Out<ShellOutput>> {
        self.run_shell(cmdline, false)
    }

    fn run_shell(&self, cmdline: &str, check: bool) -> AsyncResult<S::Out<ShellOutput>> {
        let built = id_of(shell_command).and_then(|function| {
            Ok((
                function,
                smallvec::smallvec![IntoArg::<String>::into_wire(cmdline.to_string())?],
            ))
        });
        let (function, args) = match built {
            Ok(b) => b,
            Err(e) => return AsyncResult::failed(e),
        };
        self.client.submit::<S, ShellOutput>(
            &self.targets,
            move |task| {
                // A shell command is no task of the user's: no communicator.
                Ok(Request::Apply {
                    task,
                    function,
                    args,
                    team: None,
                })
            },
            move |engine, payload: &mut Payload| {
                let ran: Ran = super::direct::decode_value(engine, payload)?;
                if check && !ran.status.success() {
                    return Err(Error::Shell {
                        engine,
                        status: ran.status,
                        stderr: tail(&ran.stderr).to_string(),
                    });
                }
                Ok(ShellOutput {
                    engine,
                    status: ran.status,
                    stdout: ran.stdout,
                    stderr: ran.stderr,
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stderr_tail_is_cut_at_a_character_and_trimmed() {
        let long = format!("{}é\nlast line\n", "x".repeat(STDERR_TAIL));
        let t = tail(&long);
        assert!(t.ends_with("last line"));
        assert!(t.len() <= STDERR_TAIL);
        assert_eq!(tail("short\n"), "short");
    }

    #[test]
    fn statuses_say_how_the_command_ended() {
        assert!(ShellStatus::Exited(0).success());
        assert!(!ShellStatus::Exited(127).success());
        assert_eq!(ShellStatus::Signalled(9).code(), None);
        assert_eq!(ShellStatus::Exited(3).to_string(), "exited with status 3");
        assert_eq!(
            ShellStatus::Signalled(9).to_string(),
            "was killed by signal 9"
        );
    }
}
