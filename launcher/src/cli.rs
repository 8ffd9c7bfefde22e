//! The command line: subcommands, flags, and how their values are checked.
//!
//! Owns the clap definitions and the parsers for `-n` and `--timeout`, so a
//! bad value is a usage error before anything runs. It also turns clap's own
//! errors into the launcher's short usage error. What the flags *do* is left
//! to `run` (and, for MPI's own flags, to `mpiexec::launch`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::batch::scheduler::Scheduler;
use crate::batch::walltime::Walltime;
use crate::error::Error;
use crate::mpi_flags::MpiFlag;
use crate::mpiexec::Flavour;
use crate::ranks::MIN_RANKS;

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
    /// Run PROGRAM (or a Cargo example or binary) on N ranks with mpirun, mpiexec or srun.
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
    /// else mpirun, else mpiexec). Inside a Slurm allocation -n defaults to
    /// SLURM_NTASKS (else nodes × tasks per node, else its CPUs), and srun
    /// gets --kill-on-bad-exit=1, --disable-status and the MPI's --mpi
    /// plugin unless chosen otherwise; inside a PBS job -n defaults to the
    /// lines of $PBS_NODEFILE, which is also the hostfile. The job gets RANKVIEW_LAUNCHER=1 and
    /// RANKVIEW_STATUS_DIR (a fresh directory where ranks report how they
    /// ended), and, as root under Open MPI, OMPI_ALLOW_RUN_AS_ROOT=1 and
    /// OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1.
    Run(RunArgs),
    /// Show the MPI that `run` would use: flavour, version, path, thread support, cores.
    Info,
    /// Write a Slurm or PBS job script that runs PROGRAM (or a Cargo example or binary) on N ranks.
    ///
    /// The script is printed (or written to -o FILE) with the scheduler's
    /// header, OMP_NUM_THREADS and CPU binding for rankview's two threads per
    /// rank, and the launch line: srun under Slurm; under PBS the MPI launcher
    /// `run` would use, given $PBS_NODEFILE. An --example or --bin is built first and
    /// run from its absolute path: the compute nodes need no cargo. --submit
    /// hands the script to sbatch/qsub and prints the job id.
    #[command(
        override_usage = "rankview batch <slurm|pbs> [OPTIONS] <PROGRAM [ARGS]...|--example <NAME>|--bin <NAME> [-- ARGS...]>"
    )]
    Batch(BatchArgs),
}

/// The flags of `rankview run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Number of ranks, controller included (at least 2) [default: the allocation's size inside Slurm (SLURM_NTASKS, else nodes × tasks per node, else CPUs) or PBS (lines of PBS_NODEFILE), else number of cores + 1]
    #[arg(short = 'n', long = "ranks", value_name = "N", value_parser = parse_ranks)]
    pub ranks: Option<u32>,

    /// Hosts to run on (OpenMPI: --hostfile FILE; MPICH: -f FILE) [default inside PBS: $PBS_NODEFILE]
    #[arg(long, value_name = "FILE")]
    pub hostfile: Option<PathBuf>,

    /// Stop the job after SECS seconds (SIGTERM, then SIGKILL 5 s later); exit status 124
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub timeout: Option<Timeout>,

    /// Print the MPI command line and the environment it would get, and run nothing
    #[arg(long)]
    pub dry_run: bool,

    /// What to run, and the MPI launcher's extra words.
    #[command(flatten)]
    pub program: ProgramArgs,
}

/// The flags of `rankview batch`.
#[derive(Debug, Args)]
pub struct BatchArgs {
    /// The batch system: slurm (sbatch, srun) or pbs (PBS Professional/OpenPBS: qsub, select)
    #[arg(value_enum, value_name = "SCHEDULER")]
    pub scheduler: Scheduler,

    /// Number of ranks, controller included (at least 2) [default: --nodes × --tasks-per-node]
    #[arg(short = 'n', long = "ranks", value_name = "N", value_parser = parse_ranks)]
    pub ranks: Option<u32>,

    /// Nodes to ask for [default: the scheduler places the ranks]
    #[arg(short = 'N', long, value_name = "N")]
    pub nodes: Option<u32>,

    /// Ranks per node [default: the scheduler places the ranks]
    #[arg(long, value_name = "M")]
    pub tasks_per_node: Option<u32>,

    /// CPUs for each rank; rankview runs two threads per rank, and OMP_NUM_THREADS is this minus one
    #[arg(long, value_name = "C", default_value_t = 2, value_parser = parse_cpus)]
    pub cpus_per_rank: u32,

    /// Time limit: MINUTES, HH:MM:SS or D-HH:MM:SS (also MM:SS, D-HH, D-HH:MM)
    #[arg(short = 't', long, value_name = "TIME", default_value = "01:00:00", value_parser = Walltime::parse)]
    pub time: Walltime,

    /// Partition (Slurm) or queue (PBS) [default: the site's]
    #[arg(short = 'p', long, visible_alias = "queue", visible_short_alias = 'q', value_name = "NAME", value_parser = parse_header_value)]
    pub partition: Option<String>,

    /// Account (project) to charge [default: the site's]
    #[arg(short = 'A', long, value_name = "NAME", value_parser = parse_header_value)]
    pub account: Option<String>,

    /// The job's name [default: the program's or example's name]
    #[arg(short = 'J', long, value_name = "NAME", value_parser = parse_job_name)]
    pub job_name: Option<String>,

    /// The job's output file, as sbatch's and qsub's -o: stdout, and stderr too unless --error [default: Slurm NAME-%j.out; PBS NAME.oJOBID]
    #[arg(short = 'o', long = "output", visible_alias = "log", value_name = "FILE", value_parser = parse_header_value_os)]
    pub log: Option<OsString>,

    /// The job's stderr file, as sbatch's and qsub's -e [default: with the output]
    #[arg(short = 'e', long = "error", value_name = "FILE", value_parser = parse_header_value_os)]
    pub error_log: Option<OsString>,

    /// A further scheduler directive, written into the script as it is (repeatable): e.g. --directive=--mem=8G, --directive "--gres=gpu:1", --directive "-l mem=8gb" (PBS)
    #[arg(long = "directive", value_name = "TEXT", allow_hyphen_values = true, value_parser = parse_directive, action = clap::ArgAction::Append)]
    pub directives: Vec<String>,

    /// Write the script to FILE (made executable) instead of printing it
    #[arg(long = "script", value_name = "FILE")]
    pub script: Option<PathBuf>,

    /// Submit the script with sbatch or qsub and print the job id
    #[arg(long)]
    pub submit: bool,

    /// What to run, and the MPI launcher's extra words.
    #[command(flatten)]
    pub program: ProgramArgs,
}

/// What every rank runs and the MPI launcher's extra words: the flags that
/// `run` and `batch` share.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("target")
        .required(true)
        .multiple(true)
        .args(["command", "example", "bin"])
))]
pub struct ProgramArgs {
    /// Build this example of the current Cargo workspace (`cargo build --example NAME`) and run it
    #[arg(long, value_name = "NAME", conflicts_with = "bin")]
    pub example: Option<String>,

    /// Build this binary of the current Cargo workspace (`cargo build --bin NAME`) and run it
    #[arg(long, value_name = "NAME")]
    pub bin: Option<String>,

    /// Build the example or binary from this package of the workspace (`cargo build --package`)
    #[arg(long, value_name = "SPEC")]
    pub package: Option<String>,

    /// Build the example or binary in release mode (only with --example or --bin)
    #[arg(long)]
    pub release: bool,

    /// Pass ARG to the MPI launcher verbatim, as one word, before the program (repeatable)
    #[arg(
        long = "mpi-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        action = clap::ArgAction::Append
    )]
    pub mpi_arg: Vec<OsString>,

    /// Pass ARGS to the MPI launcher, split into words as a shell would, after any --mpi-arg (e.g. --mpi-args "--mca btl tcp,self")
    #[arg(
        long = "mpi-args",
        value_name = "ARGS",
        allow_hyphen_values = true,
        value_parser = parse_words,
        action = clap::ArgAction::Append
    )]
    pub mpi_args: Vec<Words>,

    /// MPI launcher flags typed before the program (`-np`, `--bind-to`, `-x`, ...), taken out of the command line before parsing (see `mpi_flags`)
    #[arg(skip)]
    pub mpi_flags: Vec<MpiFlag>,

    /// The program every rank runs (a path, a name on PATH, or a file in the current directory), then its arguments: everything after PROGRAM is the program's, as with mpirun (with --example or --bin: its arguments, after `--`)
    #[arg(
        value_name = "PROGRAM [ARGS]",
        trailing_var_arg = true,
        num_args = 1..
    )]
    pub command: Vec<OsString>,
}

impl ProgramArgs {
    /// Every word for an MPI launcher of `flavour`: the mpirun-style flags
    /// typed before the program in its words, then [`mpi_words`]; with a
    /// note for each flag said differently.
    ///
    /// [`mpi_words`]: ProgramArgs::mpi_words
    pub fn launcher_words(&self, flavour: Flavour) -> Result<(Vec<OsString>, Vec<String>), Error> {
        let (mut words, notes) = crate::mpi_flags::words(&self.mpi_flags, flavour)?;
        words.extend(self.mpi_words());
        Ok((words, notes))
    }

    /// Every word for the MPI launcher: each `--mpi-arg`, then the words of
    /// each `--mpi-args`.
    pub fn mpi_words(&self) -> Vec<OsString> {
        let mut words = self.mpi_arg.clone();
        for split in &self.mpi_args {
            words.extend(split.0.iter().map(OsString::from));
        }
        words
    }

    /// The program (`None` with `--example` or `--bin`) and its arguments. A `--` right
    /// after the program is dropped (the form earlier versions required).
    pub fn program_and_args(&self) -> (Option<&OsString>, &[OsString]) {
        if self.example.is_some() || self.bin.is_some() {
            return (None, &self.command);
        }
        match self.command.split_first() {
            Some((program, rest)) => {
                let rest = match rest.split_first() {
                    Some((first, after)) if first == "--" => after,
                    _ => rest,
                };
                (Some(program), rest)
            }
            None => (None, &[]),
        }
    }
}

/// An `--mpi-args` value split into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words(pub Vec<String>);

/// Splits an `--mpi-args` value as a POSIX shell would (quotes, escapes).
fn parse_words(value: &str) -> Result<Words, String> {
    shlex::split(value)
        .map(Words)
        .ok_or_else(|| "unbalanced quotes or a trailing backslash".to_string())
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
    crate::ranks::check(ranks)
}

/// Parses `--cpus-per-rank C`: a whole number, at least 1 (2 or more
/// recommended, which the help says).
fn parse_cpus(value: &str) -> Result<u32, String> {
    match value.trim().parse::<u32>() {
        Ok(cpus) if cpus >= 1 => Ok(cpus),
        _ => Err("expected a whole number of CPUs, at least 1".to_string()),
    }
}

/// Parses a value that goes into a job script's header line: no spaces,
/// quotes or control characters (a newline would end the line and start a
/// command).
fn parse_header_value(value: &str) -> Result<String, String> {
    if value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'\\$`".contains(c))
    {
        return Err(
            "expected a non-empty value without spaces, quotes, `$` or backslashes".to_string(),
        );
    }
    Ok(value.to_string())
}

/// Parses `--directive`: one line that starts with a dash (the script
/// writes it after `#SBATCH ` or `#PBS `).
fn parse_directive(value: &str) -> Result<String, String> {
    if !value.starts_with('-') || value.chars().any(char::is_control) {
        return Err(
            "expected one directive on one line, starting with a dash (--mem=8G, -l mem=8gb)"
                .to_string(),
        );
    }
    Ok(value.to_string())
}

/// [`parse_header_value`] for a file name.
fn parse_header_value_os(value: &str) -> Result<OsString, String> {
    parse_header_value(value).map(OsString::from)
}

/// Parses `--job-name`: letters, digits, `_`, `-` and `.`, starting with a
/// letter (what PBS accepts; Slurm takes it too).
fn parse_job_name(value: &str) -> Result<String, String> {
    if value.starts_with(|c: char| c.is_ascii_alphabetic())
        && value.chars().all(crate::batch::scheduler::is_name_char)
    {
        Ok(value.to_string())
    } else {
        Err("expected letters, digits, `_`, `-` or `.`, starting with a letter".to_string())
    }
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
        // clap's tip (`-- --flag`) would pass the flag to the program.
        ErrorKind::UnknownArgument => {
            let flag = err
                .get(clap::error::ContextKind::InvalidArg)
                .map(ToString::to_string)
                .unwrap_or_default();
            Err(Error::Usage(format!(
                "unknown flag {flag} before the program: an MPI launcher flag goes in --mpi-args \
                 \"{flag} ...\" (rankview run also takes mpirun's -np, --oversubscribe, \
                 --bind-to, --map-by, -x, --host, -N, --mca and MPICH's -genv, -hosts, -ppn); \
                 a flag of the program goes after it"
            )))
        }
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // Printing help can only fail if stdout is closed; nothing to add then.
            let _ = err.print();
            Ok(ExitCode::SUCCESS)
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            Ok(ExitCode::from(Error::USAGE_EXIT_CODE))
        }
        _ => Err(Error::Usage(compact_clap_message(
            &err.render().to_string(),
        ))),
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

/// Parses the command line: the MPI launcher's flags typed before the
/// program of `rankview run` are taken out first (see `mpi_flags`), the
/// rest goes to clap.
pub fn parse(argv: Vec<OsString>) -> Result<Result<Cli, clap::Error>, Error> {
    use clap::CommandFactory;
    let command = Cli::command();
    let run = command.find_subcommand("run");
    let takes_value = |flag: &str| -> Option<bool> {
        let arg = run?.get_arguments().find(|a| {
            let long = flag.strip_prefix("--").is_some_and(|l| {
                a.get_long() == Some(l) || a.get_all_aliases().is_some_and(|x| x.contains(&l))
            });
            let short = flag
                .strip_prefix('-')
                .filter(|s| s.chars().count() == 1)
                .and_then(|s| s.chars().next())
                .is_some_and(|c| a.get_short() == Some(c));
            long || short
        })?;
        Some(arg.get_action().takes_values())
    };
    let is_help = |flag: &str| matches!(flag, "-h" | "--help");
    let (argv, flags) = crate::mpi_flags::extract(argv, |f| {
        if is_help(f) {
            Some(false)
        } else {
            takes_value(f)
        }
    })?;
    Ok(Cli::try_parse_from(argv).map(|mut cli| {
        if let Command::Run(args) = &mut cli.command {
            args.program.mpi_flags = flags;
        }
        cli
    }))
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

    fn run_args(argv: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from(argv).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("expected run");
        };
        args
    }

    #[test]
    fn a_program_or_an_example_is_needed() {
        assert!(Cli::try_parse_from(["rankview", "run", "-n", "2"]).is_err());
    }

    #[test]
    fn everything_after_the_program_is_its_arguments() {
        let args = run_args(&[
            "rankview", "run", "-n", "3", "./app", "-x", "--ranks", "9", "y",
        ]);
        assert_eq!(args.ranks, Some(3));
        let (program, rest) = args.program.program_and_args();
        assert_eq!(program.map(|p| p.as_os_str()), Some("./app".as_ref()));
        assert_eq!(rest, ["-x", "--ranks", "9", "y"]);
        // The earlier form with `--` still means the same.
        let args = run_args(&["rankview", "run", "./app", "--", "-x", "y"]);
        assert_eq!(args.program.program_and_args().1, ["-x", "y"]);
        // A later `--` is the program's.
        let args = run_args(&["rankview", "run", "./app", "a", "--", "b"]);
        assert_eq!(args.program.program_and_args().1, ["a", "--", "b"]);
    }

    #[test]
    fn mpi_arg_is_one_word_mpi_args_are_split() {
        let args = run_args(&[
            "rankview",
            "run",
            "--mpi-arg",
            "--mca",
            "--mpi-arg=btl",
            "--mpi-args",
            "--mca btl_tcp_if_include 'eth0, lo' -x \"A=b c\"",
            "./app",
        ]);
        assert_eq!(
            args.program.mpi_words(),
            [
                "--mca",
                "btl",
                "--mca",
                "btl_tcp_if_include",
                "eth0, lo",
                "-x",
                "A=b c"
            ]
        );
        assert!(Cli::try_parse_from(["rankview", "run", "--mpi-args", "'open", "./app"]).is_err());
    }

    #[test]
    fn example_takes_args_after_dashes() {
        let args = run_args(&["rankview", "run", "--example", "quickstart", "--", "a"]);
        assert_eq!(args.program.example.as_deref(), Some("quickstart"));
        assert_eq!(args.program.program_and_args(), (None, &["a".into()][..]));
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
