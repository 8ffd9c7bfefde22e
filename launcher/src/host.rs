//! Facts about the machine the launcher runs on: cores, user, terminal.
//!
//! Owns how each fact is found out (without linking libc's `getuid` directly:
//! nix's safe wrapper). What the facts imply for MPI's flags is left to
//! `mpiexec::flavour`.

use std::io::IsTerminal as _;
use std::os::fd::AsFd as _;

/// What the launcher knows about this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// Cores this process may use (`std::thread::available_parallelism`, 1
    /// when unknown).
    pub cores: usize,
    /// Whether we run as root (effective uid 0), which OpenMPI refuses
    /// unless told otherwise.
    pub is_root: bool,
}

impl Host {
    /// Looks at this machine.
    pub fn detect() -> Host {
        Host {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            is_root: nix::unistd::geteuid().is_root(),
        }
    }

    /// The number of ranks when `-n` is omitted: one engine per core, plus
    /// the controller.
    pub fn default_ranks(&self) -> u32 {
        u32::try_from(self.cores)
            .unwrap_or(u32::MAX - 1)
            .saturating_add(1)
    }
}

/// Whether stderr is a terminal (spinners are drawn only then).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Whether stdin is a terminal and this process is in its foreground
/// process group (an interactive `rankview run`, not a batch job or a `&`).
pub fn stdin_is_foreground_terminal() -> bool {
    let stdin = std::io::stdin();
    stdin.is_terminal()
        && nix::unistd::tcgetpgrp(stdin.as_fd()).is_ok_and(|group| group == nix::unistd::getpgrp())
}

/// Whether the launcher runs inside a Slurm allocation (`SLURM_JOB_ID` set).
pub fn in_slurm_allocation() -> bool {
    std::env::var_os("SLURM_JOB_ID").is_some_and(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ranks_is_cores_plus_one() {
        let host = Host {
            cores: 4,
            is_root: false,
        };
        assert_eq!(host.default_ranks(), 5);
        assert!(Host::detect().default_ranks() >= 2);
    }
}
