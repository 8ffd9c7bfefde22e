//! The harness of the launcher's end-to-end tests: the built `rankview`
//! with a clean MPI environment, what a run printed ([`Run`], shown in full
//! when an assertion fails), fake executables written as shell scripts, and
//! the job lock every test that starts a real MPI job holds.

// Each test crate uses a different part of the harness.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

// The job lock of the `rankview` package's tests, shared by path so that
// both harnesses lock the same file the same way.
#[path = "../../../tests/common/job_lock.rs"]
mod job_lock;

pub use job_lock::JobLock;

/// Takes the [`JobLock`]; held by every test that starts a real MPI job.
pub fn mpi_job_lock() -> JobLock {
    // <target>/<profile>/rankview
    let target = Path::new(env!("CARGO_BIN_EXE_rankview"))
        .parent()
        .and_then(Path::parent)
        .expect("the launcher is built in <target>/<profile>");
    JobLock::acquire_in(target)
}

/// The built launcher, with a clean MPI-related environment.
pub fn rankview() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rankview"));
    command
        .env_remove("MPIEXEC")
        .env_remove("SLURM_JOB_ID")
        .env_remove("SLURM_NTASKS")
        .env_remove("SLURM_NPROCS")
        .env_remove("PBS_JOBID")
        .env_remove("PBS_NODEFILE")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null());
    command
}

/// What a run printed, shown in full when an assertion fails.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "\nexit code: {:?} after {:.2?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

pub fn run(command: &mut Command) -> Run {
    let started = Instant::now();
    finished(command.output().expect("cannot run rankview"), started)
}

/// The `Run` of a process started at `started` that ended with `output`.
pub fn finished(output: Output, started: Instant) -> Run {
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// A 2-rank job interrupted by `signal` (e.g. `SIGTERM`): ended soon, with
/// 128 + the signal's number, and said so.
pub fn assert_interrupted(result: &Run, signal: &str, code: i32) {
    assert!(result.elapsed < Duration::from_secs(15), "{result:?}");
    assert_eq!(result.code, Some(code), "{result:?}");
    assert!(
        result
            .stderr
            .contains(&format!("rankview: job interrupted by {signal}: 2 ranks")),
        "{result:?}"
    );
}

pub fn rankview_with(args: &[&str]) -> Run {
    run(rankview().args(args))
}

/// A usage-style failure: the given exit code, a first line starting with
/// `rankview: error:` and containing `fragment`, a few lines at most, and
/// no sign of a panic.
pub fn assert_clear_error(result: &Run, code: i32, fragment: &str) {
    assert_eq!(result.code, Some(code), "{result:?}");
    let first = result.stderr.lines().next().unwrap_or("");
    assert!(first.starts_with("rankview: error: "), "{result:?}");
    assert!(
        result.stderr.contains(fragment),
        "expected {fragment:?}: {result:?}"
    );
    assert!(result.stderr.lines().count() <= 4, "too long: {result:?}");
    assert_no_panic(result);
}

pub fn assert_no_panic(result: &Run) {
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(!result.stderr.contains(bad), "{bad}: {result:?}");
        assert!(!result.stdout.contains(bad), "{bad}: {result:?}");
    }
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn is_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    // Real, effective, saved, filesystem: the effective one decides.
    uid_line.split_whitespace().nth(2) == Some("0")
}

/// Writes an executable shell script.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A directory with a fake MPI launcher `name` whose `--version` prints
/// `version`.
pub fn fake_mpi(name: &str, version: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = script(
        dir.path(),
        name,
        &format!("if [ \"$1\" = --version ]; then printf '%s\\n' '{version}'; exit 0; fi\nexit 99"),
    );
    (dir, path)
}

/// A fake executable `name` in `dir` that records each run: its arguments
/// (one a line) in `dir/NAME.args`, its environment in `dir/NAME.env`, its
/// working directory in `dir/NAME.cwd` and its standard input in
/// `dir/NAME.stdin`; then prints `reply` and exits `exit`. `--version`
/// prints `version` and records nothing (the launcher asks it first).
pub fn recording_fake(dir: &Path, name: &str, version: &str, reply: &str, exit: i32) -> PathBuf {
    let log = dir.join(name);
    let log = log.display();
    script(
        dir,
        name,
        &format!(
            r#"if [ "$1" = --version ]; then printf '%s\n' '{version}'; exit 0; fi
: > "{log}.args"
for a in "$@"; do printf '%s\n' "$a" >> "{log}.args"; done
env > "{log}.env"
pwd > "{log}.cwd"
cat > "{log}.stdin"
printf '%s\n' '{reply}'
exit {exit}"#
        ),
    )
}

/// What a [`recording_fake`] recorded, if it ran.
pub struct Recorded {
    /// Its arguments.
    pub args: Vec<String>,
    /// Its environment, `NAME=value` lines.
    pub env: String,
    /// Its working directory.
    pub cwd: PathBuf,
    /// What it read on stdin.
    pub stdin: String,
}

impl Recorded {
    /// Reads the record of fake `name` in `dir` (`None`: it never ran).
    pub fn of(dir: &Path, name: &str) -> Option<Recorded> {
        let read = |ext: &str| fs::read_to_string(dir.join(format!("{name}.{ext}")));
        let args = read("args").ok()?;
        Some(Recorded {
            args: args.lines().map(str::to_string).collect(),
            env: read("env").unwrap_or_default(),
            cwd: PathBuf::from(read("cwd").unwrap_or_default().trim()),
            stdin: read("stdin").unwrap_or_default(),
        })
    }

    /// The value of environment variable `name`, if it was set.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
    }
}

/// `PATH` made of `dir` and the system's directories (no MPI, no scheduler
/// but what `dir` holds, unless the system has them).
pub fn path_with(dir: &Path) -> String {
    format!("{}:/usr/bin:/bin", dir.display())
}

/// Whether `bash -n` accepts `script` (the text of a script), and what it said.
pub fn bash_n(script: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("job.sh");
    fs::write(&file, script).unwrap();
    let output = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
