//! A job's launch flags and environment, by flavour.
//!
//! Owns turning a job's shape (ranks, cores, hostfile, root) into the MPI
//! launcher's own flags and environment for its [`Flavour`], and the
//! warnings about a job's size before it runs. Pure: no I/O, so every rule
//! is unit tested here. Recognising the flavour is `flavour`'s; srun's own
//! flags are `srun`'s; finding the launcher is `mpiexec`'s; the full
//! command line is `plan`'s.

use std::ffi::OsString;
use std::path::Path;

use crate::error::Error;
use crate::host::Host;
use crate::mpiexec::choices::Choices;
use crate::mpiexec::flavour::Flavour;
use crate::mpiexec::srun::{self, Pmi};

/// What the launcher needs to know about a job to pick its flags.
#[derive(Debug, Clone, Copy)]
pub struct JobShape<'a> {
    /// Number of ranks.
    pub ranks: u32,
    /// This machine (cores, root).
    pub host: Host,
    /// `--hostfile`, if given.
    pub hostfile: Option<&'a Path>,
    /// The slots the hostfile gives in all (see [`hostfile_slots`]), when
    /// it can be read.
    pub hostfile_slots: Option<u32>,
    /// What the user chose through the MPI's own means.
    pub choices: &'a Choices,
    /// Environment variables every rank must see even on other nodes.
    pub exported_env: &'a [&'a str],
    /// What srun's PMI plugin is chosen from (srun only).
    pub pmi: &'a Pmi,
}

/// Above this many ranks per slot (or per core) the launcher warns: start-up
/// alone takes very long, and the job may look hung.
pub const OVERSUBSCRIPTION_WARN_FACTOR: u32 = 4;

impl Flavour {
    /// The launcher's own flags for `job`, in order, before any `--mpi-arg`.
    ///
    /// - Open MPI: `-n N`, `--oversubscribe` when N exceeds the slots Open
    ///   MPI sees on this machine (physical cores, or hardware threads with
    ///   `--use-hwthread-cpus`) and nothing else chose (no hostfile: its
    ///   slots decide; no `--oversubscribe`/`--nooversubscribe` or MCA
    ///   equivalent), `--hostfile F`, and `-x VAR` for each exported
    ///   variable (Open MPI does not forward the environment to other nodes
    ///   by itself). Each decision is explained in `notes`.
    /// - MPICH: `-n N`, `-f F` (Hydra forwards the whole environment and
    ///   oversubscribes freely).
    /// - Slurm: `-n N` and srun's own flags (`srun`'s docs); a hostfile is
    ///   an error.
    /// - Unknown launchers: `-n N`; a hostfile is an error there.
    pub fn launch_args(
        self,
        job: &JobShape<'_>,
        launcher_name: &str,
        notes: &mut Vec<String>,
    ) -> Result<Vec<OsString>, Error> {
        let mut args: Vec<OsString> = vec!["-n".into(), job.ranks.to_string().into()];
        match self {
            Flavour::OpenMpi => {
                if let Some(oversubscribe) = openmpi_oversubscribe(job, notes) {
                    args.push(oversubscribe.into());
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
                args.extend(srun::run_args(job.choices, job.pmi, notes));
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

/// The slots Open MPI sees on this machine, and what they are.
fn local_slots(job: &JobShape<'_>) -> (usize, &'static str) {
    if job.choices.hwthreads {
        (job.host.cores, "hardware threads")
    } else {
        (job.host.physical_cores, "physical cores")
    }
}

/// `--oversubscribe` when Open MPI would otherwise refuse a job on this
/// machine and nothing else decides; the reason goes to `notes`.
fn openmpi_oversubscribe(job: &JobShape<'_>, notes: &mut Vec<String>) -> Option<&'static str> {
    if let Some(choice) = &job.choices.oversubscribe {
        notes.push(format!("no --oversubscribe added: {choice} decides"));
        return None;
    }
    if job.hostfile.is_some() {
        notes.push("no --oversubscribe added: the hostfile's slots decide".to_string());
        return None;
    }
    let (slots, what) = local_slots(job);
    if usize::try_from(job.ranks).map_or(true, |ranks| ranks > slots) {
        notes.push(format!(
            "--oversubscribe: {} ranks, and Open MPI counts {slots} slots here ({what})",
            job.ranks
        ));
        return Some("--oversubscribe");
    }
    None
}

/// Warnings about the job's size, before it runs: far more ranks than
/// slots, or (Open MPI) more ranks than a hostfile's slots without a word
/// about oversubscription, which `mpirun` refuses.
pub fn size_warnings(flavour: Flavour, job: &JobShape<'_>) -> Vec<String> {
    let mut warnings = Vec::new();
    let (slots, what) = match (job.hostfile, job.hostfile_slots) {
        (Some(_), Some(slots)) => (slots as usize, "slots in the hostfile"),
        (Some(_), None) => return warnings,
        (None, _) if flavour == Flavour::Slurm => return warnings,
        (None, _) if flavour == Flavour::OpenMpi => local_slots(job),
        (None, _) => (job.host.cores, "cores"),
    };
    let ranks = job.ranks as usize;
    if flavour == Flavour::OpenMpi
        && job.hostfile.is_some()
        && ranks > slots
        && job.choices.oversubscribe.is_none()
    {
        warnings.push(format!(
            "{ranks} ranks but {slots} {what}: mpirun will refuse to start them; give the hosts \
             more slots, or allow it with --mpi-arg=--oversubscribe"
        ));
    }
    if ranks > slots.max(1) * OVERSUBSCRIPTION_WARN_FACTOR as usize {
        warnings.push(format!(
            "{ranks} ranks on {slots} {what} ({} per slot): every rank runs busy threads, so \
             start-up alone may take minutes; use fewer ranks or more nodes",
            ranks / slots.max(1)
        ));
    }
    warnings
}

/// The total of Open MPI hostfile slots, as `mpirun` counts them: a host
/// line's `slots=N`, else its `max_slots=N` (the limit is then the count);
/// a host on bare lines (the `$PBS_NODEFILE` form, one line per slot) gets
/// one slot per line when it has several. `None` when some host is on one
/// bare line only (Open MPI then counts that node's cores itself) or a
/// count is not a number.
pub fn hostfile_slots(text: &str) -> Option<u32> {
    let mut total: u32 = 0;
    // Hosts on bare lines, and how many lines each.
    let mut bare: Vec<(&str, u32)> = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(host) = line.split_whitespace().next() else {
            continue;
        };
        let field = |name: &str| line.split_whitespace().find_map(|w| w.strip_prefix(name));
        match field("slots=").or_else(|| field("max_slots=")) {
            Some(count) => total = total.saturating_add(count.parse::<u32>().ok()?),
            None => match bare.iter_mut().find(|(h, _)| *h == host) {
                Some((_, lines)) => *lines += 1,
                None => bare.push((host, 1)),
            },
        }
    }
    for (_, lines) in bare {
        if lines == 1 {
            return None;
        }
        total = total.saturating_add(lines);
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::Escalation;

    const NO_CHOICES: &Choices = &Choices::NONE;

    fn shape(ranks: u32, cores: usize, is_root: bool, hostfile: Option<&Path>) -> JobShape<'_> {
        JobShape {
            ranks,
            host: Host {
                cores,
                physical_cores: cores,
                is_root,
            },
            hostfile,
            hostfile_slots: None,
            choices: NO_CHOICES,
            exported_env: &["RANKVIEW_LAUNCHER"],
            pmi: NO_PMI,
        }
    }

    const NO_PMI: &Pmi = &Pmi::NONE;

    fn args_of(flavour: Flavour, job: &JobShape<'_>) -> Vec<String> {
        strings(flavour.launch_args(job, "mpirun", &mut Vec::new()).unwrap())
    }

    #[test]
    fn openmpi_counts_physical_cores_as_slots() {
        // 2 cores with 2 threads each: 3 ranks need --oversubscribe for
        // Open MPI, though there are 4 logical CPUs.
        let mut job = shape(3, 4, false, None);
        job.host.physical_cores = 2;
        let mut notes = Vec::new();
        let args = strings(
            Flavour::OpenMpi
                .launch_args(&job, "mpirun", &mut notes)
                .unwrap(),
        );
        assert!(args.contains(&"--oversubscribe".to_string()), "{args:?}");
        assert_eq!(
            notes,
            ["--oversubscribe: 3 ranks, and Open MPI counts 2 slots here (physical cores)"]
        );
        // With --use-hwthread-cpus, Open MPI counts the 4 threads.
        let hwthreads = Choices {
            hwthreads: true,
            ..Choices::default()
        };
        job.choices = &hwthreads;
        assert!(!args_of(Flavour::OpenMpi, &job).contains(&"--oversubscribe".to_string()));
    }

    #[test]
    fn a_hostfile_or_a_user_choice_decides_oversubscription() {
        let hosts = Path::new("hosts");
        let mut job = shape(3, 1, false, Some(hosts));
        job.hostfile_slots = Some(1);
        assert!(!args_of(Flavour::OpenMpi, &job).contains(&"--oversubscribe".to_string()));
        let warnings = size_warnings(Flavour::OpenMpi, &job);
        assert!(warnings[0].contains("mpirun will refuse"), "{warnings:?}");
        let refuse = Choices {
            oversubscribe: Some("--nooversubscribe".into()),
            ..Choices::default()
        };
        let mut job = shape(3, 1, false, None);
        job.choices = &refuse;
        assert!(!args_of(Flavour::OpenMpi, &job).contains(&"--oversubscribe".to_string()));
    }

    #[test]
    fn far_too_many_ranks_are_warned_about() {
        let job = shape(500, 2, false, None);
        let warnings = size_warnings(Flavour::OpenMpi, &job);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("500 ranks on 2 physical cores (250 per slot)"));
        assert!(size_warnings(Flavour::Mpich, &shape(8, 2, false, None)).is_empty());
        assert_eq!(
            size_warnings(Flavour::Mpich, &shape(9, 2, false, None)).len(),
            1
        );
        assert!(size_warnings(Flavour::Slurm, &shape(500, 2, false, None)).is_empty());
    }

    #[test]
    fn hostfile_slots_add_up() {
        assert_eq!(
            hostfile_slots("# cluster\nnode1 slots=4\nnode2 slots=8 max_slots=8\n\n"),
            Some(12)
        );
        // PBS's node file repeats a host once per slot: one slot a line, as
        // Open MPI counts them.
        assert_eq!(hostfile_slots("n1\nn1\nn2\nn2\nn1\n"), Some(5));
        assert_eq!(hostfile_slots("node1 slots=4\nnode2\nnode2\n"), Some(6));
        // A host on one bare line gets its cores, which only Open MPI knows.
        assert_eq!(hostfile_slots("node1 slots=4\nnode2\n"), None);
        assert_eq!(hostfile_slots("n1\nn1\nn2\n"), None);
        assert_eq!(hostfile_slots("n1 max_slots=6\n"), Some(6));
        assert_eq!(hostfile_slots("n1 slots=many\n"), None);
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn openmpi_oversubscribes_only_beyond_the_cores() {
        let args = args_of(Flavour::OpenMpi, &shape(3, 2, false, None));
        assert_eq!(
            args,
            ["-n", "3", "--oversubscribe", "-x", "RANKVIEW_LAUNCHER"]
        );
        let args = args_of(Flavour::OpenMpi, &shape(2, 2, false, None));
        assert_eq!(args, ["-n", "2", "-x", "RANKVIEW_LAUNCHER"]);
    }

    #[test]
    fn openmpi_hostfile_and_root() {
        let hosts = Path::new("hosts.txt");
        let job = shape(4, 8, true, Some(hosts));
        let args = args_of(Flavour::OpenMpi, &job);
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
        let args = args_of(Flavour::Mpich, &job);
        assert_eq!(args, ["-n", "9", "-f", "hosts"]);
        assert!(Flavour::Mpich.launch_env(&job).is_empty());
    }

    #[test]
    fn slurm_and_unknown_take_n_and_no_hostfile() {
        let args = args_of(Flavour::Unknown, &shape(5, 2, true, None));
        assert_eq!(args, ["-n", "5"]);
        let args = args_of(Flavour::Slurm, &shape(5, 2, true, None));
        assert_eq!(
            args,
            ["-n", "5", "--kill-on-bad-exit=1", "--disable-status"]
        );
        assert_eq!(Flavour::Slurm.escalation(), Escalation::TermThenKill);
        assert_eq!(Flavour::OpenMpi.escalation(), Escalation::Kill);
        for flavour in [Flavour::Slurm, Flavour::Unknown] {
            assert!(flavour.launch_env(&shape(5, 2, true, None)).is_empty());
            let err = flavour
                .launch_args(
                    &shape(5, 2, true, Some(Path::new("h"))),
                    "srun",
                    &mut Vec::new(),
                )
                .unwrap_err();
            assert!(matches!(err, Error::HostfileUnsupported { .. }));
        }
    }
}
