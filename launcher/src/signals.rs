//! Stop requests while a job runs (SIGINT, SIGTERM, SIGHUP, SIGQUIT): what
//! to do with each one.
//!
//! Owns catching the four signals (so the launcher outlives them, stops the
//! job, cleans up and prints its summary) and the rule for each request: the
//! first one is passed on to the MPI launcher exactly once, a later one
//! stops it for good (see [`Escalation`]). Sending the signals is the `supervisor`'s job; where the MPI
//! launcher runs (its process group) is decided here, by [`Group::choose`],
//! because it decides whether a signal has already reached it.
//!
//! ## Delivered once
//!
//! Batch systems, systemd and `kill -TERM -PGID` signal a whole process
//! group, and Open MPI's `mpirun` takes a second SIGINT/SIGTERM as "abort
//! now". So the MPI launcher runs in a process group of its own
//! ([`Group::Own`]) and only this launcher signals it. The exception is a
//! launcher in the foreground of a terminal ([`Group::Shared`]): there the
//! MPI launcher stays in the terminal's foreground group so that it can read
//! the terminal for rank 0's stdin, a key (Ctrl-C, Ctrl-\) or a hangup
//! reaches it straight from the kernel, and such a signal (`SI_KERNEL`) is
//! not sent again.
//!
//! ## Which signal is passed on
//!
//! SIGINT and SIGTERM are passed on as they are; SIGHUP and SIGQUIT as
//! SIGTERM (the MPI launcher must stop its ranks, not die and leave them).
//! After any of them the launcher exits 128 + the signal it received.
//!
//! ## srun
//!
//! srun takes signals its own way: a first SIGINT only prints the tasks'
//! status (unless it was started with `--disable-status`, which `plan`
//! adds: the SIGINT then goes to the ranks), and SIGTERM (or SIGHUP,
//! SIGQUIT) makes it SIGKILL every task at once, on every node. Killing srun
//! itself would leave the tasks on other nodes running, so a second request
//! sends srun SIGTERM and only a third kills it
//! ([`Escalation::TermThenKill`]).

use nix::sys::signal::Signal;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::SignalsInfo;
use signal_hook::low_level::siginfo::Cause;

use crate::error::Error;
use crate::host;

/// Where the MPI launcher runs, relative to this launcher's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// A process group of its own: only this launcher signals it.
    Own,
    /// This launcher's group, the foreground of a terminal: keys typed there
    /// reach it directly.
    Shared,
}

impl Group {
    /// [`Group::Shared`] when stdin is a terminal whose foreground process
    /// group is ours, [`Group::Own`] otherwise.
    pub fn choose() -> Group {
        if host::stdin_is_foreground_terminal() {
            Group::Shared
        } else {
            Group::Own
        }
    }
}

/// How the MPI launcher is stopped for good after the first request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalation {
    /// The second request kills it (`mpirun`, `mpiexec`: ranks it leaves on
    /// this machine are swept by `orphans`).
    Kill,
    /// The second request sends it SIGTERM (srun then SIGKILLs every task
    /// on every node), the third kills it.
    TermThenKill,
}

/// What the supervisor should do about a stop request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send this signal to the MPI launcher.
    Forward(Signal),
    /// The MPI launcher already got it from the terminal: nothing to send.
    AlreadyDelivered,
    /// Kill the MPI launcher with SIGKILL.
    Kill,
}

/// One stop request: the signal received and what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The signal this launcher received.
    pub signal: Signal,
    /// What to do.
    pub action: Action,
}

/// Catches SIGINT, SIGTERM, SIGHUP and SIGQUIT for as long as it lives.
pub struct StopRequests {
    signals: SignalsInfo<WithOrigin>,
    group: Group,
    escalation: Escalation,
    seen: u32,
}

impl StopRequests {
    /// Starts catching the stop signals, for an MPI launcher run in `group`
    /// and stopped for good by `escalation`.
    pub fn catch(group: Group, escalation: Escalation) -> Result<StopRequests, Error> {
        let signals = SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])
            .map_err(|err| Error::io("cannot install signal handlers", err))?;
        Ok(StopRequests {
            signals,
            group,
            escalation,
            seen: 0,
        })
    }

    /// The stop requests that arrived since the last call (never blocks).
    pub fn poll(&mut self) -> Vec<Request> {
        let mut requests = Vec::new();
        for origin in self.signals.pending() {
            let Ok(signal) = Signal::try_from(origin.signal) else {
                continue;
            };
            let from_kernel = origin.cause == Cause::Kernel;
            requests.push(Request {
                signal,
                action: decide(self.seen, signal, self.group, from_kernel, self.escalation),
            });
            self.seen += 1;
        }
        requests
    }
}

/// The rule: the first request is passed on once (not at all when the
/// kernel already delivered it to a shared group), a later one stops the
/// MPI launcher by `escalation`.
pub fn decide(
    seen_before: u32,
    signal: Signal,
    group: Group,
    from_kernel: bool,
    escalation: Escalation,
) -> Action {
    match (seen_before, escalation) {
        (0, _) => {}
        (1, Escalation::TermThenKill) => return Action::Forward(Signal::SIGTERM),
        _ => return Action::Kill,
    }
    if group == Group::Shared && from_kernel {
        return Action::AlreadyDelivered;
    }
    Action::Forward(forwarded(signal))
}

/// The signal passed on for a received one: SIGHUP and SIGQUIT become
/// SIGTERM.
fn forwarded(signal: Signal) -> Signal {
    match signal {
        Signal::SIGHUP | Signal::SIGQUIT => Signal::SIGTERM,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_request_is_forwarded_once_second_kills() {
        for group in [Group::Own, Group::Shared] {
            assert_eq!(
                decide(0, Signal::SIGTERM, group, false, Escalation::Kill),
                Action::Forward(Signal::SIGTERM)
            );
            assert_eq!(
                decide(0, Signal::SIGINT, group, false, Escalation::Kill),
                Action::Forward(Signal::SIGINT)
            );
            assert_eq!(
                decide(1, Signal::SIGINT, group, true, Escalation::Kill),
                Action::Kill
            );
            assert_eq!(
                decide(1, Signal::SIGTERM, group, false, Escalation::Kill),
                Action::Kill
            );
        }
    }

    #[test]
    fn srun_gets_sigterm_before_it_is_killed() {
        let esc = Escalation::TermThenKill;
        assert_eq!(
            decide(0, Signal::SIGINT, Group::Own, false, esc),
            Action::Forward(Signal::SIGINT)
        );
        for signal in [Signal::SIGINT, Signal::SIGTERM] {
            assert_eq!(
                decide(1, signal, Group::Own, false, esc),
                Action::Forward(Signal::SIGTERM)
            );
            assert_eq!(decide(2, signal, Group::Shared, true, esc), Action::Kill);
        }
    }

    #[test]
    fn kernel_signals_reach_a_shared_group_by_themselves() {
        assert_eq!(
            decide(0, Signal::SIGINT, Group::Shared, true, Escalation::Kill),
            Action::AlreadyDelivered
        );
        assert_eq!(
            decide(0, Signal::SIGHUP, Group::Shared, true, Escalation::Kill),
            Action::AlreadyDelivered
        );
        // In a group of its own, nothing reaches the MPI launcher but us.
        assert_eq!(
            decide(0, Signal::SIGINT, Group::Own, true, Escalation::Kill),
            Action::Forward(Signal::SIGINT)
        );
    }

    #[test]
    fn hangup_and_quit_stop_the_job_like_sigterm() {
        for signal in [Signal::SIGHUP, Signal::SIGQUIT] {
            assert_eq!(
                decide(0, signal, Group::Own, false, Escalation::Kill),
                Action::Forward(Signal::SIGTERM)
            );
        }
    }
}
