//! Tests that need an MPI job, under plain `cargo test`: what
//! [`#[rankview::test]`](crate::test) expands to.
//!
//! Each such test is an ordinary `#[test]` in the test binary. Run by the
//! test harness (`cargo test`, `cargo nextest run`), it starts its own MPI
//! job: the MPI launcher runs the same test binary on the test's number of
//! ranks, told (by `RANKVIEW_TEST_CHILD`) to run this one test only and to
//! run it as a rank. On every rank that test calls [`launch`](crate::launch)
//! with the test's body as the client; the job's exit status is the test's
//! verdict, and the client's error or panic message its failure message.
//! The job runs under a time limit (a hung job fails its test and nothing of
//! it is left running), and jobs never run at once unless
//! `RANKVIEW_TEST_JOBS` allows more: they share one machine-wide lock file,
//! the one the rankview repository's own MPI tests take. Which MPI launcher
//! runs the job, and with what flags, is decided here too (the `rankview`
//! launcher is not needed).

use std::ffi::OsString;
use std::fmt::Display;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::client::Client;

/// The environment variable that turns a test binary into one rank of a
/// test's MPI job: it names the test to run.
pub const CHILD_VAR: &str = "RANKVIEW_TEST_CHILD";

/// How long a test's job may run unless the test or `RANKVIEW_TEST_TIMEOUT`
/// (seconds) says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// One MPI test, as the attribute describes it.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct TestJob {
    /// `module_path!()` and the function's name, joined by `::`.
    pub path: &'static str,
    /// Ranks of the job (rank 0 runs the body, the others are engines).
    pub ranks: usize,
    /// The test's own time limit, in seconds.
    pub timeout_secs: Option<u64>,
}

impl TestJob {
    /// The name the test harness knows the test by: the path without the
    /// crate's name.
    fn name(&self) -> &'static str {
        self.path
            .split_once("::")
            .map_or(self.path, |(_, rest)| rest)
    }

    fn timeout(&self) -> Duration {
        let from_env = std::env::var("RANKVIEW_TEST_TIMEOUT")
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .map(|s| Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX));
        from_env
            .or(self.timeout_secs.map(Duration::from_secs))
            .unwrap_or(DEFAULT_TIMEOUT)
    }
}

/// What a test body may return: `()` (a failed assertion panics), or a
/// `Result` whose error is displayed.
#[doc(hidden)]
pub trait TestOutcome {
    /// The outcome as the job reports it.
    fn into_outcome(self) -> Result<(), String>;
}

impl TestOutcome for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display> TestOutcome for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// Runs `test`: as one rank of its job when this process is one, else by
/// starting the job and judging it. Called by the code `#[rankview::test]`
/// generates; panics (the test fails) with the job's message.
#[doc(hidden)]
pub fn run(test: TestJob, body: fn(&Client) -> Result<(), String>) {
    if std::env::var_os(CHILD_VAR).is_some_and(|v| v == test.name()) {
        // One rank of the job: rank 0 runs the body, the others serve. A
        // failing client ends every rank non-zero inside `launch`.
        crate::launch(body);
        let _ = std::io::stdout().flush();
        // Leave before the test harness reports on this process: its
        // verdict is the job's exit status.
        std::process::exit(0);
    }
    if test.ranks < 2 {
        fail(format!(
            "{}: a rankview test needs at least 2 ranks (rank 0 runs the test, the others are \
             engines); it asks for {}",
            test.name(),
            test.ranks
        ));
    }
    let ran = match start_and_wait(&test) {
        Ok(ran) => ran,
        Err(why) => fail(format!("{}: {why}", test.name())),
    };
    if let Some(why) = ran.failure(&test) {
        fail(why);
    }
}

/// Fails the test with `why`, said once: printed (the test harness shows a
/// failed test's output) and unwound without the panic hook, whose location
/// and backtrace would point here, not at the test.
fn fail(why: String) -> ! {
    println!("{why}");
    std::panic::resume_unwind(Box::new(why))
}

/// A finished job: how it ended and what it printed (empty when the output
/// went straight to the terminal).
struct Ran {
    command: String,
    status: Option<ExitStatus>,
    elapsed: Duration,
    limit: Duration,
    output: String,
}

impl Ran {
    /// Why the test failed, or `None` if it passed.
    fn failure(&self, test: &TestJob) -> Option<String> {
        let verdict = match self.status {
            Some(status) if status.success() => {
                print!("{}", self.output);
                return None;
            }
            None => format!(
                "timed out: the MPI job ran longer than {:?} and was killed (set the limit with \
                 #[rankview::test(ranks = {}, timeout = SECONDS)] or RANKVIEW_TEST_TIMEOUT)",
                self.limit, test.ranks
            ),
            Some(status) => ["rankview: client failed: ", "rankview: error: "]
                .iter()
                .find_map(|marker| {
                    let at = self.output.find(marker)? + marker.len();
                    self.output[at..].lines().next().map(str::to_string)
                })
                .unwrap_or_else(|| format!("the MPI job failed ({status})")),
        };
        Some(format!(
            "{}: {verdict}\n  job: {} ({} ranks, {:.2?})\n{}",
            test.name(),
            self.command,
            test.ranks,
            self.elapsed,
            if self.output.is_empty() {
                String::new()
            } else {
                format!(
                    "---- the job's output ----\n{}---- end of the job's output ----",
                    self.output
                )
            }
        ))
    }
}

/// Takes the job lock, starts `mpirun -n N <this binary> --exact NAME` and
/// waits for it within the test's limit.
fn start_and_wait(test: &TestJob) -> Result<Ran, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the test binary's path: {e}"))?;
    let launcher = Launcher::find()?;
    let _slot = JobSlot::acquire(&lock_dir(&exe))?;
    let mut command = Command::new(&launcher.program);
    command
        .args(launcher.flags(test.ranks))
        .args(extra_mpi_args())
        .arg(&exe)
        .args([
            "--exact",
            test.name(),
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD_VAR, test.name())
        .stdin(Stdio::null());
    for (key, value) in &launcher.env {
        command.env(key, value);
    }
    let shown = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    // With --nocapture the job writes to the terminal as it runs.
    let live = nocapture();
    if !live {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let limit = test.timeout();
    let start = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    let drains = (!live).then(|| {
        let out = child.stdout.take().map(Drain::start);
        let err = child.stderr.take().map(Drain::start);
        (out, err)
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= limit => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("cannot wait for `{shown}`: {e}")),
        }
    };
    if status.is_none() {
        kill_job(&mut child);
    }
    let elapsed = start.elapsed();
    let mut output = String::new();
    if let Some((out, err)) = drains {
        for drain in [out, err].into_iter().flatten() {
            output.push_str(&without_harness_lines(
                &drain.finish(Duration::from_secs(5)),
            ));
        }
    }
    Ok(Ran {
        command: shown,
        status,
        elapsed,
        limit,
        output,
    })
}

/// The job's output without what each rank's test harness printed about
/// itself (`running 1 test`, blank lines around it).
fn without_harness_lines(output: &str) -> String {
    let mut kept = String::new();
    for line in output.split_inclusive('\n') {
        let bare = line.trim();
        if bare.is_empty() || bare == "running 1 test" {
            continue;
        }
        kept.push_str(line);
    }
    kept
}

/// Whether the test harness was asked not to capture output.
fn nocapture() -> bool {
    std::env::args().any(|a| a == "--nocapture" || a == "--no-capture")
        || std::env::var_os("RUST_TEST_NOCAPTURE").is_some_and(|v| v != "0")
}

/// Extra flags for every job from `RANKVIEW_TEST_MPI_ARGS` (split on
/// whitespace), e.g. `--mca btl tcp,self`.
pub(crate) fn extra_mpi_args() -> Vec<String> {
    std::env::var("RANKVIEW_TEST_MPI_ARGS")
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// The MPI launcher a test job runs under and what it needs.
struct Launcher {
    program: OsString,
    open_mpi: bool,
    env: Vec<(&'static str, &'static str)>,
}

impl Launcher {
    /// `$MPIEXEC`, else `mpirun`, else `mpiexec`; Open MPI is told that
    /// more ranks than cores are fine, and (as root) that root may run.
    fn find() -> Result<Launcher, String> {
        let candidates: Vec<OsString> = match std::env::var_os("MPIEXEC") {
            Some(chosen) => vec![chosen],
            None => vec!["mpirun".into(), "mpiexec".into()],
        };
        for program in candidates {
            let Ok(out) = Command::new(&program)
                .arg("--version")
                .stdin(Stdio::null())
                .output()
            else {
                continue;
            };
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            let open_mpi = text.contains("Open MPI") || text.contains("OpenRTE");
            let mut env = Vec::new();
            // SAFETY: geteuid has no preconditions and cannot fail.
            if open_mpi && unsafe { libc::geteuid() } == 0 {
                env.push(("OMPI_ALLOW_RUN_AS_ROOT", "1"));
                env.push(("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"));
            }
            return Ok(Launcher {
                program,
                open_mpi,
                env,
            });
        }
        Err(
            "no MPI launcher found: a rankview test runs as an MPI job and needs `mpirun` or \
             `mpiexec` on PATH (or MPIEXEC naming one): install MPI, e.g. `apt-get install \
             openmpi-bin libopenmpi-dev`"
                .into(),
        )
    }

    /// The flags before the program.
    fn flags(&self, ranks: usize) -> Vec<String> {
        let mut flags = vec!["-n".to_string(), ranks.to_string()];
        if self.open_mpi {
            // Test jobs are small and often outnumber the cores; the child
            // marker must reach ranks on other nodes too.
            // --quiet: no banner about a rank's exit status (the test's
            // verdict says it).
            flags.extend(
                [
                    "--oversubscribe",
                    "--bind-to",
                    "none",
                    "--quiet",
                    "-x",
                    CHILD_VAR,
                ]
                .map(String::from),
            );
        }
        flags
    }
}

/// Where the job lock lives: the cargo target directory of the test binary
/// (`<target>/<profile>/deps/<binary>`), shared with the rankview
/// repository's own MPI tests; the temporary directory otherwise.
fn lock_dir(exe: &Path) -> PathBuf {
    let deps = exe.parent();
    match deps.filter(|d| d.file_name().is_some_and(|n| n == "deps")) {
        Some(deps) => deps
            .parent()
            .and_then(Path::parent)
            .map_or_else(std::env::temp_dir, Path::to_path_buf),
        None => std::env::temp_dir(),
    }
}

/// The right to run one MPI job at a time on this machine (or
/// `RANKVIEW_TEST_JOBS` at a time): an exclusive `flock` on a lock file in
/// `dir`, one file per allowed job, held until dropped.
#[doc(hidden)]
pub struct JobSlot {
    _lock: nix::fcntl::Flock<File>,
}

impl JobSlot {
    /// Waits for a free slot.
    pub fn acquire(dir: &Path) -> Result<JobSlot, String> {
        let slots = std::env::var("RANKVIEW_TEST_JOBS")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .filter(|&n| n >= 1)
            .unwrap_or(1);
        let paths: Vec<PathBuf> = (0..slots)
            .map(|k| match k {
                0 => dir.join("rankview-mpi-tests.lock"),
                k => dir.join(format!("rankview-mpi-tests-{k}.lock")),
            })
            .collect();
        loop {
            for path in &paths {
                let file = File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)
                    .map_err(|e| format!("cannot open the job lock {}: {e}", path.display()))?;
                let arg = if slots == 1 {
                    nix::fcntl::FlockArg::LockExclusive
                } else {
                    nix::fcntl::FlockArg::LockExclusiveNonblock
                };
                match nix::fcntl::Flock::lock(file, arg) {
                    Ok(lock) => return Ok(JobSlot { _lock: lock }),
                    Err((_, nix::errno::Errno::EWOULDBLOCK)) => {}
                    Err((_, e)) => {
                        return Err(format!("cannot lock {}: {e}", path.display()));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A pipe drained by a thread into a buffer that can be read at any time.
#[doc(hidden)]
pub struct Drain {
    buffer: Arc<Mutex<Vec<u8>>>,
    thread: JoinHandle<()>,
}

impl Drain {
    /// Starts draining `pipe`.
    pub fn start(mut pipe: impl Read + Send + 'static) -> Drain {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&chunk[..n]);
            }
        });
        Drain { buffer, thread }
    }

    /// Everything read so far.
    pub fn text(&self) -> String {
        let bytes = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Everything read, after waiting up to `grace` for the end of the pipe
    /// (a rank that outlived the launcher may hold it open).
    pub fn finish(self, grace: Duration) -> String {
        let deadline = Instant::now() + grace;
        while !self.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.text()
    }
}

/// The pids of every descendant of `root` (children, grandchildren, ...),
/// read from `/proc`.
#[doc(hidden)]
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|&&(_, ppid)| ppid == parent)
                .map(|&(pid, _)| pid),
        );
        i += 1;
    }
    found.remove(0);
    found
}

fn signal(signal: nix::sys::signal::Signal, pids: &[u32]) {
    for &pid in pids {
        if let Ok(pid) = i32::try_from(pid) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        }
    }
}

/// Ends a job that outlived its time: SIGTERM to the launcher (which
/// forwards it to the ranks), then SIGKILL to the launcher and every
/// process it started (Open MPI puts each rank in a process group of its
/// own, so signalling a process group would miss them).
#[doc(hidden)]
pub fn kill_job(child: &mut Child) -> Option<ExitStatus> {
    use nix::sys::signal::Signal;
    let mut family = descendants(child.id());
    signal(Signal::SIGTERM, &[child.id()]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut exited = None;
    while exited.is_none() && Instant::now() < deadline {
        exited = child.try_wait().ok().flatten();
        std::thread::sleep(Duration::from_millis(50));
    }
    if exited.is_none() {
        // Still ours to signal: not reaped yet.
        family.extend(descendants(child.id()));
        family.push(child.id());
    }
    family.retain(|pid| Path::new(&format!("/proc/{pid}")).exists());
    signal(Signal::SIGKILL, &family);
    exited.or_else(|| child.wait().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_harness_name_drops_the_crate() {
        let job = |path| TestJob {
            path,
            ranks: 3,
            timeout_secs: None,
        };
        assert_eq!(job("sweep::squares").name(), "squares");
        assert_eq!(job("mycrate::tests::squares").name(), "tests::squares");
    }

    #[test]
    fn the_job_lock_lives_in_the_target_directory() {
        assert_eq!(
            lock_dir(Path::new("/w/target/debug/deps/sweep-0123")),
            Path::new("/w/target")
        );
        assert_eq!(lock_dir(Path::new("/opt/bin/sweep")), std::env::temp_dir());
    }

    #[test]
    fn harness_lines_are_dropped_from_the_output() {
        let output = "\nrunning 1 test\nrankview: client failed: boom\n\nrunning 1 test\n";
        assert_eq!(
            without_harness_lines(output),
            "rankview: client failed: boom\n"
        );
    }

    #[test]
    fn a_missing_mpi_launcher_is_named() {
        std::env::set_var("MPIEXEC", "/nonexistent/mpirun");
        let found = Launcher::find();
        std::env::remove_var("MPIEXEC");
        let Err(why) = found else {
            panic!("a launcher that does not exist was found");
        };
        assert!(why.contains("no MPI launcher found"), "{why}");
        assert!(why.contains("apt-get install"), "{why}");
    }

    #[test]
    fn two_slots_let_two_jobs_hold_locks_at_once() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("RANKVIEW_TEST_JOBS", "2");
        let first = JobSlot::acquire(dir.path()).unwrap();
        let second = JobSlot::acquire(dir.path()).unwrap();
        std::env::remove_var("RANKVIEW_TEST_JOBS");
        drop((first, second));
        assert!(dir.path().join("rankview-mpi-tests-1.lock").exists());
    }
}
