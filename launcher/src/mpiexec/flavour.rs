//! MPI flavours: which family an MPI launcher belongs to.
//!
//! Owns recognising a flavour from `--version` output, its name and
//! version line, and how its launcher is stopped for good. Pure: no I/O,
//! so every rule is unit tested here. Below everything that depends on the
//! flavour: the flags each one speaks are `launch`'s (srun's own `srun`'s),
//! finding the launcher is `mpiexec`'s, the full command line `plan`'s.

use crate::signals::Escalation;

/// A family of MPI launchers that share a command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Open MPI's `mpirun`/`mpiexec` (ORTE or PRRTE).
    OpenMpi,
    /// MPICH's Hydra `mpiexec` (and Hydra-based MPIs: Intel MPI, MVAPICH).
    Mpich,
    /// Slurm's `srun`.
    Slurm,
    /// Something else: only `-n N` is passed.
    Unknown,
}

impl Flavour {
    /// Recognises a flavour from `<launcher> --version` output and the
    /// launcher's file name.
    pub fn classify(version_output: &str, file_name: &str) -> Flavour {
        let text = version_output.to_ascii_lowercase();
        if text.contains("open mpi") || text.contains("openrte") {
            Flavour::OpenMpi
        } else if ["hydra", "mpich", "intel(r) mpi", "mvapich"]
            .iter()
            .any(|mark| text.contains(mark))
        {
            Flavour::Mpich
        } else if text.trim_start().starts_with("slurm") || file_name == "srun" {
            Flavour::Slurm
        } else {
            Flavour::Unknown
        }
    }

    /// A human name, for `info` and messages.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::OpenMpi => "Open MPI",
            Flavour::Mpich => "MPICH (Hydra)",
            Flavour::Slurm => "Slurm (srun)",
            Flavour::Unknown => "unknown",
        }
    }

    /// One line naming the version, from `--version` output: Hydra's
    /// `Version:` field, otherwise the first non-empty line.
    pub fn version_line(self, version_output: &str) -> String {
        let mut lines = version_output
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty());
        if self == Flavour::Mpich {
            let field = version_output
                .lines()
                .filter_map(|l| l.trim().strip_prefix("Version:"))
                .map(str::trim)
                .next();
            if let Some(version) = field {
                return format!("HYDRA {version}");
            }
        }
        lines.next().map_or_else(
            || "unknown (`--version` printed nothing)".to_string(),
            str::to_string,
        )
    }

    /// How the MPI launcher is stopped for good after the first stop signal
    /// (see `signals`): srun is sent SIGTERM first, because killing it would
    /// leave the ranks on other nodes running, and SIGTERM makes it kill
    /// them all.
    pub fn escalation(self) -> Escalation {
        match self {
            Flavour::Slurm => Escalation::TermThenKill,
            Flavour::OpenMpi | Flavour::Mpich | Flavour::Unknown => Escalation::Kill,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENMPI: &str =
        "mpirun (Open MPI) 4.1.4\n\nReport bugs to http://www.open-mpi.org/community/help/\n";
    const HYDRA: &str = "HYDRA build details:\n    Version:                                 4.0.2\n    Release Date:                            Mon Mar 21 11:42:47 CDT 2022\n";
    const SLURM: &str = "slurm 23.02.6\n";

    #[test]
    fn classifies_version_output() {
        assert_eq!(Flavour::classify(OPENMPI, "mpirun"), Flavour::OpenMpi);
        assert_eq!(
            Flavour::classify("mpiexec (OpenRTE) 2.1.1", "mpiexec"),
            Flavour::OpenMpi
        );
        assert_eq!(Flavour::classify(HYDRA, "mpiexec"), Flavour::Mpich);
        assert_eq!(
            Flavour::classify(
                "Intel(R) MPI Library for Linux* OS, Version 2021.9",
                "mpirun"
            ),
            Flavour::Mpich
        );
        assert_eq!(Flavour::classify(SLURM, "srun"), Flavour::Slurm);
        assert_eq!(Flavour::classify("", "srun"), Flavour::Slurm);
        assert_eq!(
            Flavour::classify("frobnicator 1.0", "mpirun"),
            Flavour::Unknown
        );
    }

    #[test]
    fn version_lines() {
        assert_eq!(
            Flavour::OpenMpi.version_line(OPENMPI),
            "mpirun (Open MPI) 4.1.4"
        );
        assert_eq!(Flavour::Mpich.version_line(HYDRA), "HYDRA 4.0.2");
        assert_eq!(Flavour::Slurm.version_line(SLURM), "slurm 23.02.6");
        assert!(Flavour::Unknown.version_line("\n").starts_with("unknown"));
    }
}
