//! Running the job: spawn the MPI launcher, pass stop requests on, enforce
//! `--timeout`, and wait for it to end.
//!
//! Owns the child process from spawn to reaping and the timing of the
//! escalation (SIGTERM at the timeout, SIGKILL [`KILL_GRACE`] later; on a
//! second stop request SIGKILL, or for srun SIGTERM and SIGKILL on a third:
//! see `signals`), and the process group it runs in (see
//! `signals`). The child is polled, never waited on from another
//! thread, so its pid cannot be reused while we may still signal it. What
//! the ranks reported is `status`'s business; the words of the summary are
//! `summary`'s.

use std::os::unix::process::CommandExt as _;
use std::process::{ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::Error;
use crate::plan::LaunchPlan;
use crate::relay::{Relay, To};
use crate::signals::{Action, Group, StopRequests};
use crate::status::LAUNCHER_VAR;

/// Time between SIGTERM and SIGKILL when `--timeout` expires.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// How often the child, the signals and the clock are checked.
const POLL: Duration = Duration::from_millis(25);

/// How the MPI launcher process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal.
    Signalled(i32),
}

/// Whether the launcher stopped the job itself, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The job ended on its own.
    None,
    /// `--timeout` expired.
    TimedOut,
    /// This signal (SIGINT, SIGTERM, SIGHUP or SIGQUIT) reached the
    /// launcher: the first one, if several did.
    Interrupted(i32),
}

/// How a job went, as seen from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// How the MPI launcher process ended.
    pub end: End,
    /// Why the launcher stopped the job, if it did.
    pub stop: Stop,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

/// This launcher's stderr is a terminal that can draw a progress bar (not
/// `TERM=dumb`).
fn user_sees_a_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
        && !std::env::var_os("TERM").is_some_and(|t| t == "dumb")
}

/// Runs `plan` to its end, its output passed through `relay` when one is
/// given. `on_tick` is called on every poll (for progress).
pub fn supervise(
    plan: &LaunchPlan,
    timeout: Option<Duration>,
    relay: Option<&Relay>,
    mut on_tick: impl FnMut(),
) -> Result<Outcome, Error> {
    let group = Group::choose();
    let mut stops = StopRequests::catch(group, plan.escalation)?;
    let mut command = plan.command();
    // Rank 0's stderr reaches the user through pipes (the MPI launcher's,
    // this relay): tell it whether the user sees a terminal, so that
    // `wait_interactive` draws its bar.
    if user_sees_a_terminal() {
        command.env(LAUNCHER_VAR, "terminal");
    }
    if group == Group::Own {
        command.process_group(0);
    }
    if relay.is_some() {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = command
        .spawn()
        .map_err(|err| Error::io(format!("cannot start {}", plan.launcher.display()), err))?;
    if let Some(relay) = relay {
        if let Some(stdout) = child.stdout.take() {
            relay.copy(stdout, To::Stdout);
        }
        if let Some(stderr) = child.stderr.take() {
            relay.copy(stderr, To::Stderr);
        }
    }
    let started = Instant::now();
    let pid = i32::try_from(child.id()).ok().map(Pid::from_raw);
    let send = |signal: Signal| {
        if let Some(pid) = pid {
            // The child is not reaped yet, so the pid is still ours; an error
            // means it is already exiting, which is what we want.
            let _ = kill(pid, signal);
        }
    };
    let mut stop = Stop::None;
    let mut kill_at: Option<Instant> = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(err) => {
                let _ = child.kill();
                return Err(Error::io("cannot wait for the MPI launcher", err));
            }
        }
        for request in stops.poll() {
            match request.action {
                Action::Forward(signal) => send(signal),
                Action::AlreadyDelivered => {}
                Action::Kill => send(Signal::SIGKILL),
            }
            // An interrupt outranks a timeout already under way.
            if !matches!(stop, Stop::Interrupted(_)) {
                stop = Stop::Interrupted(request.signal as i32);
            }
        }
        let now = Instant::now();
        if let Some(limit) = timeout {
            if stop == Stop::None && now.duration_since(started) >= limit {
                send(Signal::SIGTERM);
                stop = Stop::TimedOut;
                kill_at = Some(now + KILL_GRACE);
            }
        }
        if kill_at.is_some_and(|at| now >= at) {
            send(Signal::SIGKILL);
            kill_at = None;
        }
        on_tick();
        thread::sleep(POLL);
    };
    Ok(Outcome {
        end: end_of(status),
        stop,
        elapsed: started.elapsed(),
    })
}

/// Reads an exit status as an [`End`].
fn end_of(status: ExitStatus) -> End {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => End::Exited(code),
        (None, Some(signal)) => End::Signalled(signal),
        // Stopped/continued statuses are never returned by wait for an exit.
        (None, None) => End::Exited(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan that runs `sh -c script` directly (no MPI), for timing tests.
    fn shell_plan(script: &str) -> LaunchPlan {
        LaunchPlan {
            launcher: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: Vec::new(),
            status_dir: None,
            notes: Vec::new(),
            escalation: crate::signals::Escalation::Kill,
            no_start_hint: None,
        }
    }

    #[test]
    fn reports_exit_codes_and_signals() {
        let outcome = supervise(&shell_plan("exit 3"), None, None, || {}).unwrap();
        assert_eq!(outcome.end, End::Exited(3));
        assert_eq!(outcome.stop, Stop::None);
        let outcome = supervise(&shell_plan("kill -9 $$"), None, None, || {}).unwrap();
        assert_eq!(outcome.end, End::Signalled(9));
    }

    #[test]
    fn timeout_terminates_then_kills() {
        let started = Instant::now();
        // Ignores SIGTERM, so only the SIGKILL after the grace period ends it.
        let outcome = supervise(
            &shell_plan("trap '' TERM; while :; do sleep 0.1; done"),
            Some(Duration::from_millis(200)),
            None,
            || {},
        )
        .unwrap();
        assert_eq!(outcome.stop, Stop::TimedOut);
        assert_eq!(outcome.end, End::Signalled(9));
        assert!(started.elapsed() >= KILL_GRACE);
        assert!(started.elapsed() < KILL_GRACE + Duration::from_secs(5));
    }
}
