//! Processes of a job left running after its MPI launcher was killed.
//!
//! When `mpirun` dies by a signal (a second Ctrl-C, a `--timeout` it did not
//! obey, the OOM killer), or gives up on ranks that ignore SIGINT/SIGTERM
//! (Open MPI's `mpirun` exits after a second Ctrl-C without killing them),
//! the ranks outlive it, and Open MPI puts each local rank in a process
//! group of its own, so nothing else stops them.
//! This module owns finding and killing them: every process of the job
//! carries the job's unique `RANKVIEW_STATUS_DIR` in its environment, so the
//! processes on this machine whose `/proc/<pid>/environ` holds it are the
//! job's (ranks and anything they started), and nothing else is touched.
//! Where `/proc` cannot be read, nothing is killed. Deciding *when* to sweep
//! is `run`'s business.

use std::fs;
use std::os::unix::ffi::OsStrExt as _;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::status::{StatusDir, STATUS_DIR_VAR};

/// Kills every process on this machine (other than the launcher itself)
/// whose environment has this job's `RANKVIEW_STATUS_DIR`; returns their
/// pids.
pub fn sweep(dir: &StatusDir) -> Vec<u32> {
    let marker = marker(dir);
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut killed = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || !belongs_to_job(pid, &marker) {
            continue;
        }
        let Ok(raw) = i32::try_from(pid) else {
            continue;
        };
        if kill(Pid::from_raw(raw), Signal::SIGKILL).is_ok() {
            killed.push(pid);
        }
    }
    killed
}

/// The environment entry `RANKVIEW_STATUS_DIR=<dir>`, as bytes.
fn marker(dir: &StatusDir) -> Vec<u8> {
    let mut marker = format!("{STATUS_DIR_VAR}=").into_bytes();
    marker.extend_from_slice(dir.path().as_os_str().as_bytes());
    marker
}

/// Whether process `pid` has `marker` (`VAR=value`) as one of its
/// environment entries (false if it cannot be read, e.g. another user's).
fn belongs_to_job(pid: u32, marker: &[u8]) -> bool {
    fs::read(format!("/proc/{pid}/environ"))
        .map(|environ| environ.split(|&b| b == 0).any(|entry| entry == marker))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn kills_only_processes_of_this_job() {
        let dir = StatusDir::create().unwrap();
        let mut ours = Command::new("sleep")
            .arg("30")
            .env(STATUS_DIR_VAR, dir.path())
            .spawn()
            .unwrap();
        let mut other = Command::new("sleep")
            .arg("30")
            .env(STATUS_DIR_VAR, "/somewhere/else")
            .spawn()
            .unwrap();
        // Let both exec, so /proc shows sleep's environment.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(sweep(&dir), [ours.id()]);
        assert!(!ours.wait().unwrap().success());
        assert_eq!(other.try_wait().unwrap(), None);
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
