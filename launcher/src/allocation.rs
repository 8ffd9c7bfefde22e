//! The batch allocation the launcher runs inside, if any: Slurm or PBS.
//!
//! Owns reading the scheduler's environment variables (`SLURM_JOB_ID`,
//! `SLURM_NTASKS`; `PBS_JOBID`, `PBS_NODEFILE`) into what `rankview run`
//! needs from them: which MPI launcher the allocation wants (`srun` under
//! Slurm), how many ranks it holds (the default for `-n`), and which hosts
//! (PBS's node file, one line per slot). Choosing the launcher is
//! `mpiexec`'s job and applying the defaults `run`'s; writing job scripts
//! for an allocation to come is `batch`'s.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A batch allocation, as its environment variables describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocation {
    /// Inside a Slurm job or `salloc` (`SLURM_JOB_ID` set).
    Slurm {
        /// `SLURM_NTASKS` (or the older `SLURM_NPROCS`), when set.
        tasks: Option<u32>,
    },
    /// Inside a PBS (PBS Pro, OpenPBS, Torque) job (`PBS_JOBID` and
    /// `PBS_NODEFILE` set).
    Pbs {
        /// `PBS_NODEFILE`: each host once per slot (MPI process) it gives.
        nodefile: PathBuf,
    },
}

impl Allocation {
    /// The allocation this process runs in, from its environment.
    pub fn detect() -> Option<Allocation> {
        Allocation::from_vars(|name| std::env::var_os(name))
    }

    /// The rule of [`Allocation::detect`] on given variables: Slurm when
    /// `SLURM_JOB_ID` is set, else PBS when `PBS_JOBID` and `PBS_NODEFILE`
    /// are; empty values count as unset.
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Option<Allocation> {
        let set = |name: &str| var(name).filter(|v| !v.is_empty());
        if set("SLURM_JOB_ID").is_some() {
            let tasks = ["SLURM_NTASKS", "SLURM_NPROCS"].iter().find_map(|name| {
                set(name).and_then(|v| v.to_str().and_then(|t| t.trim().parse().ok()))
            });
            return Some(Allocation::Slurm { tasks });
        }
        match (set("PBS_JOBID"), set("PBS_NODEFILE")) {
            (Some(_), Some(nodefile)) => Some(Allocation::Pbs {
                nodefile: PathBuf::from(nodefile),
            }),
            _ => None,
        }
    }

    /// How many ranks the allocation holds, and where that number comes
    /// from (for `--dry-run`): Slurm's task count, or the lines of PBS's node
    /// file. `None` when the allocation does not say.
    pub fn ranks(&self) -> Option<(u32, String)> {
        match self {
            Allocation::Slurm { tasks } => {
                tasks.map(|n| (n, "the Slurm allocation's tasks (SLURM_NTASKS)".to_string()))
            }
            Allocation::Pbs { nodefile } => {
                let text = std::fs::read_to_string(nodefile).ok()?;
                let slots = nodefile_slots(&text)?;
                Some((
                    slots,
                    format!(
                        "the PBS allocation's slots (lines of PBS_NODEFILE={})",
                        nodefile.display()
                    ),
                ))
            }
        }
    }

    /// The hosts of the allocation as a hostfile (PBS's node file).
    pub fn hostfile(&self) -> Option<&Path> {
        match self {
            Allocation::Slurm { .. } => None,
            Allocation::Pbs { nodefile } => Some(nodefile),
        }
    }

    /// Whether this is a Slurm allocation (whose launcher is `srun`).
    pub fn is_slurm(&self) -> bool {
        matches!(self, Allocation::Slurm { .. })
    }
}

/// The slots of a PBS node file: its non-blank lines (`None` for none).
fn nodefile_slots(text: &str) -> Option<u32> {
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    u32::try_from(lines).ok().filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn slurm_with_and_without_a_task_count() {
        let slurm = Allocation::from_vars(vars(&[("SLURM_JOB_ID", "7"), ("SLURM_NTASKS", "12")]));
        assert_eq!(slurm, Some(Allocation::Slurm { tasks: Some(12) }));
        assert_eq!(slurm.unwrap().ranks().unwrap().0, 12);
        let old = Allocation::from_vars(vars(&[("SLURM_JOB_ID", "7"), ("SLURM_NPROCS", "3")]));
        assert_eq!(old, Some(Allocation::Slurm { tasks: Some(3) }));
        let bare = Allocation::from_vars(vars(&[("SLURM_JOB_ID", "7")])).unwrap();
        assert_eq!(bare.ranks(), None);
        assert!(bare.is_slurm() && bare.hostfile().is_none());
        assert_eq!(
            Allocation::from_vars(vars(&[("SLURM_JOB_ID", ""), ("SLURM_NTASKS", "4")])),
            None
        );
    }

    #[test]
    fn pbs_counts_node_file_lines() {
        let dir = tempfile::tempdir().unwrap();
        let nodefile = dir.path().join("nodes");
        std::fs::write(&nodefile, "n1\nn1\nn2\n\n").unwrap();
        let path = nodefile.to_str().unwrap();
        let pbs = Allocation::from_vars(vars(&[("PBS_JOBID", "1.server"), ("PBS_NODEFILE", path)]))
            .unwrap();
        assert_eq!(pbs.ranks().unwrap().0, 3);
        assert_eq!(pbs.hostfile(), Some(nodefile.as_path()));
        assert!(!pbs.is_slurm());
        // A job id without a node file, or a missing node file, gives no size.
        assert_eq!(Allocation::from_vars(vars(&[("PBS_JOBID", "1")])), None);
        let gone = Allocation::Pbs {
            nodefile: dir.path().join("absent"),
        };
        assert_eq!(gone.ranks(), None);
        assert_eq!(nodefile_slots("\n \n"), None);
    }
}
