//! The status directory: how ranks tell the launcher that they started and
//! how they ended.
//!
//! Owns the directory (a fresh temporary one per job, removed afterwards),
//! the names of the two environment variables, and reading the per-rank
//! files back into a [`RankState`]. Writing the files is the library's side
//! of the contract; turning states into the exit summary is `summary`'s.
//!
//! ## The status-file contract
//!
//! The launcher sets `RANKVIEW_LAUNCHER=1` and `RANKVIEW_STATUS_DIR=<dir>` for
//! the job (and asks Open MPI to forward both to every node with `-x`).
//! When `RANKVIEW_STATUS_DIR` is set, rank `r` (its rank in
//! `MPI_COMM_WORLD`) writes the file `<dir>/rank-<r>`:
//!
//! 1. at start, the first line: `started pid=<pid> host=<hostname>`, newline;
//! 2. at a clean end, it appends one line: `ok`, or `failed: <message>`
//!    (the message on one line; any further lines are shown indented below
//!    it). A rank that fails only because another one did says so with the
//!    message `stopped by rank <R>` (an engine that rank 0 stopped because
//!    the client failed or its work outlived the shutdown grace; earlier
//!    versions wrote `the client on rank <R> failed`): its failure is not
//!    its own, it is never named as the first to fail, and the summary
//!    leaves it out.
//!
//! The launcher reads the files only after the job has ended (while it runs,
//! it only looks at which files exist, for the start-up spinner), so partial
//! writes do not matter, and a rank that cannot write its file must just
//! carry on. The directory is made under `$TMPDIR` (else `/tmp`) on the
//! launcher's node: ranks on other nodes can report only if that is a
//! shared filesystem. A rank whose file has no end line died without reporting
//! (a signal, `abort`, `MPI_Abort`, a crash); a rank with no file never
//! started. When no rank wrote anything (not a rankview program, or the
//! directory is not visible from the nodes), the launcher reports only the
//! MPI launcher's exit status.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Set to `1` for every job started by the launcher.
pub const LAUNCHER_VAR: &str = "RANKVIEW_LAUNCHER";
/// The directory where ranks write their status files.
pub const STATUS_DIR_VAR: &str = "RANKVIEW_STATUS_DIR";

/// The temporary directory of one job; deleted when dropped.
#[derive(Debug)]
pub struct StatusDir {
    dir: tempfile::TempDir,
}

impl StatusDir {
    /// Creates a fresh, empty directory under the system's temporary
    /// directory (`$TMPDIR`), else under `/tmp` (a `$TMPDIR` that does not
    /// exist or is not writable, as `mpirun` shrugs off).
    pub fn create() -> Result<StatusDir, Error> {
        StatusDir::create_in(&[std::env::temp_dir(), PathBuf::from("/tmp")])
    }

    /// Creates the directory in the first of `parents` where it can be made;
    /// the error names the last one tried.
    fn create_in(parents: &[PathBuf]) -> Result<StatusDir, Error> {
        let mut failure = None;
        for parent in parents {
            match tempfile::Builder::new()
                .prefix("rankview-status-")
                .tempdir_in(parent)
            {
                Ok(dir) => return Ok(StatusDir { dir }),
                Err(err) => failure = Some((parent, err)),
            }
        }
        let (parent, err) = failure.map_or_else(
            || {
                (
                    String::from("nowhere"),
                    std::io::Error::other("no directory to try"),
                )
            },
            |(parent, err)| (parent.display().to_string(), err),
        );
        Err(Error::io(
            format!("cannot create a status directory for the job in {parent}"),
            err,
        ))
    }

    /// The directory's path (the value of `RANKVIEW_STATUS_DIR`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The file rank `rank` writes.
    pub fn file(&self, rank: u32) -> PathBuf {
        rank_file(self.path(), rank)
    }

    /// How many of ranks `0..ranks` have written their file so far.
    pub fn started(&self, ranks: u32) -> u32 {
        let count = (0..ranks).filter(|&r| self.file(r).exists()).count();
        u32::try_from(count).unwrap_or(ranks)
    }

    /// Reads what ranks `0..ranks` reported.
    pub fn report(&self, ranks: u32) -> Report {
        let mut report = Report::default();
        for rank in 0..ranks {
            match fs::read(self.file(rank)) {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    report.ranks.push(parse(&text));
                    report.processes.push(process(&text));
                }
                Err(_) => report.push_unknown(),
            }
        }
        report
    }
}

/// `<dir>/rank-<rank>`.
pub fn rank_file(dir: &Path, rank: u32) -> PathBuf {
    dir.join(format!("rank-{rank}"))
}

/// What one rank reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RankState {
    /// No file: the rank never reached the library's start-up, or could not
    /// write to the status directory (a node that does not see it).
    NeverStarted,
    /// A `started` line but no end line: killed, aborted or crashed.
    DiedWithoutReporting {
        /// `pid=` from the started line, if present.
        pid: Option<u32>,
        /// `host=` from the started line, if present.
        host: Option<String>,
    },
    /// Ended with `ok`.
    Ok,
    /// Ended with `failed: <message>`.
    Failed {
        /// The message (continuation lines joined with newlines).
        message: String,
    },
}

impl RankState {
    /// The rank whose failure this one's was a consequence of (the message
    /// `stopped by rank R`, or earlier versions' `the client on rank R
    /// failed`), if it says so.
    pub fn caused_by(&self) -> Option<u32> {
        let RankState::Failed { message } = self else {
            return None;
        };
        let line = message.lines().next()?.trim();
        line.strip_prefix("stopped by rank ")
            .or_else(|| {
                line.strip_prefix("the client on rank ")?
                    .strip_suffix(" failed")
            })?
            .parse()
            .ok()
    }

    /// Whether the rank reported a failure of its own (not one caused by
    /// another rank's).
    pub fn failed_on_its_own(&self) -> bool {
        matches!(self, RankState::Failed { .. }) && self.caused_by().is_none()
    }
}

/// What every rank of a job reported, indexed by rank.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// One state per rank, rank 0 first.
    pub ranks: Vec<RankState>,
    /// The process each rank reported (its `started` line), rank 0 first.
    pub processes: Vec<Process>,
}

/// A rank's process as its `started` line names it (nothing without one).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Process {
    /// `pid=`.
    pub pid: Option<u32>,
    /// `host=`.
    pub host: Option<String>,
}

impl Report {
    /// Whether any rank wrote a file at all. When none did, the per-rank
    /// states mean nothing (not a rankview program).
    pub fn any_reported(&self) -> bool {
        self.ranks.iter().any(|s| *s != RankState::NeverStarted)
    }

    /// The rank that reported pid `pid` on `host` (any host when `host` is
    /// `None` or a rank did not say its host). A pid alone names no process
    /// across nodes: each node (container) may have its own pids, so a pid
    /// that two ranks on different hosts share names neither.
    pub fn rank_of(&self, pid: u32, host: Option<&str>) -> Option<u32> {
        let mut found = (0u32..).zip(&self.processes).filter(|(_, process)| {
            process.pid == Some(pid)
                && match (host, process.host.as_deref()) {
                    (Some(wanted), Some(reported)) => wanted == reported,
                    _ => true,
                }
        });
        match (found.next(), found.next()) {
            (Some((rank, _)), None) => Some(rank),
            _ => None,
        }
    }

    /// The report of `ranks` ranks that could not report (no status
    /// directory).
    pub fn unknown(ranks: u32) -> Report {
        let mut report = Report::default();
        for _ in 0..ranks {
            report.push_unknown();
        }
        report
    }

    /// Adds a rank that reported nothing.
    fn push_unknown(&mut self) {
        self.ranks.push(RankState::NeverStarted);
        self.processes.push(Process::default());
    }

    /// Whether some rank ended with `failed:`.
    pub fn any_failed(&self) -> bool {
        self.ranks
            .iter()
            .any(|s| matches!(s, RankState::Failed { .. }))
    }
}

/// Parses one rank's file (see the contract in the module docs). Lines are
/// recognised by their first word, in any order: a rank that fails before
/// it could say it started (a start-up failure) writes only `failed: ...`.
pub fn parse(text: &str) -> RankState {
    let Process { pid, host } = process(text);
    let mut lines = text.lines().map(str::trim_end);
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed == "ok" {
            return RankState::Ok;
        }
        if let Some(first) = trimmed.strip_prefix("failed:") {
            let mut message = first.trim().to_string();
            let continuation = lines.by_ref().take_while(|l| {
                let l = l.trim();
                l != "ok" && !l.starts_with("started") && !l.starts_with("failed:")
            });
            for more in continuation.filter(|l| !l.trim().is_empty()) {
                message.push('\n');
                message.push_str(more);
            }
            return RankState::Failed { message };
        }
    }
    RankState::DiedWithoutReporting { pid, host }
}

/// The `started ...` line of a rank's file, if any.
fn started_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("started"))
}

/// The process a rank's file names (from its `started` line).
fn process(text: &str) -> Process {
    let (pid, host) = started_line(text).map_or((None, None), parse_started);
    Process { pid, host }
}

/// Reads `pid=` and `host=` from a `started ...` line (in any order; other
/// words are ignored).
fn parse_started(line: &str) -> (Option<u32>, Option<String>) {
    let mut pid = None;
    let mut host = None;
    for word in line.split_whitespace() {
        if let Some(value) = word.strip_prefix("pid=") {
            pid = value.parse().ok();
        } else if let Some(value) = word.strip_prefix("host=") {
            host = Some(value.to_string()).filter(|h| !h.is_empty());
        }
    }
    (pid, host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_ending() {
        assert_eq!(parse("started pid=12 host=n1\nok\n"), RankState::Ok);
        assert_eq!(
            parse("started pid=12 host=n1\nfailed: engine 1 panicked: boom\n"),
            RankState::Failed {
                message: "engine 1 panicked: boom".into()
            }
        );
        assert_eq!(
            parse("started pid=12 host=n1\n"),
            RankState::DiedWithoutReporting {
                pid: Some(12),
                host: Some("n1".into())
            }
        );
        // A partial first line still counts as started.
        assert_eq!(
            parse("started pid="),
            RankState::DiedWithoutReporting {
                pid: None,
                host: None
            }
        );
    }

    #[test]
    fn a_start_up_failure_is_a_failure() {
        // Written by a rank that failed before it could say it started.
        assert_eq!(
            parse("failed: a rankview job needs at least 2 ranks\n"),
            RankState::Failed {
                message: "a rankview job needs at least 2 ranks".into()
            }
        );
        // Several such ranks appending to one file.
        assert_eq!(
            parse("failed: world of one\nfailed: world of one\n"),
            RankState::Failed {
                message: "world of one".into()
            }
        );
        assert_eq!(process("failed: x\nstarted pid=7 host=h\n").pid, Some(7));
    }

    #[test]
    fn a_failure_caused_by_the_client_is_not_its_own() {
        let engine = parse("started pid=3 host=h\nfailed: the client on rank 0 failed\n");
        assert_eq!(engine.caused_by(), Some(0));
        assert!(!engine.failed_on_its_own());
        let stopped = parse("started pid=3 host=h\nfailed: stopped by rank 0\n");
        assert_eq!(stopped.caused_by(), Some(0));
        let client = parse("started pid=2 host=h\nfailed: the client on rank 0 is odd\n");
        assert_eq!(client.caused_by(), None);
        assert!(client.failed_on_its_own());
        assert!(!RankState::Ok.failed_on_its_own());
    }

    #[test]
    fn failed_message_keeps_continuation_lines() {
        assert_eq!(
            parse("started pid=1 host=h\nfailed: first\n  second\n\nthird\n"),
            RankState::Failed {
                message: "first\n  second\nthird".into()
            }
        );
    }

    #[test]
    fn reads_a_directory() {
        let dir = StatusDir::create().unwrap();
        fs::write(dir.file(0), "started pid=1 host=h\nok\n").unwrap();
        fs::write(dir.file(1), "started pid=2 host=h\n").unwrap();
        assert_eq!(dir.started(3), 2);
        let report = dir.report(3);
        assert!(report.any_reported());
        assert!(!report.any_failed());
        assert_eq!(report.ranks[0], RankState::Ok);
        assert_eq!(report.ranks[2], RankState::NeverStarted);
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn a_missing_tmpdir_falls_back_to_the_next_parent() {
        let there = tempfile::tempdir().unwrap();
        let missing = there.path().join("not-made");
        let dir = StatusDir::create_in(&[missing.clone(), there.path().to_path_buf()]).unwrap();
        assert!(
            dir.path().starts_with(there.path()),
            "{}",
            dir.path().display()
        );
        let err = StatusDir::create_in(std::slice::from_ref(&missing)).unwrap_err();
        assert!(
            err.to_string()
                .ends_with(&format!("in {}", missing.display())),
            "{err}"
        );
    }

    #[test]
    fn a_pid_names_a_rank_only_with_its_host() {
        let on = |pid, host: &str| Process {
            pid: Some(pid),
            host: Some(host.into()),
        };
        let report = Report {
            ranks: vec![RankState::Ok; 3],
            processes: vec![on(50, "n1"), on(50, "n2"), on(51, "n2")],
        };
        assert_eq!(report.rank_of(50, Some("n2")), Some(1));
        assert_eq!(report.rank_of(51, None), Some(2));
        // Two ranks on two nodes share pid 50: without a host, neither.
        assert_eq!(report.rank_of(50, None), None);
        assert_eq!(report.rank_of(52, Some("n1")), None);
    }

    #[test]
    fn empty_directory_reports_nothing() {
        let dir = StatusDir::create().unwrap();
        let report = dir.report(4);
        assert!(!report.any_reported());
        assert_eq!(report.ranks.len(), 4);
        assert_eq!(report, Report::unknown(4));
    }
}
