//! End-to-end tests of `rankview batch` and of `rankview run` inside a batch
//! allocation: every generated script passes `bash -n` and is then run by
//! bash against fake `srun`/`mpirun`/`mpiexec` executables that record
//! their arguments, environment and directory (and, for PBS, once against
//! the real `mpirun`); `--submit` against fake `sbatch` and `qsub`; a
//! missing scheduler; bad input. The harness is `common`'s.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

const OPEN_MPI: &str = "mpirun (Open MPI) 4.1.4";
const HYDRA: &str = "HYDRA build details:\n    Version: 4.0.2";
const SLURM: &str = "slurm 23.02.6";

/// The script `rankview batch ARGS` prints, after checking it succeeded and
/// that `bash -n` accepts it.
fn batch_script(args: &[&str], path: &str) -> String {
    let result = run(rankview().arg("batch").args(args).env("PATH", path));
    assert_eq!(result.code, Some(0), "{result:?}");
    assert_no_panic(&result);
    let (ok, why) = bash_n(&result.stdout);
    assert!(ok, "bash -n refused the script: {why}{result:?}");
    result.stdout
}

/// Runs `script` with bash as a batch system would, with `env` set and
/// `PATH` as given, and returns its exit code and output.
fn run_script(script: &str, path: &str, env: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("job.sh");
    fs::write(&file, script).unwrap();
    let mut command = Command::new("bash");
    command
        .arg(&file)
        .env("PATH", path)
        .env_remove("OMP_NUM_THREADS")
        .stdin(Stdio::null())
        .current_dir(dir.path());
    for (key, value) in env {
        command.env(key, value);
    }
    run(&mut command)
}

/// The last line of a script (its launch line).
fn launch_line(script: &str) -> &str {
    script.lines().last().unwrap()
}

/// The issue's own example: `rankview batch slurm --example quickstart -n
/// 64 --time 00:10:00` builds the example and prints a script that bash
/// accepts, running the built binary by its absolute path under srun.
#[test]
fn slurm_script_for_the_quickstart_example() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // <target>/<profile>/rankview
    let target = Path::new(env!("CARGO_BIN_EXE_rankview"))
        .parent()
        .and_then(Path::parent)
        .unwrap();
    let result = run(rankview()
        .args(["batch", "slurm", "--example", "quickstart", "-n", "64"])
        .args(["--time", "00:10:00"])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(workspace));
    assert_eq!(result.code, Some(0), "{result:?}");
    let script = &result.stdout;
    let (ok, why) = bash_n(script);
    assert!(ok, "bash -n refused the script: {why}{result:?}");
    let binary = target.join("debug/examples/quickstart");
    assert!(binary.is_file(), "{} was not built", binary.display());
    for line in [
        "#!/bin/bash\n",
        "#SBATCH --job-name=quickstart\n",
        "#SBATCH --ntasks=64\n",
        "#SBATCH --cpus-per-task=2\n",
        "#SBATCH --time=00:10:00\n",
        "#SBATCH --output=quickstart-%j.out\n",
        "export OMP_NUM_THREADS=1\n",
    ] {
        assert!(script.contains(line), "{line:?} missing{result:?}");
    }
    // The example links Open MPI, which needs srun's PMIx plugin; a rank
    // that dies ends the job.
    assert_eq!(
        launch_line(script),
        format!(
            "srun --cpus-per-task=2 --cpu-bind=cores --kill-on-bad-exit=1 --mpi=pmix {}",
            binary.display()
        ),
        "{result:?}"
    );
    assert!(
        script.contains("# --mpi=pmix: the program links Open MPI, which speaks pmix under srun"),
        "{result:?}"
    );
    assert!(!script.contains("cargo"), "{result:?}");
}

/// The Slurm script, run by bash with a fake `srun`: srun gets the CPUs per
/// rank, the binding, the MPI words, the absolute program and its
/// arguments; the ranks get `OMP_NUM_THREADS`.
#[test]
fn slurm_script_runs_srun_with_two_cpus_per_rank() {
    let fakes = tempfile::tempdir().unwrap();
    recording_fake(fakes.path(), "srun", SLURM, "", 0);
    recording_fake(fakes.path(), "mpirun", OPEN_MPI, "", 0);
    let path = path_with(fakes.path());
    let script = batch_script(
        &[
            "slurm",
            "-N",
            "2",
            "--tasks-per-node",
            "3",
            "-p",
            "short",
            "-A",
            "proj7",
            "-J",
            "analysis",
            "--log",
            "logs/run.out",
            "--mpi-arg=--mpi=pmix",
            "echo",
            "a b",
            "$HOME",
        ],
        &path,
    );
    for line in [
        "#SBATCH --job-name=analysis\n#SBATCH --nodes=2\n#SBATCH --ntasks=6\n\
         #SBATCH --ntasks-per-node=3\n#SBATCH --cpus-per-task=2\n#SBATCH --time=01:00:00\n\
         #SBATCH --partition=short\n#SBATCH --account=proj7\n#SBATCH --output=logs/run.out\n",
        "rank 0 runs the client, ranks 1-5 are engines",
    ] {
        assert!(script.contains(line), "{line:?} missing:\n{script}");
    }
    let result = run_script(&script, &path, &[("SLURM_JOB_ID", "99")]);
    assert_eq!(result.code, Some(0), "{result:?}\n{script}");
    let srun = Recorded::of(fakes.path(), "srun").expect("srun never ran");
    assert_eq!(
        srun.args,
        [
            "--cpus-per-task=2",
            "--cpu-bind=cores",
            "--kill-on-bad-exit=1",
            "--mpi=pmix",
            "/usr/bin/echo",
            "a b",
            "$HOME"
        ],
        "{script}"
    );
    assert!(
        script.contains("# no --mpi added: --mpi=pmix chooses srun's PMI plugin\n"),
        "{script}"
    );
    assert_eq!(srun.var("OMP_NUM_THREADS"), Some("1"), "{script}");
}

/// `--cpus-per-rank 6`: six CPUs per task, five OpenMP threads for tasks.
#[test]
fn cpus_per_rank_sets_the_cpus_and_omp_threads() {
    let fakes = tempfile::tempdir().unwrap();
    recording_fake(fakes.path(), "srun", SLURM, "", 0);
    let path = path_with(fakes.path());
    let script = batch_script(
        &[
            "slurm",
            "-n",
            "4",
            "--cpus-per-rank",
            "6",
            "--time",
            "1-12",
            "/bin/true",
        ],
        &path,
    );
    assert!(script.contains("#SBATCH --cpus-per-task=6\n"), "{script}");
    assert!(script.contains("#SBATCH --time=1-12:00:00\n"), "{script}");
    run_script(&script, &path, &[]);
    let srun = Recorded::of(fakes.path(), "srun").unwrap();
    assert_eq!(srun.args[0], "--cpus-per-task=6");
    assert_eq!(srun.var("OMP_NUM_THREADS"), Some("5"));
}

/// A directory for a PBS job: a node file with `slots` lines, and the
/// submission directory.
fn pbs_job_dirs(slots: usize) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let nodefile = dir.path().join("nodes");
    fs::write(&nodefile, "localhost\n".repeat(slots)).unwrap();
    let workdir = dir.path().join("submitted-here");
    fs::create_dir(&workdir).unwrap();
    (dir, nodefile, workdir)
}

/// The PBS script with Open MPI, run by bash with a fake `mpirun`: it runs
/// in `$PBS_O_WORKDIR`, gets `$PBS_NODEFILE` as its hostfile, two cores
/// per rank, and passes `OMP_NUM_THREADS` on.
#[test]
fn pbs_script_runs_mpirun_on_the_node_file() {
    let fakes = tempfile::tempdir().unwrap();
    let mpirun = recording_fake(fakes.path(), "mpirun", OPEN_MPI, "", 0);
    let path = path_with(fakes.path());
    let script = batch_script(
        &[
            "pbs",
            "-n",
            "4",
            "--queue",
            "workq",
            "-A",
            "p1",
            "-t",
            "90",
            "/bin/echo",
            "hi",
        ],
        &path,
    );
    for line in [
        "#PBS -N echo\n#PBS -l select=4:ncpus=2:mpiprocs=1\n#PBS -l walltime=01:30:00\n\
         #PBS -q workq\n#PBS -A p1\n#PBS -j oe\n",
        "cd \"$PBS_O_WORKDIR\" || exit 1\n",
    ] {
        assert!(script.contains(line), "{line:?} missing:\n{script}");
    }
    let (_dir, nodefile, workdir) = pbs_job_dirs(4);
    let nodefile_text = nodefile.to_str().unwrap();
    let result = run_script(
        &script,
        &path,
        &[
            ("PBS_NODEFILE", nodefile_text),
            ("PBS_O_WORKDIR", workdir.to_str().unwrap()),
        ],
    );
    assert_eq!(result.code, Some(0), "{result:?}\n{script}");
    let recorded = Recorded::of(fakes.path(), "mpirun").expect("mpirun never ran");
    assert_eq!(
        recorded.args,
        [
            "-n",
            "4",
            "--hostfile",
            nodefile_text,
            "--map-by",
            "slot:PE=2",
            "--bind-to",
            "core",
            "-x",
            "OMP_NUM_THREADS",
            "/bin/echo",
            "hi"
        ],
        "{script}"
    );
    assert_eq!(recorded.cwd, workdir);
    assert_eq!(recorded.var("OMP_NUM_THREADS"), Some("1"));
    assert!(launch_line(&script).starts_with(&format!("{} -n 4", mpirun.display())));
}

/// PBS with MPICH's Hydra (chosen by `$MPIEXEC`): `-f $PBS_NODEFILE` and
/// `-bind-to core:2`; with nodes and ranks per node, one chunk per node.
#[test]
fn pbs_script_with_mpich_and_nodes() {
    let fakes = tempfile::tempdir().unwrap();
    let mpiexec = recording_fake(fakes.path(), "mpiexec.hydra", HYDRA, "", 0);
    let path = path_with(fakes.path());
    let result = run(rankview()
        .args([
            "batch",
            "pbs",
            "-N",
            "2",
            "--tasks-per-node",
            "2",
            "/bin/true",
        ])
        .env("PATH", &path)
        .env("MPIEXEC", &mpiexec));
    assert_eq!(result.code, Some(0), "{result:?}");
    let script = result.stdout;
    assert!(bash_n(&script).0, "{script}");
    assert!(
        script.contains("#PBS -l select=2:ncpus=4:mpiprocs=2\n#PBS -l place=scatter\n"),
        "{script}"
    );
    let (_dir, nodefile, workdir) = pbs_job_dirs(4);
    let nodefile_text = nodefile.to_str().unwrap();
    run_script(
        &script,
        &path,
        &[
            ("PBS_NODEFILE", nodefile_text),
            ("PBS_O_WORKDIR", workdir.to_str().unwrap()),
        ],
    );
    let recorded = Recorded::of(fakes.path(), "mpiexec.hydra").expect("mpiexec never ran");
    assert_eq!(
        recorded.args,
        [
            "-n",
            "4",
            "-f",
            nodefile_text,
            "-bind-to",
            "core:2",
            "/bin/true"
        ],
        "{script}"
    );
}

/// The PBS script runs for real under the installed Open MPI: two ranks on
/// the two lines of a node file (one CPU each, as this machine may have
/// only two), in the submission directory, with `OMP_NUM_THREADS`.
#[test]
fn pbs_script_runs_a_real_job() {
    let _lock = mpi_job_lock();
    let path = std::env::var("PATH").unwrap();
    let script = batch_script(
        &[
            "pbs",
            "-n",
            "2",
            "--cpus-per-rank",
            "1",
            "/bin/sh",
            "-c",
            "echo rank=$OMPI_COMM_WORLD_RANK omp=$OMP_NUM_THREADS dir=$(pwd)",
        ],
        &path,
    );
    let (_dir, nodefile, workdir) = pbs_job_dirs(2);
    let mut env = vec![
        ("PBS_NODEFILE", nodefile.to_str().unwrap()),
        ("PBS_O_WORKDIR", workdir.to_str().unwrap()),
    ];
    if is_root() {
        env.push(("OMPI_ALLOW_RUN_AS_ROOT", "1"));
        env.push(("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"));
    }
    let result = run_script(&script, &path, &env);
    assert_eq!(result.code, Some(0), "{result:?}\n{script}");
    for rank in 0..2 {
        let line = format!("rank={rank} omp=1 dir={}", workdir.display());
        assert!(
            result.stdout.contains(&line),
            "{line:?}{result:?}\n{script}"
        );
    }
}

/// `--submit` pipes the script to `sbatch --parsable` and prints the job id
/// alone; with `-o FILE` it writes the file (executable) and submits it by
/// name.
#[test]
fn submit_hands_the_script_to_sbatch() {
    let fakes = tempfile::tempdir().unwrap();
    recording_fake(fakes.path(), "sbatch", SLURM, "4242;cluster2", 0);
    let path = path_with(fakes.path());
    let printed = batch_script(&["slurm", "-n", "4", "/bin/true"], &path);

    let result = run(rankview()
        .args(["batch", "slurm", "-n", "4", "--submit", "/bin/true"])
        .env("PATH", &path));
    assert_eq!(result.code, Some(0), "{result:?}");
    assert_eq!(result.stdout, "4242\n", "{result:?}");
    let sbatch = Recorded::of(fakes.path(), "sbatch").expect("sbatch never ran");
    assert_eq!(sbatch.args, ["--parsable"]);
    assert_eq!(sbatch.stdin, printed);

    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("job.sbatch");
    let result = run(rankview()
        .args(["batch", "slurm", "-n", "4", "--submit", "--script"])
        .arg(&file)
        .arg("/bin/true")
        .env("PATH", &path));
    assert_eq!(result.code, Some(0), "{result:?}");
    assert_eq!(result.stdout, "4242\n", "{result:?}");
    let sbatch = Recorded::of(fakes.path(), "sbatch").unwrap();
    assert_eq!(sbatch.args, ["--parsable", file.to_str().unwrap()]);
    assert_eq!(fs::read_to_string(&file).unwrap(), printed);
    let mode = fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o100, 0o100, "not executable: {mode:o}");
}

/// `--script FILE` alone writes the script and prints nothing.
#[test]
fn script_file_gets_the_script() {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("job.sh");
    let result = run(rankview()
        .args(["batch", "slurm", "-n", "3", "--script"])
        .arg(&file)
        .arg("/bin/true"));
    assert_eq!(result.code, Some(0), "{result:?}");
    assert_eq!(result.stdout, "", "{result:?}");
    let script = fs::read_to_string(&file).unwrap();
    assert!(bash_n(&script).0, "{script}");
    assert!(script.contains("#SBATCH --ntasks=3\n"), "{script}");
}

/// `-o`/`-e` mean what they mean to sbatch and qsub: the job's output and
/// error files (`%j` kept for sbatch); `--directive` writes any further
/// directive as it is.
#[test]
fn output_error_and_directives_are_the_schedulers() {
    let slurm = run(rankview().args([
        "batch",
        "slurm",
        "-n",
        "3",
        "-o",
        "run-%j.out",
        "-e",
        "run-%j.err",
        "--directive=--mem=8G",
        "--directive",
        "--gres=gpu:1",
        "--directive=--exclusive",
        "/bin/true",
    ]));
    assert_eq!(slurm.code, Some(0), "{slurm:?}");
    for line in [
        "#SBATCH --output=run-%j.out\n",
        "#SBATCH --error=run-%j.err\n",
        "#SBATCH --mem=8G\n#SBATCH --gres=gpu:1\n#SBATCH --exclusive\n",
    ] {
        assert!(slurm.stdout.contains(line), "{line:?} in {slurm:?}");
    }
    assert!(
        !std::path::Path::new("run-%j.out").exists(),
        "a file named like the log"
    );
    assert!(bash_n(&slurm.stdout).0, "{slurm:?}");
    let pbs = run(rankview().args([
        "batch",
        "pbs",
        "-n",
        "3",
        "-o",
        "run.out",
        "-e",
        "run.err",
        "--directive",
        "-l mem=8gb",
        "/bin/true",
    ]));
    assert_eq!(pbs.code, Some(0), "{pbs:?}");
    for line in [
        "#PBS -e run.err\n",
        "#PBS -o run.out\n",
        "#PBS -l mem=8gb\n",
    ] {
        assert!(pbs.stdout.contains(line), "{line:?} in {pbs:?}");
    }
    assert!(!pbs.stdout.contains("#PBS -j oe"), "{pbs:?}");
    // A directive must be one line starting with a dash.
    for bad in ["mem=8G", "--mem=8G\n/bin/rm -rf /", ""] {
        let result =
            run(rankview().args(["batch", "slurm", "-n", "2", "--directive", bad, "/bin/true"]));
        assert_clear_error(&result, 2, "--directive");
    }
}

/// `--submit` for PBS pipes the script to `qsub` and prints its job id.
#[test]
fn submit_hands_the_script_to_qsub() {
    let fakes = tempfile::tempdir().unwrap();
    recording_fake(fakes.path(), "mpirun", OPEN_MPI, "", 0);
    recording_fake(
        fakes.path(),
        "qsub",
        "pbs_version = 22.05",
        "77.pbs-server",
        0,
    );
    let path = path_with(fakes.path());
    let result = run(rankview()
        .args(["batch", "pbs", "-n", "4", "--submit", "/bin/true"])
        .env("PATH", &path));
    assert_eq!(result.code, Some(0), "{result:?}");
    assert_eq!(result.stdout, "77.pbs-server\n", "{result:?}");
    let qsub = Recorded::of(fakes.path(), "qsub").expect("qsub never ran");
    assert!(qsub.args.is_empty(), "{:?}", qsub.args);
    assert!(qsub.stdin.starts_with("#!/bin/bash\n"), "{}", qsub.stdin);
    assert!(qsub.stdin.contains("#PBS -l select=4:ncpus=2:mpiprocs=1\n"));
}

/// No `sbatch`/`qsub` on PATH: one clear line, exit 1, nothing printed.
#[test]
fn submit_without_the_scheduler_is_one_clear_line() {
    let fakes = tempfile::tempdir().unwrap();
    recording_fake(fakes.path(), "mpirun", OPEN_MPI, "", 0);
    // Only the fakes: this machine may have Slurm or PBS installed.
    let path = fakes.path().as_os_str().to_os_string();
    for (scheduler, command) in [("slurm", "sbatch"), ("pbs", "qsub")] {
        let result = run(rankview()
            .args(["batch", scheduler, "-n", "2", "--submit", "/bin/true"])
            .env("PATH", &path));
        assert_clear_error(&result, 1, &format!("{command} not found on PATH"));
        assert_eq!(result.stderr.lines().count(), 1, "{result:?}");
        assert_eq!(result.stdout, "", "{result:?}");
    }
}

/// A scheduler that refuses the job: its message, exit 1.
#[test]
fn a_refused_submission_is_reported() {
    let fakes = tempfile::tempdir().unwrap();
    script(
        fakes.path(),
        "sbatch",
        "cat >/dev/null; echo 'sbatch: error: invalid partition specified: nope' >&2; exit 1",
    );
    let result = run(rankview()
        .args([
            "batch",
            "slurm",
            "-n",
            "2",
            "-p",
            "nope",
            "--submit",
            "/bin/true",
        ])
        .env("PATH", path_with(fakes.path())));
    assert_clear_error(
        &result,
        1,
        "sbatch refused the job (exit status: 1): sbatch: error: invalid partition specified: nope",
    );
}

#[test]
fn batch_bad_input_is_a_usage_error() {
    for (args, fragment) in [
        (&["batch", "slurm", "/bin/true"][..], "say how many ranks"),
        (&["batch", "lsf", "-n", "2", "/bin/true"], "lsf"),
        (
            &["batch", "slurm", "-n", "1", "/bin/true"],
            "at least 2 ranks",
        ),
        (
            &[
                "batch",
                "slurm",
                "-n",
                "9",
                "-N",
                "2",
                "--tasks-per-node",
                "4",
                "/bin/true",
            ],
            "does not fit",
        ),
        (
            &["batch", "slurm", "-n", "2", "--time", "0", "/bin/true"],
            "more than 0",
        ),
        (
            &["batch", "slurm", "-n", "2", "--time", "soon", "/bin/true"],
            "time limit",
        ),
        (
            &[
                "batch",
                "slurm",
                "-n",
                "2",
                "--partition",
                "a\nsrun evil",
                "/bin/true",
            ],
            "without spaces",
        ),
        (
            &["batch", "slurm", "-n", "2", "-J", "1st", "/bin/true"],
            "starting with a letter",
        ),
        (
            &["batch", "slurm", "-n", "2", "--release", "/bin/true"],
            "--release",
        ),
        (
            &["batch", "slurm", "-n", "2"],
            "<PROGRAM [ARGS]|--example <NAME>|--bin <NAME>>",
        ),
    ] {
        let result = rankview_with(args);
        assert_clear_error(&result, 2, fragment);
    }
    let result = rankview_with(&["batch", "slurm", "-n", "2", "/nonexistent/app"]);
    assert_clear_error(&result, 127, "program not found: /nonexistent/app");
}

// ------------------------------------------ `rankview run` in an allocation

/// Inside a Slurm allocation without `-n`, `run` starts `srun -n
/// $SLURM_NTASKS` (a fake that records what it got), and says so in
/// `--dry-run`; `-n` still wins.
#[test]
fn run_inside_slurm_uses_srun_and_the_allocation_size() {
    let fakes = tempfile::tempdir().unwrap();
    let srun = recording_fake(fakes.path(), "srun", SLURM, "", 0);
    recording_fake(fakes.path(), "mpirun", OPEN_MPI, "", 0);
    let path = path_with(fakes.path());
    let in_slurm = |command: &mut Command| {
        command
            .env("PATH", &path)
            .env("SLURM_JOB_ID", "1234")
            .env("SLURM_NTASKS", "6");
    };
    let mut command = rankview();
    command.args(["run", "/bin/true"]);
    in_slurm(&mut command);
    let result = run(&mut command);
    assert_eq!(result.code, Some(0), "{result:?}");
    let recorded = Recorded::of(fakes.path(), "srun").expect("srun never ran");
    assert_eq!(
        recorded.args,
        [
            "-n",
            "6",
            "--kill-on-bad-exit=1",
            "--mpi=pmix",
            "--disable-status",
            "/bin/true"
        ],
        "{result:?}"
    );
    assert_eq!(recorded.var("RANKVIEW_LAUNCHER"), Some("1"));
    assert!(recorded.var("RANKVIEW_STATUS_DIR").is_some());

    let mut command = rankview();
    command.args(["run", "--dry-run", "/bin/true"]);
    in_slurm(&mut command);
    let result = run(&mut command);
    assert!(
        result
            .stdout
            .contains("# -n 6: the Slurm allocation's tasks (SLURM_NTASKS)\n"),
        "{result:?}"
    );
    assert!(
        launch_line(&result.stdout).starts_with(&format!("{} -n 6 --kill", srun.display())),
        "{result:?}"
    );

    let mut command = rankview();
    command.args(["run", "-n", "3", "--dry-run", "/bin/true"]);
    in_slurm(&mut command);
    let result = run(&mut command);
    assert!(
        launch_line(&result.stdout).starts_with(&format!("{} -n 3 --kill", srun.display())),
        "{result:?}"
    );
    assert!(!result.stdout.contains("SLURM_NTASKS"), "{result:?}");

    // Item 6 of issue 22: `salloc -N 2` without a task count: the
    // allocation's CPUs, and the dry run says where the number came from.
    let result = run(rankview()
        .args(["run", "--dry-run", "/bin/true"])
        .env("PATH", &path)
        .env("SLURM_JOB_ID", "1234")
        .env("SLURM_NNODES", "2")
        .env("SLURM_JOB_CPUS_PER_NODE", "4(x2)"));
    assert!(
        result
            .stdout
            .contains("# -n 8: the Slurm allocation's CPUs (SLURM_JOB_CPUS_PER_NODE=4(x2))\n"),
        "{result:?}"
    );
    assert!(
        launch_line(&result.stdout).starts_with(&format!("{} -n 8 ", srun.display())),
        "{result:?}"
    );
}

/// Item 8 of issue 22: a PROGRAM in the current directory is written by
/// its absolute path without `./` in it.
#[test]
fn a_program_in_the_current_directory_is_written_plainly() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "hello", "exit 0");
    let result = run(rankview()
        .args(["batch", "slurm", "-n", "2", "hello"])
        .current_dir(dir.path()));
    assert_eq!(result.code, Some(0), "{result:?}");
    let line = launch_line(&result.stdout);
    let expected = format!(" {}", dir.path().join("hello").display());
    assert!(line.ends_with(&expected), "{result:?}");
    assert!(!line.contains("/./"), "{result:?}");
}

/// Inside a PBS job without `-n`, `run` gives the MPI launcher the node file
/// as its hostfile and as many ranks as it has lines.
#[test]
fn run_inside_pbs_uses_the_node_file() {
    let fakes = tempfile::tempdir().unwrap();
    recording_fake(fakes.path(), "mpirun", OPEN_MPI, "", 0);
    let (_dir, nodefile, _) = pbs_job_dirs(5);
    let nodefile_text = nodefile.to_str().unwrap();
    let result = run(rankview()
        .args(["run", "/bin/true"])
        .env("PATH", path_with(fakes.path()))
        .env("PBS_JOBID", "17.server")
        .env("PBS_NODEFILE", &nodefile));
    assert_eq!(result.code, Some(0), "{result:?}");
    let recorded = Recorded::of(fakes.path(), "mpirun").expect("mpirun never ran");
    let args = recorded.args.join(" ");
    assert!(
        args.starts_with(&format!(
            "-n 5 --hostfile {nodefile_text} -x RANKVIEW_LAUNCHER"
        )),
        "{args}{result:?}"
    );
    assert!(!args.contains("--oversubscribe"), "{args}");
    assert!(args.ends_with("/bin/true"), "{args}");

    let result = run(rankview()
        .args(["run", "--dry-run", "/bin/true"])
        .env("PATH", path_with(fakes.path()))
        .env("PBS_JOBID", "17.server")
        .env("PBS_NODEFILE", &nodefile));
    for note in [
        format!("# -n 5: the PBS allocation's slots (lines of PBS_NODEFILE={nodefile_text})\n"),
        format!("# hosts from the PBS allocation (PBS_NODEFILE={nodefile_text})\n"),
    ] {
        assert!(result.stdout.contains(&note), "{note:?}{result:?}");
    }
}
