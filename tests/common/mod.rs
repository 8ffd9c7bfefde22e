//! The harness of the integration tests: builds the example binaries, runs
//! them as real MPI jobs and reports what happened.
//!
//! [`mpirun`] builds an example and starts `mpirun -n N <example> ARGS`
//! (and [`mpirun_args`] any other `mpirun` command line, e.g. MPMD) with the
//! settings this machine needs (root, oversubscription, no binding), one job at a time across every
//! test thread and test process (an exclusive `flock` on
//! `<target>/rankview-mpi-tests.lock`), and kills the whole job when it
//! outlives [`timeout`]: a hang is a test failure, never a stuck CI.
//! `RANKVIEW_TEST_MPI_ARGS` adds flags to every job (e.g. `--mca btl
//! tcp,self`), `RANKVIEW_TEST_TIMEOUT` changes the time limit. The
//! returned [`Run`] prints itself as labelled blocks (command, status,
//! stdout, stderr) when an assertion on it fails. [`launcher`] builds the
//! `rankview` launcher, for tests that run jobs through it (taking the
//! [`JobLock`] themselves). What each job is expected
//! to print is left to the test files; the check programs' line format
//! (`ok: NAME` / `FAIL: NAME: why` / `skip: NAME: why`) is read by
//! [`Run::assert_checks`] and [`Run::assert_checks_skipping`].

// Each test crate uses a different part of the harness.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one MPI job may take before it is killed and the test fails.
/// `RANKVIEW_TEST_TIMEOUT` (seconds) overrides the default of 120 s.
pub fn timeout() -> Duration {
    std::env::var("RANKVIEW_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(120))
}

/// Extra `mpirun` flags from `RANKVIEW_TEST_MPI_ARGS` (split on whitespace),
/// e.g. `--mca btl tcp,self` to run the suite over TCP only (what a
/// multi-node job uses).
pub fn extra_mpi_args() -> Vec<String> {
    std::env::var("RANKVIEW_TEST_MPI_ARGS")
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// Where cargo puts this test binary's artifacts: `<target>/<profile>`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    // <target>/<profile>/deps/<test-binary>
    let deps = exe.parent().expect("the test binary is in a directory");
    deps.parent()
        .expect("the test binary is in <target>/<profile>/deps")
        .to_path_buf()
}

/// The cargo target directory of this build.
pub fn target_dir() -> PathBuf {
    profile_dir()
        .parent()
        .expect("the profile directory is inside the target directory")
        .to_path_buf()
}

/// Builds the example `name`, once per process.
///
/// Always runs cargo (a no-op when nothing changed) rather than trusting a
/// binary that exists: `cargo test --test NAME` does not rebuild examples, and
/// a stale binary would test yesterday's library. One example at a time, so
/// that a test does not depend on unrelated examples compiling.
fn build_example(name: &str) {
    cargo_build(&["--package", "rankview", "--example", name]);
}

/// Runs `cargo build ARGS` for this build's target directory and profile,
/// once per process for the same arguments; fails the test if it fails.
fn cargo_build(args: &[&str]) {
    static BUILT: Mutex<BTreeMap<String, Result<(), String>>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    let outcome = built.entry(args.join(" ")).or_insert_with(|| {
        let cargo = std::env::var_os("CARGO")
            .or_else(|| option_env!("CARGO").map(OsString::from))
            .unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .arg("build")
            .args(args)
            .arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir());
        match profile_dir().file_name().and_then(OsStr::to_str) {
            Some("debug") | None => {}
            Some("release") => {
                command.arg("--release");
            }
            Some(other) => {
                command.args(["--profile", other]);
            }
        }
        let output = command
            .output()
            .map_err(|e| format!("cannot run {command:?}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`cargo build {}` failed\n\ncommand: {command:?}\nstatus: {}\n\n{}",
                args.join(" "),
                output.status,
                block("stderr", &String::from_utf8_lossy(&output.stderr)),
            ))
        }
    });
    if let Err(message) = outcome {
        panic!("{message}");
    }
}

/// `rankview run -n RANKS OPTIONS... PROGRAM` (the test program `program`)
/// as a command to finish with its arguments: the extra MPI arguments of
/// this run passed on, outside any batch job, stdin closed, stdout and
/// stderr piped, in a process group of its own (a signal sent to it
/// reaches it alone, as `kill PID` from a user would).
pub fn launcher_run(ranks: usize, options: &[&str], program: &str) -> Command {
    let mut command = Command::new(launcher());
    command
        .args(["run", "-n", &ranks.to_string()])
        .args(options);
    let extra = extra_mpi_args();
    if !extra.is_empty() {
        command.args(["--mpi-args", &extra.join(" ")]);
    }
    command
        .arg(self::program(program))
        .env_remove("MPIEXEC")
        .env_remove("SLURM_JOB_ID")
        .env_remove("PBS_JOBID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command
}

/// The `rankview` launcher binary (package `rankview-launcher`), built
/// first like an example.
pub fn launcher() -> PathBuf {
    cargo_build(&["--package", "rankview-launcher", "--bin", "rankview"]);
    let path = profile_dir().join("rankview");
    assert!(
        path.is_file(),
        "the launcher {} is missing after `cargo build --bin rankview`",
        path.display()
    );
    path
}

/// The test program called `name` (a binary of the `rankview-checks`
/// package in tests/programs), built first like an example.
pub fn program(name: &str) -> PathBuf {
    cargo_build(&["--package", "rankview-checks", "--bin", name]);
    let path = profile_dir().join(name);
    assert!(
        path.is_file(),
        "test program {} is missing after `cargo build -p rankview-checks --bin {name}`",
        path.display()
    );
    path
}

/// The example or test program called `name`: test programs are the
/// `check_*` binaries of tests/programs.
pub fn binary(name: &str) -> PathBuf {
    if Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs")
        .join(format!("{name}.rs"))
        .is_file()
    {
        program(name)
    } else {
        example(name)
    }
}

/// The example called `name`, built first (see [`build_example`]).
pub fn example(name: &str) -> PathBuf {
    build_example(name);
    let path = profile_dir().join("examples").join(name);
    assert!(
        path.is_file(),
        "example binary {} is missing after `cargo build --example {name}`",
        path.display()
    );
    path
}

mod job_lock;

pub use job_lock::JobLock;

impl JobLock {
    /// Waits for the right to run an MPI job (see `job_lock`). Taken by
    /// [`mpirun_args`]; tests that start jobs another way take it themselves.
    pub fn acquire() -> JobLock {
        JobLock::acquire_in(&target_dir())
    }
}

/// A pipe drained by a thread into a buffer that can be read at any time
/// (the library's own, which `#[rankview::test]` jobs use too).
#[allow(unused_imports)]
pub use rankview::__private::testing::Drain;

/// The pids of every descendant of `root` (children, grandchildren, ...):
/// the library's own, which `#[rankview::test]` jobs use too.
#[allow(unused_imports)]
pub use rankview::__private::testing::descendants;

/// Ends a job that outlived its time: SIGTERM to mpirun, then SIGKILL to
/// mpirun and every process it started (`#[rankview::test]`'s own way).
fn kill_job(child: &mut Child) -> ExitStatus {
    rankview::__private::testing::kill_job(child).expect("mpirun can be waited for")
}

/// What a finished MPI job did.
#[derive(Debug)]
pub struct Run {
    /// The command line, for reports.
    pub command: String,
    /// mpirun's exit status.
    pub status: ExitStatus,
    /// Everything the job wrote to stdout.
    pub stdout: String,
    /// Everything the job wrote to stderr.
    pub stderr: String,
    /// From start to exit.
    pub elapsed: Duration,
}

/// Runs `program` (an example or test program name) on `ranks` ranks.
pub fn mpirun(ranks: usize, program: &str, args: &[&str]) -> Run {
    let mut line: Vec<OsString> = vec!["-n".into(), ranks.to_string().into()];
    line.push(binary(program).into());
    line.extend(args.iter().map(OsString::from));
    mpirun_args(line)
}

/// Runs `mpirun <flags> ARGS`, where the flags are the ones every job here
/// needs and `ARGS` the rest of the command line (`-n 2 prog : -n 1 other`).
pub fn mpirun_args(args: Vec<OsString>) -> Run {
    let _lock = JobLock::acquire();
    let mut command = Command::new("mpirun");
    command
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["--oversubscribe", "--bind-to", "none"])
        .args(extra_mpi_args())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = std::iter::once(OsStr::new("mpirun"))
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let limit = timeout();
    let start = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{shown}`: {e} (is OpenMPI installed?)"));
    let stdout = Drain::start(child.stdout.take().expect("stdout is piped"));
    let stderr = Drain::start(child.stderr.take().expect("stderr is piped"));
    let finished = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= limit => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("cannot wait for `{shown}`: {e}"),
        }
    };
    let timed_out = finished.is_none();
    let status = finished.unwrap_or_else(|| kill_job(&mut child));
    let elapsed = start.elapsed();
    let run = Run {
        command: shown,
        status,
        stdout: stdout.finish(Duration::from_secs(5)),
        stderr: stderr.finish(Duration::from_secs(5)),
        elapsed,
    };
    if timed_out {
        run.fail(format_args!(
            "the job did not finish within {limit:?} and was killed (a hang)"
        ));
    }
    run
}

fn block(label: &str, text: &str) -> String {
    let mut out = format!("---- {label} ----\n{text}");
    if !text.is_empty() && !text.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("---- end of {label} ----\n"));
    out
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => format!("{}", self.status),
        };
        write!(
            f,
            "command: {}\nstatus: {status} after {:.2?}\n\n{}\n{}",
            self.command,
            self.elapsed,
            block("stdout", &self.stdout),
            block("stderr", &self.stderr),
        )
    }
}

impl Run {
    /// Fails the test with `why` and the whole report.
    #[track_caller]
    pub fn fail(&self, why: impl fmt::Display) -> ! {
        panic!("\n\n==========\n{why}\n\n{self}==========\n")
    }

    /// Fails unless the job exited with status 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        if !self.status.success() {
            self.fail("the job failed but was expected to succeed");
        }
        self
    }

    /// Fails unless the job exited with a non-zero status.
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        if self.status.success() {
            self.fail("the job succeeded but was expected to fail");
        }
        self
    }

    /// Fails unless the job exited with status `code` (not killed by a
    /// signal, not another failure).
    #[track_caller]
    pub fn assert_exit_code(&self, code: i32) -> &Self {
        if self.status.code() != Some(code) {
            self.fail(format_args!(
                "the job was expected to exit with status {code}"
            ));
        }
        self
    }

    /// Fails unless the job ended within `limit`.
    #[track_caller]
    pub fn assert_within(&self, limit: Duration) -> &Self {
        if self.elapsed > limit {
            self.fail(format_args!(
                "the job took {:.2?}, more than the {limit:?} allowed",
                self.elapsed
            ));
        }
        self
    }

    /// Fails unless stdout contains `needle`.
    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        if !self.stdout.contains(needle) {
            self.fail(format_args!("stdout does not contain {needle:?}"));
        }
        self
    }

    /// Fails if stdout contains `needle`.
    #[track_caller]
    pub fn assert_stdout_lacks(&self, needle: &str) -> &Self {
        if self.stdout.contains(needle) {
            self.fail(format_args!("stdout contains {needle:?}"));
        }
        self
    }

    /// Fails unless stderr contains `needle`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        if !self.stderr.contains(needle) {
            self.fail(format_args!("stderr does not contain {needle:?}"));
        }
        self
    }

    /// The stdout lines that start with `prefix`, with the prefix removed.
    pub fn lines_after(&self, prefix: &str) -> Vec<&str> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .collect()
    }

    /// Fails unless the check program `program` passed exactly the checks
    /// `expected`: one `ok: NAME` line each, no `FAIL:` or `skip:` line, and
    /// the summary line `PROGRAM: N passed, 0 failed, 0 skipped`.
    #[track_caller]
    pub fn assert_checks(&self, program: &str, expected: &[&str]) -> &Self {
        self.assert_checks_skipping(program, expected, &[])
    }

    /// Fails unless the check program `program` ran exactly the checks
    /// `expected` and skipped exactly those of them in `skipped` (checks
    /// this job cannot test, e.g. with one engine): one `ok: NAME` line for
    /// each other check, one `skip: NAME: why` line for each skipped one,
    /// no `FAIL:` line, and the summary `PROGRAM: N passed, 0 failed, K
    /// skipped`.
    #[track_caller]
    pub fn assert_checks_skipping(
        &self,
        program: &str,
        expected: &[&str],
        skipped: &[&str],
    ) -> &Self {
        let failed = self.lines_after("FAIL: ");
        if !failed.is_empty() {
            self.fail(format_args!(
                "{} check(s) failed: {failed:#?}",
                failed.len()
            ));
        }
        self.assert_success();
        let unknown: Vec<_> = skipped.iter().filter(|n| !expected.contains(n)).collect();
        assert!(
            unknown.is_empty(),
            "the test expects skips of checks it does not list: {unknown:?}"
        );
        let to_pass: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|n| !skipped.contains(n))
            .collect();
        let passed = self.lines_after("ok: ");
        let missing: Vec<_> = to_pass.iter().filter(|n| !passed.contains(n)).collect();
        let unexpected: Vec<_> = passed.iter().filter(|n| !to_pass.contains(n)).collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            self.fail(format_args!(
                "checks not reported as passed: {missing:?}; checks passed that the test does \
                 not expect to pass: {unexpected:?}"
            ));
        }
        let mut skips: Vec<&str> = self
            .lines_after("skip: ")
            .into_iter()
            .map(|l| l.split_once(": ").map_or(l, |(name, _)| name))
            .collect();
        skips.sort_unstable();
        let mut want = skipped.to_vec();
        want.sort_unstable();
        if skips != want {
            self.fail(format_args!(
                "checks skipped: {skips:?}; the test expects these skipped: {skipped:?}"
            ));
        }
        self.assert_stdout_contains(&format!(
            "{program}: {} passed, 0 failed, {} skipped\n",
            to_pass.len(),
            skipped.len()
        ))
    }
}
