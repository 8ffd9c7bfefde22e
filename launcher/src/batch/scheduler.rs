//! The batch systems rankview writes job scripts for: Slurm and PBS.
//!
//! Owns which one a job is for (`rankview batch slurm|pbs`), its name, the
//! command that submits a script, and the job names both accept. Below
//! both `cli`, which parses the scheduler and `--job-name`, and `batch`,
//! whose `script` writes the header and `submit` runs the submit command.

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

/// A job name from a program's name: letters, digits, `_`, `-` and `.`
/// kept, anything else `_`, and a leading letter (PBS wants one).
pub fn job_name(program: &str) -> String {
    let mut name: String = program
        .chars()
        .map(|c| if is_name_char(c) { c } else { '_' })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.insert_str(0, "job_");
    }
    name
}

/// The characters a job name (and a value in a header line) may have.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-.".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names() {
        assert_eq!(job_name("quickstart"), "quickstart");
        assert_eq!(job_name("my app+1"), "my_app_1");
        assert_eq!(job_name("3d"), "job_3d");
        assert_eq!(job_name(""), "job_");
    }
}
