//! Ctrl-C and SIGTERM while a job runs: what to do with each one.
//!
//! Owns catching SIGINT and SIGTERM (so the launcher outlives them and can
//! print its summary) and the escalation rule: the first stop request is
//! passed on to the MPI launcher, which passes it to the ranks; a second one
//! kills the MPI launcher with SIGKILL. Sending the signals is the
//! `supervisor`'s job.
//!
//! ## Terminal signals
//!
//! A Ctrl-C typed at a terminal reaches the whole foreground process group,
//! which includes the MPI launcher (it is not moved to a group of its own,
//! so that it keeps the terminal for stdin). Such a signal is not forwarded
//! again: Open MPI's `mpirun` treats two quick SIGINTs as "abort harder".
//! The kernel marks terminal signals (`SI_KERNEL`), which is how they are
//! told apart from a `kill` by another process.

use nix::sys::signal::Signal;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::SignalsInfo;
use signal_hook::low_level::siginfo::Cause;

use crate::error::Error;

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

/// Catches SIGINT and SIGTERM for as long as it lives.
pub struct StopRequests {
    signals: SignalsInfo<WithOrigin>,
    seen: u32,
}

impl StopRequests {
    /// Starts catching SIGINT and SIGTERM.
    pub fn catch() -> Result<StopRequests, Error> {
        let signals = SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM])
            .map_err(|err| Error::io("cannot install signal handlers", err))?;
        Ok(StopRequests { signals, seen: 0 })
    }

    /// The actions for the stop requests that arrived since the last call
    /// (never blocks).
    pub fn poll(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        for origin in self.signals.pending() {
            let Ok(signal) = Signal::try_from(origin.signal) else {
                continue;
            };
            let from_terminal = signal == Signal::SIGINT && origin.cause == Cause::Kernel;
            actions.push(decide(self.seen, signal, from_terminal));
            self.seen += 1;
        }
        actions
    }
}

/// The escalation rule: the first request is forwarded (unless the terminal
/// already delivered it), any later one kills.
pub fn decide(seen_before: u32, signal: Signal, from_terminal: bool) -> Action {
    match (seen_before, from_terminal) {
        (0, true) => Action::AlreadyDelivered,
        (0, false) => Action::Forward(signal),
        _ => Action::Kill,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_request_is_forwarded_second_kills() {
        assert_eq!(
            decide(0, Signal::SIGTERM, false),
            Action::Forward(Signal::SIGTERM)
        );
        assert_eq!(
            decide(0, Signal::SIGINT, false),
            Action::Forward(Signal::SIGINT)
        );
        assert_eq!(decide(0, Signal::SIGINT, true), Action::AlreadyDelivered);
        assert_eq!(decide(1, Signal::SIGINT, true), Action::Kill);
        assert_eq!(decide(1, Signal::SIGTERM, false), Action::Kill);
    }
}
