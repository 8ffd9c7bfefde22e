//! The MPI launcher's own flags, typed before the program as an `mpirun`
//! user types them: `rankview run -np 4 --bind-to core -x OMP_NUM_THREADS
//! ./app`.
//!
//! Owns recognising those flags on the command line (before clap sees it:
//! several are single-dash long options, `-np`, `-x`, `-genv`, that clap
//! would take apart) and saying each one in the words of the MPI launcher in
//! use: Open MPI's `mpirun`, MPICH's Hydra `mpiexec` or Slurm's `srun`, with
//! a `--dry-run` note where the words differ. A flag with no equivalent in
//! the launcher in use is a usage error that points at `--mpi-args`. What
//! the words then do is the MPI launcher's business; which of them choose a
//! binding or oversubscription is `mpiexec::choices`'.

use std::ffi::{OsStr, OsString};

use crate::error::Error;
use crate::mpiexec::Flavour;

/// One MPI launcher flag and its values, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MpiFlag {
    /// `--oversubscribe`: more ranks than slots is fine.
    Oversubscribe,
    /// `--nooversubscribe`.
    NoOversubscribe,
    /// `--bind-to X`.
    BindTo(String),
    /// `--map-by X`.
    MapBy(String),
    /// `--rank-by X` (Open MPI).
    RankBy(String),
    /// `-x NAME[=VALUE]`, `-genv NAME VALUE`, `-genvlist NAME,...`: a
    /// variable every rank gets (its value here when none is given).
    Env(String, Option<String>),
    /// `--host a,b` (`-H`, `-hosts`).
    Hosts(String),
    /// `-N K` (`--npernode`, `-ppn`): ranks per node.
    PerNode(String),
    /// `--mca KEY VALUE` (Open MPI).
    Mca(String, String),
    /// `--wdir DIR` (`-wd`, `-wdir`): where the ranks start.
    Wdir(String),
    /// An Open MPI flag without a value (`--report-bindings`, ...).
    OpenMpiOnly(&'static str),
}

/// The flag's name as the user typed it (for messages).
impl MpiFlag {
    fn shown(&self) -> String {
        match self {
            MpiFlag::Oversubscribe => "--oversubscribe".into(),
            MpiFlag::NoOversubscribe => "--nooversubscribe".into(),
            MpiFlag::BindTo(x) => format!("--bind-to {x}"),
            MpiFlag::MapBy(x) => format!("--map-by {x}"),
            MpiFlag::RankBy(x) => format!("--rank-by {x}"),
            MpiFlag::Env(n, None) => format!("-x {n}"),
            MpiFlag::Env(n, Some(v)) => format!("-x {n}={v}"),
            MpiFlag::Hosts(h) => format!("--host {h}"),
            MpiFlag::PerNode(k) => format!("-N {k}"),
            MpiFlag::Mca(k, v) => format!("--mca {k} {v}"),
            MpiFlag::Wdir(d) => format!("--wdir {d}"),
            MpiFlag::OpenMpiOnly(f) => (*f).to_string(),
        }
    }
}

/// Flags of Open MPI that take no value and mean nothing elsewhere.
const OPEN_MPI_SWITCHES: &[&str] = &[
    "--report-bindings",
    "--display-map",
    "--display-allocation",
    "--tag-output",
    "--timestamp-output",
    "--use-hwthread-cpus",
];

/// What a token starting a flag is, when it is an MPI launcher's.
enum Known {
    /// Becomes rankview's own flag (`-np N` is `-n N`).
    Rankview(&'static str),
    /// An MPI flag with this many values.
    Mpi(usize),
}

fn known(flag: &str) -> Option<Known> {
    Some(match flag {
        "-np" | "--np" => Known::Rankview("-n"),
        "-machinefile" | "--machinefile" | "-hostfile" => Known::Rankview("--hostfile"),
        "--oversubscribe" | "-oversubscribe" | "--nooversubscribe" | "-nooversubscribe" => {
            Known::Mpi(0)
        }
        "--bind-to" | "-bind-to" | "--map-by" | "-map-by" | "--rank-by" | "-rank-by" | "-x"
        | "-genvlist" | "--host" | "-host" | "-H" | "-hosts" | "-N" | "--npernode"
        | "-npernode" | "-ppn" | "--ppn" | "--wdir" | "-wdir" | "-wd" => Known::Mpi(1),
        "-genv" | "-env" | "--mca" | "-mca" => Known::Mpi(2),
        f if OPEN_MPI_SWITCHES.contains(&f) => Known::Mpi(0),
        _ => return None,
    })
}

/// Builds the flag from its name and values.
fn flag(name: &str, values: &[String]) -> Result<Vec<MpiFlag>, Error> {
    let one = || values.first().cloned().unwrap_or_default();
    Ok(match name {
        "--oversubscribe" | "-oversubscribe" => vec![MpiFlag::Oversubscribe],
        "--nooversubscribe" | "-nooversubscribe" => vec![MpiFlag::NoOversubscribe],
        "--bind-to" | "-bind-to" => vec![MpiFlag::BindTo(one())],
        "--map-by" | "-map-by" => vec![MpiFlag::MapBy(one())],
        "--rank-by" | "-rank-by" => vec![MpiFlag::RankBy(one())],
        "-x" => {
            let text = one();
            match text.split_once('=') {
                Some((n, v)) => vec![MpiFlag::Env(n.into(), Some(v.into()))],
                None => vec![MpiFlag::Env(text, None)],
            }
        }
        "-genvlist" => one()
            .split(',')
            .filter(|n| !n.is_empty())
            .map(|n| MpiFlag::Env(n.into(), None))
            .collect(),
        "-genv" | "-env" => vec![MpiFlag::Env(
            one(),
            Some(values.get(1).cloned().unwrap_or_default()),
        )],
        "--host" | "-host" | "-H" | "-hosts" => vec![MpiFlag::Hosts(one())],
        "-N" | "--npernode" | "-npernode" | "-ppn" | "--ppn" => vec![MpiFlag::PerNode(one())],
        "--mca" | "-mca" => vec![MpiFlag::Mca(
            one(),
            values.get(1).cloned().unwrap_or_default(),
        )],
        "--wdir" | "-wdir" | "-wd" => vec![MpiFlag::Wdir(one())],
        other => match OPEN_MPI_SWITCHES.iter().find(|s| **s == other) {
            Some(switch) => vec![MpiFlag::OpenMpiOnly(switch)],
            None => {
                return Err(Error::Usage(format!(
                    "{other} is not an MPI flag rankview knows"
                )))
            }
        },
    })
}

/// Takes the MPI launcher's flags out of a `rankview run` command line
/// (those before the program), rewriting `-np N` as `-n N`; `takes_value`
/// says which of rankview's own flags take a value. Other command lines
/// come back as they are.
pub fn extract(
    argv: Vec<OsString>,
    takes_value: impl Fn(&str) -> Option<bool>,
) -> Result<(Vec<OsString>, Vec<MpiFlag>), Error> {
    let Some(at) = argv
        .iter()
        .skip(1)
        .position(|a| !a.to_string_lossy().starts_with('-'))
    else {
        return Ok((argv, Vec::new()));
    };
    let sub = at + 1;
    if argv[sub] != OsStr::new("run") {
        return Ok((argv, Vec::new()));
    }
    let mut out: Vec<OsString> = argv[..=sub].to_vec();
    let mut flags = Vec::new();
    let mut rest = argv.into_iter().skip(sub + 1);
    while let Some(token) = rest.next() {
        let text = token.to_string_lossy().into_owned();
        if text == "--" || !text.starts_with('-') || text == "-" {
            out.push(token);
            break;
        }
        let name = text.split_once('=').map_or(text.as_str(), |(n, _)| n);
        if let Some(value_follows) = takes_value(name) {
            out.push(token);
            if value_follows && !text.contains('=') {
                out.extend(rest.next());
            }
            continue;
        }
        match known(&text) {
            Some(Known::Rankview(own)) => {
                out.push(own.into());
                out.extend(rest.next());
            }
            Some(Known::Mpi(count)) => {
                let values: Vec<String> = rest
                    .by_ref()
                    .take(count)
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect();
                if values.len() < count {
                    return Err(Error::Usage(format!(
                        "{text} needs {count} value{} after it",
                        if count == 1 { "" } else { "s" }
                    )));
                }
                flags.extend(flag(&text, &values)?);
            }
            // Not ours, not an MPI flag we know: clap says so (see
            // `cli::help_or_usage_error`).
            None => out.push(token),
        }
    }
    out.extend(rest);
    Ok((out, flags))
}

/// The flags in the words of `flavour`'s launcher, and a note for each one
/// said differently from how it was typed.
pub fn words(flags: &[MpiFlag], flavour: Flavour) -> Result<(Vec<OsString>, Vec<String>), Error> {
    let mut words: Vec<String> = Vec::new();
    let mut notes = Vec::new();
    let mut srun_exports: Vec<String> = Vec::new();
    for flag in flags {
        let said = say(flag, flavour, &mut srun_exports).ok_or_else(|| {
            Error::Usage(format!(
                "{} has no equivalent for {}: say what it should be with --mpi-args \"...\"",
                flag.shown(),
                flavour_name(flavour)
            ))
        })?;
        let joined = said.join(" ");
        if joined != flag.shown() {
            notes.push(format!(
                "{}: {} for {}",
                flag.shown(),
                if said.is_empty() {
                    "nothing to pass".to_string()
                } else {
                    joined
                },
                flavour_name(flavour)
            ));
        }
        words.extend(said);
    }
    if !srun_exports.is_empty() {
        let export = format!("--export=ALL,{}", srun_exports.join(","));
        notes.push(format!("the -x variables: {export} for srun"));
        words.push(export);
    }
    Ok((words.into_iter().map(OsString::from).collect(), notes))
}

fn flavour_name(flavour: Flavour) -> &'static str {
    match flavour {
        Flavour::OpenMpi => "Open MPI's mpirun",
        Flavour::Mpich => "MPICH's mpiexec",
        Flavour::Slurm => "srun",
        Flavour::Unknown => "this MPI launcher",
    }
}

/// One flag in `flavour`'s words (`None`: it has none); srun's variables
/// gather in `exports` (one `--export` for all).
fn say(flag: &MpiFlag, flavour: Flavour, exports: &mut Vec<String>) -> Option<Vec<String>> {
    let w = |words: &[&str]| Some(words.iter().map(|s| s.to_string()).collect());
    // A variable given without a value passes this process's value on.
    let env_value = |n: &str, v: &Option<String>| {
        v.clone()
            .or_else(|| std::env::var(n).ok())
            .map(|v| format!("{n}={v}"))
            .unwrap_or_else(|| n.to_string())
    };
    match (flavour, flag) {
        (Flavour::OpenMpi, MpiFlag::Oversubscribe) => w(&["--oversubscribe"]),
        (Flavour::OpenMpi, MpiFlag::NoOversubscribe) => w(&["--nooversubscribe"]),
        (Flavour::OpenMpi, MpiFlag::BindTo(x)) => w(&["--bind-to", x]),
        (Flavour::OpenMpi, MpiFlag::MapBy(x)) => w(&["--map-by", x]),
        (Flavour::OpenMpi, MpiFlag::RankBy(x)) => w(&["--rank-by", x]),
        (Flavour::OpenMpi, MpiFlag::Env(n, None)) => w(&["-x", n]),
        (Flavour::OpenMpi, MpiFlag::Env(n, Some(v))) => w(&["-x", &format!("{n}={v}")]),
        (Flavour::OpenMpi, MpiFlag::Hosts(h)) => w(&["--host", h]),
        (Flavour::OpenMpi, MpiFlag::PerNode(k)) => w(&["--npernode", k]),
        (Flavour::OpenMpi, MpiFlag::Mca(k, v)) => w(&["--mca", k, v]),
        (Flavour::OpenMpi, MpiFlag::Wdir(d)) => w(&["--wdir", d]),
        (Flavour::OpenMpi, MpiFlag::OpenMpiOnly(f)) => w(&[f]),
        // Hydra places any number of ranks on a node.
        (Flavour::Mpich, MpiFlag::Oversubscribe | MpiFlag::NoOversubscribe) => w(&[]),
        (Flavour::Mpich, MpiFlag::BindTo(x)) => w(&["-bind-to", x]),
        (Flavour::Mpich, MpiFlag::MapBy(x)) => w(&["-map-by", x]),
        (Flavour::Mpich, MpiFlag::Env(n, None)) => w(&["-genvlist", n]),
        (Flavour::Mpich, MpiFlag::Env(n, Some(v))) => w(&["-genv", n, v]),
        (Flavour::Mpich, MpiFlag::Hosts(h)) => w(&["-hosts", h]),
        (Flavour::Mpich, MpiFlag::PerNode(k)) => w(&["-ppn", k]),
        (Flavour::Mpich, MpiFlag::Wdir(d)) => w(&["-wdir", d]),
        (Flavour::Slurm, MpiFlag::Oversubscribe) => w(&["--overcommit"]),
        (Flavour::Slurm, MpiFlag::NoOversubscribe) => w(&[]),
        (Flavour::Slurm, MpiFlag::BindTo(x)) => {
            let bind = match x.split(':').next().unwrap_or_default() {
                "none" => "none",
                "core" => "cores",
                "socket" => "sockets",
                "hwthread" => "threads",
                "l3cache" | "numa" => "ldoms",
                _ => return None,
            };
            w(&[&format!("--cpu-bind={bind}")])
        }
        (Flavour::Slurm, MpiFlag::Env(n, v)) => {
            exports.push(env_value(n, v));
            w(&[])
        }
        (Flavour::Slurm, MpiFlag::Hosts(h)) => w(&["--nodelist", h]),
        (Flavour::Slurm, MpiFlag::PerNode(k)) => w(&["--ntasks-per-node", k]),
        (Flavour::Slurm, MpiFlag::Wdir(d)) => w(&["--chdir", d]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    /// rankview's own flags with a value, as clap says (a few for tests).
    fn ours(flag: &str) -> Option<bool> {
        match flag {
            "-n" | "--ranks" | "--hostfile" | "--timeout" | "--example" | "--mpi-args" => {
                Some(true)
            }
            "--dry-run" | "--release" => Some(false),
            _ => None,
        }
    }

    #[test]
    fn mpirun_flags_before_the_program_are_taken_out() {
        let argv = os(&[
            "rankview",
            "run",
            "-np",
            "3",
            "--oversubscribe",
            "--bind-to",
            "core",
            "-x",
            "FOO=1",
            "--host",
            "a,b",
            "-N",
            "2",
            "--map-by",
            "node",
            "--dry-run",
            "./app",
            "-x",
            "y",
        ]);
        let (rest, flags) = extract(argv, ours).unwrap();
        assert_eq!(
            rest,
            os(&[
                "rankview",
                "run",
                "-n",
                "3",
                "--dry-run",
                "./app",
                "-x",
                "y"
            ]),
            "the program's own -x stays its own"
        );
        assert_eq!(
            flags,
            vec![
                MpiFlag::Oversubscribe,
                MpiFlag::BindTo("core".into()),
                MpiFlag::Env("FOO".into(), Some("1".into())),
                MpiFlag::Hosts("a,b".into()),
                MpiFlag::PerNode("2".into()),
                MpiFlag::MapBy("node".into()),
            ]
        );
    }

    #[test]
    fn values_of_our_flags_are_not_read_as_flags() {
        let argv = os(&["rankview", "run", "--mpi-args", "-x A", "-n", "2", "app"]);
        let (rest, flags) = extract(argv.clone(), ours).unwrap();
        assert_eq!(rest, argv);
        assert!(flags.is_empty());
        // Other subcommands are left alone.
        let batch = os(&["rankview", "batch", "slurm", "-N", "2", "app"]);
        assert_eq!(extract(batch.clone(), ours).unwrap().0, batch);
    }

    #[test]
    fn a_flag_without_its_value_is_a_usage_error() {
        let err = extract(os(&["rankview", "run", "--bind-to"]), ours).unwrap_err();
        assert!(err.to_string().contains("--bind-to needs 1 value"), "{err}");
    }

    #[test]
    fn each_launcher_gets_its_own_words() {
        let flags = vec![
            MpiFlag::BindTo("core".into()),
            MpiFlag::Env("FOO".into(), Some("1".into())),
            MpiFlag::Hosts("a,b".into()),
            MpiFlag::PerNode("2".into()),
        ];
        let strings = |f| {
            let (words, _) = words(&flags, f).unwrap();
            words
                .iter()
                .map(|w| w.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            strings(Flavour::OpenMpi),
            "--bind-to core -x FOO=1 --host a,b --npernode 2"
        );
        assert_eq!(
            strings(Flavour::Mpich),
            "-bind-to core -genv FOO 1 -hosts a,b -ppn 2"
        );
        assert_eq!(
            strings(Flavour::Slurm),
            "--cpu-bind=cores --nodelist a,b --ntasks-per-node 2 --export=ALL,FOO=1"
        );
        let (_, notes) = words(&flags, Flavour::Mpich).unwrap();
        assert!(
            notes.contains(&"-x FOO=1: -genv FOO 1 for MPICH's mpiexec".to_string()),
            "{notes:?}"
        );
    }

    #[test]
    fn a_flag_a_launcher_lacks_points_at_mpi_args() {
        let err = words(&[MpiFlag::Mca("btl".into(), "tcp".into())], Flavour::Mpich).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("--mca btl tcp has no equivalent for MPICH's mpiexec"),
            "{text}"
        );
        assert!(text.contains("--mpi-args"), "{text}");
    }
}
