//! Jobs that must fail, and how: quickly, non-zero, saying why.
//!
//! `tests/programs/check_failures.rs` in each of its modes on 2, 3 and 5
//! ranks (a client returning `Err` or panicking while 60 s tasks run; a
//! task's panic propagated with `?`; a task's panic handled, which must
//! still exit 0), a job of one rank, and an MPMD job whose ranks run
//! different binaries. Hangs are caught by the harness's timeout (`common`).

mod common;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::time::Duration;

use common::{example, mpirun, mpirun_args, Run};

/// A failing job must end well before its 60 s task would have.
const FAIL_FAST: Duration = Duration::from_secs(30);

/// The line where rank 0 says why the client failed, if it got to say it.
fn client_failed_line(run: &Run) -> Option<&str> {
    run.stderr
        .lines()
        .find(|l| l.starts_with("rankview: client failed: "))
}

fn client_err(ranks: usize) {
    let run = mpirun(ranks, "check_failures", &["err"]);
    run.assert_exit_code(1)
        .assert_within(FAIL_FAST)
        .assert_stdout_contains(&format!("a 60 s task is running on {} engines", ranks - 1))
        .assert_stderr_contains("rankview: client failed: deliberate failure (mode err)");
}

fn client_panic(ranks: usize) {
    let run = mpirun(ranks, "check_failures", &["panic"]);
    run.assert_exit_code(1)
        .assert_within(FAIL_FAST)
        .assert_stdout_contains(&format!("a 60 s task is running on {} engines", ranks - 1))
        .assert_stderr_contains("rankview: client failed: panic: deliberate panic (mode panic)");
}

/// The client propagates a task's panic with `?`: the job exits with
/// status 1 (as `launch` says a failed client does: not a signal, not
/// another code), and rank 0 names the engine, the task and the panic
/// before the engines are told to stop (`failure_reason_always_printed`
/// runs it ten times).
fn remote_err(ranks: usize) {
    let run = mpirun(ranks, "check_failures", &["remote_err"]);
    run.assert_exit_code(1).assert_within(FAIL_FAST);
    let Some(line) = client_failed_line(&run) else {
        run.fail("rank 0 did not say why the client failed");
    };
    let engine = ranks - 2;
    for needle in [
        &format!("engine {engine}: task ") as &str,
        "(panic)",
        "engine-side panic from check_failures",
    ] {
        if !line.contains(needle) {
            run.fail(format_args!("{line:?} does not contain {needle:?}"));
        }
    }
}

fn engine_panic_ok(ranks: usize) {
    let engines = ranks - 1;
    mpirun(ranks, "check_failures", &["engine_panic_ok"])
        .assert_success()
        .assert_stdout_contains(&format!(
            "engine panic reported: {engines} of the view's engines failed: engine 0: task "
        ))
        .assert_stdout_contains(&format!("check_failures: {engines} engines still answer"));
}

macro_rules! on_ranks {
    ($check:ident: $($test:ident = $ranks:expr),+) => {
        $(
            #[test]
            fn $test() {
                $check($ranks);
            }
        )+
    };
}

on_ranks!(client_err: client_err_2_ranks = 2, client_err_3_ranks = 3, client_err_5_ranks = 5);
on_ranks!(
    client_panic: client_panic_2_ranks = 2,
    client_panic_3_ranks = 3,
    client_panic_5_ranks = 5
);
on_ranks!(remote_err: remote_err_2_ranks = 2, remote_err_3_ranks = 3, remote_err_5_ranks = 5);
on_ranks!(
    engine_panic_ok: engine_panic_ok_2_ranks = 2,
    engine_panic_ok_3_ranks = 3,
    engine_panic_ok_5_ranks = 5
);

#[test]
fn one_rank_is_too_few() {
    mpirun(1, "quickstart", &[])
        .assert_failure()
        .assert_within(FAIL_FAST)
        .assert_stderr_contains("at least 2 ranks")
        .assert_stdout_lacks("engines answered");
}

/// `mpirun -n S quickstart : -n D going_parallel`: rank 0 and `S - 1`
/// engines run one binary, the last `D` engines another.
fn mismatched(same: usize, different: usize) -> Run {
    mpirun_args(vec![
        "-n".into(),
        OsString::from(same.to_string()),
        example("quickstart").into(),
        ":".into(),
        "-n".into(),
        OsString::from(different.to_string()),
        example("going_parallel").into(),
    ])
}

/// What rank 0 must print for `mismatched(same, different)`.
fn mismatch_message(same: usize, different: usize) -> String {
    let ranks: Vec<usize> = (same..same + different).collect();
    format!("rankview: error: ranks {ranks:?} run a different binary than rank 0")
}

/// The ranks named by rank 0's mismatch message, if it got to print one.
fn named_ranks(run: &Run) -> Option<BTreeSet<usize>> {
    let (_, rest) = run.stderr.split_once("rankview: error: ranks [")?;
    let (list, tail) = rest.split_once(']')?;
    if !tail.starts_with(" run a different binary than rank 0") {
        run.fail(format_args!(
            "unexpected mismatch message: ranks [{list}]{tail}"
        ));
    }
    let ranks = list
        .split(", ")
        .map(|r| r.parse())
        .collect::<Result<_, _>>()
        .unwrap_or_else(|_| run.fail(format_args!("bad rank list [{list}]")));
    Some(ranks)
}

/// Rank 0 names exactly the differing ranks before the job ends.
fn binary_mismatch(same: usize, different: usize) {
    let run = mismatched(same, different);
    run.assert_failure()
        .assert_within(FAIL_FAST)
        .assert_stdout_lacks("quickstart:")
        .assert_stdout_lacks("rc.ids");
    let Some(named) = named_ranks(&run) else {
        run.fail("rank 0 did not name the differing ranks");
    };
    let expected: BTreeSet<usize> = (same..same + different).collect();
    if named != expected {
        run.fail(format_args!(
            "ranks {expected:?} differ, the message names {named:?}"
        ));
    }
}

#[test]
fn binary_mismatch_of_every_engine_fails() {
    binary_mismatch(1, 2);
}

#[test]
fn binary_mismatch_of_one_engine_fails() {
    binary_mismatch(2, 1);
}

/// Rank 0 says why the client failed before the engines are told to stop
/// (once they exit, mpirun may kill rank 0 at any moment): every time.
#[test]
fn failure_reason_always_printed() {
    for attempt in 1..=10 {
        let run = mpirun(5, "check_failures", &["remote_err"]);
        run.assert_failure();
        if client_failed_line(&run).is_none() {
            run.fail(format_args!(
                "attempt {attempt}: the job failed without saying why"
            ));
        }
    }
}

/// Same for a binary mismatch found at start-up, with the ranks in order.
#[test]
fn binary_mismatch_always_named() {
    for attempt in 1..=10 {
        let run = mismatched(1, 4);
        run.assert_failure();
        let message = mismatch_message(1, 4);
        if !run.stderr.contains(&message) {
            run.fail(format_args!("attempt {attempt}: no {message:?}"));
        }
    }
}

/// An internal failure must end the job within this long (issue: "never a
/// hang"); the harness's own timeout is far longer.
const INTERNAL_FAILURE_ENDS_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// A panic on an engine's MPI thread (a raw MPI section panicking on the
/// first engine) while a 60 s task runs, or right after short tasks (the
/// execution thread, polling while it waits for work, runs the section): the
/// job ends at once, non-zero, and the panic reaches the real stderr (not
/// the task's captured output).
fn section_panic_engine(ranks: usize) {
    section_panic_engine_mode(ranks, "section_panic_engine");
}

fn section_panic_engine_idle(ranks: usize) {
    section_panic_engine_mode(ranks, "section_panic_engine_idle");
}

fn section_panic_engine_mode(ranks: usize, mode: &str) {
    mpirun(ranks, "check_failures", &[mode])
        .assert_failure()
        .assert_within(INTERNAL_FAILURE_ENDS_WITHIN)
        .assert_stderr_contains("deliberate panic in an MPI section on rank 1")
        // The MPI thread, or the execution thread making the MPI loop's
        // pass while it waited for work (see src/helping.rs).
        .assert_stderr_contains("rankview: internal error: engine 0: the MPI");
}

/// A panic on the controller thread (a raw MPI section panicking on the
/// client's rank) while the client waits for a 60 s task: the job ends at
/// once.
fn section_panic_root(ranks: usize) {
    mpirun(ranks, "check_failures", &["section_panic_root"])
        .assert_failure()
        .assert_within(INTERNAL_FAILURE_ENDS_WITHIN)
        .assert_stderr_contains("deliberate panic in an MPI section on rank 0")
        .assert_stderr_contains("rankview: internal error: rank 0's controller panicked");
}

on_ranks!(
    section_panic_engine: section_panic_engine_2_ranks = 2,
    section_panic_engine_3_ranks = 3
);
on_ranks!(
    section_panic_engine_idle: section_panic_engine_idle_2_ranks = 2,
    section_panic_engine_idle_3_ranks = 3
);
on_ranks!(
    section_panic_root: section_panic_root_2_ranks = 2,
    section_panic_root_3_ranks = 3
);

/// Engines that cannot take part in a collective rank 0 has entered (a
/// section registered on rank 0 only): the job ends at once, non-zero,
/// naming the engine and why, instead of leaving rank 0 inside it.
fn section_only_on_rank_0(ranks: usize) {
    mpirun(ranks, "check_failures", &["section_only_on_rank_0"])
        .assert_failure()
        .assert_within(INTERNAL_FAILURE_ENDS_WITHIN)
        .assert_stderr_contains("rankview: internal error: engine 0: protocol error: cannot take part in collective task")
        .assert_stderr_contains("no MPI section called \"only_on_rank_0\"");
}

on_ranks!(
    section_only_on_rank_0: section_only_on_rank_0_2_ranks = 2,
    section_only_on_rank_0_3_ranks = 3
);

/// Under `rankview run` a failing client is said once: its message (with
/// where a panic happened) in the summary's first-to-fail line, no panic
/// message before it, no Open MPI banner, and no line blaming the engines
/// it took down.
#[test]
fn a_failing_client_is_said_once_under_the_launcher() {
    for (mode, message) in [
        (
            "panic",
            "panic: deliberate panic (mode panic), at tests/programs/check_failures.rs:",
        ),
        ("err", "deliberate failure (mode err)"),
    ] {
        let _lock = common::JobLock::acquire();
        let out = std::process::Command::new(common::launcher())
            .args(["run", "-n", "3"])
            .arg(common::program("check_failures"))
            .arg(mode)
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("the launcher runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        let first = format!("rankview: rank 0: first to fail: {message}");
        assert!(stderr.contains(&first), "no {first:?} in\n{stderr}");
        let said = message.split(", at").next().unwrap_or(message);
        assert_eq!(
            stderr.matches(said).count(),
            1,
            "said more than once:\n{stderr}"
        );
        for noise in [
            "Primary job",
            "mpirun detected",
            "stopped by rank",
            "client on rank",
        ] {
            assert!(!stderr.contains(noise), "{noise:?} in\n{stderr}");
        }
    }
}
