//! A crate of a user's own, built as the README says: the files the README's
//! "Use rankview in your crate" and "Testing your program" show are
//! `examples/sweep-crate`'s (checked here, so that the README stays true), a
//! copy of that crate in a temporary directory depends on this repository,
//! builds, runs under `rankview run --bin`, and its `#[rankview::test]`
//! tests pass under `cargo test` and `cargo nextest run`; a test file added
//! to it checks that a failing, an erroring and a hanging test fail with
//! their messages, that name filters hold, and that nothing of the killed
//! job is left running; another checks MPI inside tasks (`rankview::comm()`
//! on a direct view, `rc.groups(2)`) from the user's crate.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{launcher, target_dir, JobLock};

/// The repository (this package's directory).
fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The README's code blocks that name a file of the crate on their first
/// line (`# Cargo.toml`, `// src/main.rs`): `(path, text)`.
fn readme_files() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(repository().join("README.md")).expect("README.md");
    let mut files = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if !(line.starts_with("```toml") || line.starts_with("```rust")) {
            continue;
        }
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let Some(first) = body.first() else { continue };
        let named = first
            .strip_prefix("# ")
            .filter(|p| *p == "Cargo.toml")
            .or_else(|| first.strip_prefix("// ").filter(|p| p.ends_with(".rs")));
        if let Some(path) = named {
            files.push((path.to_string(), body.join("\n") + "\n"));
        }
    }
    files
}

/// The README's dependency line, and the example crate's.
const README_DEPENDENCY: &str =
    r#"rankview = { path = "/path/to/rankview" }   # this repository, until rankview is published"#;
const CRATE_DEPENDENCY: &str = r#"rankview = { path = "../.." }"#;

/// Tests the README does not show: how failures look.
const MEANT_TO_FAIL: &str = r#"
use rankview::Client;

#[rankview::test(ranks = 2)]
fn passes(rc: &Client) {
    assert_eq!(rc.len(), 1);
}

#[rankview::test(ranks = 3)]
fn fails_with_its_message(rc: &Client) {
    assert_eq!(rc.len(), 5, "expected five engines");
}

#[rankview::test(ranks = 2)]
fn returns_an_error(_rc: &Client) -> Result<(), String> {
    Err("the error the test returned".to_string())
}

#[rankview::test(ranks = 2, timeout = 5)]
fn hangs_forever(_rc: &Client) {
    std::thread::sleep(std::time::Duration::from_secs(3600));
}
"#;

/// MPI inside tasks, from a user's crate: the README's `psum` on a direct
/// view, and a task run SPMD on each group of `rc.groups(2)`.
const MPI_INSIDE: &str = r#"
use rankview::{Client, ReduceOp, Ref};

#[rankview::remote]
fn psum(part: &Vec<f64>) -> rankview::TaskResult<f64> {
    let comm = rankview::comm()?;
    Ok(comm.all_reduce(part.iter().sum::<f64>(), ReduceOp::Sum)?)
}

/// Each group's engines add up `x * (rank + 1)`; (group size, sum).
#[rankview::remote]
fn group_sum(x: u64) -> rankview::TaskResult<(usize, u64)> {
    let comm = rankview::comm()?;
    let sum = comm.all_reduce(x * (comm.rank() as u64 + 1), ReduceOp::Sum)?;
    Ok((comm.size(), sum))
}

#[rankview::test(ranks = 4)]
fn psum_matches_a_local_sum(rc: &Client) -> rankview::Result<()> {
    let dv = rc.all();
    let a: Vec<f64> = (0..1000).map(|i| i as f64 * 0.25).collect();
    dv.scatter("a", &a).get()?;
    let sums = dv.apply_sync(psum, (Ref::<Vec<f64>>::new("a"),))?;
    let local: f64 = a.iter().sum();
    assert_eq!(sums.len(), 3);
    assert!(sums.iter().all(|s| (s - local).abs() < 1e-9), "{sums:?} vs {local}");
    Ok(())
}

#[rankview::test(ranks = 5)]
fn groups_of_two_run_each_task_together(rc: &Client) -> rankview::Result<()> {
    let groups = rc.groups(2)?;
    let xs: Vec<u64> = (1..=12).collect();
    let got = groups.chunksize(1).map_sync(group_sum, xs.clone())?;
    assert_eq!(got, xs.iter().map(|&x| (2, 3 * x)).collect::<Vec<_>>());
    // A result's metadata: the leader's, then its member's.
    let ar = groups.apply(group_sum, (5,));
    assert_eq!(ar.get()?, (2, 15));
    let engines: Vec<usize> = ar.metadata().iter().map(|m| m.engine).collect();
    assert!(engines == [0, 1] || engines == [2, 3], "{engines:?}");
    Ok(())
}
"#;

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.env("CARGO_TARGET_DIR", target_dir());
    command
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "status: {}\n---- stdout ----\n{}---- stderr ----\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A copy of `examples/sweep-crate` depending on this repository, with this
/// repository's lock file (the same dependency versions, already built).
fn fresh_crate() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let from = repository().join("examples/sweep-crate");
    for path in ["Cargo.toml", "src/lib.rs", "src/main.rs", "tests/sweep.rs"] {
        let text = std::fs::read_to_string(from.join(path)).expect("the example crate's file");
        let text = text.replace(
            CRATE_DEPENDENCY,
            &format!(
                "rankview = {{ path = {:?} }}",
                repository().display().to_string()
            ),
        );
        let to = dir.path().join(path);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("a directory");
        std::fs::write(to, text).expect("a written file");
    }
    std::fs::copy(
        repository().join("Cargo.lock"),
        dir.path().join("Cargo.lock"),
    )
    .expect("the lock file");
    dir
}

fn processes_named(name: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-a", "-f", name])
        .output()
        .expect("pgrep runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // A zombie is gone but for its exit status, which its parent (or
        // init) has not read yet.
        .filter(|l| !l.contains("pgrep") && !l.ends_with("<defunct>"))
        .map(String::from)
        .collect()
}

#[test]
fn the_readme_shows_the_example_crate() {
    let shown = readme_files();
    let paths: Vec<&str> = shown.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["Cargo.toml", "src/lib.rs", "src/main.rs", "tests/sweep.rs"],
        "the README's crate files"
    );
    let crate_dir = repository().join("examples/sweep-crate");
    for (path, text) in shown {
        let file = std::fs::read_to_string(crate_dir.join(&path)).expect("the crate's file");
        let file = file.replace(CRATE_DEPENDENCY, README_DEPENDENCY);
        assert_eq!(
            text, file,
            "README's {path} differs from examples/sweep-crate/{path}"
        );
    }
}

#[test]
fn a_fresh_crate_builds_runs_and_tests_as_the_readme_says() {
    let dir = fresh_crate();
    let at = dir.path();
    let built = run(cargo().current_dir(at).arg("build"));
    assert!(built.status.success(), "cargo build\n{}", text(&built));

    let ran = {
        let _lock = JobLock::acquire();
        run(Command::new(launcher())
            .current_dir(at)
            .env("CARGO_TARGET_DIR", target_dir())
            .args(["run", "-n", "4", "--bin", "sweep"]))
    };
    let out = text(&ran);
    assert!(ran.status.success(), "rankview run --bin sweep\n{out}");
    let best: Vec<&str> = out.lines().filter(|l| l.starts_with("best: ")).collect();
    assert_eq!(best.len(), 1, "only rank 0 goes on after launch\n{out}");

    let tested = run(cargo().current_dir(at).args(["test", "--test", "sweep"]));
    assert_passed(
        &tested,
        &[
            "engines_agree_with_a_local_run",
            "one_engine_is_enough",
            "the_grid_has_every_combination",
        ],
    );

    // Over TCP only, as between nodes.
    let tcp = run(cargo()
        .current_dir(at)
        .args(["test", "--test", "sweep"])
        .env("RANKVIEW_TEST_MPI_ARGS", "--mca btl tcp,self"));
    let out = text(&tcp);
    assert!(tcp.status.success(), "cargo test over TCP\n{out}");
    assert!(out.contains("3 passed; 0 failed"), "{out}");

    let nextest = run(cargo()
        .current_dir(at)
        .args(["nextest", "run", "--test", "sweep"]));
    let out = text(&nextest);
    assert!(nextest.status.success(), "cargo nextest run\n{out}");
    assert!(out.contains("3 tests run: 3 passed"), "{out}");
}

/// `cargo test` succeeded, with each of `names` passed and nothing else
/// run.
#[track_caller]
fn assert_passed(tested: &Output, names: &[&str]) {
    let out = text(tested);
    assert!(tested.status.success(), "cargo test\n{out}");
    for name in names {
        assert!(
            out.contains(&format!("test {name} ... ok")),
            "{name}\n{out}"
        );
    }
    let count = format!("{} passed; 0 failed", names.len());
    assert!(out.contains(&count), "{out}");
}

/// A fresh crate with `tests/{name}.rs` added, and what `cargo test --test
/// {name}` in it printed.
fn with_test_file(name: &str, source: &str) -> (tempfile::TempDir, Output) {
    let dir = fresh_crate();
    std::fs::write(dir.path().join(format!("tests/{name}.rs")), source).expect("a test file");
    let tested = run(cargo()
        .current_dir(dir.path())
        .args(["test", "--test", name]));
    (dir, tested)
}

#[test]
fn failing_erroring_and_hanging_tests_fail_with_their_messages() {
    let (dir, tested) = with_test_file("meant_to_fail", MEANT_TO_FAIL);
    let at = dir.path();
    let out = text(&tested);
    assert!(!tested.status.success(), "failing tests must fail\n{out}");
    assert!(out.contains("test passes ... ok"), "{out}");
    for name in [
        "fails_with_its_message",
        "returns_an_error",
        "hangs_forever",
    ] {
        assert!(
            out.contains(&format!("test {name} ... FAILED")),
            "{name}\n{out}"
        );
    }
    assert!(
        out.contains("fails_with_its_message: panic: assertion `left == right` failed: expected five engines"),
        "the client's panic message\n{out}"
    );
    assert!(
        out.contains("returns_an_error: the error the test returned"),
        "the client's error\n{out}"
    );
    assert!(
        out.contains("hangs_forever: timed out: the MPI job ran longer than 5s and was killed"),
        "the time limit\n{out}"
    );
    assert!(out.contains("1 passed; 3 failed"), "{out}");
    let left = processes_named("meant_to_fail-");
    assert!(
        left.is_empty(),
        "processes of the killed job are left: {left:?}"
    );

    // A name filter runs that test alone.
    let filtered = run(cargo()
        .current_dir(at)
        .args(["test", "--test", "meant_to_fail", "passes"]));
    let out = text(&filtered);
    assert!(filtered.status.success(), "{out}");
    assert!(
        out.contains("1 passed; 0 failed; 0 ignored; 0 measured; 3 filtered out"),
        "{out}"
    );
}

#[test]
fn mpi_inside_tasks_works_from_a_fresh_crate() {
    let (_dir, tested) = with_test_file("mpi_inside", MPI_INSIDE);
    assert_passed(
        &tested,
        &[
            "psum_matches_a_local_sum",
            "groups_of_two_run_each_task_together",
        ],
    );
}
