//! `rankview info`: what `run` would use, and what it supports.
//!
//! Owns finding out the MPI's thread support without linking MPI (Open MPI:
//! `ompi_info --parsable`; MPICH: `mpichversion` or `mpiexec -info`) and
//! printing the report. Finding the launcher itself is `mpiexec`'s job.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::allocation::Allocation;
use crate::error::Error;
use crate::executable::{self, Lookup};
use crate::host::Host;
use crate::mpiexec::{self, Flavour, FoundBy, MpiExec};
use crate::output;
use crate::probe::{self, PROBE_LIMIT};

/// The thread level rankview asks `MPI_Init_thread` for.
pub const REQUESTED_THREAD_LEVEL: &str =
    "MPI_THREAD_SERIALIZED (MPI_THREAD_FUNNELED is enough: client threads then never call MPI)";

/// Prints the report to stdout.
pub fn info() -> Result<ExitCode, Error> {
    let host = Host::detect();
    let mpi = mpiexec::discover(Allocation::detect().as_ref())?;
    let found_by = match mpi.found_by {
        FoundBy::Variable => "from $MPIEXEC",
        FoundBy::SlurmAllocation => "inside a Slurm allocation",
        FoundBy::Path => "first on PATH",
    };
    let rows = [
        ("MPI flavour", mpi.flavour.name().to_string()),
        ("MPI version", mpi.version.clone()),
        (
            "MPI launcher",
            format!("{} ({found_by})", mpi.path.display()),
        ),
        ("thread support", thread_support(&mpi)),
        ("rankview asks", REQUESTED_THREAD_LEVEL.to_string()),
        (
            "cores",
            format!(
                "{} ({} physical, Open MPI's slots; default -n: {})",
                host.cores,
                host.physical_cores,
                host.default_ranks()
            ),
        ),
    ];
    for (key, value) in rows {
        output::out(format_args!("{:<16}{value}", format!("{key}:")));
    }
    Ok(ExitCode::SUCCESS)
}

/// The MPI's thread support, as its own tools report it.
fn thread_support(mpi: &MpiExec) -> String {
    match mpi.flavour {
        Flavour::OpenMpi => companion(&mpi.path, "ompi_info")
            .and_then(|tool| probe::ask(&tool, &["--parsable"], PROBE_LIMIT).ok())
            .and_then(|answer| openmpi_threads(&answer.text))
            .map_or_else(
                || "unknown (ompi_info not found)".to_string(),
                |t| format!("{t} (ompi_info)"),
            ),
        Flavour::Mpich => {
            let mut texts = Vec::new();
            if let Some(tool) = companion(&mpi.path, "mpichversion") {
                texts.extend(probe::ask(&tool, &[], PROBE_LIMIT).ok().map(|a| a.text));
            }
            texts.extend(
                probe::ask(&mpi.path, &["-info"], PROBE_LIMIT)
                    .ok()
                    .map(|a| a.text),
            );
            texts
                .iter()
                .find_map(|text| mpich_threads(text))
                .unwrap_or_else(|| "unknown".to_string())
        }
        Flavour::Slurm => "unknown (srun runs whichever MPI the program links)".to_string(),
        Flavour::Unknown => "unknown".to_string(),
    }
}

/// A tool of the same MPI installation: next to the launcher (as given, then
/// with symlinks resolved), else on PATH.
fn companion(launcher: &Path, tool: &str) -> Option<PathBuf> {
    let beside = |path: &Path| path.parent().map(|dir| dir.join(tool));
    let candidates = [
        beside(launcher),
        std::fs::canonicalize(launcher)
            .ok()
            .and_then(|p| beside(&p)),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|path| match executable::lookup(path.as_os_str()) {
            Lookup::Found(found) => Some(found),
            _ => None,
        })
        .or_else(|| executable::first_on_path(&[tool]).map(|(_, path)| path))
}

/// From `ompi_info --parsable`: the `option:threads:` line, shortened to its
/// `MPI_THREAD_MULTIPLE: yes|no` part when present.
fn openmpi_threads(parsable: &str) -> Option<String> {
    let value = parsable
        .lines()
        .find_map(|line| line.trim().strip_prefix("option:threads:"))?
        .trim()
        .trim_matches('"');
    let short = value.find("MPI_THREAD_MULTIPLE").map(|start| {
        let rest = &value[start..];
        let end = rest.find([',', ')']).unwrap_or(rest.len());
        rest[..end].trim().to_string()
    });
    Some(short.unwrap_or_else(|| value.to_string()))
}

/// From MPICH's build details (`mpichversion`, `mpiexec -info`): the thread
/// level the library grants, from its `--enable-threads=LEVEL` configure
/// option, or MPICH's default when the option is absent (MPICH 3 and later
/// build `multiple` by default; `runtime` and `default` also grant
/// `MPI_THREAD_MULTIPLE`).
fn mpich_threads(text: &str) -> Option<String> {
    let option = text
        .split_whitespace()
        .map(|word| word.trim_matches(['\'', '"']))
        .find_map(|word| word.strip_prefix("--enable-threads="));
    let version = text.lines().find_map(|line| {
        line.trim()
            .strip_prefix("MPICH Version:")
            .or_else(|| line.trim().strip_prefix("Version:"))
            .map(str::trim)
    });
    match option {
        Some(level) => Some(format!(
            "{} (MPICH configured with --enable-threads={level})",
            mpich_level(level)
        )),
        None => {
            // Only a build report says what the configure line lacks.
            let configure = text.lines().any(|l| {
                let l = l.to_ascii_lowercase();
                l.contains("configure") && l.contains("--prefix")
            });
            let major: u32 = version?.split('.').next()?.trim().parse().ok()?;
            (configure && major >= 3).then(|| {
                "MPI_THREAD_MULTIPLE (MPICH's default: built without --enable-threads)".to_string()
            })
        }
    }
}

/// The MPI thread level an MPICH `--enable-threads=` value grants.
fn mpich_level(level: &str) -> &'static str {
    match level {
        "single" => "MPI_THREAD_SINGLE",
        "funneled" => "MPI_THREAD_FUNNELED",
        "serialized" => "MPI_THREAD_SERIALIZED",
        _ => "MPI_THREAD_MULTIPLE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_openmpi_thread_line() {
        let text = "option:ft_support:\"no\"\noption:threads:\"posix (MPI_THREAD_MULTIPLE: yes, OPAL support: yes, OMPI progress: no, ORTE progress: yes, Event lib: yes)\"\n";
        assert_eq!(
            openmpi_threads(text).as_deref(),
            Some("MPI_THREAD_MULTIPLE: yes")
        );
        assert_eq!(
            openmpi_threads("option:threads:\"posix\"").as_deref(),
            Some("posix")
        );
        assert_eq!(openmpi_threads("nothing here"), None);
    }

    #[test]
    fn reads_mpich_configure_option() {
        let text = "MPICH Version:    \t4.1\n\
                    MPICH Configure:    --prefix=/usr '--enable-threads=serialized' --with-device=ch4\n";
        assert_eq!(
            mpich_threads(text).as_deref(),
            Some("MPI_THREAD_SERIALIZED (MPICH configured with --enable-threads=serialized)")
        );
        assert_eq!(mpich_threads("HYDRA build details:"), None);
    }

    #[test]
    fn mpich_without_the_option_grants_its_default() {
        // Debian's MPICH 4.0.2 (`mpichversion`).
        let text = "MPICH Version:    \t4.0.2\n\
                    MPICH Release date:\tThu Apr  7 12:34:45 CDT 2022\n\
                    MPICH Device:    \tch4:ucx\n\
                    MPICH configure: \t--build=x86_64-linux-gnu --prefix=/usr --with-device=ch4:ucx --with-pm=hydra\n";
        assert_eq!(
            mpich_threads(text).as_deref(),
            Some("MPI_THREAD_MULTIPLE (MPICH's default: built without --enable-threads)")
        );
        // MPICH 1 and 2 defaulted otherwise: unknown rather than a guess.
        assert_eq!(
            mpich_threads("MPICH Version: 1.2.7\nMPICH configure: --prefix=/usr\n"),
            None
        );
    }
}
