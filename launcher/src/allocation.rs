//! The batch allocation the launcher runs inside, if any: Slurm or PBS.
//!
//! Owns reading the scheduler's environment variables (`SLURM_JOB_ID`,
//! `SLURM_NTASKS`, `SLURM_NNODES`, `SLURM_NTASKS_PER_NODE`,
//! `SLURM_JOB_CPUS_PER_NODE`, `SLURM_CPUS_PER_TASK`; `PBS_JOBID`,
//! `PBS_NODEFILE`) into what `rankview run` needs from them: which MPI
//! launcher the allocation wants (`srun` under Slurm), how many ranks it
//! holds (the default for `-n`, with where the number came from), and which
//! hosts (PBS's node file, one line per slot). Choosing the launcher is
//! `mpiexec`'s job and applying the defaults `run`'s; writing job scripts
//! for an allocation to come is `batch`'s.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A batch allocation, as its environment variables describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocation {
    /// Inside a Slurm job or `salloc` (`SLURM_JOB_ID` set).
    Slurm {
        /// `SLURM_JOB_ID`.
        job_id: String,
        /// The ranks it holds and where that number comes from, when Slurm
        /// says (see [`slurm_size`]).
        size: Option<(u32, String)>,
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
        if let Some(job_id) = set("SLURM_JOB_ID") {
            let text = |name: &str| set(name).and_then(|v| v.to_str().map(str::to_string));
            return Some(Allocation::Slurm {
                job_id: job_id.to_string_lossy().into_owned(),
                size: slurm_size(text),
            });
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
            Allocation::Slurm { size, .. } => size.clone(),
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

    /// The Slurm job's id (`None` outside Slurm).
    pub fn slurm_job_id(&self) -> Option<&str> {
        match self {
            Allocation::Slurm { job_id, .. } => Some(job_id),
            Allocation::Pbs { .. } => None,
        }
    }
}

/// The ranks a Slurm allocation holds, from its variables (`text` reads
/// one), and where the number comes from: its tasks (`SLURM_NTASKS`, or the
/// older `SLURM_NPROCS`); else its nodes × tasks per node (`SLURM_NNODES` ×
/// `SLURM_NTASKS_PER_NODE`, from `--ntasks-per-node`); else its CPUs
/// (`SLURM_JOB_CPUS_PER_NODE`, e.g. `4(x2),2`, over `SLURM_CPUS_PER_TASK`).
/// At least 2 (rank 0 and one engine), said so when Slurm gives fewer.
fn slurm_size(text: impl Fn(&str) -> Option<String>) -> Option<(u32, String)> {
    let number = |name: &str| text(name).and_then(|v| v.trim().parse::<u32>().ok());
    let (ranks, source) = if let Some((name, n)) = ["SLURM_NTASKS", "SLURM_NPROCS"]
        .iter()
        .find_map(|name| number(name).map(|n| (name, n)))
    {
        (n, format!("the Slurm allocation's tasks ({name})"))
    } else if let (Some(nodes), Some(per_node)) =
        (number("SLURM_NNODES"), number("SLURM_NTASKS_PER_NODE"))
    {
        (
            nodes.saturating_mul(per_node),
            format!(
                "the Slurm allocation's nodes × tasks per node (SLURM_NNODES={nodes} × \
                 SLURM_NTASKS_PER_NODE={per_node})"
            ),
        )
    } else {
        let cpus_text = text("SLURM_JOB_CPUS_PER_NODE")?;
        let cpus = expand_counts(&cpus_text)?;
        match number("SLURM_CPUS_PER_TASK").filter(|&c| c > 0) {
            Some(per_task) => (
                cpus / per_task,
                format!(
                    "the Slurm allocation's CPUs over CPUs per task \
                     (SLURM_JOB_CPUS_PER_NODE={cpus_text} / SLURM_CPUS_PER_TASK={per_task})"
                ),
            ),
            None => (
                cpus,
                format!("the Slurm allocation's CPUs (SLURM_JOB_CPUS_PER_NODE={cpus_text})"),
            ),
        }
    };
    let min = crate::ranks::MIN_RANKS;
    if ranks < min {
        return Some((
            min,
            format!("{source} is {ranks}, and rankview needs at least {min} ranks"),
        ));
    }
    Some((ranks, source))
}

/// The total of a Slurm count list such as `4(x2),2` (4 + 4 + 2).
fn expand_counts(text: &str) -> Option<u32> {
    let mut total: u32 = 0;
    for part in text.split(',') {
        let (count, times) = match part.trim().split_once("(x") {
            Some((count, times)) => (count, times.trim_end_matches(')').parse::<u32>().ok()?),
            None => (part, 1),
        };
        let count = count.trim().parse::<u32>().ok()?;
        total = total.saturating_add(count.saturating_mul(times));
    }
    Some(total)
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

    fn slurm_ranks(pairs: &[(&str, &str)]) -> Option<(u32, String)> {
        let mut all = vec![("SLURM_JOB_ID", "7")];
        all.extend_from_slice(pairs);
        Allocation::from_vars(vars(&all))?.ranks()
    }

    #[test]
    fn slurm_with_and_without_a_task_count() {
        let slurm = Allocation::from_vars(vars(&[("SLURM_JOB_ID", "7"), ("SLURM_NTASKS", "12")]));
        assert_eq!(
            slurm,
            Some(Allocation::Slurm {
                job_id: "7".into(),
                size: Some((12, "the Slurm allocation's tasks (SLURM_NTASKS)".into()))
            })
        );
        assert_eq!(slurm_ranks(&[("SLURM_NPROCS", "3")]).unwrap().0, 3);
        let bare = Allocation::from_vars(vars(&[("SLURM_JOB_ID", "7")])).unwrap();
        assert_eq!(bare.ranks(), None);
        assert!(bare.is_slurm() && bare.hostfile().is_none());
        assert_eq!(bare.slurm_job_id(), Some("7"));
        assert_eq!(
            Allocation::from_vars(vars(&[("SLURM_JOB_ID", ""), ("SLURM_NTASKS", "4")])),
            None
        );
    }

    /// Item 6 of issue 22: `salloc -N 2` without a task count: what Slurm
    /// says, not this machine's cores.
    #[test]
    fn slurm_without_a_task_count_uses_nodes_and_cpus() {
        assert_eq!(
            slurm_ranks(&[("SLURM_NNODES", "2"), ("SLURM_NTASKS_PER_NODE", "3")]),
            Some((
                6,
                "the Slurm allocation's nodes × tasks per node (SLURM_NNODES=2 × \
                 SLURM_NTASKS_PER_NODE=3)"
                    .into()
            ))
        );
        let cpus = [
            ("SLURM_NNODES", "3"),
            ("SLURM_JOB_CPUS_PER_NODE", "4(x2),2"),
        ];
        assert_eq!(
            slurm_ranks(&cpus),
            Some((
                10,
                "the Slurm allocation's CPUs (SLURM_JOB_CPUS_PER_NODE=4(x2),2)".into()
            ))
        );
        let mut per_task = cpus.to_vec();
        per_task.push(("SLURM_CPUS_PER_TASK", "2"));
        assert_eq!(slurm_ranks(&per_task).unwrap().0, 5);
        let (ranks, source) = slurm_ranks(&[("SLURM_JOB_CPUS_PER_NODE", "1")]).unwrap();
        assert_eq!(ranks, 2);
        assert!(
            source.ends_with("is 1, and rankview needs at least 2 ranks"),
            "{source}"
        );
        assert_eq!(slurm_ranks(&[("SLURM_JOB_CPUS_PER_NODE", "many")]), None);
        assert_eq!(expand_counts("8"), Some(8));
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
        assert!(!pbs.is_slurm() && pbs.slurm_job_id().is_none());
        // A job id without a node file, or a missing node file, gives no size.
        assert_eq!(Allocation::from_vars(vars(&[("PBS_JOBID", "1")])), None);
        let gone = Allocation::Pbs {
            nodefile: dir.path().join("absent"),
        };
        assert_eq!(gone.ranks(), None);
        assert_eq!(nodefile_slots("\n \n"), None);
    }
}
