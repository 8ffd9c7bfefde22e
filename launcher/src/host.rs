//! Facts about the machine the launcher runs on: cores, user, name,
//! terminal.
//!
//! Owns how each fact is found out (without linking libc's `getuid` directly:
//! nix's safe wrapper). What the facts imply for MPI's flags is left to
//! `mpiexec::launch`.

use std::collections::BTreeSet;
use std::io::IsTerminal as _;
use std::os::fd::AsFd as _;
use std::path::Path;

/// What the launcher knows about this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// Logical CPUs this process may use (`std::thread::available_parallelism`,
    /// 1 when unknown).
    pub cores: usize,
    /// Physical cores among the CPUs this process may use, counted as hwloc
    /// (hence Open MPI) counts them: distinct (package, core) pairs of the
    /// allowed CPUs. Equal to `cores` when the topology cannot be read.
    pub physical_cores: usize,
    /// Whether we run as root (effective uid 0), which OpenMPI refuses
    /// unless told otherwise.
    pub is_root: bool,
}

impl Host {
    /// Looks at this machine.
    pub fn detect() -> Host {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let allowed = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                    .map(cpu_list)
            });
        let physical_cores = allowed
            .and_then(|cpus| physical_cores_in(Path::new("/sys/devices/system/cpu"), &cpus))
            .unwrap_or(cores);
        Host {
            cores,
            physical_cores,
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

/// This machine's host name, as a rank on it reports it in its status file
/// (the kernel's, `gethostname`); `None` when it cannot be read.
pub fn name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
}

/// Parses a CPU list such as `0-3,8,10-11`.
fn cpu_list(text: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(first), Ok(last)) = (first.trim().parse::<usize>(), last.trim().parse::<usize>())
        {
            cpus.extend(first..=last);
        }
    }
    cpus
}

/// The distinct (package, core) pairs of `cpus` under `sys_cpu` (a
/// `/sys/devices/system/cpu` tree); `None` if any cannot be read.
fn physical_cores_in(sys_cpu: &Path, cpus: &[usize]) -> Option<usize> {
    let read = |cpu: usize, file: &str| -> Option<String> {
        std::fs::read_to_string(sys_cpu.join(format!("cpu{cpu}/topology/{file}")))
            .ok()
            .map(|t| t.trim().to_string())
    };
    let mut cores = BTreeSet::new();
    for &cpu in cpus {
        cores.insert((read(cpu, "physical_package_id")?, read(cpu, "core_id")?));
    }
    (!cores.is_empty()).then_some(cores.len())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ranks_is_cores_plus_one() {
        let host = Host {
            cores: 4,
            physical_cores: 2,
            is_root: false,
        };
        assert_eq!(host.default_ranks(), 5);
        assert!(Host::detect().default_ranks() >= 2);
    }

    #[test]
    fn physical_cores_count_smt_siblings_once() {
        assert_eq!(cpu_list("0-3,8,10-11\n"), [0, 1, 2, 3, 8, 10, 11]);
        let sys = tempfile::tempdir().unwrap();
        // 2 packages x 2 cores x 2 threads: cpu N is core N/2 % 2 of package N/4.
        for cpu in 0..8 {
            let dir = sys.path().join(format!("cpu{cpu}/topology"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("physical_package_id"), format!("{}\n", cpu / 4)).unwrap();
            std::fs::write(dir.join("core_id"), format!("{}\n", (cpu / 2) % 2)).unwrap();
        }
        assert_eq!(
            physical_cores_in(sys.path(), &(0..8).collect::<Vec<_>>()),
            Some(4)
        );
        // Only the CPUs this process may use count.
        assert_eq!(physical_cores_in(sys.path(), &[0, 1, 2]), Some(2));
        assert_eq!(physical_cores_in(sys.path(), &[9]), None);
        let host = Host::detect();
        assert!(host.physical_cores >= 1);
    }
}
