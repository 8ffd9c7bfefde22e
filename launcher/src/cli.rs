//! The command line: subcommands, flags, and how their values are checked.
//!
//! Owns the clap definitions and the parsers for `-n` and `--timeout`, so a
//! bad value is a usage error before anything runs. It also turns clap's own
//! errors into the launcher's short usage error. What the flags *do* is left
//! to `run` (and, for MPI's own flags, to `mpiexec::flavour`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::error::Error;

/// The fewest ranks a rankview job can have: one controller, one engine.
pub const MIN_RANKS: u32 = 2;

/// `rankview`: run rankview programs as MPI jobs.
#[derive(Debug, Parser)]
#[command(
    name = "rankview",
    version,
    about = "Run rankview programs as MPI jobs: rank 0 is the controller, the other ranks are engines.",
    propagate_version = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run PROGRAM (or a Cargo example) on N ranks with mpirun, mpiexec or srun.
    ///
    /// Signals: SIGINT, SIGTERM, SIGHUP and SIGQUIT stop the job (passed on
    /// to the MPI launcher once; a second one kills it).
    ///
    /// Exit status: 128+S after stop signal S (130 for Ctrl-C, 143 for
    /// SIGTERM), 124 on --timeout, else the job's own (128+S when the MPI
    /// launcher was killed by signal S), 1 when a rank reported a failure but
    /// the job exited 0, 126/127 when PROGRAM is not executable/not found, 2
    /// for usage errors.
    ///
    /// Environment: $MPIEXEC picks the MPI launcher (else srun inside Slurm,
    /// else mpirun, else mpiexec). The job gets RANKVIEW_LAUNCHER=1 and
    /// RANKVIEW_STATUS_DIR (a fresh directory where ranks report how they
    /// ended), and, as root under Open MPI, OMPI_ALLOW_RUN_AS_ROOT=1 and
    /// OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1.
    Run(RunArgs),
    /// Show the MPI that `run` would use: flavour, version, path, thread support, cores.
    Info,
}

/// The flags of `rankview run`.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("target")
        .required(true)
        .args(["program", "example"])
))]
pub struct RunArgs {
    /// Number of ranks, controller included (at least 2) [default: number of cores + 1]
    #[arg(short = 'n', long = "ranks", value_name = "N", value_parser = parse_ranks)]
    pub ranks: Option<u32>,

    /// Build this example of the current Cargo workspace (`cargo build --example NAME`) and run it
    #[arg(long, value_name = "NAME", conflicts_with = "program")]
    pub example: Option<String>,

    /// Build the example in release mode (only with --example)
    #[arg(long)]
    pub release: bool,

    /// Hosts to run on (OpenMPI: --hostfile FILE; MPICH: -f FILE)
    #[arg(long, value_name = "FILE")]
    pub hostfile: Option<PathBuf>,

    /// Pass ARG to the MPI launcher verbatim, before the program (repeatable)
    #[arg(
        long = "mpi-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        action = clap::ArgAction::Append
    )]
    pub mpi_args: Vec<OsString>,

    /// Stop the job after SECS seconds (SIGTERM, then SIGKILL 5 s later); exit status 124
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub timeout: Option<Timeout>,

    /// Print the MPI command line and the environment it would get, and run nothing
    #[arg(long)]
    pub dry_run: bool,

    /// The program every rank runs (a path, or a name looked up in PATH)
    #[arg(value_name = "PROGRAM")]
    pub program: Option<OsString>,

    /// Arguments for the program (after `--`)
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<OsString>,
}

/// A `--timeout` value: the duration, and the text the user wrote (which the
/// exit summary repeats).
#[derive(Debug, Clone, PartialEq)]
pub struct Timeout {
    /// How long the job may run.
    pub duration: Duration,
    /// The value as given, e.g. `"1"` or `"0.5"`.
    pub text: String,
}

/// Parses `-n N`: a whole number, at least [`MIN_RANKS`].
fn parse_ranks(value: &str) -> Result<u32, String> {
    let ranks: u32 = value
        .trim()
        .parse()
        .map_err(|_| format!("expected a whole number of ranks (at least {MIN_RANKS})"))?;
    if ranks < MIN_RANKS {
        return Err(format!(
            "rankview needs at least {MIN_RANKS} ranks: rank 0 is the controller, the others are engines"
        ));
    }
    Ok(ranks)
}

/// Parses `--timeout SECS`: a positive number of seconds, fractions allowed.
fn parse_timeout(value: &str) -> Result<Timeout, String> {
    let text = value.trim();
    let secs: f64 = text
        .parse()
        .map_err(|_| "expected a number of seconds, e.g. 30 or 2.5".to_string())?;
    if secs.is_nan() || secs <= 0.0 {
        return Err("the timeout must be more than 0 seconds".to_string());
    }
    let duration = Duration::try_from_secs_f64(secs)
        .map_err(|_| "the timeout is too large to be a duration".to_string())?;
    Ok(Timeout {
        duration,
        text: text.to_string(),
    })
}

/// Handles a clap "error": `--help` and `--version` are printed and succeed;
/// a missing subcommand prints the help and fails; anything else becomes a
/// short [`Error::Usage`] (clap's first paragraph and its tips, without the
/// "For more information" trailer).
pub fn help_or_usage_error(err: clap::Error) -> Result<ExitCode, Error> {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // Printing help can only fail if stdout is closed; nothing to add then.
            let _ = err.print();
            Ok(ExitCode::SUCCESS)
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            Ok(ExitCode::from(Error::USAGE_EXIT_CODE))
        }
        kind => {
            let mut message = compact_clap_message(&err.render().to_string());
            if kind == ErrorKind::UnknownArgument && is_stray_program_argument(&err) {
                let tip = "  tip: arguments for the program go after `--`, \
                           e.g. rankview run -n 4 ./app -- input.txt";
                message = insert_before_usage(&message, tip);
            }
            Err(Error::Usage(message))
        }
    }
}

/// Whether clap rejected a plain word (not a flag): most likely an argument
/// meant for the program, written without `--`.
fn is_stray_program_argument(err: &clap::Error) -> bool {
    match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => !arg.starts_with('-'),
        _ => false,
    }
}

/// Inserts `line` before clap's `Usage:` line (or at the end).
fn insert_before_usage(message: &str, line: &str) -> String {
    match message.find("\nUsage:") {
        Some(at) => format!("{}\n{line}{}", &message[..at], &message[at..]),
        None => format!("{message}\n{line}"),
    }
}

/// Shortens clap's rendered error: drops the `error: ` prefix (we print our
/// own), blank lines and the "For more information" line, and joins the rest.
fn compact_clap_message(rendered: &str) -> String {
    let lines: Vec<&str> = rendered
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.trim().is_empty())
        .filter(|line| !line.starts_with("For more information"))
        .collect();
    let mut text = lines.join("\n");
    if let Some(rest) = text.strip_prefix("error: ") {
        text = rest.to_string();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_must_be_at_least_two() {
        assert_eq!(parse_ranks("2"), Ok(2));
        assert_eq!(parse_ranks("64"), Ok(64));
        let err = parse_ranks("1").unwrap_err();
        assert!(err.contains("at least 2 ranks"), "{err}");
        assert!(parse_ranks("0").is_err());
        assert!(parse_ranks("abc").is_err());
        assert!(parse_ranks("-3").is_err());
    }

    #[test]
    fn timeout_is_positive_seconds() {
        let t = parse_timeout("1.5").unwrap();
        assert_eq!(t.duration, Duration::from_millis(1500));
        assert_eq!(t.text, "1.5");
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("NaN").is_err());
        assert!(parse_timeout("soon").is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn program_and_example_exclude_each_other() {
        assert!(
            Cli::try_parse_from(["rankview", "run", "-n", "2", "./a", "--example", "x"]).is_err()
        );
        assert!(Cli::try_parse_from(["rankview", "run", "-n", "2"]).is_err());
    }

    #[test]
    fn trailing_args_and_mpi_args() {
        let cli = Cli::try_parse_from([
            "rankview",
            "run",
            "-n",
            "3",
            "--mpi-arg",
            "--mca",
            "--mpi-arg=btl",
            "./app",
            "--",
            "-x",
            "y",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(args.ranks, Some(3));
        assert_eq!(args.mpi_args, ["--mca", "btl"]);
        assert_eq!(args.program.as_deref(), Some("./app".as_ref()));
        assert_eq!(args.args, ["-x", "y"]);
    }

    #[test]
    fn example_takes_args_after_dashes() {
        let cli =
            Cli::try_parse_from(["rankview", "run", "--example", "quickstart", "--", "a"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(args.example.as_deref(), Some("quickstart"));
        assert_eq!(args.program, None);
        assert_eq!(args.args, ["a"]);
    }

    #[test]
    fn compact_message_drops_the_trailer() {
        let rendered = "error: unexpected argument '--frob' found\n\n  tip: to pass '--frob' as a value, use '-- --frob'\n\nUsage: rankview run [OPTIONS] <PROGRAM|--example <NAME>> [-- <ARGS>...]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            compact_clap_message(rendered),
            "unexpected argument '--frob' found\n  tip: to pass '--frob' as a value, use '-- --frob'\nUsage: rankview run [OPTIONS] <PROGRAM|--example <NAME>> [-- <ARGS>...]"
        );
    }
}
