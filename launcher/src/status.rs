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
//!    it).
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
    /// directory (`$TMPDIR`, else `/tmp`).
    pub fn create() -> Result<StatusDir, Error> {
        tempfile::Builder::new()
            .prefix("rankview-status-")
            .tempdir()
            .map(|dir| StatusDir { dir })
            .map_err(|err| Error::io("cannot create a status directory for the job", err))
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
                    report.pids.push(parse_pid(&text));
                }
                Err(_) => {
                    report.ranks.push(RankState::NeverStarted);
                    report.pids.push(None);
                }
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

/// What every rank of a job reported, indexed by rank.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// One state per rank, rank 0 first.
    pub ranks: Vec<RankState>,
    /// The pid each rank reported (from its `started` line), rank 0 first.
    pub pids: Vec<Option<u32>>,
}

impl Report {
    /// Whether any rank wrote a file at all. When none did, the per-rank
    /// states mean nothing (not a rankview program).
    pub fn any_reported(&self) -> bool {
        self.ranks.iter().any(|s| *s != RankState::NeverStarted)
    }

    /// The rank that reported pid `pid`.
    pub fn rank_of_pid(&self, pid: u32) -> Option<u32> {
        let at = self.pids.iter().position(|p| *p == Some(pid))?;
        u32::try_from(at).ok()
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
    let (pid, host) = started_line(text).map_or((None, None), parse_started);
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

/// The pid a rank's file names, if any.
pub fn parse_pid(text: &str) -> Option<u32> {
    started_line(text).and_then(|line| parse_started(line).0)
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
        assert_eq!(parse_pid("failed: x\nstarted pid=7 host=h\n"), Some(7));
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
    fn empty_directory_reports_nothing() {
        let dir = StatusDir::create().unwrap();
        let report = dir.report(4);
        assert!(!report.any_reported());
        assert_eq!(report.ranks.len(), 4);
    }
}
