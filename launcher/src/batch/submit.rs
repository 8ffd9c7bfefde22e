//! `--submit`: handing a job script to `sbatch` or `qsub`.
//!
//! Owns running the scheduler's submit command (the script as a file when
//! one was written with `-o`, else on its standard input, which both read)
//! and reading the job id out of its answer (`sbatch --parsable` prints
//! `ID` or `ID;CLUSTER`; `qsub` prints `ID.SERVER`). A missing command or a
//! refused submission is an [`Error`]; the script itself is `script`'s.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::batch::scheduler::Scheduler;
use crate::error::Error;
use crate::executable;

/// Submits `script` (already written to `file`, if given) and returns the
/// job id.
pub fn submit(scheduler: Scheduler, script: &str, file: Option<&Path>) -> Result<String, Error> {
    let name = scheduler.submit_command();
    let Some((_, path)) = executable::first_on_path(&[name]) else {
        return Err(Error::SchedulerMissing {
            command: name,
            scheduler: scheduler.name(),
        });
    };
    let mut command = Command::new(path);
    if scheduler == Scheduler::Slurm {
        command.arg("--parsable");
    }
    if let Some(file) = file {
        command.arg(file);
    }
    command
        .stdin(if file.is_some() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|err| Error::io(format!("cannot run {name}"), err))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A submit command that exits without reading says why on stderr.
        let _ = stdin.write_all(script.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|err| Error::io(format!("cannot run {name}"), err))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let id = job_id(scheduler, &stdout);
    match id {
        Some(id) if output.status.success() => Ok(id),
        _ => Err(Error::SubmitFailed {
            command: name,
            status: output.status.to_string(),
            message: first_line(&stderr)
                .or_else(|| first_line(&stdout))
                .unwrap_or("no message")
                .to_string(),
        }),
    }
}

/// The job id in a submit command's answer.
fn job_id(scheduler: Scheduler, stdout: &str) -> Option<String> {
    let line = first_line(stdout)?;
    let id = match scheduler {
        Scheduler::Slurm => line.split(';').next().unwrap_or(line),
        Scheduler::Pbs => line,
    };
    let id = id.trim();
    (!id.is_empty() && !id.contains(char::is_whitespace)).then(|| id.to_string())
}

/// The first non-blank line, trimmed.
fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids() {
        assert_eq!(
            job_id(Scheduler::Slurm, "12345\n").as_deref(),
            Some("12345")
        );
        assert_eq!(
            job_id(Scheduler::Slurm, "678;cluster2\n").as_deref(),
            Some("678")
        );
        assert_eq!(
            job_id(Scheduler::Pbs, "\n4242.pbs-server\n").as_deref(),
            Some("4242.pbs-server")
        );
        assert_eq!(job_id(Scheduler::Pbs, ""), None);
        assert_eq!(job_id(Scheduler::Slurm, "Submitted batch job 5\n"), None);
    }
}
