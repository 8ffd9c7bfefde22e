//! What `srun` needs that `mpirun` does not, and why.
//!
//! Owns srun's own flags for a rankview job and the reason for each:
//!
//! - `--kill-on-bad-exit=1`: a rank that dies ends the step at once. Without
//!   it, a rank dead on a node of its own leaves the others waiting for it
//!   until the time limit (on one node, Slurm's PMIx server happens to end
//!   the step; across nodes nothing does).
//! - `--disable-status` (`rankview run` only): srun answers a first SIGINT
//!   with a status report and goes on; with it, one SIGINT (Ctrl-C, or the
//!   one `rankview` passes on) goes to the ranks.
//! - `--mpi=TYPE`: the PMI plugin the program's MPI speaks (Open MPI:
//!   `pmix`; MPICH: `pmi2`), when srun offers it. Slurm's default,
//!   `MpiDefault`, is often `none`, and every Open MPI rank then dies in
//!   `MPI_Init`.
//!
//! Each is left out when the user chose otherwise ([`Choices`]). Also owns
//! reading `srun --mpi=list` and the one line printed when no rank started.
//! Asking srun, and finding which MPI the program links, are the callers'
//! (`mpiexec`, `target`). Pure.

use std::ffi::OsString;

use crate::mpiexec::choices::Choices;
use crate::mpiexec::flavour::Flavour;

/// What srun's PMI plugin is chosen from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pmi {
    /// The MPI the ranks use, and whether that was read from the program
    /// (else it is the machine's `mpirun`'s, a guess).
    pub library: Option<Library>,
    /// The plugins `srun --mpi=list` offers (`None`: it did not answer).
    pub offered: Option<Vec<String>>,
}

impl Pmi {
    /// Nothing known (for tests' constants; `Default` is not `const`).
    #[cfg(test)]
    pub const NONE: Pmi = Pmi {
        library: None,
        offered: None,
    };
}

/// The MPI library the ranks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Library {
    /// Open MPI or MPICH.
    pub flavour: Flavour,
    /// Whether the program was seen to link it (else: the machine's MPI).
    pub linked: bool,
}

/// The PMI plugin srun should use for `pmi`, or why none is added (for the
/// notes).
pub fn plugin(pmi: &Pmi) -> Result<&'static str, String> {
    let Some(library) = pmi.library else {
        return Err(
            "no --mpi added: the program's MPI is not known, so srun uses Slurm's default PMI \
             plugin (MpiDefault)"
                .to_string(),
        );
    };
    let want = match library.flavour {
        Flavour::OpenMpi => "pmix",
        Flavour::Mpich => "pmi2",
        Flavour::Slurm | Flavour::Unknown => {
            return Err("no --mpi added: the program's MPI is not one rankview knows".to_string())
        }
    };
    match &pmi.offered {
        Some(offered)
            if !offered
                .iter()
                .any(|p| p == want || p.starts_with(&format!("{want}_"))) =>
        {
            Err(format!(
                "no --mpi added: {} needs srun's {want} plugin, and `srun --mpi=list` offers \
                 only {}: its ranks may die in MPI_Init (ask for Slurm's {want} plugin, or run \
                 with MPIEXEC=mpirun)",
                library.flavour.name(),
                offered.join(", ")
            ))
        }
        _ => Ok(want),
    }
}

/// Why `plugin` was chosen, for the notes.
fn plugin_note(plugin: &str, pmi: &Pmi) -> String {
    let (name, whose) = match pmi.library {
        Some(library) if library.linked => (library.flavour.name(), "the program links"),
        Some(library) => (
            library.flavour.name(),
            "the program names no MPI; this machine's is",
        ),
        None => ("its MPI", "the program links"),
    };
    let offered = match pmi.offered {
        Some(_) => "srun offers it",
        None => "`srun --mpi=list` did not answer",
    };
    format!(
        "--mpi={plugin}: {whose} {name}, which speaks {plugin} under srun, and {offered} \
         (Slurm's default, MpiDefault, may be none)"
    )
}

/// srun's flags for a `rankview run` job, after `-n N` (see the module
/// docs); the reason for each goes to `notes`.
pub fn run_args(choices: &Choices, pmi: &Pmi, notes: &mut Vec<String>) -> Vec<OsString> {
    let mut args = script_args(choices, pmi, notes);
    match &choices.interrupt {
        Some(choice) => notes.push(format!(
            "no --disable-status added: {choice} decides what a SIGINT does"
        )),
        None => {
            notes.push(
                "--disable-status: one SIGINT (Ctrl-C) goes to the ranks (srun otherwise wants \
                 two within a second)"
                    .to_string(),
            );
            args.push("--disable-status".into());
        }
    }
    args
}

/// srun's flags that a job script needs too: `--kill-on-bad-exit=1` and
/// `--mpi=TYPE`, unless chosen otherwise.
pub fn script_args(choices: &Choices, pmi: &Pmi, notes: &mut Vec<String>) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    match &choices.kill_on_bad_exit {
        Some(choice) => notes.push(format!(
            "no --kill-on-bad-exit=1 added: {choice} decides what a rank's death does"
        )),
        None => {
            notes.push(
                "--kill-on-bad-exit=1: a rank that dies ends the job at once (without it, the \
                 others may wait for it until the time limit)"
                    .to_string(),
            );
            args.push("--kill-on-bad-exit=1".into());
        }
    }
    match (&choices.pmi, plugin(pmi)) {
        (Some(choice), _) => notes.push(format!(
            "no --mpi added: {choice} chooses srun's PMI plugin"
        )),
        (None, Ok(plugin)) => {
            notes.push(plugin_note(plugin, pmi));
            args.push(format!("--mpi={plugin}").into());
        }
        (None, Err(why)) => notes.push(why),
    }
    args
}

/// The plugins `srun --mpi=list` names: its indented lines, and the
/// versions on its `... available: a,b` line.
pub fn offered(list: &str) -> Vec<String> {
    let mut plugins = Vec::new();
    for line in list.lines() {
        let names = if let Some((_, versions)) = line.split_once("available:") {
            versions.to_string()
        } else if line.starts_with([' ', '\t']) {
            line.to_string()
        } else {
            continue;
        };
        for name in names.split([',', ' ', '\t']).map(str::trim) {
            let name = name.strip_prefix("mpi/").unwrap_or(name);
            if !name.is_empty() && !plugins.iter().any(|p| p == name) {
                plugins.push(name.to_string());
            }
        }
    }
    plugins
}

/// The line printed when no rank of a failed job started: srun's PMI
/// plugin is the likely cause, and the fix. `None` when the program was not
/// seen to link an MPI (a script, a non-MPI program: no such guess).
pub fn no_start_hint(choices: &Choices, pmi: &Pmi) -> Option<String> {
    let library = pmi.library.filter(|l| l.linked)?;
    let name = library.flavour.name();
    let used = choices
        .pmi
        .clone()
        .or_else(|| plugin(pmi).ok().map(|p| format!("--mpi={p}")));
    Some(match used {
        Some(used) => format!(
            "no rank started: if they died in MPI_Init, srun's PMI plugin ({used}) is not one \
             {name} speaks here: `srun --mpi=list` shows the others (choose one with \
             --mpi-arg=--mpi=TYPE), or run with MPIEXEC=mpirun"
        ),
        None => format!(
            "no rank started: if they died in MPI_Init, Slurm's default PMI plugin (MpiDefault) \
             is not one {name} speaks: choose one with --mpi-arg=--mpi=TYPE (`srun --mpi=list` \
             shows them), or run with MPIEXEC=mpirun"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Debian's Slurm 22.05 prints.
    const LIST: &str = "MPI plugin types are...\n\tpmix\n\tnone\n\tcray_shasta\n\tpmi2\n\
                        specific pmix plugin versions available: pmix_v4\n";

    fn pmi(flavour: Flavour, linked: bool, offered: Option<&[&str]>) -> Pmi {
        Pmi {
            library: Some(Library { flavour, linked }),
            offered: offered.map(|o| o.iter().map(|p| p.to_string()).collect()),
        }
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn reads_the_plugin_list() {
        assert_eq!(
            offered(LIST),
            ["pmix", "none", "cray_shasta", "pmi2", "pmix_v4"]
        );
        assert!(offered("srun: error: no config\n").is_empty());
    }

    #[test]
    fn picks_the_plugin_the_mpi_speaks() {
        let list = offered(LIST);
        let list: Vec<&str> = list.iter().map(String::as_str).collect();
        assert_eq!(
            plugin(&pmi(Flavour::OpenMpi, true, Some(&list))),
            Ok("pmix")
        );
        assert_eq!(plugin(&pmi(Flavour::Mpich, true, Some(&list))), Ok("pmi2"));
        assert_eq!(
            plugin(&pmi(Flavour::OpenMpi, true, Some(&["pmix_v3"]))),
            Ok("pmix")
        );
        // srun did not answer: the plugin is added anyway.
        assert_eq!(plugin(&pmi(Flavour::OpenMpi, false, None)), Ok("pmix"));
        let why = plugin(&pmi(Flavour::OpenMpi, true, Some(&["none", "pmi2"]))).unwrap_err();
        assert!(why.contains("offers only none, pmi2"), "{why}");
        assert!(plugin(&Pmi::default()).unwrap_err().contains("not known"));
    }

    #[test]
    fn run_args_and_their_reasons() {
        let mut notes = Vec::new();
        let pmi = pmi(Flavour::OpenMpi, true, Some(&["pmix"]));
        let args = strings(run_args(&Choices::default(), &pmi, &mut notes));
        assert_eq!(
            args,
            ["--kill-on-bad-exit=1", "--mpi=pmix", "--disable-status"]
        );
        assert_eq!(notes.len(), 3, "{notes:?}");
        assert!(
            notes[1].starts_with("--mpi=pmix: the program links Open MPI"),
            "{notes:?}"
        );
        // A script gets no --disable-status: nobody types Ctrl-C at it.
        let args = strings(script_args(&Choices::default(), &pmi, &mut Vec::new()));
        assert_eq!(args, ["--kill-on-bad-exit=1", "--mpi=pmix"]);
    }

    #[test]
    fn the_users_choices_stand() {
        let words: Vec<String> = ["-K0", "--mpi=pmi2", "--quit-on-interrupt"]
            .iter()
            .map(|w| w.to_string())
            .collect();
        let choices = Choices::from_sources(&words, &[], &[]);
        let mut notes = Vec::new();
        let pmi = pmi(Flavour::OpenMpi, true, None);
        assert!(run_args(&choices, &pmi, &mut notes).is_empty());
        assert_eq!(
            notes,
            [
                "no --kill-on-bad-exit=1 added: -K0 decides what a rank's death does",
                "no --mpi added: --mpi=pmi2 chooses srun's PMI plugin",
                "no --disable-status added: --quit-on-interrupt decides what a SIGINT does",
            ]
        );
    }

    #[test]
    fn the_hint_names_the_plugin_and_the_fix() {
        let linked = pmi(Flavour::OpenMpi, true, Some(&["pmix"]));
        let hint = no_start_hint(&Choices::default(), &linked).unwrap();
        assert!(hint.contains("srun's PMI plugin (--mpi=pmix)"), "{hint}");
        let none = pmi(Flavour::OpenMpi, true, Some(&["none"]));
        let hint = no_start_hint(&Choices::default(), &none).unwrap();
        assert!(
            hint.contains("Slurm's default PMI plugin (MpiDefault)"),
            "{hint}"
        );
        assert!(hint.contains("MPIEXEC=mpirun"), "{hint}");
        // Not seen to link an MPI: no guess.
        let guessed = pmi(Flavour::OpenMpi, false, Some(&["pmix"]));
        assert_eq!(no_start_hint(&Choices::default(), &guessed), None);
    }
}
