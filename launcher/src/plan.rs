//! The launch plan: the exact MPI command line and environment of a job.
//!
//! Owns the order of the arguments (the flavour's own flags, then each
//! `--mpi-arg` verbatim, then the program and its arguments), the variables
//! set for the job, and printing all of it as shell text for `--dry-run`.
//! Which flags a flavour takes is `mpiexec::launch`'s decision; running the
//! plan is `supervisor`'s.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Error;
use crate::mpiexec::{srun, Flavour, JobShape, MpiExec};
use crate::signals::Escalation;
use crate::status::{LAUNCHER_VAR, STATUS_DIR_VAR};

/// What the launcher will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    /// The MPI launcher (absolute path).
    pub launcher: PathBuf,
    /// Its arguments, program and program arguments included.
    pub args: Vec<OsString>,
    /// Variables set for the job, on top of the launcher's own environment.
    pub env: Vec<(OsString, OsString)>,
    /// The status directory, once one exists (`None` in a dry run).
    pub status_dir: Option<PathBuf>,
    /// Why the launcher added (or did not add) its own flags, for `--dry-run`.
    pub notes: Vec<String>,
    /// How the MPI launcher is stopped for good (see `signals`).
    pub escalation: Escalation,
    /// The line to print when no rank started (srun: its PMI plugin).
    pub no_start_hint: Option<String>,
}

/// The variables every rank must see, on every node.
pub const EXPORTED_ENV: [&str; 2] = [LAUNCHER_VAR, STATUS_DIR_VAR];

impl LaunchPlan {
    /// The plan for running `program program_args...` on `job.ranks` ranks
    /// with `mpi`, passing `mpi_args` to the MPI launcher verbatim.
    pub fn new(
        mpi: &MpiExec,
        job: &JobShape<'_>,
        mpi_args: &[OsString],
        program: &OsStr,
        program_args: &[OsString],
    ) -> Result<LaunchPlan, Error> {
        let mut notes = Vec::new();
        let mut args = mpi.flavour.launch_args(job, &mpi.name(), &mut notes)?;
        // A rankview rank runs two busy threads (MPI and execution); Open MPI
        // binds each rank to one core by default, which makes them take
        // turns. Leave binding to the user when they chose one, any way.
        if mpi.flavour == Flavour::OpenMpi {
            match &job.choices.binding {
                Some(choice) => notes.push(format!("no --bind-to none added: {choice} binds")),
                None => {
                    notes.push(
                        "--bind-to none: nothing else chose a binding, and a rank runs two \
                         threads"
                            .to_string(),
                    );
                    args.push("--bind-to".into());
                    args.push("none".into());
                }
            }
        }
        args.extend(mpi_args.iter().cloned());
        args.push(program.to_os_string());
        args.extend(program_args.iter().cloned());
        let mut env: Vec<(OsString, OsString)> = vec![(LAUNCHER_VAR.into(), "1".into())];
        env.extend(
            mpi.flavour
                .launch_env(job)
                .into_iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        let no_start_hint = match mpi.flavour {
            Flavour::Slurm => srun::no_start_hint(job.choices, job.pmi),
            Flavour::OpenMpi | Flavour::Mpich | Flavour::Unknown => None,
        };
        Ok(LaunchPlan {
            launcher: mpi.path.clone(),
            args,
            env,
            status_dir: None,
            notes,
            escalation: mpi.flavour.escalation(),
            no_start_hint,
        })
    }

    /// Records the job's status directory (set as `RANKVIEW_STATUS_DIR`).
    pub fn with_status_dir(mut self, dir: &Path) -> LaunchPlan {
        self.status_dir = Some(dir.to_path_buf());
        self
    }

    /// The command to spawn: the launcher, its arguments, and the variables
    /// (without a status directory, `RANKVIEW_STATUS_DIR` is unset: the
    /// ranks then report nothing).
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.launcher);
        command.args(&self.args);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        match &self.status_dir {
            Some(dir) => command.env(STATUS_DIR_VAR, dir),
            None => command.env_remove(STATUS_DIR_VAR),
        };
        command
    }

    /// The plan as a shell script fragment: the notes as `#` comments,
    /// `export` lines, then the command line, each word quoted for a POSIX
    /// shell. Without a status directory (a dry run), `RANKVIEW_STATUS_DIR`
    /// is made with `mktemp -d`.
    pub fn shell(&self) -> ShellText<'_> {
        ShellText(self)
    }
}

/// [`LaunchPlan::shell`]'s display form.
#[derive(Debug)]
pub struct ShellText<'a>(&'a LaunchPlan);

impl fmt::Display for ShellText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = self.0;
        for note in &plan.notes {
            writeln!(f, "# {note}")?;
        }
        for (key, value) in &plan.env {
            writeln!(f, "export {}={}", key.to_string_lossy(), quote(value))?;
        }
        match &plan.status_dir {
            Some(dir) => writeln!(f, "export {STATUS_DIR_VAR}={}", quote(dir.as_os_str()))?,
            None => writeln!(f, "export {STATUS_DIR_VAR}=\"$(mktemp -d)\"")?,
        }
        write!(f, "{}", quote(plan.launcher.as_os_str()))?;
        for arg in &plan.args {
            write!(f, " {}", quote(arg))?;
        }
        Ok(())
    }
}

/// Quotes a word for a POSIX shell: unchanged when it only has safe
/// characters, otherwise in single quotes. Non-UTF-8 bytes are shown lossily.
pub fn quote(word: &OsStr) -> String {
    let text = word.to_string_lossy();
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Host;
    use crate::mpiexec::srun::Pmi;
    use crate::mpiexec::{Choices, FoundBy};

    fn openmpi() -> MpiExec {
        MpiExec {
            path: "/usr/bin/mpirun".into(),
            flavour: Flavour::OpenMpi,
            version: "mpirun (Open MPI) 4.1.4".into(),
            found_by: FoundBy::Path,
        }
    }

    const NO_CHOICES: &Choices = &Choices::NONE;

    fn job(ranks: u32, is_root: bool) -> JobShape<'static> {
        JobShape {
            ranks,
            host: Host {
                cores: 2,
                physical_cores: 2,
                is_root,
            },
            hostfile: None,
            hostfile_slots: None,
            choices: NO_CHOICES,
            exported_env: &EXPORTED_ENV,
            pmi: NO_PMI,
        }
    }

    const NO_PMI: &Pmi = &Pmi::NONE;

    #[test]
    fn orders_flags_mpi_args_program_args() {
        let plan = LaunchPlan::new(
            &openmpi(),
            &job(3, true),
            &["--mca".into(), "btl".into(), "tcp,self".into()],
            OsStr::new("./app"),
            &["--size".into(), "a b".into()],
        )
        .unwrap();
        let text = plan.shell().to_string();
        assert_eq!(
            text,
            "# --oversubscribe: 3 ranks, and Open MPI counts 2 slots here (physical cores)\n\
             # --bind-to none: nothing else chose a binding, and a rank runs two threads\n\
             export RANKVIEW_LAUNCHER=1\n\
             export OMPI_ALLOW_RUN_AS_ROOT=1\n\
             export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1\n\
             export RANKVIEW_STATUS_DIR=\"$(mktemp -d)\"\n\
             /usr/bin/mpirun -n 3 --oversubscribe -x RANKVIEW_LAUNCHER -x RANKVIEW_STATUS_DIR \
             --bind-to none --mca btl tcp,self ./app --size 'a b'"
        );
    }

    #[test]
    fn a_user_binding_replaces_bind_to_none() {
        let words = ["--map-by".to_string(), "slot:PE=2".to_string()];
        let choices = Choices::from_sources(&words, &[], &[]);
        let shape = JobShape {
            choices: &choices,
            ..job(2, false)
        };
        let plan = LaunchPlan::new(
            &openmpi(),
            &shape,
            &["--map-by".into(), "slot:PE=2".into()],
            OsStr::new("./app"),
            &[],
        )
        .unwrap();
        let text = plan.shell().to_string();
        let command = text.lines().last().unwrap();
        assert!(command.ends_with("--map-by slot:PE=2 ./app"), "{text}");
        assert!(!command.contains("--bind-to"), "{text}");
        assert!(
            text.contains("# no --bind-to none added: --map-by slot:PE=2 binds\n"),
            "{text}"
        );
    }

    #[test]
    fn status_dir_goes_into_env_and_text() {
        let plan = LaunchPlan::new(&openmpi(), &job(2, false), &[], OsStr::new("x"), &[])
            .unwrap()
            .with_status_dir(Path::new("/tmp/st"));
        assert!(plan
            .shell()
            .to_string()
            .contains("export RANKVIEW_STATUS_DIR=/tmp/st\n"));
        let command = plan.command();
        let envs: Vec<_> = command.get_envs().collect();
        assert!(envs.contains(&(
            OsStr::new("RANKVIEW_STATUS_DIR"),
            Some(OsStr::new("/tmp/st"))
        )));
        assert!(envs.contains(&(OsStr::new("RANKVIEW_LAUNCHER"), Some(OsStr::new("1")))));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote(OsStr::new("plain-word_1.2")), "plain-word_1.2");
        assert_eq!(quote(OsStr::new("")), "''");
        assert_eq!(quote(OsStr::new("it's")), r"'it'\''s'");
        assert_eq!(quote(OsStr::new("$HOME")), "'$HOME'");
    }
}
