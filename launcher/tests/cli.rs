//! End-to-end tests of the `rankview` binary: bad input, `--dry-run` for each
//! MPI flavour (with fake launchers), a machine without MPI, `info`, and
//! real jobs under the installed `mpirun` (exit codes, the exit summary, the
//! status-file contract, `--timeout`, SIGTERM, `--example`).
//!
//! Tests that start real MPI jobs take the harness's job lock
//! (`common::mpi_job_lock`), so they never overlap (the machine may have
//! only two cores). Batch scripts are tested in `batch.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

// ---------------------------------------------------------------- bad input

#[test]
fn unknown_flag_is_a_usage_error() {
    let result = rankview_with(&["run", "-n", "2", "--frobnicate", "/bin/true"]);
    assert_clear_error(&result, 2, "--frobnicate");
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    assert_clear_error(&rankview_with(&["frobnicate"]), 2, "frobnicate");
}

#[test]
fn missing_program_is_a_usage_error() {
    assert_clear_error(
        &rankview_with(&["run", "-n", "2"]),
        2,
        "<PROGRAM [ARGS]|--example <NAME>|--bin <NAME>>",
    );
}

#[test]
fn one_rank_is_refused() {
    let result = rankview_with(&["run", "-n", "1", "/bin/true"]);
    assert_clear_error(
        &result,
        2,
        "rankview needs at least 2 ranks: rank 0 is the controller, the others are engines",
    );
}

#[test]
fn non_numeric_ranks_are_refused() {
    assert_clear_error(
        &rankview_with(&["run", "-n", "abc", "/bin/true"]),
        2,
        "'abc'",
    );
}

#[test]
fn release_without_example_is_refused() {
    assert_clear_error(
        &rankview_with(&["run", "--release", "/bin/true"]),
        2,
        "--release",
    );
}

#[test]
fn nonexistent_program_is_refused_before_launching() {
    let result = rankview_with(&["run", "-n", "2", "/nonexistent/program"]);
    assert_clear_error(&result, 127, "program not found: /nonexistent/program");
    let result = rankview_with(&["run", "-n", "2", "no-such-program-anywhere"]);
    assert_clear_error(&result, 127, "program not found");
}

#[test]
fn non_executable_program_is_refused_before_launching() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.txt");
    fs::write(&file, "not a program").unwrap();
    let result = rankview_with(&["run", "-n", "2", file.to_str().unwrap()]);
    assert_clear_error(&result, 126, "program is not executable");
}

#[test]
fn bad_timeout_is_refused() {
    assert_clear_error(
        &rankview_with(&["run", "--timeout", "0", "/bin/true"]),
        2,
        "timeout",
    );
    assert_clear_error(
        &rankview_with(&["run", "--timeout", "soon", "/bin/true"]),
        2,
        "'soon'",
    );
}

#[test]
fn missing_hostfile_is_refused() {
    let result = rankview_with(&[
        "run",
        "-n",
        "2",
        "--hostfile",
        "/nonexistent/hosts",
        "/bin/true",
    ]);
    assert_clear_error(&result, 2, "hostfile not found");
}

#[test]
fn help_and_version_succeed() {
    let result = rankview_with(&["run", "--help"]);
    assert_eq!(result.code, Some(0), "{result:?}");
    assert!(result.stdout.contains("--mpi-arg"), "{result:?}");
    let result = rankview_with(&["--version"]);
    assert_eq!(result.code, Some(0), "{result:?}");
    assert!(result.stdout.starts_with("rankview "), "{result:?}");
}

// ------------------------------------------------------------ missing MPI

#[test]
fn no_mpi_launcher_is_one_clear_line() {
    let empty = tempfile::tempdir().unwrap();
    for args in [&["run", "-n", "2", "/bin/true"][..], &["info"][..]] {
        let result = run(rankview().args(args).env("PATH", empty.path()));
        assert_clear_error(
            &result,
            1,
            "no MPI launcher found (looked for $MPIEXEC, mpirun, mpiexec)",
        );
        assert!(
            result
                .stderr
                .contains("apt-get install openmpi-bin libopenmpi-dev"),
            "{result:?}"
        );
        assert_eq!(result.stderr.lines().count(), 1, "{result:?}");
    }
}

#[test]
fn bad_mpiexec_variable_is_named() {
    let result = run(rankview()
        .args(["info"])
        .env("MPIEXEC", "/nonexistent/mpiexec"));
    assert_clear_error(&result, 1, "MPIEXEC is set to \"/nonexistent/mpiexec\"");
}

// ------------------------------------------------------------- dry runs

#[test]
fn dry_run_openmpi_oversubscribes_and_allows_root() {
    let (_dir, mpirun) = fake_mpi("mpirun", "mpirun (Open MPI) 4.1.4");
    let ranks = (cores() + 2).to_string();
    let result = run(rankview()
        .args([
            "run",
            "-n",
            &ranks,
            "--dry-run",
            "--mpi-arg",
            "--mca",
            "--mpi-arg=btl",
        ])
        .args(["--mpi-arg", "tcp,self", "/bin/echo", "--", "a b", "c"])
        .env("MPIEXEC", &mpirun));
    assert_eq!(result.code, Some(0), "{result:?}");
    let command = result.stdout.lines().last().unwrap();
    assert_eq!(
        command,
        format!(
            "{} -n {ranks} --oversubscribe -x RANKVIEW_LAUNCHER -x RANKVIEW_STATUS_DIR \
             --bind-to none --mca btl tcp,self /bin/echo 'a b' c",
            mpirun.display()
        ),
        "{result:?}"
    );
    assert!(
        result.stdout.contains("export RANKVIEW_LAUNCHER=1\n"),
        "{result:?}"
    );
    assert!(
        result.stdout.contains("export RANKVIEW_STATUS_DIR="),
        "{result:?}"
    );
    let root_vars = result.stdout.contains("export OMPI_ALLOW_RUN_AS_ROOT=1\n")
        && result
            .stdout
            .contains("export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1\n");
    assert_eq!(root_vars, is_root(), "{result:?}");
}

#[test]
fn dry_run_openmpi_within_the_cores_does_not_oversubscribe() {
    let (_dir, mpirun) = fake_mpi("mpirun", "mpirun (Open MPI) 4.1.4");
    let ranks = cores().max(2).to_string();
    let result = run(rankview()
        .args(["run", "-n", &ranks, "--dry-run", "/bin/true"])
        .env("MPIEXEC", &mpirun));
    assert_eq!(result.code, Some(0), "{result:?}");
    // Open MPI counts physical cores: --oversubscribe only when its note
    // says there are fewer of them than ranks.
    let oversubscribed = result.stdout.contains("--oversubscribe");
    let note_says_fewer = result.stdout.lines().any(|l| {
        l.starts_with("# --oversubscribe: ")
            && l.split("counts ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|slots| slots < cores().max(2))
    });
    assert_eq!(oversubscribed, note_says_fewer, "{result:?}");
}

#[test]
fn dry_run_default_ranks_is_cores_plus_one() {
    let (_dir, mpirun) = fake_mpi("mpirun", "mpirun (Open MPI) 4.1.4");
    let result = run(rankview()
        .args(["run", "--dry-run", "/bin/true"])
        .env("MPIEXEC", &mpirun));
    assert_eq!(result.code, Some(0), "{result:?}");
    assert!(
        result.stdout.contains(&format!(" -n {} ", cores() + 1)),
        "{result:?}"
    );
}

#[test]
fn dry_run_mpich_uses_hydra_flags() {
    let (dir, mpiexec) = fake_mpi("mpiexec", "HYDRA build details:\n    Version:   4.0.2");
    let hosts = dir.path().join("hosts");
    fs::write(&hosts, "localhost:8\n").unwrap();
    let result = run(rankview()
        .args([
            "run",
            "-n",
            "9",
            "--dry-run",
            "--hostfile",
            hosts.to_str().unwrap(),
            "/bin/true",
        ])
        .env("MPIEXEC", &mpiexec));
    assert_eq!(result.code, Some(0), "{result:?}");
    let command = result.stdout.lines().last().unwrap();
    assert_eq!(
        command,
        format!(
            "{} -n 9 -f {} /bin/true",
            mpiexec.display(),
            hosts.display()
        ),
        "{result:?}"
    );
    assert!(!result.stdout.contains("OMPI_"), "{result:?}");
}

/// Inside Slurm: srun, with a rank's death ending the job
/// (`--kill-on-bad-exit=1`), one SIGINT reaching the ranks
/// (`--disable-status`) and the PMI plugin of the MPI (here the machine's,
/// Open MPI: the program links none), each said why, and why srun at all.
#[test]
fn dry_run_inside_slurm_uses_srun() {
    let (dir, _) = fake_mpi("srun", "slurm 23.02.6");
    script(
        dir.path(),
        "mpirun",
        "if [ \"$1\" = --version ]; then echo 'mpirun (Open MPI) 4.1.4'; fi",
    );
    let result = run(rankview()
        .args(["run", "-n", "4", "--dry-run", "/bin/true"])
        .env("PATH", path_with(dir.path()))
        .env("SLURM_JOB_ID", "1234"));
    assert_eq!(result.code, Some(0), "{result:?}");
    let command = result.stdout.lines().last().unwrap();
    assert_eq!(
        command,
        format!(
            "{}/srun -n 4 --kill-on-bad-exit=1 --mpi=pmix --disable-status /bin/true",
            dir.path().display()
        ),
        "{result:?}"
    );
    for note in [
        "# srun: inside the Slurm allocation SLURM_JOB_ID=1234 (MPIEXEC=mpirun would run mpirun \
         instead)\n",
        "# --kill-on-bad-exit=1: a rank that dies ends the job at once",
        "# --mpi=pmix: the program names no MPI; this machine's is Open MPI",
        "# --disable-status: one SIGINT (Ctrl-C) goes to the ranks",
    ] {
        assert!(result.stdout.contains(note), "{note:?}{result:?}");
    }
    // The user's own choices stand.
    let result = run(rankview()
        .args([
            "run",
            "-n",
            "4",
            "--dry-run",
            "--mpi-args",
            "-K0 --mpi=none",
            "/bin/true",
        ])
        .env("PATH", path_with(dir.path()))
        .env("SLURM_JOB_ID", "1234")
        .env("SLURM_DISABLE_STATUS", "0"));
    assert!(
        result.stdout.ends_with(" -n 4 -K0 --mpi=none /bin/true\n"),
        "{result:?}"
    );
}

#[test]
fn dry_run_unknown_launcher_gets_only_n() {
    let (_dir, odd) = fake_mpi("odd-launcher", "odd launcher 1.0");
    let result = run(rankview()
        .args(["run", "-n", "3", "--dry-run", "/bin/true"])
        .env("MPIEXEC", &odd));
    assert_eq!(result.code, Some(0), "{result:?}");
    assert_eq!(
        result.stdout.lines().last().unwrap(),
        format!("{} -n 3 /bin/true", odd.display()),
        "{result:?}"
    );
}

// ---------------------------------------------------------------- info

#[test]
fn info_describes_the_installed_mpi() {
    let result = rankview_with(&["info"]);
    assert_eq!(result.code, Some(0), "{result:?}");
    for key in [
        "MPI flavour:",
        "MPI version:",
        "MPI launcher:",
        "thread support:",
        "rankview asks:",
        "cores:",
    ] {
        assert!(result.stdout.contains(key), "missing {key}: {result:?}");
    }
    assert!(result.stdout.contains("MPI_THREAD_FUNNELED"), "{result:?}");
    assert!(
        result
            .stdout
            .contains(&format!("cores:          {}", cores())),
        "{result:?}"
    );
}

// ------------------------------------------------------- real MPI jobs

#[test]
fn true_under_mpirun_succeeds_with_a_summary() {
    let _lock = mpi_job_lock();
    let result = rankview_with(&["run", "-n", "2", "/bin/true"]);
    assert_eq!(result.code, Some(0), "{result:?}");
    assert!(
        result
            .stderr
            .contains("rankview: job finished: 2 ranks, exit 0, "),
        "{result:?}"
    );
    assert_no_panic(&result);
}

#[test]
fn false_under_mpirun_fails_with_a_summary() {
    let _lock = mpi_job_lock();
    let result = rankview_with(&["run", "-n", "2", "/bin/false"]);
    assert!(matches!(result.code, Some(c) if c != 0), "{result:?}");
    assert!(
        result
            .stderr
            .contains("rankview: job failed: 2 ranks, exit "),
        "{result:?}"
    );
    assert_no_panic(&result);
}

#[test]
fn oversubscribed_job_runs() {
    let _lock = mpi_job_lock();
    let ranks = (cores() + 1).to_string();
    let result = rankview_with(&["run", "-n", &ranks, "/bin/true"]);
    assert_eq!(result.code, Some(0), "{result:?}");
    assert!(
        result
            .stderr
            .contains(&format!("job finished: {ranks} ranks")),
        "{result:?}"
    );
}

#[test]
fn job_sees_the_launcher_variables() {
    let _lock = mpi_job_lock();
    let result = rankview_with(&[
        "run",
        "-n",
        "2",
        "/bin/sh",
        "--",
        "-c",
        "test \"$RANKVIEW_LAUNCHER\" = 1 && test -d \"$RANKVIEW_STATUS_DIR\"",
    ]);
    assert_eq!(result.code, Some(0), "{result:?}");
}

#[test]
fn program_arguments_reach_every_rank() {
    let _lock = mpi_job_lock();
    let result = rankview_with(&["run", "-n", "3", "/bin/echo", "--", "hello", "ranks"]);
    assert_eq!(result.code, Some(0), "{result:?}");
    assert_eq!(
        result.stdout.matches("hello ranks").count(),
        3,
        "{result:?}"
    );
}

/// mpirun's own flags before the program, as an mpirun user types them,
/// reach a real job: `-np`, `--oversubscribe`, `--bind-to`, `-x`, `--host`;
/// the program's own flags after it stay its own. An unknown flag is one
/// clear line that points at --mpi-args.
#[test]
fn mpirun_flags_before_the_program_reach_the_job() {
    let _lock = mpi_job_lock();
    let dir = tempfile::tempdir().unwrap();
    let program = script(dir.path(), "env.sh", r#"echo "FOO=$FOO BAR=$BAR args=$*""#);
    let program = program.to_str().unwrap();
    let result = run(rankview()
        .args([
            "run",
            "-np",
            "3",
            "--oversubscribe",
            "--bind-to",
            "none",
            "-x",
            "FOO=from-x",
            "-x",
            "BAR",
            "--host",
            "localhost:3",
            program,
            "-x",
            "mine",
        ])
        .env("BAR", "from-env"));
    assert_eq!(result.code, Some(0), "{result:?}");
    assert_eq!(
        result
            .stdout
            .matches("FOO=from-x BAR=from-env args=-x mine")
            .count(),
        3,
        "{result:?}"
    );
    let unknown = rankview_with(&["run", "-n", "2", "--frobnicate", program]);
    assert_eq!(unknown.code, Some(2), "{unknown:?}");
    assert_eq!(unknown.stderr.lines().count(), 1, "{unknown:?}");
    assert!(
        unknown
            .stderr
            .contains("unknown flag --frobnicate before the program")
            && unknown.stderr.contains("--mpi-args"),
        "{unknown:?}"
    );
}

/// A program that follows the status-file contract by hand: rank 0 ends
/// `ok`, rank 1 `failed: ...` (and waits to be stopped), rank 2 dies
/// without reporting, rank 3 never writes anything. Rank 2 dies only once
/// ranks 0 and 1 have written their files (mpirun aborts the rest of the
/// job when one rank fails), so it is the first to fail.
#[test]
fn summary_names_each_failed_rank() {
    let _lock = mpi_job_lock();
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "ranks.sh",
        r#"r="${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}}"
d="$RANKVIEW_STATUS_DIR"
f="$d/rank-$r"
# written FILE LINE: waits (20 s at most) until FILE has the line LINE.
written() { i=0; until grep -qx "$2" "$1" 2>/dev/null || [ $i -ge 400 ]; do sleep 0.05; i=$((i + 1)); done; }
case "$r" in
  0) printf 'started pid=%s host=%s\nok\n' $$ "$(hostname)" > "$f" ;;
  1) printf 'started pid=%s host=%s\nfailed: task 3 panicked: boom\n' $$ "$(hostname)" > "$f"; sleep 20; exit 1 ;;
  2) written "$d/rank-0" ok; written "$d/rank-1" 'failed: .*'
     printf 'started pid=%s host=%s\n' $$ "$(hostname)" > "$f"; kill -9 $$ ;;
  *) exit 0 ;;
esac"#,
    );
    let result = rankview_with(&["run", "-n", "4", program.to_str().unwrap()]);
    assert!(matches!(result.code, Some(c) if c != 0), "{result:?}");
    assert!(
        result
            .stderr
            .contains("rankview: rank 1: failed: task 3 panicked: boom\n"),
        "{result:?}"
    );
    // Open MPI names the rank a signal killed ("mpirun noticed that process
    // rank 2 ... exited on signal 9"), except when its own race makes it
    // say only that the job aborted: then the summary says it does not
    // know who failed first, and still names rank 2 as ended unreported.
    let named_first = result
        .stderr
        .contains("rankview: rank 2: first to fail: killed by SIGKILL (signal 9)\n");
    let unknown_first = result
        .stderr
        .contains("rankview: which rank failed first is not known: mpirun does not say")
        && result
            .stderr
            .contains("rankview: rank 2: ended without reporting on ");
    assert!(named_first || unknown_first, "{result:?}");
    assert!(
        result
            .stderr
            .contains("rankview: rank 3: status unknown: no report"),
        "{result:?}"
    );
    assert!(!result.stderr.contains("rank 0:"), "{result:?}");
    assert!(
        result.stderr.contains("rankview: job failed: 4 ranks, "),
        "{result:?}"
    );
}

#[test]
fn timeout_stops_the_job_with_124() {
    let _lock = mpi_job_lock();
    let result = rankview_with(&["run", "-n", "2", "--timeout", "1", "sleep", "--", "30"]);
    assert_eq!(result.code, Some(124), "{result:?}");
    assert!(result.elapsed < Duration::from_secs(10), "{result:?}");
    assert!(
        result
            .stderr
            .contains("rankview: job timed out after 1 s: 2 ranks"),
        "{result:?}"
    );
}

#[test]
fn sigterm_is_passed_on_to_the_job() {
    let _lock = mpi_job_lock();
    let dir = tempfile::tempdir().unwrap();
    let body = format!("{}; exec sleep 30", started_mark(dir.path()));
    let started = Instant::now();
    let child = rankview()
        .args(["run", "-n", "2", "/bin/sh", "--", "-c", &body])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    await_ranks(dir.path(), 2);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let result = finished(child.wait_with_output().unwrap(), started);
    assert_interrupted(&result, "SIGTERM", 143);
}

/// `--example` builds with cargo in the workspace around the current
/// directory and honours `CARGO_TARGET_DIR`.
#[test]
fn example_is_built_and_run() {
    let _lock = mpi_job_lock();
    let project = tempfile::tempdir().unwrap();
    fs::write(
        project.path().join("Cargo.toml"),
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    fs::create_dir_all(project.path().join("src")).unwrap();
    fs::write(project.path().join("src/lib.rs"), "").unwrap();
    fs::create_dir_all(project.path().join("examples")).unwrap();
    fs::write(
        project.path().join("examples/hello.rs"),
        "fn main() { println!(\"hello from the example {:?}\", std::env::args().nth(1)); }\n",
    )
    .unwrap();
    let target = tempfile::tempdir().unwrap();
    let nested = project.path().join("src");
    let result = run(rankview()
        .args(["run", "-n", "2", "--example", "hello", "--", "arg1"])
        .current_dir(&nested)
        .env("CARGO_TARGET_DIR", target.path())
        .env("CARGO_NET_OFFLINE", "true"));
    assert_eq!(result.code, Some(0), "{result:?}");
    assert_eq!(
        result
            .stdout
            .matches("hello from the example Some(\"arg1\")")
            .count(),
        2,
        "{result:?}"
    );
    assert!(
        target.path().join("debug/examples/hello").is_file(),
        "{result:?}"
    );

    let result = run(rankview()
        .args(["run", "-n", "2", "--example", "nope"])
        .current_dir(project.path())
        .env("CARGO_TARGET_DIR", target.path())
        .env("CARGO_NET_OFFLINE", "true"));
    assert_eq!(result.code, Some(1), "{result:?}");
    let last = result.stderr.lines().last().unwrap();
    assert!(
        last.starts_with("rankview: error: cargo build --example nope failed"),
        "{result:?}"
    );
    assert_no_panic(&result);
}

#[test]
fn example_outside_a_workspace_is_refused() {
    let empty = tempfile::tempdir().unwrap();
    let result = run(rankview()
        .args(["run", "-n", "2", "--example", "x"])
        .current_dir(empty.path()));
    assert_clear_error(&result, 1, "--example and --bin need a Cargo workspace");
}

/// Pids of live processes whose command line contains `marker`.
fn alive_with(marker: &str) -> Vec<String> {
    let found = Command::new("pgrep").args(["-f", marker]).output().unwrap();
    String::from_utf8_lossy(&found.stdout)
        .lines()
        .filter(|pid| {
            // Zombies (reaped by nobody in some containers) are dead already.
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            !stat.is_empty() && !stat.contains(") Z ")
        })
        .map(str::to_string)
        .collect()
}

/// Waits until no process with `marker` in its command line is alive (at
/// most 5 s: ranks the launcher killed are gone by then) and returns the
/// pids of those that still are.
fn strays(marker: &str) -> Vec<String> {
    let start = Instant::now();
    loop {
        let alive = alive_with(marker);
        if alive.is_empty() || start.elapsed() > Duration::from_secs(5) {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A shell command with which each rank says it has started: it creates
/// `started-RANK` in `dir`.
fn started_mark(dir: &Path) -> String {
    format!(
        "touch '{}/started-'\"${{OMPI_COMM_WORLD_RANK:-${{PMI_RANK:-0}}}}\"",
        dir.display()
    )
}

/// Waits (at most 30 s) until `ranks` ranks have said they started (see
/// [`started_mark`]): a signal sent after that reaches a running job.
fn await_ranks(dir: &Path, ranks: usize) {
    let start = Instant::now();
    let started = || {
        (0..ranks)
            .filter(|r| dir.join(format!("started-{r}")).exists())
            .count()
    };
    while started() < ranks {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} of {ranks} ranks started",
            started()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A job whose ranks ignore SIGINT and SIGTERM, tagged with `marker`, that
/// says when each rank has started (see [`started_mark`]).
fn stubborn_job(marker: &str, dir: &Path) -> String {
    format!(
        "trap '' INT TERM; {}; sleep 30; : {marker}",
        started_mark(dir)
    )
}

/// After a timeout, no rank is left running.
#[test]
fn timeout_leaves_no_stray_ranks() {
    let _lock = mpi_job_lock();
    let marker = format!("rankview-stray-timeout-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let body = stubborn_job(&marker, dir.path());
    let result = rankview_with(&[
        "run",
        "-n",
        "2",
        "--timeout",
        "1",
        "/bin/sh",
        "--",
        "-c",
        &body,
    ]);
    assert_eq!(result.code, Some(124), "{result:?}");
    assert!(result.elapsed < Duration::from_secs(15), "{result:?}");
    assert_eq!(strays(&marker), Vec::<String>::new(), "{result:?}");
}

/// A second Ctrl-C kills `mpirun`, which then cannot stop its ranks; the
/// launcher kills them itself and says so.
#[test]
fn second_interrupt_kills_the_job_and_its_ranks() {
    let _lock = mpi_job_lock();
    let marker = format!("rankview-stray-interrupt-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let body = stubborn_job(&marker, dir.path());
    let started = Instant::now();
    let child = rankview()
        .args(["run", "-n", "2", "/bin/sh", "--", "-c", &body])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    await_ranks(dir.path(), 2);
    // Nothing shows that the launcher has taken the first request: the
    // pause keeps the kernel from merging the two into one pending signal.
    for _ in 0..2 {
        let sent = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        std::thread::sleep(Duration::from_millis(300));
    }
    let result = finished(child.wait_with_output().unwrap(), started);
    assert_interrupted(&result, "SIGINT", 130);
    assert_eq!(strays(&marker), Vec::<String>::new(), "{result:?}");
}

// ------------------------------------------- stop signals (fake mpirun)

/// A fake Open MPI `mpirun` that logs to `$FAKE_LOG` its pid, the status
/// directory it was given, and every SIGTERM/SIGINT it receives; it takes
/// half a second to stop (as a real one stopping its ranks does) and then
/// exits `$FAKE_EXIT` (143/130 when unset).
fn fake_mpirun_logging_signals() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mpirun = script(
        dir.path(),
        "mpirun",
        r#"if [ "$1" = --version ]; then echo "mpirun (Open MPI) 4.1.4"; exit 0; fi
echo "pid $$" >> "$FAKE_LOG"
echo "dir $RANKVIEW_STATUS_DIR" >> "$FAKE_LOG"
trap 'echo TERM >> "$FAKE_LOG"; sleep 0.5; exit ${FAKE_EXIT:-143}' TERM
trap 'echo INT >> "$FAKE_LOG"; sleep 0.5; exit ${FAKE_EXIT:-130}' INT
echo ready >> "$FAKE_LOG"
while :; do sleep 0.05; done"#,
    );
    (dir, mpirun, log)
}

/// Starts `rankview run` on the fake mpirun, as the leader of a new process
/// group (as a batch system starts a job), and waits until the fake runs.
fn start_with_fake(
    mpirun: &Path,
    log: &Path,
    fake_exit: Option<&str>,
) -> (std::process::Child, Instant) {
    use std::os::unix::process::CommandExt as _;
    let mut command = rankview();
    command
        .args(["run", "-n", "2", "/bin/true"])
        .env("MPIEXEC", mpirun)
        .env("FAKE_LOG", log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(code) = fake_exit {
        command.env("FAKE_EXIT", code);
    }
    let started = Instant::now();
    let child = command.spawn().unwrap();
    while !fs::read_to_string(log)
        .unwrap_or_default()
        .contains("ready")
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "fake mpirun never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, started)
}

/// The fake's log: (its pid, the status directory, the signals it got).
fn fake_log(log: &Path) -> (String, PathBuf, Vec<String>) {
    let text = fs::read_to_string(log).unwrap();
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or("")
            .to_string()
    };
    let signals = text
        .lines()
        .filter(|l| *l == "TERM" || *l == "INT")
        .map(str::to_string)
        .collect();
    (value("pid "), PathBuf::from(value("dir ")), signals)
}

fn send(signal: &str, target: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), "--", target])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Item 1: `kill -TERM -PGID` (a batch system stopping a job) reaches the
/// MPI launcher once, not once from the kill and once more from us.
#[test]
fn a_signal_to_the_process_group_reaches_mpirun_once() {
    let (_dir, mpirun, log) = fake_mpirun_logging_signals();
    for signal in ["TERM", "INT"] {
        fs::remove_file(&log).ok();
        let (child, started) = start_with_fake(&mpirun, &log, None);
        send(signal, &format!("-{}", child.id()));
        let result = finished(child.wait_with_output().unwrap(), started);
        let (_, _, signals) = fake_log(&log);
        assert_eq!(signals, [signal], "{result:?}");
        let code = if signal == "TERM" { 143 } else { 130 };
        assert_interrupted(&result, &format!("SIG{signal}"), code);
    }
}

/// Item 2: SIGHUP and SIGQUIT stop the job like SIGTERM: mpirun gets SIGTERM,
/// the launcher waits for it, removes the status directory, exits 128+S.
#[test]
fn hangup_and_quit_stop_the_job_like_sigterm() {
    let (_dir, mpirun, log) = fake_mpirun_logging_signals();
    for (signal, code) in [("HUP", 129), ("QUIT", 131)] {
        fs::remove_file(&log).ok();
        let (child, started) = start_with_fake(&mpirun, &log, None);
        send(signal, &child.id().to_string());
        let result = finished(child.wait_with_output().unwrap(), started);
        let (pid, status_dir, signals) = fake_log(&log);
        let mpirun_alive = Path::new(&format!("/proc/{pid}")).exists();
        if mpirun_alive {
            send("KILL", &pid);
        }
        assert!(!mpirun_alive, "mpirun left running: {result:?}");
        assert_eq!(signals, ["TERM"], "{result:?}");
        assert!(!status_dir.exists(), "status directory left: {result:?}");
        assert_interrupted(&result, &format!("SIG{signal}"), code);
    }
}

/// Item 3: an interrupted job exits 128 + the signal even when the MPI
/// launcher exits 0 (as MPICH's may).
#[test]
fn an_interrupted_job_never_exits_zero() {
    let (_dir, mpirun, log) = fake_mpirun_logging_signals();
    let (child, started) = start_with_fake(&mpirun, &log, Some("0"));
    send("TERM", &child.id().to_string());
    let result = finished(child.wait_with_output().unwrap(), started);
    assert_interrupted(&result, "SIGTERM", 143);
    assert!(result.stderr.contains(", exit 0, "), "{result:?}");
}

// ------------------------------------------------ the summary's words

/// A fake launcher that plays a whole job: it writes the status files given
/// in `$FAKE_FILES` (`rank|text` lines, `\n` for newlines), prints
/// `$FAKE_OUT` to stdout and `$FAKE_SAYS` to stderr and exits `$FAKE_EXIT`.
fn fake_job_launcher() -> (tempfile::TempDir, PathBuf) {
    fake_job_launcher_as("mpirun", "mpirun (Open MPI) 4.1.4")
}

/// [`fake_job_launcher`] named `name`, whose `--version` prints `version`.
fn fake_job_launcher_as(name: &str, version: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let launcher = script(
        dir.path(),
        name,
        &format!(
            r#"if [ "$1" = --version ]; then printf '%s\n' '{version}'; exit 0; fi
printf '%s\n' "$FAKE_FILES" | while IFS='|' read -r rank text; do
  [ -n "$rank" ] && printf "$text" >> "$RANKVIEW_STATUS_DIR/rank-$rank"
done
[ -n "$FAKE_OUT" ] && printf "$FAKE_OUT"
[ -n "$FAKE_SAYS" ] && printf "$FAKE_SAYS" >&2
exit ${{FAKE_EXIT:-1}}"#
        ),
    );
    (dir, launcher)
}

/// `$FAKE_FILES` for `ranks` ranks that started (pids from `first_pid`, on
/// `host`) and never ended.
fn started_files(ranks: u32, first_pid: u32, host: &str) -> String {
    (0..ranks)
        .map(|r| format!("{r}|started pid={} host={host}\\n\n", first_pid + r))
        .collect()
}

/// The launcher's own lines of a run's stderr.
fn our_lines(result: &Run) -> Vec<&str> {
    result
        .stderr
        .lines()
        .filter(|l| l.starts_with("rankview: "))
        .collect()
}

fn run_fake_job(mpirun: &Path, ranks: &str, files: &str, says: &str, exit: &str) -> Run {
    run(rankview()
        .args(["run", "-n", ranks, "/bin/true"])
        .env("MPIEXEC", mpirun)
        .env("FAKE_FILES", files)
        .env("FAKE_SAYS", says)
        .env("FAKE_EXIT", exit))
}

/// Item 4: a rank that failed at start-up (its file holds only `failed:`)
/// is a failure with its message, not "died without reporting".
#[test]
fn a_start_up_failure_is_reported_as_such() {
    let (_dir, mpirun) = fake_job_launcher();
    let result = run_fake_job(
        &mpirun,
        "2",
        "0|started pid=1 host=h\\nok\\n\n1|failed: cannot start the MPI thread\\n",
        "",
        "1",
    );
    assert_eq!(result.code, Some(1), "{result:?}");
    // Every other rank reported: the one failure of its own is the first.
    assert!(
        result
            .stderr
            .contains("rankview: rank 1: first to fail: cannot start the MPI thread\n"),
        "{result:?}"
    );
    assert!(!result.stderr.contains("without reporting"), "{result:?}");
}

/// Item 5: the rank the MPI launcher names as the first to fail is named
/// (with how it ended), the others share one neutral line.
#[test]
fn the_first_failing_rank_is_named_and_the_rest_collapse() {
    let (_dir, mpirun) = fake_job_launcher();
    let files = started_files(6, 100, "h");
    let says = "mpirun detected that one or more processes exited with non-zero status\n\
                \n  Process name: [[51,1],2]\n  Exit code:    3\n";
    let result = run_fake_job(&mpirun, "6", &files, says, "3");
    assert_eq!(result.code, Some(3), "{result:?}");
    let ours = our_lines(&result);
    assert_eq!(
        ours[..2],
        [
            "rankview: ranks 0-1, 3-5: ended without reporting on h",
            "rankview: rank 2: first to fail: exited with status 3",
        ],
        "{result:?}"
    );
    assert!(!result.stderr.contains("killed by a signal"), "{result:?}");
}

/// Item 6: a rank that could not write its status (its node does not see
/// the directory) is "status unknown", not "never started".
#[test]
fn a_rank_without_a_status_file_is_unknown() {
    let (_dir, mpirun) = fake_job_launcher();
    let result = run_fake_job(
        &mpirun,
        "3",
        "0|started pid=1 host=h\\nfailed: boom\\n\n1|started pid=2 host=h\\nok\\n",
        "",
        "1",
    );
    assert!(
        result.stderr.contains(
            "rankview: rank 2: status unknown: no report (it never started, or its node \
             cannot write to the status directory)"
        ),
        "{result:?}"
    );
    assert!(!result.stderr.contains("never started\n"), "{result:?}");
}

// ------------------------------------------ the summary on real jobs

/// Item 5 under real Open MPI: rank 2 exits 3 while the others wait; rank 2
/// is named first, by its exit status, and the others share one line.
#[test]
fn real_job_names_the_rank_that_exited_first() {
    let _lock = mpi_job_lock();
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "exit3.sh",
        r#"r="${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}}"
printf 'started pid=%s host=%s\n' $$ "$(hostname)" > "$RANKVIEW_STATUS_DIR/rank-$r"
if [ "$r" = "$FAIL_RANK" ]; then sleep 0.5; exit 3; fi
sleep 20"#,
    );
    for fail_rank in ["2", "0"] {
        let result = run(rankview()
            .args(["run", "-n", "4", program.to_str().unwrap()])
            .env("FAIL_RANK", fail_rank));
        assert_eq!(result.code, Some(3), "{result:?}");
        assert!(
            result.stderr.contains(&format!(
                "rankview: rank {fail_rank}: first to fail: exited with status 3\n"
            )),
            "{result:?}"
        );
        assert!(!result.stderr.contains("killed by a signal"), "{result:?}");
        let others = result
            .stderr
            .lines()
            .filter(|l| l.contains("ended without reporting"))
            .count();
        assert_eq!(others, 1, "one shared line for the others: {result:?}");
    }
}

// ------------------------------------------------ mpirun's conventions

/// A dry run under a fake Open MPI `mpirun`, in `dir` (the current
/// directory), with extra variables.
fn dry_run_openmpi(args: &[&str], dir: Option<&Path>, env: &[(&str, &str)]) -> Run {
    let (_fake_dir, mpirun) = fake_mpi("mpirun", "mpirun (Open MPI) 4.1.4");
    let mut command = rankview();
    command
        .args(["run", "--dry-run"])
        .args(args)
        .env("MPIEXEC", &mpirun)
        .env("HOME", "/nonexistent");
    for (key, value) in env {
        command.env(key, value);
    }
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let result = run(&mut command);
    assert_eq!(result.code, Some(0), "{result:?}");
    result
}

/// The MPI command line of a dry run (its last line).
fn command_line(result: &Run) -> &str {
    result.stdout.lines().last().unwrap_or("")
}

/// Item 7: a hostfile's slots decide, as with mpirun: `-n 3` on `slots=1`
/// gets no --oversubscribe, and a warning that mpirun will refuse. Issue
/// 22, item 11: bare lines (the `$PBS_NODEFILE` form) count one slot a
/// line, as mpirun counts them.
#[test]
fn hostfile_slots_are_not_overridden() {
    for (text, slots) in [("localhost slots=1\n", 1), ("localhost\nlocalhost\n", 2)] {
        hostfile_slots_decide(text, slots);
    }
}

fn hostfile_slots_decide(text: &str, slots: u32) {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    fs::write(&hosts, text).unwrap();
    let result = dry_run_openmpi(
        &[
            "-n",
            "3",
            "--hostfile",
            hosts.to_str().unwrap(),
            "/bin/true",
        ],
        None,
        &[],
    );
    assert!(
        !command_line(&result).contains("--oversubscribe"),
        "{result:?}"
    );
    assert!(
        result
            .stdout
            .contains("# no --oversubscribe added: the hostfile's slots decide"),
        "{result:?}"
    );
    assert!(
        result.stderr.contains(&format!(
            "rankview: warning: 3 ranks but {slots} slots in the hostfile: mpirun will refuse"
        )),
        "{result:?}"
    );
}

/// Item 8: a program in the current directory runs without `./`, as under
/// mpirun; it is passed on as `./NAME`.
#[test]
fn a_program_in_the_current_directory_is_found() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "my-app-in-cwd", "exit 0");
    let result = dry_run_openmpi(&["-n", "2", "my-app-in-cwd", "x"], Some(dir.path()), &[]);
    assert!(
        result
            .stdout
            .lines()
            .last()
            .unwrap()
            .ends_with(" ./my-app-in-cwd x"),
        "{result:?}"
    );
}

/// Item 9: a binding chosen through MCA variables, mca-params.conf or
/// `--map-by ...:PE=n` is left alone, and the dry run says why.
#[test]
fn a_binding_chosen_elsewhere_is_not_overridden() {
    let result = dry_run_openmpi(
        &["-n", "2", "/bin/true"],
        None,
        &[("OMPI_MCA_hwloc_base_binding_policy", "core")],
    );
    assert!(!command_line(&result).contains("--bind-to"), "{result:?}");
    assert!(
        result
            .stdout
            .contains("# no --bind-to none added: OMPI_MCA_hwloc_base_binding_policy=core binds\n"),
        "{result:?}"
    );
    let result = dry_run_openmpi(
        &["-n", "2", "--mpi-args", "--map-by slot:PE=2", "/bin/true"],
        None,
        &[],
    );
    assert!(!command_line(&result).contains("--bind-to"), "{result:?}");
    let home = tempfile::tempdir().unwrap();
    fs::create_dir_all(home.path().join(".openmpi")).unwrap();
    fs::write(
        home.path().join(".openmpi/mca-params.conf"),
        "hwloc_base_binding_policy = socket\n",
    )
    .unwrap();
    let result = dry_run_openmpi(
        &["-n", "2", "/bin/true"],
        None,
        &[("HOME", home.path().to_str().unwrap())],
    );
    assert!(!command_line(&result).contains("--bind-to"), "{result:?}");
    // Nothing chose: --bind-to none, said so.
    let result = dry_run_openmpi(&["-n", "2", "/bin/true"], None, &[]);
    assert!(
        result.stdout.contains("--bind-to none /bin/true"),
        "{result:?}"
    );
    assert!(
        result
            .stdout
            .contains("# --bind-to none: nothing else chose a binding"),
        "{result:?}"
    );
}

/// Item 10: everything after the program is its arguments (flags included,
/// no `--` needed); `--mpi-args` is split as a shell would; a spaced
/// `--mpi-arg` is warned about.
#[test]
fn arguments_after_the_program_are_the_programs() {
    let result = dry_run_openmpi(
        &[
            "-n",
            "2",
            "--mpi-args",
            "--mca btl 'tcp,self'",
            "/bin/echo",
            "-x",
            "--timeout",
            "3",
            "--",
            "y",
        ],
        None,
        &[],
    );
    assert!(
        result
            .stdout
            .lines()
            .last()
            .unwrap()
            .ends_with("--bind-to none --mca btl tcp,self /bin/echo -x --timeout 3 -- y"),
        "{result:?}"
    );
    let result = dry_run_openmpi(
        &["-n", "2", "--mpi-arg", "--mca btl tcp,self", "/bin/true"],
        None,
        &[],
    );
    assert!(
        result
            .stderr
            .contains("rankview: warning: --mpi-arg '--mca btl tcp,self' is passed as ONE word"),
        "{result:?}"
    );
}

/// Item 10 on a real job: mpirun accepts the split words, and the program
/// gets its flags.
#[test]
fn mpi_args_reach_a_real_mpirun() {
    let _lock = mpi_job_lock();
    let result = rankview_with(&[
        "run",
        "-n",
        "2",
        "--mpi-args",
        "--mca btl tcp,self",
        "/bin/echo",
        "hello",
        "--flag",
    ]);
    assert_eq!(result.code, Some(0), "{result:?}");
    assert_eq!(
        result.stdout.matches("hello --flag").count(),
        2,
        "{result:?}"
    );
}

/// Item 11: far more ranks than cores is accepted, with a warning.
#[test]
fn far_too_many_ranks_are_warned_about() {
    let result = dry_run_openmpi(&["-n", "500", "/bin/true"], None, &[]);
    assert!(
        result.stderr.contains("rankview: warning: 500 ranks on "),
        "{result:?}"
    );
    assert!(
        result.stderr.contains("start-up alone may take minutes"),
        "{result:?}"
    );
    let result = dry_run_openmpi(&["-n", "3", "/bin/true"], None, &[]);
    assert!(!result.stderr.contains("warning"), "{result:?}");
}

/// Item 13: under MPICH, `info` finds out the thread level (Debian's MPICH
/// grants MPI_THREAD_MULTIPLE) instead of saying "unknown". Needs MPICH's
/// `mpirun.mpich` (ci/test-mpich.sh installs it).
#[test]
fn info_knows_mpich_thread_support() {
    let result = run(rankview().args(["info"]).env("MPIEXEC", "mpirun.mpich"));
    assert_eq!(result.code, Some(0), "{result:?}");
    assert!(
        result.stdout.contains("MPI flavour:    MPICH (Hydra)"),
        "{result:?}"
    );
    let line = result
        .stdout
        .lines()
        .find(|l| l.starts_with("thread support:"))
        .unwrap();
    assert!(line.contains("MPI_THREAD_"), "{result:?}");
    assert!(!line.contains("unknown"), "{result:?}");
}

// ------------------------------- issue 22: srun, and whom the summary blames

/// Item 10: a rank that prints a line in mpirun's words (a log replayed, a
/// nested mpirun) does not choose the culprit: its stdout is not read, and
/// mpirun's own verdict, which comes last on stderr, wins.
#[test]
fn a_ranks_own_output_does_not_choose_the_culprit() {
    let (_dir, mpirun) = fake_job_launcher();
    let files = started_files(4, 100, "h");
    let replayed =
        "mpirun noticed that process rank 2 with PID 7 on node old exited on signal 9 (Killed).\n";
    let chatter = "  Exit code:    1\n".repeat(300);
    let says = format!(
        "{replayed}{chatter}mpirun detected that one or more processes exited with non-zero \
         status\n\n  Process name: [[51,1],1]\n  Exit code:    3\n"
    );
    let result = run(rankview()
        .args(["run", "-n", "4", "/bin/true"])
        .env("MPIEXEC", &mpirun)
        .env("FAKE_FILES", &files)
        .env("FAKE_OUT", replayed)
        .env("FAKE_SAYS", &says)
        .env("FAKE_EXIT", "3"));
    assert!(
        result
            .stderr
            .contains("rankview: rank 1: first to fail: exited with status 3\n"),
        "{result:?}"
    );
    assert!(!result.stderr.contains("rank 2: first"), "{result:?}");
}

/// Item 5: mpirun names an engine that exited only because the client
/// failed (its own line says so); the client is the first to fail, and
/// the engines that were only stopped (this version's words and earlier
/// ones') are not blamed at all.
#[test]
fn an_engine_failing_because_of_the_client_is_not_first() {
    let (_dir, mpirun) = fake_job_launcher();
    let files = "0|started pid=1 host=h\\nfailed: engine 1: task 3 (panic): boom\\n\n\
                 1|started pid=2 host=h\\nfailed: stopped by rank 0\\n\n\
                 2|started pid=3 host=h\\nfailed: the client on rank 0 failed\\n\n";
    let says = "  Process name: [[51,1],1]\n  Exit code:    1\n";
    let result = run_fake_job(&mpirun, "3", files, says, "1");
    let ours = our_lines(&result);
    assert_eq!(
        ours,
        [
            "rankview: rank 0: first to fail: engine 1: task 3 (panic): boom",
            ours.last().copied().unwrap_or(""),
        ],
        "{result:?}"
    );
}

/// Item 9: Hydra's banner names a process it may have killed itself while
/// cleaning up: not the first to fail. The summary says the first is not
/// known, and names the rank of the pid (with its host).
#[test]
fn hydra_names_no_first_rank() {
    let (_dir, hydra) = fake_job_launcher_as("mpiexec.hydra", "HYDRA build details:");
    let files = started_files(3, 21518, "vm");
    let banner = "=====\n=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES\n\
                  =   PID 21519 RUNNING AT vm\n=   EXIT CODE: 9\n=====\n\
                  YOUR APPLICATION TERMINATED WITH THE EXIT STRING: Killed (signal 9)\n";
    let result = run(rankview()
        .args(["run", "-n", "3", "/bin/true"])
        .env("MPIEXEC", &hydra)
        .env("FAKE_FILES", &files)
        .env("FAKE_OUT", banner)
        .env("FAKE_EXIT", "9"));
    assert!(!result.stderr.contains("first to fail"), "{result:?}");
    assert!(
        result.stderr.contains(
            "rankview: which rank failed first is not known: mpiexec.hydra names rank 1 (pid \
             21519 on vm), killed by SIGKILL (signal 9), which it may have killed itself\n"
        ),
        "{result:?}"
    );
    assert!(
        result
            .stderr
            .contains("rankview: ranks 0-2: ended without reporting on vm\n"),
        "{result:?}"
    );
}

/// Item 4: under srun the summary names the rank srun reported first.
#[test]
fn srun_names_the_rank_that_died() {
    let (dir, _srun) = fake_job_launcher_as("srun", "slurm 22.05.8");
    let files = started_files(3, 100, "vm");
    let says = "srun: error: vm: task 2: Killed\nsrun: Terminating StepId=5.0\n\
                srun: error: vm: tasks 0-1: Killed\n";
    let result = run(rankview()
        .args(["run", "/bin/true"])
        .env("PATH", path_with(dir.path()))
        .env("SLURM_JOB_ID", "5")
        .env("SLURM_NTASKS", "3")
        .env("FAKE_FILES", &files)
        .env("FAKE_SAYS", says)
        .env("FAKE_EXIT", "137"));
    let ours = our_lines(&result);
    assert_eq!(
        ours[..2],
        [
            "rankview: ranks 0-1: ended without reporting on vm",
            "rankview: rank 2: first to fail: killed by SIGKILL (signal 9)",
        ],
        "{result:?}"
    );
}

/// Item 2: under srun a SIGINT is passed on (srun was told
/// `--disable-status`, so it goes to the ranks); a second one sends srun
/// SIGTERM (it then SIGKILLs every rank, on every node), and only a third
/// kills srun.
#[test]
fn srun_is_sent_sigterm_before_it_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let srun = script(
        dir.path(),
        "srun",
        r#"if [ "$1" = --version ]; then echo "slurm 22.05.8"; exit 0; fi
if [ "$1" = --mpi=list ]; then exit 1; fi
echo "pid $$" >> "$FAKE_LOG"
echo "args $*" >> "$FAKE_LOG"
trap 'echo INT >> "$FAKE_LOG"' INT
trap 'echo TERM >> "$FAKE_LOG"' TERM
echo ready >> "$FAKE_LOG"
while :; do sleep 0.05; done"#,
    );
    let (child, started) = start_with_fake(&srun, &log, None);
    for _ in 0..3 {
        send("INT", &child.id().to_string());
        std::thread::sleep(Duration::from_millis(300));
    }
    let result = finished(child.wait_with_output().unwrap(), started);
    let (pid, _, signals) = fake_log(&log);
    assert_eq!(signals, ["INT", "TERM"], "{result:?}");
    assert!(
        fs::read_to_string(&log)
            .unwrap()
            .contains(" --disable-status /bin/true"),
        "{result:?}"
    );
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "{result:?}");
    assert_interrupted(&result, "SIGINT", 130);
}

/// Item 12: a `TMPDIR` that does not exist does not stop the job: the
/// status directory goes to /tmp (as the README says), and the ranks report.
/// (Open MPI creates a missing `TMPDIR` for its own files: it is one inside
/// a directory of the test's.)
#[test]
fn a_missing_tmpdir_falls_back_to_tmp() {
    let _lock = mpi_job_lock();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-made");
    let result = run(rankview()
        .args([
            "run",
            "-n",
            "2",
            "/bin/sh",
            "-c",
            "case \"$RANKVIEW_STATUS_DIR\" in /tmp/rankview-status-*) ;; *) exit 7;; esac",
        ])
        .env("TMPDIR", &missing));
    assert_eq!(result.code, Some(0), "{result:?}");
    assert!(!result.stderr.contains("warning"), "{result:?}");
}
