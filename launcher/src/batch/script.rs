//! The job script templates: one for Slurm, one for PBS.
//!
//! Owns the text of a job script: the scheduler's header (`#SBATCH` or
//! `#PBS` lines for the size, time, partition or queue, account, name and
//! output file), the thread settings for rankview's two threads per rank
//! with a comment saying why, and the launch line (`srun` under Slurm, with
//! the flags `mpiexec::srun` chose and why; the MPI launcher with PBS's host
//! list under PBS). Pure: the job is described
//! by a [`Job`], so every template is unit tested here. Finding the program
//! and the MPI launcher, writing and submitting the script is `batch`'s.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;

use crate::batch::scheduler::Scheduler;
use crate::batch::walltime::Walltime;
use crate::mpiexec::Flavour;
use crate::plan::quote;

/// How many ranks, and how they sit on nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// Ranks in all, controller included.
    pub ranks: u32,
    /// Nodes asked for, when given (or implied by ranks per node).
    pub nodes: Option<u32>,
    /// Ranks per node, when given (or implied by nodes).
    pub per_node: Option<u32>,
}

impl Size {
    /// The size from `-n`, `--nodes` and `--tasks-per-node`: ranks are `-n`,
    /// else nodes × ranks per node; `-n` must fit in nodes × ranks per node
    /// when both are given. With only one of nodes and ranks per node, PBS
    /// derives the other (rounded up); Slurm is told what was given.
    pub fn new(
        ranks: Option<u32>,
        nodes: Option<u32>,
        per_node: Option<u32>,
    ) -> Result<Size, String> {
        if nodes == Some(0) || per_node == Some(0) {
            return Err("--nodes and --tasks-per-node must be at least 1".to_string());
        }
        let room = nodes.zip(per_node).map(|(n, m)| n.saturating_mul(m));
        let ranks = match (ranks, room) {
            (Some(ranks), Some(room)) if ranks > room => {
                return Err(format!(
                    "-n {ranks} does not fit on {} nodes of {} ranks each",
                    nodes.unwrap_or(0),
                    per_node.unwrap_or(0)
                ))
            }
            (Some(ranks), _) => ranks,
            (None, Some(room)) => room,
            (None, None) => {
                return Err(
                    "say how many ranks: -n N, or --nodes N with --tasks-per-node M".to_string(),
                )
            }
        };
        let ranks = crate::ranks::check(ranks)?;
        Ok(Size {
            ranks,
            nodes,
            per_node,
        })
    }

    /// PBS chunks: `(chunks, ranks per chunk)`, one chunk per node when the
    /// node layout is known, else one chunk per rank.
    fn pbs_chunks(&self) -> (u32, u32) {
        match (self.nodes, self.per_node) {
            (Some(nodes), Some(per_node)) => (nodes, per_node),
            (None, Some(per_node)) => (self.ranks.div_ceil(per_node), per_node),
            (Some(nodes), None) => (nodes, self.ranks.div_ceil(nodes)),
            (None, None) => (self.ranks, 1),
        }
    }
}

/// How the ranks are started inside the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launcher {
    /// `srun` (Slurm).
    Srun {
        /// srun's own flags (`--kill-on-bad-exit=1`, `--mpi=pmix`).
        flags: Vec<OsString>,
        /// Why each was (or was not) given, for comments.
        reasons: Vec<String>,
    },
    /// An MPI launcher given PBS's node file (PBS).
    Mpi {
        /// The launcher's path, as it will be run on the first node.
        path: OsString,
        /// Its flavour, hence its flags.
        flavour: Flavour,
        /// A binding the user chose in the MPI words, if any.
        user_binding: Option<String>,
    },
}

/// Everything a job script says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Which batch system.
    pub scheduler: Scheduler,
    /// The job's name.
    pub name: String,
    /// Ranks and nodes.
    pub size: Size,
    /// CPUs each rank gets.
    pub cpus_per_rank: u32,
    /// The time limit.
    pub time: Walltime,
    /// Partition (Slurm) or queue (PBS).
    pub partition: Option<String>,
    /// Account charged.
    pub account: Option<String>,
    /// The job's output file, when not the scheduler's default.
    pub log: Option<OsString>,
    /// The job's stderr file, when apart from its output.
    pub error_log: Option<OsString>,
    /// Further directives, written as they are (`--mem=8G`, `-l mem=8gb`).
    pub directives: Vec<String>,
    /// How ranks are started.
    pub launcher: Launcher,
    /// Words for the launcher, verbatim, before the program.
    pub mpi_words: Vec<OsString>,
    /// The program (absolute) and its arguments.
    pub command: Vec<OsString>,
}

/// The script's variable for the PBS node file, left for the shell.
const PBS_NODEFILE: &str = "\"$PBS_NODEFILE\"";

impl Job {
    /// `OMP_NUM_THREADS`: the CPUs of a rank that the MPI thread leaves to
    /// tasks (at least 1).
    pub fn omp_threads(&self) -> u32 {
        self.cpus_per_rank.saturating_sub(1).max(1)
    }

    /// The whole script.
    pub fn script(&self) -> String {
        let mut text = String::from("#!/bin/bash\n");
        let engines = match self.size.ranks {
            2 => "rank 1 is the engine".to_string(),
            n => format!("ranks 1-{} are engines", n - 1),
        };
        let _ = writeln!(
            text,
            "# rankview job: {} on {} ranks (rank 0 runs the client, {engines}).\n\
             # Written by `rankview batch {}`; submit it with `{} FILE`.",
            self.name,
            self.size.ranks,
            self.scheduler.name().to_ascii_lowercase(),
            self.scheduler.submit_command(),
        );
        match self.scheduler {
            Scheduler::Slurm => self.slurm_header(&mut text),
            Scheduler::Pbs => self.pbs_header(&mut text),
        }
        text.push('\n');
        self.threads(&mut text);
        text.push('\n');
        match &self.launcher {
            Launcher::Srun { reasons, .. } => {
                text.push_str(
                    "# srun starts the allocation's tasks. --cpus-per-task is repeated: srun no\n\
                     # longer takes it from sbatch (Slurm 22.05 and later).\n",
                );
                for reason in reasons {
                    comment(&mut text, reason);
                }
            }
            Launcher::Mpi { flavour, .. } => {
                text.push_str(
                    "# PBS starts the script in the home directory: run where it was submitted.\n\
                     cd \"$PBS_O_WORKDIR\" || exit 1\n\n",
                );
                if *flavour == Flavour::Unknown {
                    text.push_str(
                        "# The hosts are in $PBS_NODEFILE (one line per rank); this MPI launcher\n\
                         # is not one rankview knows, so add its hostfile option if it needs one.\n",
                    );
                } else {
                    text.push_str("# $PBS_NODEFILE lists each node once per rank it hosts.\n");
                }
            }
        }
        text.push_str(&self.launch_line());
        text.push('\n');
        text
    }

    fn slurm_header(&self, text: &mut String) {
        let mut line = |key: &str, value: &str| {
            let _ = writeln!(text, "#SBATCH --{key}={value}");
        };
        line("job-name", &self.name);
        if let Some(nodes) = self.size.nodes {
            line("nodes", &nodes.to_string());
        }
        line("ntasks", &self.size.ranks.to_string());
        if let Some(per_node) = self.size.per_node {
            line("ntasks-per-node", &per_node.to_string());
        }
        line("cpus-per-task", &self.cpus_per_rank.to_string());
        line("time", &self.time.slurm());
        if let Some(partition) = &self.partition {
            line("partition", partition);
        }
        if let Some(account) = &self.account {
            line("account", account);
        }
        let log = self.log.as_ref().map_or_else(
            || format!("{}-%j.out", self.name),
            |l| l.to_string_lossy().into_owned(),
        );
        line("output", &log);
        if let Some(error) = &self.error_log {
            line("error", &error.to_string_lossy());
        }
        for directive in &self.directives {
            let _ = writeln!(text, "#SBATCH {directive}");
        }
    }

    fn pbs_header(&self, text: &mut String) {
        let (chunks, per_chunk) = self.size.pbs_chunks();
        let _ = writeln!(text, "#PBS -N {}", self.name);
        let _ = writeln!(
            text,
            "#PBS -l select={chunks}:ncpus={}:mpiprocs={per_chunk}",
            per_chunk.saturating_mul(self.cpus_per_rank)
        );
        if self.size.nodes.is_some() || self.size.per_node.is_some() {
            text.push_str("#PBS -l place=scatter\n");
        }
        let _ = writeln!(text, "#PBS -l walltime={}", self.time.pbs());
        if let Some(queue) = &self.partition {
            let _ = writeln!(text, "#PBS -q {queue}");
        }
        if let Some(account) = &self.account {
            let _ = writeln!(text, "#PBS -A {account}");
        }
        match &self.error_log {
            Some(error) => {
                let _ = writeln!(text, "#PBS -e {}", error.to_string_lossy());
            }
            None => text.push_str("#PBS -j oe\n"),
        }
        if let Some(log) = &self.log {
            let _ = writeln!(text, "#PBS -o {}", log.to_string_lossy());
        }
        for directive in &self.directives {
            let _ = writeln!(text, "#PBS {directive}");
        }
    }

    /// The comment on threads and binding, and the `export` lines.
    fn threads(&self, text: &mut String) {
        let cpus = self.cpus_per_rank;
        let binding = match &self.launcher {
            Launcher::Srun { .. } if cpus == 1 => {
                "--cpu-bind=cores binds every rank to its CPU".to_string()
            }
            Launcher::Srun { .. } => {
                format!("--cpu-bind=cores binds every rank to its {cpus} CPUs")
            }
            Launcher::Mpi {
                user_binding: Some(choice),
                ..
            } => format!("the binding is the one you chose ({choice})"),
            Launcher::Mpi {
                flavour: Flavour::OpenMpi,
                ..
            } => format!("--map-by slot:PE={cpus} binds every rank to {cpus} cores"),
            Launcher::Mpi {
                flavour: Flavour::Mpich,
                ..
            } => format!("-bind-to core:{cpus} binds every rank to {cpus} cores"),
            Launcher::Mpi { .. } => "binding is left to the MPI launcher".to_string(),
        };
        let ask = match self.scheduler {
            Scheduler::Slurm => format!("--cpus-per-task={cpus}"),
            Scheduler::Pbs => format!("ncpus={cpus} per rank"),
        };
        let omp = self.omp_threads();
        let _ = writeln!(
            text,
            "# Each rank runs two busy threads: the MPI thread, which polls for messages,\n\
             # and the execution thread, which runs tasks."
        );
        if cpus >= 2 {
            let _ = writeln!(
                text,
                "# {ask} gives each thread a CPU of its own, and\n\
                 # {binding} (bound to a single CPU,\n\
                 # the two threads would take turns).\n\
                 # OMP_NUM_THREADS={omp}: threads a task starts use the CPUs the MPI thread\n\
                 # leaves, not its own."
            );
        } else {
            let _ = writeln!(
                text,
                "# {ask} makes them share one CPU and take turns\n\
                 # (--cpus-per-rank 2 or more gives each its own); {binding}.\n\
                 # OMP_NUM_THREADS=1: a task's own threads would only add to the turns."
            );
        }
        let _ = writeln!(text, "export OMP_NUM_THREADS={omp}");
    }

    /// The line that starts the ranks.
    fn launch_line(&self) -> String {
        let cpus = self.cpus_per_rank;
        let mut words: Vec<String> = Vec::new();
        let plain = |w: &OsStr| quote(w);
        match &self.launcher {
            Launcher::Srun { flags, .. } => {
                words.push("srun".into());
                words.push(format!("--cpus-per-task={cpus}"));
                words.push("--cpu-bind=cores".into());
                words.extend(flags.iter().map(|w| plain(w)));
            }
            Launcher::Mpi {
                path,
                flavour,
                user_binding,
            } => {
                words.push(plain(path));
                words.push("-n".into());
                words.push(self.size.ranks.to_string());
                match flavour {
                    Flavour::OpenMpi => {
                        words.extend(["--hostfile".into(), PBS_NODEFILE.into()]);
                        if user_binding.is_none() {
                            words.push("--map-by".into());
                            words.push(format!("slot:PE={cpus}"));
                            words.extend(["--bind-to".into(), "core".into()]);
                        }
                        // Open MPI does not pass the environment to other nodes.
                        words.extend(["-x".into(), "OMP_NUM_THREADS".into()]);
                    }
                    Flavour::Mpich => {
                        words.extend(["-f".into(), PBS_NODEFILE.into()]);
                        if user_binding.is_none() {
                            words.push("-bind-to".into());
                            words.push(format!("core:{cpus}"));
                        }
                    }
                    Flavour::Slurm | Flavour::Unknown => {}
                }
            }
        }
        words.extend(self.mpi_words.iter().map(|w| plain(w)));
        words.extend(self.command.iter().map(|w| plain(w)));
        words.join(" ")
    }
}

/// Writes `text` as `#` comment lines of at most 78 characters.
fn comment(script: &mut String, text: &str) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > 78 {
            script.push_str(&line);
            script.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    script.push_str(&line);
    script.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(scheduler: Scheduler, launcher: Launcher) -> Job {
        Job {
            scheduler,
            name: "quickstart".into(),
            size: Size::new(Some(64), None, None).unwrap(),
            cpus_per_rank: 2,
            time: Walltime::parse("00:10:00").unwrap(),
            partition: None,
            account: None,
            log: None,
            error_log: None,
            directives: Vec::new(),
            launcher,
            mpi_words: Vec::new(),
            command: vec!["/w/target/debug/examples/quickstart".into()],
        }
    }

    fn openmpi() -> Launcher {
        Launcher::Mpi {
            path: "/usr/bin/mpirun".into(),
            flavour: Flavour::OpenMpi,
            user_binding: None,
        }
    }

    fn srun() -> Launcher {
        Launcher::Srun {
            flags: vec!["--kill-on-bad-exit=1".into(), "--mpi=pmix".into()],
            reasons: vec![
                "--kill-on-bad-exit=1: a rank that dies ends the job at once (without it, the \
                 others may wait for it until the time limit)"
                    .into(),
                "--mpi=pmix: the program links Open MPI".into(),
            ],
        }
    }

    #[test]
    fn slurm_script() {
        let script = job(Scheduler::Slurm, srun()).script();
        assert_eq!(
            script,
            "#!/bin/bash\n\
             # rankview job: quickstart on 64 ranks (rank 0 runs the client, ranks 1-63 are engines).\n\
             # Written by `rankview batch slurm`; submit it with `sbatch FILE`.\n\
             #SBATCH --job-name=quickstart\n\
             #SBATCH --ntasks=64\n\
             #SBATCH --cpus-per-task=2\n\
             #SBATCH --time=00:10:00\n\
             #SBATCH --output=quickstart-%j.out\n\
             \n\
             # Each rank runs two busy threads: the MPI thread, which polls for messages,\n\
             # and the execution thread, which runs tasks.\n\
             # --cpus-per-task=2 gives each thread a CPU of its own, and\n\
             # --cpu-bind=cores binds every rank to its 2 CPUs (bound to a single CPU,\n\
             # the two threads would take turns).\n\
             # OMP_NUM_THREADS=1: threads a task starts use the CPUs the MPI thread\n\
             # leaves, not its own.\n\
             export OMP_NUM_THREADS=1\n\
             \n\
             # srun starts the allocation's tasks. --cpus-per-task is repeated: srun no\n\
             # longer takes it from sbatch (Slurm 22.05 and later).\n\
             # --kill-on-bad-exit=1: a rank that dies ends the job at once (without it, the\n\
             # others may wait for it until the time limit)\n\
             # --mpi=pmix: the program links Open MPI\n\
             srun --cpus-per-task=2 --cpu-bind=cores --kill-on-bad-exit=1 --mpi=pmix \
             /w/target/debug/examples/quickstart\n"
        );
    }

    #[test]
    fn slurm_nodes_partition_account_log() {
        let mut job = job(
            Scheduler::Slurm,
            Launcher::Srun {
                flags: Vec::new(),
                reasons: Vec::new(),
            },
        );
        job.size = Size::new(None, Some(4), Some(8)).unwrap();
        job.cpus_per_rank = 8;
        job.partition = Some("short".into());
        job.account = Some("proj42".into());
        job.log = Some("run.log".into());
        job.mpi_words = vec!["--mpi=pmix".into()];
        job.command.push("a b".into());
        let script = job.script();
        for line in [
            "#SBATCH --nodes=4\n#SBATCH --ntasks=32\n#SBATCH --ntasks-per-node=8\n",
            "#SBATCH --cpus-per-task=8\n",
            "#SBATCH --partition=short\n#SBATCH --account=proj42\n#SBATCH --output=run.log\n",
            "export OMP_NUM_THREADS=7\n",
            "srun --cpus-per-task=8 --cpu-bind=cores --mpi=pmix /w/target/debug/examples/quickstart 'a b'\n",
        ] {
            assert!(script.contains(line), "{line:?} not in\n{script}");
        }
    }

    #[test]
    fn pbs_script_with_open_mpi() {
        let script = job(Scheduler::Pbs, openmpi()).script();
        for line in [
            "#PBS -N quickstart\n#PBS -l select=64:ncpus=2:mpiprocs=1\n#PBS -l walltime=00:10:00\n#PBS -j oe\n\n",
            "# --map-by slot:PE=2 binds every rank to 2 cores (bound to a single CPU,\n",
            "cd \"$PBS_O_WORKDIR\" || exit 1\n",
            "/usr/bin/mpirun -n 64 --hostfile \"$PBS_NODEFILE\" --map-by slot:PE=2 --bind-to core \
             -x OMP_NUM_THREADS /w/target/debug/examples/quickstart\n",
        ] {
            assert!(script.contains(line), "{line:?} not in\n{script}");
        }
        assert!(!script.contains("place=scatter"), "{script}");
    }

    #[test]
    fn pbs_nodes_queue_and_mpich() {
        let mut job = job(
            Scheduler::Pbs,
            Launcher::Mpi {
                path: "/opt/mpich/bin/mpiexec".into(),
                flavour: Flavour::Mpich,
                user_binding: None,
            },
        );
        job.size = Size::new(Some(10), Some(3), None).unwrap();
        job.partition = Some("workq".into());
        job.account = Some("p1".into());
        job.log = Some("out.txt".into());
        let script = job.script();
        for line in [
            "#PBS -l select=3:ncpus=8:mpiprocs=4\n#PBS -l place=scatter\n",
            "#PBS -q workq\n#PBS -A p1\n#PBS -j oe\n#PBS -o out.txt\n",
            "/opt/mpich/bin/mpiexec -n 10 -f \"$PBS_NODEFILE\" -bind-to core:2 /w/",
        ] {
            assert!(script.contains(line), "{line:?} not in\n{script}");
        }
    }

    #[test]
    fn a_user_binding_is_kept() {
        let mut job = job(
            Scheduler::Pbs,
            Launcher::Mpi {
                path: "/usr/bin/mpirun".into(),
                flavour: Flavour::OpenMpi,
                user_binding: Some("--bind-to socket".into()),
            },
        );
        job.mpi_words = vec!["--bind-to".into(), "socket".into()];
        let script = job.script();
        assert!(script.contains("the binding is the one you chose (--bind-to socket)"));
        assert!(script.contains(
            "-n 64 --hostfile \"$PBS_NODEFILE\" -x OMP_NUM_THREADS --bind-to socket /w/"
        ));
    }

    #[test]
    fn sizes() {
        assert_eq!(Size::new(Some(5), None, None).unwrap().pbs_chunks(), (5, 1));
        assert_eq!(
            Size::new(None, Some(2), Some(3)).unwrap(),
            Size {
                ranks: 6,
                nodes: Some(2),
                per_node: Some(3)
            }
        );
        assert_eq!(
            Size::new(Some(10), None, Some(4)).unwrap().pbs_chunks(),
            (3, 4)
        );
        assert!(Size::new(Some(10), Some(2), Some(4))
            .unwrap_err()
            .contains("does not fit"));
        assert!(Size::new(None, Some(2), None).unwrap_err().contains("-n N"));
        assert!(Size::new(None, None, None).is_err());
        assert!(Size::new(None, Some(1), Some(1))
            .unwrap_err()
            .contains("at least 2"));
        assert!(Size::new(Some(4), Some(0), None).is_err());
    }
}
