//! The batch systems rankview writes job scripts for: Slurm and PBS.
//!
//! Owns which one a job is for (`rankview batch slurm|pbs`), its name and
//! the command that submits a script. Below both `cli`, which parses it,
//! and `batch`, whose `script` writes its header and `submit` runs its
//! submit command.

/// A batch system the launcher writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheduler {
    /// Slurm (`sbatch`, `srun`).
    Slurm,
    /// PBS Professional / OpenPBS (`qsub`, `select` resources).
    Pbs,
}

impl Scheduler {
    /// The command that submits a script.
    pub fn submit_command(self) -> &'static str {
        match self {
            Scheduler::Slurm => "sbatch",
            Scheduler::Pbs => "qsub",
        }
    }

    /// The scheduler's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Scheduler::Slurm => "Slurm",
            Scheduler::Pbs => "PBS",
        }
    }
}
