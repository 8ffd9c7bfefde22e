//! MPI flavours and the flags each one speaks.
//!
//! Owns recognising a flavour from `--version` output and turning a job's
//! shape (ranks, cores, hostfile, root) into that flavour's launcher flags
//! and environment. Pure: no I/O, so every rule is unit tested here. Finding
//! the launcher is `mpiexec`'s job; the full command line is `plan`'s.

use std::ffi::OsString;
use std::path::Path;

use crate::error::Error;
use crate::host::Host;

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

/// What the launcher needs to know about a job to pick its flags.
#[derive(Debug, Clone, Copy)]
pub struct JobShape<'a> {
    /// Number of ranks.
    pub ranks: u32,
    /// This machine (cores, root).
    pub host: Host,
    /// `--hostfile`, if given.
    pub hostfile: Option<&'a Path>,
    /// Environment variables every rank must see even on other nodes.
    pub exported_env: &'a [&'a str],
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

    /// The launcher's own flags for `job`, in order, before any `--mpi-arg`.
    ///
    /// - Open MPI: `-n N`, `--oversubscribe` when N exceeds the cores,
    ///   `--hostfile F`, and `-x VAR` for each exported variable (Open MPI
    ///   does not forward the environment to other nodes by itself).
    /// - MPICH: `-n N`, `-f F` (Hydra forwards the whole environment and
    ///   oversubscribes freely).
    /// - Slurm and unknown launchers: `-n N`; a hostfile is an error there.
    pub fn launch_args(
        self,
        job: &JobShape<'_>,
        launcher_name: &str,
    ) -> Result<Vec<OsString>, Error> {
        let mut args: Vec<OsString> = vec!["-n".into(), job.ranks.to_string().into()];
        match self {
            Flavour::OpenMpi => {
                if oversubscribed(job) {
                    args.push("--oversubscribe".into());
                }
                if let Some(hostfile) = job.hostfile {
                    args.push("--hostfile".into());
                    args.push(hostfile.as_os_str().to_os_string());
                }
                for name in job.exported_env {
                    args.push("-x".into());
                    args.push(OsString::from(name));
                }
            }
            Flavour::Mpich => {
                if let Some(hostfile) = job.hostfile {
                    args.push("-f".into());
                    args.push(hostfile.as_os_str().to_os_string());
                }
            }
            Flavour::Slurm => {
                if job.hostfile.is_some() {
                    return Err(Error::HostfileUnsupported {
                        launcher: launcher_name.to_string(),
                        hint: "Slurm chooses the nodes; pass srun's own options with --mpi-arg \
                               (e.g. --mpi-arg=--nodelist=node[1-4])",
                    });
                }
            }
            Flavour::Unknown => {
                if job.hostfile.is_some() {
                    return Err(Error::HostfileUnsupported {
                        launcher: launcher_name.to_string(),
                        hint: "rankview does not recognise this MPI launcher; pass its own \
                               hostfile option with --mpi-arg",
                    });
                }
            }
        }
        Ok(args)
    }

    /// Environment variables the launcher itself needs for `job`: Open MPI
    /// refuses to run as root unless `OMPI_ALLOW_RUN_AS_ROOT=1` and
    /// `OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1` are set.
    pub fn launch_env(self, job: &JobShape<'_>) -> Vec<(&'static str, &'static str)> {
        match self {
            Flavour::OpenMpi if job.host.is_root => vec![
                ("OMPI_ALLOW_RUN_AS_ROOT", "1"),
                ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
            ],
            _ => Vec::new(),
        }
    }
}

/// Whether the job has more ranks than this machine has cores.
fn oversubscribed(job: &JobShape<'_>) -> bool {
    usize::try_from(job.ranks).map_or(true, |ranks| ranks > job.host.cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENMPI: &str =
        "mpirun (Open MPI) 4.1.4\n\nReport bugs to http://www.open-mpi.org/community/help/\n";
    const HYDRA: &str = "HYDRA build details:\n    Version:                                 4.0.2\n    Release Date:                            Mon Mar 21 11:42:47 CDT 2022\n";
    const SLURM: &str = "slurm 23.02.6\n";

    fn shape(ranks: u32, cores: usize, is_root: bool, hostfile: Option<&Path>) -> JobShape<'_> {
        JobShape {
            ranks,
            host: Host { cores, is_root },
            hostfile,
            exported_env: &["RANKVIEW_LAUNCHER"],
        }
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

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

    #[test]
    fn openmpi_oversubscribes_only_beyond_the_cores() {
        let args = strings(
            Flavour::OpenMpi
                .launch_args(&shape(3, 2, false, None), "mpirun")
                .unwrap(),
        );
        assert_eq!(
            args,
            ["-n", "3", "--oversubscribe", "-x", "RANKVIEW_LAUNCHER"]
        );
        let args = strings(
            Flavour::OpenMpi
                .launch_args(&shape(2, 2, false, None), "mpirun")
                .unwrap(),
        );
        assert_eq!(args, ["-n", "2", "-x", "RANKVIEW_LAUNCHER"]);
    }

    #[test]
    fn openmpi_hostfile_and_root() {
        let hosts = Path::new("hosts.txt");
        let job = shape(4, 8, true, Some(hosts));
        let args = strings(Flavour::OpenMpi.launch_args(&job, "mpirun").unwrap());
        assert_eq!(
            args,
            [
                "-n",
                "4",
                "--hostfile",
                "hosts.txt",
                "-x",
                "RANKVIEW_LAUNCHER"
            ]
        );
        assert_eq!(
            Flavour::OpenMpi.launch_env(&job),
            [
                ("OMPI_ALLOW_RUN_AS_ROOT", "1"),
                ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            ]
        );
        assert!(Flavour::OpenMpi
            .launch_env(&shape(4, 8, false, None))
            .is_empty());
    }

    #[test]
    fn mpich_flags() {
        let hosts = Path::new("hosts");
        let job = shape(9, 2, true, Some(hosts));
        let args = strings(Flavour::Mpich.launch_args(&job, "mpiexec").unwrap());
        assert_eq!(args, ["-n", "9", "-f", "hosts"]);
        assert!(Flavour::Mpich.launch_env(&job).is_empty());
    }

    #[test]
    fn slurm_and_unknown_take_only_n() {
        for flavour in [Flavour::Slurm, Flavour::Unknown] {
            let args = strings(flavour.launch_args(&shape(5, 2, true, None), "x").unwrap());
            assert_eq!(args, ["-n", "5"]);
            assert!(flavour.launch_env(&shape(5, 2, true, None)).is_empty());
            let err = flavour
                .launch_args(&shape(5, 2, true, Some(Path::new("h"))), "srun")
                .unwrap_err();
            assert!(matches!(err, Error::HostfileUnsupported { .. }));
        }
    }
}
