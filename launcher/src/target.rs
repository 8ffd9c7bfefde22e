//! What every rank of a job runs: a PROGRAM from the command line, or a
//! Cargo example or binary.
//!
//! Owns resolving the `PROGRAM`/`--example` flags shared by `run` and
//! `batch` into something runnable: a program checked to be executable (a
//! bare name in the current directory becomes `./NAME`, as with `mpirun`),
//! or a located example (building it is `example`'s job, when the caller
//! decides to); and which MPI library it links, as far as its file says.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::cli::ProgramArgs;
use crate::error::Error;
use crate::example::{Example, Kind};
use crate::executable::{self, Lookup};
use crate::mpiexec::Flavour;

/// How much of a program's file is read to find the MPI library it links:
/// the names of the shared libraries it needs are near the start.
const LINK_NAMES_WITHIN: u64 = 8 << 20;

/// What every rank runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A program given on the command line, checked to be executable, as
    /// the MPI launcher should be given it.
    Program(OsString),
    /// A Cargo example or binary, located (built when the caller asks).
    Example(Example),
}

impl Target {
    /// Resolves PROGRAM or `--example` (clap guarantees one is given).
    pub fn resolve(args: &ProgramArgs) -> Result<Target, Error> {
        let cargo = match (&args.example, &args.bin) {
            (Some(name), _) => Some((name, Kind::Example)),
            (None, Some(name)) => Some((name, Kind::Bin)),
            (None, None) => None,
        };
        let Some((name, kind)) = cargo else {
            if args.release || args.package.is_some() {
                return Err(Error::Usage(
                    "--release and --package apply to --example or --bin (a PROGRAM is run as it is)"
                        .to_string(),
                ));
            }
            return Self::resolve_program(args);
        };
        Example::locate(name, kind, args.package.as_deref(), args.release).map(Target::Example)
    }

    /// Resolves PROGRAM.
    fn resolve_program(args: &ProgramArgs) -> Result<Target, Error> {
        let (Some(program), _) = args.program_and_args() else {
            return Err(Error::Usage(
                "give a PROGRAM to run, --example NAME or --bin NAME".to_string(),
            ));
        };
        match executable::lookup(program) {
            Lookup::Found(_) => Ok(Target::Program(program.clone())),
            Lookup::NotExecutable(path) => Err(Error::ProgramNotExecutable(path)),
            // As mpirun does: a bare name not on PATH may be in the current
            // directory. It is passed on as `./NAME`, which every MPI launcher
            // (and srun) runs.
            Lookup::NotFound => match executable::in_current_dir(program) {
                Some(Lookup::Found(path)) => Ok(Target::Program(path.into_os_string())),
                Some(Lookup::NotExecutable(path)) => Err(Error::ProgramNotExecutable(path)),
                _ => Err(Error::ProgramNotFound(program.clone())),
            },
        }
    }

    /// Builds the example (a program needs nothing), with cargo's messages
    /// above any spinner of `progress`.
    pub fn build(&self, progress: &mut crate::progress::Progress) -> Result<(), Error> {
        match self {
            Target::Program(_) => Ok(()),
            Target::Example(example) => example.build(progress),
        }
    }

    /// The program as the MPI launcher is given it.
    pub fn program(&self) -> OsString {
        match self {
            Target::Program(program) => program.clone(),
            Target::Example(example) => example.binary.clone().into_os_string(),
        }
    }

    /// The program as an absolute path, for a job script that runs later,
    /// from another directory and on other nodes: the file a lookup found
    /// (`hostname` becomes `/usr/bin/hostname`), made absolute.
    pub fn absolute_program(&self) -> PathBuf {
        let program = self.program();
        let found = match executable::lookup(&program) {
            Lookup::Found(path) => path,
            _ => PathBuf::from(program),
        };
        executable::absolute(&found)
    }

    /// The MPI library the program links, from the names of the shared
    /// libraries in its file (Open MPI's `libmpi.so.40`, MPICH's
    /// `libmpich.so`); `None` for a script, a program without MPI, one that
    /// cannot be read, or an example not built yet.
    pub fn linked_mpi(&self) -> Option<Flavour> {
        use std::io::Read as _;
        let file = std::fs::File::open(self.absolute_program()).ok()?;
        let mut head = Vec::new();
        file.take(LINK_NAMES_WITHIN).read_to_end(&mut head).ok()?;
        mpi_of_link_names(&head)
    }

    /// A short name for the job: the example's name or the program's file
    /// name.
    pub fn name(&self) -> String {
        match self {
            Target::Example(example) => example.name.clone(),
            Target::Program(program) => PathBuf::from(program).file_name().map_or_else(
                || "rankview".to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
        }
    }
}

/// The MPI whose library `bytes` (the start of an executable) names:
/// `libmpich.so` is MPICH's (and MPICH-ABI MPIs'); `libmpi.so.40`/`.20`
/// (or Open MPI's own `libopen-pal`) is Open MPI's; `libmpi.so.12` is the
/// MPICH ABI's (Intel MPI, MVAPICH).
fn mpi_of_link_names(bytes: &[u8]) -> Option<Flavour> {
    let has = |name: &str| bytes.windows(name.len()).any(|w| w == name.as_bytes());
    if !has("libmpi") {
        None
    } else if has("libmpich.so") || has("libmpi.so.12") {
        Some(Flavour::Mpich)
    } else if has("libmpi.so.40") || has("libmpi.so.20") || has("libopen-pal") {
        Some(Flavour::OpenMpi)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_linked_mpi_is_read_from_library_names() {
        let elf = |names: &str| format!("\x7fELF....{names}\0more").into_bytes();
        assert_eq!(
            mpi_of_link_names(&elf("libc.so.6\0libmpi.so.40\0")),
            Some(Flavour::OpenMpi)
        );
        assert_eq!(
            mpi_of_link_names(&elf("libmpich.so.12\0")),
            Some(Flavour::Mpich)
        );
        assert_eq!(mpi_of_link_names(&elf("libc.so.6\0")), None);
        assert_eq!(mpi_of_link_names(b"#!/bin/sh\nexec mpirun"), None);
    }
}
