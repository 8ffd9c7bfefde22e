//! Finding the MPI launcher (`mpirun`, `mpiexec`, `srun`) and identifying it.
//!
//! Owns the search order: `$MPIEXEC` if set, else `srun` inside a Slurm
//! allocation (see `allocation`), else `mpirun`, else `mpiexec` on PATH;
//! and running
//! `<launcher> --version` once to learn its flavour and version; and asking
//! srun which PMI plugins it offers (`srun --mpi=list`). Recognising a
//! flavour is `flavour`'s; the flags each flavour understands live in
//! `launch` (srun's own in `srun`); building the full command line is
//! `plan`'s job.

mod choices;
mod flavour;
mod launch;
pub mod srun;

pub use choices::Choices;
pub use flavour::Flavour;
pub use launch::{hostfile_slots, size_warnings, JobShape};

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::allocation::Allocation;
use crate::error::Error;
use crate::executable::{self, Lookup};
use crate::probe::{self, PROBE_LIMIT};

/// The environment variable naming the MPI launcher to use.
pub const MPIEXEC_VAR: &str = "MPIEXEC";

/// An MPI launcher found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpiExec {
    /// Absolute path of the launcher (symlinks not resolved).
    pub path: PathBuf,
    /// Which MPI it belongs to, hence which flags it takes.
    pub flavour: Flavour,
    /// One line describing its version, from `--version`.
    pub version: String,
    /// Why this one was chosen.
    pub found_by: FoundBy,
}

/// How the launcher was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundBy {
    /// `$MPIEXEC` named it.
    Variable,
    /// `srun`, because `SLURM_JOB_ID` is set.
    SlurmAllocation,
    /// The first of `mpirun`, `mpiexec` on PATH.
    Path,
}

impl MpiExec {
    /// The launcher's file name, e.g. `mpirun`, for messages.
    pub fn name(&self) -> String {
        self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        )
    }
}

/// Finds the MPI launcher to use for a job in `allocation` (`srun` in a
/// Slurm one; `None`: outside any, or for a job script where `srun` is not
/// wanted) and identifies its flavour.
pub fn discover(allocation: Option<&Allocation>) -> Result<MpiExec, Error> {
    let (path, found_by) = choose(allocation)?;
    Ok(identify(path, found_by))
}

/// Picks the launcher, without running it.
fn choose(allocation: Option<&Allocation>) -> Result<(PathBuf, FoundBy), Error> {
    if let Some(value) = std::env::var_os(MPIEXEC_VAR).filter(|v| !v.is_empty()) {
        return match executable::lookup(&value) {
            Lookup::Found(path) => Ok((executable::absolute(&path), FoundBy::Variable)),
            Lookup::NotExecutable(_) | Lookup::NotFound => Err(Error::BadMpiexecVariable { value }),
        };
    }
    if allocation.is_some_and(Allocation::is_slurm) {
        if let Some((_, path)) = executable::first_on_path(&["srun"]) {
            return Ok((executable::absolute(&path), FoundBy::SlurmAllocation));
        }
    }
    executable::first_on_path(&["mpirun", "mpiexec"])
        .map(|(_, path)| (executable::absolute(&path), FoundBy::Path))
        .ok_or(Error::NoMpi)
}

/// Runs `<launcher> --version` and classifies the answer. A launcher that
/// cannot answer is kept, as [`Flavour::Unknown`]: running the job will say
/// what is wrong with it.
fn identify(path: PathBuf, found_by: FoundBy) -> MpiExec {
    let text = match probe::ask(&path, &["--version"], PROBE_LIMIT) {
        Ok(answer) => answer.text,
        Err(err) => format!("(`--version` failed: {err})"),
    };
    let file_name = path.file_name().unwrap_or(OsStr::new(""));
    let flavour = if found_by == FoundBy::SlurmAllocation {
        Flavour::Slurm
    } else {
        Flavour::classify(&text, &file_name.to_string_lossy())
    };
    MpiExec {
        version: flavour.version_line(&text),
        path,
        flavour,
        found_by,
    }
}

/// How long `srun --mpi=list` may take.
const PLUGIN_LIST_LIMIT: Duration = Duration::from_secs(10);

/// The PMI plugins `srun` offers (`srun --mpi=list`); `None` when it does
/// not answer (no Slurm configuration on this machine, say).
pub fn srun_plugins(srun: &Path) -> Option<Vec<String>> {
    let answer = probe::ask(srun, &["--mpi=list"], PLUGIN_LIST_LIMIT).ok()?;
    let plugins = srun::offered(&answer.text);
    (answer.success && !plugins.is_empty()).then_some(plugins)
}

/// What srun's PMI plugin is chosen from: the MPI the program links
/// (`linked`), else the machine's own `mpirun`'s (as `run` outside an
/// allocation would find it), and the plugins `srun` (when there is one)
/// offers.
pub fn srun_pmi(srun: Option<&Path>, linked: Option<Flavour>) -> srun::Pmi {
    let library = match linked {
        Some(flavour) => Some(srun::Library {
            flavour,
            linked: true,
        }),
        None => choose(None)
            .ok()
            .map(|(path, found_by)| identify(path, found_by).flavour)
            .filter(|f| matches!(f, Flavour::OpenMpi | Flavour::Mpich))
            .map(|flavour| srun::Library {
                flavour,
                linked: false,
            }),
    };
    srun::Pmi {
        library,
        offered: srun.and_then(srun_plugins),
    }
}
