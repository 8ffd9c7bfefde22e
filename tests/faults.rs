//! Faults a job must survive or end cleanly from, run through the `rankview`
//! launcher (no hang, a non-zero status, the rank named): an engine or rank 0
//! killed with SIGKILL during a long task, an engine killed while its
//! reply's attachment is in flight, SIGINT and SIGTERM to the launcher, and a
//! client that is quiet for 60 s (slow: it takes a minute).
//!
//! Each job runs `tests/programs/check_failures.rs` in mode `long_task`
//! (which prints the pid of every rank, then waits on a 60 s task) or
//! `quiet_client`, on 3 ranks, under the job lock of `common`, with
//! `RANKVIEW_TEST_MPI_ARGS` passed on as `--mpi-args`. "No process
//! of the job is left" is checked by pid: every rank's (as the program
//! printed them) and every process the launcher had started (the MPI
//! launcher included), with `kill(pid, 0)`; a zombie counts as gone.

mod common;

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use common::{descendants, Drain, JobLock};

/// How long a fault may take to end the job (the bound).
const ENDS_WITHIN: Duration = Duration::from_secs(5);

/// How long a job may take to start and print its pids.
const STARTS_WITHIN: Duration = Duration::from_secs(60);

/// Ranks of every job here: rank 0 and two engines.
const RANKS: usize = 3;

/// A job started through the launcher, with its output drained.
struct Job {
    child: Child,
    stdout: Drain,
    stderr: Drain,
    /// Every process the job has had: ranks and the launcher's children.
    pids: Vec<u32>,
    _lock: JobLock,
}

/// How the job ended.
struct Ended {
    status: ExitStatus,
    /// From the fault to the launcher's exit.
    after: Duration,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "\nstatus: {} {:.2?} after the fault\n---- stdout ----\n{}\n---- stderr ----\n{}\n----",
            self.status, self.after, self.stdout, self.stderr
        )
    }
}

impl Job {
    /// Starts `rankview run -n 3 check_failures MODE`.
    fn start(mode: &str) -> Job {
        let lock = JobLock::acquire();
        let mut command = common::launcher_run(RANKS, &[], "check_failures");
        command.arg(mode);
        let mut child = command.spawn().expect("cannot start the launcher");
        let stdout = Drain::start(child.stdout.take().expect("stdout is piped"));
        let stderr = Drain::start(child.stderr.take().expect("stderr is piped"));
        Job {
            child,
            stdout,
            stderr,
            pids: Vec::new(),
            _lock: lock,
        }
    }

    /// Waits for the `long_task` line of pids and returns them, rank 0
    /// first; records them, and the launcher's processes, in `self.pids`.
    fn rank_pids(&mut self) -> Vec<u32> {
        let started = Instant::now();
        loop {
            let text = self.stdout.text();
            if let Some(line) = text
                .lines()
                .find_map(|l| l.strip_prefix("check_failures: pids "))
            {
                let pids: Vec<u32> = line
                    .split_whitespace()
                    .map(|p| p.parse().expect("a pid"))
                    .collect();
                assert_eq!(pids.len(), RANKS, "{text}");
                self.pids.extend(&pids);
                self.pids.extend(descendants(self.child.id()));
                self.pids.sort_unstable();
                self.pids.dedup();
                return pids;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.fail(format_args!("the job ended before printing pids: {status}"));
            }
            if started.elapsed() > STARTS_WITHIN {
                self.fail("the job did not print its pids in time");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `limit` for the launcher to exit.
    fn wait(mut self, since: Instant, limit: Duration) -> (Ended, Vec<u32>) {
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .expect("the launcher can be waited for")
            {
                let after = since.elapsed();
                let ended = Ended {
                    status,
                    after,
                    stdout: self.stdout.finish(Duration::from_secs(2)),
                    stderr: self.stderr.finish(Duration::from_secs(2)),
                };
                return (ended, std::mem::take(&mut self.pids));
            }
            if since.elapsed() > limit {
                self.fail(format_args!(
                    "the launcher was still running {limit:?} after the fault"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills whatever is left of the job and fails the test.
    #[track_caller]
    fn fail(&mut self, why: impl std::fmt::Display) -> ! {
        let mut left = self.pids.clone();
        left.extend(descendants(self.child.id()));
        left.push(self.child.id());
        for pid in alive(&left) {
            send(pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
        panic!(
            "\n{why}\n---- stdout ----\n{}\n---- stderr ----\n{}\n----",
            self.stdout.text(),
            self.stderr.text()
        );
    }
}

/// Sends `signal` to `pid` (errors ignored: it may be gone).
fn send(pid: u32, signal: i32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    // SAFETY: kill(2) has no memory-safety preconditions; a wrong pid or a
    // process that is gone is an error return, which is ignored.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Whether `pid` is a live process: `kill(pid, 0)` succeeds and it is not a
/// zombie (dead, waiting to be reaped by a parent that may never do it).
fn is_alive(pid: u32) -> bool {
    let Ok(id) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(id, 0) } == 0;
    if !exists {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// The pids of `pids` still alive.
fn alive(pids: &[u32]) -> Vec<u32> {
    pids.iter().copied().filter(|&p| is_alive(p)).collect()
}

/// Waits up to `limit` (from `since`) for every pid of `pids` to be gone;
/// returns those left.
fn gone_within(pids: &[u32], since: Instant, limit: Duration) -> Vec<u32> {
    loop {
        let left = alive(pids);
        if left.is_empty() || since.elapsed() > limit {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Fails (after killing them) if any process of the job is still alive.
#[track_caller]
fn assert_none_left(pids: &[u32], ended: &Ended) {
    let left = alive(pids);
    for &pid in &left {
        send(pid, libc::SIGKILL);
    }
    assert!(
        left.is_empty(),
        "processes of the job left running: {left:?} (of {pids:?}){ended:?}"
    );
}

/// `kill -9` of one engine during a long task: the launcher exits non-zero
/// within 5 s, its summary names the rank and the signal, and no process of
/// the job is left.
#[test]
fn sigkill_of_an_engine_ends_the_job() {
    let mut job = Job::start("long_task");
    let ranks = job.rank_pids();
    let victim = RANKS - 1;
    let killed = Instant::now();
    send(ranks[victim], libc::SIGKILL);
    let (ended, pids) = job.wait(killed, ENDS_WITHIN);
    assert!(!ended.status.success(), "{ended:?}");
    assert!(ended.status.code().is_some(), "{ended:?}");
    let named = format!("rank {victim}: first to fail: killed by SIGKILL (signal 9)");
    assert!(ended.stderr.contains(&named), "no {named:?}{ended:?}");
    assert_none_left(&pids, &ended);
}

/// An engine that kills itself (SIGKILL) right after handing its MPI
/// thread a reply whose 256 MiB value travels as an attachment: the
/// engine dies with that data message unfinished while rank 0 waits for
/// it. The launcher exits non-zero within 5 s of the job printing its
/// pids (the string is built and encoded first), names the rank and the
/// signal, and no process of the job is left.
#[test]
fn an_engine_dying_with_its_attachment_in_flight_ends_the_job() {
    let mut job = Job::start("dies_sending");
    job.rank_pids();
    let since = Instant::now();
    let (ended, pids) = job.wait(since, ENDS_WITHIN);
    assert!(!ended.status.success(), "{ended:?}");
    let named = format!(
        "rank {}: first to fail: killed by SIGKILL (signal 9)",
        RANKS - 1
    );
    assert!(ended.stderr.contains(&named), "no {named:?}{ended:?}");
    assert_none_left(&pids, &ended);
}

/// `kill -9` of rank 0 (the client) during a long task: every engine is
/// gone within 5 s, and the launcher says rank 0 was killed.
#[test]
fn sigkill_of_rank_0_ends_every_engine() {
    let mut job = Job::start("long_task");
    let ranks = job.rank_pids();
    let killed = Instant::now();
    send(ranks[0], libc::SIGKILL);
    let left = gone_within(&ranks[1..], killed, ENDS_WITHIN);
    let (ended, pids) = job.wait(killed, ENDS_WITHIN + Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "engines {left:?} outlived rank 0 by {ENDS_WITHIN:?}{ended:?}"
    );
    assert!(!ended.status.success(), "{ended:?}");
    let named = "rank 0: first to fail: killed by SIGKILL (signal 9)";
    assert!(ended.stderr.contains(named), "no {named:?}{ended:?}");
    assert_none_left(&pids, &ended);
}

/// A stop signal to the launcher during a long task: every rank gone within
/// 5 s, exit status 128 + the signal, no orphans.
fn stop_signal_ends_every_rank(signal: i32, name: &str, code: i32) {
    let mut job = Job::start("long_task");
    let ranks = job.rank_pids();
    let launcher = job.child.id();
    let sent = Instant::now();
    send(launcher, signal);
    let left = gone_within(&ranks, sent, ENDS_WITHIN);
    let (ended, pids) = job.wait(sent, ENDS_WITHIN + Duration::from_secs(5));
    assert!(
        left.is_empty(),
        "ranks {left:?} outlived {name} by {ENDS_WITHIN:?}{ended:?}"
    );
    assert_eq!(ended.status.code(), Some(code), "{ended:?}");
    assert!(ended.after <= ENDS_WITHIN, "{ended:?}");
    let said = format!("rankview: job interrupted by {name}: {RANKS} ranks");
    assert!(ended.stderr.contains(&said), "no {said:?}{ended:?}");
    assert_none_left(&pids, &ended);
}

#[test]
fn sigint_to_the_launcher_ends_every_rank() {
    stop_signal_ends_every_rank(libc::SIGINT, "SIGINT", 130);
}

#[test]
fn sigterm_to_the_launcher_ends_every_rank() {
    stop_signal_ends_every_rank(libc::SIGTERM, "SIGTERM", 143);
}

/// SLOW (a minute): a client that does not call into rankview for 60 s
/// (longer than the MPI implementation's timeouts) still finishes normally.
#[test]
fn slow_quiet_client_for_60_s_finishes_normally() {
    let job = Job::start("quiet_client");
    let (ended, pids) = job.wait(Instant::now(), Duration::from_secs(150));
    assert!(ended.status.success(), "{ended:?}");
    let said = format!(
        "check_failures: after 60 s of quiet, {} engines answered",
        RANKS - 1
    );
    assert!(ended.stdout.contains(&said), "no {said:?}{ended:?}");
    assert!(
        ended.after >= Duration::from_secs(60),
        "the client cannot have slept 60 s{ended:?}"
    );
    assert_none_left(&pids, &ended);
}
