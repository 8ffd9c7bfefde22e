//! The examples of `examples/` as MPI jobs on 2, 3 and 5 ranks, and
//! `basic_interface` and `going_parallel` (ipyparallel's notebooks "The basic
//! interface for remote computation with IPython" and "Going parallel with
//! IPython: the basics") and the quickstart on 32.
//!
//! Each example asserts its own results (a failed assertion makes the job
//! exit non-zero); these tests add checks on what it prints, which depend on
//! the number of engines: ids, one answer and one distinct process (host and
//! pid) per engine, the `[stdout:0]` block, the timeout of `get(1 s)`, the
//! `NameError` naming the right engine, the load-balanced view's name, the
//! table of `follow_norms` ("Passing results as input in IPython.parallel")
//! with its loads on existing engines and every namespace empty after, the
//! per-engine task counts of `load_balancing` adding up to 64 in its queue
//! status, and the pids, ticks, executor table and timeline picture of
//! `executors` ("Futures in IPython Parallel"; the picture parsed: one lane
//! per engine), and `mpi_psum`'s sums and ranks ("Parallel computing with
//! MPI", also on 9 ranks). Running jobs is left to `common`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{mpirun, Run};

/// `rc.ids = [0, 1, ...]` for a job of `ranks` ranks.
fn ids_line(ranks: usize) -> String {
    format!("rc.ids = {:?}", (0..ranks - 1).collect::<Vec<_>>())
}

/// Parses the number or list of numbers that follows `prefix` on a stdout
/// line, up to a `;` or the end of the line: `123` or `[12, 13]`.
fn list_after<T: std::str::FromStr>(run: &Run, prefix: &str) -> Vec<T> {
    let Some((_, rest)) = run.stdout.lines().find_map(|l| l.split_once(prefix)) else {
        run.fail(format_args!("no line with {prefix:?}"));
    };
    let line = rest.split(';').next().unwrap_or_default();
    let list = line.trim().trim_start_matches('[').trim_end_matches(']');
    list.split(',')
        .map(|p| {
            p.trim()
                .parse()
                .unwrap_or_else(|_| run.fail(format_args!("bad number {p:?} in {line:?}")))
        })
        .collect()
}

fn quickstart(ranks: usize) {
    let run = mpirun(ranks, "quickstart", &[]);
    run.assert_success();
    let engines = ranks - 1;
    run.assert_stdout_contains(&format!("quickstart: {engines} engines answered\n"));
    // A process is its host and pid (nodes may each have their own pids).
    let mut processes = BTreeSet::new();
    for engine in 0..engines {
        let prefix = format!("engine {engine} (pid ");
        let Some(rest) = run.stdout.lines().find_map(|l| l.strip_prefix(&prefix)) else {
            run.fail(format_args!("no answer from engine {engine}"));
        };
        match rest.split_once("): ") {
            Some((process, "12 * 12 = 144")) => match process.split_once(" on ") {
                Some((pid, host)) if pid.parse::<u32>().is_ok() && !host.is_empty() => {
                    processes.insert((host.to_string(), pid.to_string()));
                }
                _ => run.fail(format_args!("engine {engine}: bad process {process:?}")),
            },
            _ => run.fail(format_args!("engine {engine} answered {rest:?}")),
        }
    }
    if processes.len() != engines {
        run.fail(format_args!(
            "{engines} engines but processes {processes:?}"
        ));
    }
    if run.stdout.contains(&format!("engine {engines} (pid")) {
        run.fail("an answer from an engine that does not exist");
    }
}

fn basic_interface(ranks: usize) {
    let run = mpirun(ranks, "basic_interface", &[]);
    run.assert_success()
        .assert_stdout_contains(&ids_line(ranks))
        .assert_stdout_contains("pull of b as String: alloc::string::String vs i64")
        .assert_stdout_contains("  5 + 5 = 10")
        .assert_stdout_contains("get(1 s) timed out after ")
        .assert_stdout_contains("get() = 2.0");
    // Only engine 0 ran getpid, and its captured print names its pid.
    let blocks = run.lines_after("[stdout:");
    let hello: Vec<&str> = blocks
        .iter()
        .filter_map(|b| b.strip_prefix("0] engine process "))
        .collect();
    match hello.as_slice() {
        [line] if line.ends_with(" says hello") => {
            let pid = line.trim_end_matches(" says hello");
            if pid.parse::<u32>().is_err() {
                run.fail(format_args!("bad pid in [stdout:0]: {pid:?}"));
            }
        }
        _ => run.fail(format_args!(
            "expected one [stdout:0] hello block, got {blocks:?}"
        )),
    }
    if blocks.len() != 1 {
        run.fail(format_args!("blocks of other engines: {blocks:?}"));
    }
    // The asynchronous part waits for a 2 s task.
    if run.elapsed < Duration::from_secs(2) {
        run.fail("finished before the 2 s task could have");
    }
}

fn going_parallel(ranks: usize) {
    let run = mpirun(ranks, "going_parallel", &[]);
    let engines = ranks - 1;
    run.assert_success()
        .assert_stdout_contains(&ids_line(ranks))
        .assert_stdout_contains(&format!(
            "rc[:] is <DirectView {:?}>",
            (0..engines).collect::<Vec<_>>()
        ));
    let client: Vec<u32> = list_after(&run, "client pid ");
    let engine_pids: Vec<u32> = list_after(&run, "engine pids ");
    let distinct: BTreeSet<u32> = engine_pids.iter().copied().collect();
    if engine_pids.len() != engines || distinct.len() != engines || distinct.contains(&client[0]) {
        run.fail(format_args!(
            "{engines} engines should have distinct pids other than the client's {client:?}: \
             {engine_pids:?}"
        ));
    }
    if engines >= 3 {
        run.assert_stdout_contains("len(rc[1:3]) = 2");
    } else {
        run.assert_stdout_contains(&format!("rc[1:3] needs 3 engines; this job has {engines}"));
    }
    // The value lives on engine 1 (engine 0 with a single engine); engine 0
    // is asked for it and must say so by id.
    let missing = if engines >= 2 { "myVarIn1" } else { "myVarIn0" };
    run.assert_stdout_contains(&format!(
        "engine 0: NameError: name '{missing}' is not defined"
    ));
    // The load-balanced map of "Going parallel with IPython: the basics",
    // beside the built-in one.
    run.assert_stdout_contains("map(longrun, [1000, 500, 1000, 200]) = [")
        .assert_stdout_contains("load-balanced view.map_sync ")
        .assert_stdout_contains(&format!(
            "view is <LoadBalancedView {:?}>",
            (0..engines).collect::<Vec<_>>()
        ));
}

fn follow_norms(ranks: usize) {
    let run = mpirun(ranks, "follow_norms", &[]);
    let engines = ranks - 1;
    run.assert_success();
    // The notebook's table: one line per size, in order, each with a norm.
    let table: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains(" 2-norm = "))
        .collect();
    let sizes: Vec<usize> = (0..10).map(|p| 1 << p).collect();
    if table.len() != sizes.len() {
        run.fail(format_args!(
            "expected {} table lines: {table:#?}",
            sizes.len()
        ));
    }
    for (line, sz) in table.iter().zip(&sizes) {
        let head = format!("{sz:>4}x{sz:<4} 2-norm = ");
        let norm = line.strip_prefix(&head).map(|n| n.trim().parse::<f64>());
        if !matches!(norm, Some(Ok(n)) if n > 0.0) {
            run.fail(format_args!("line {line:?} is not {head:?} and a norm"));
        }
    }
    let ran: Vec<usize> = list_after(&run, "loads ran on engines ");
    if ran.len() != sizes.len() || ran.iter().any(|&e| e >= engines) {
        run.fail(format_args!(
            "loads of 10 sizes on {engines} engines: {ran:?}"
        ));
    }
    run.assert_stdout_contains("; each norm and cleanup ran where its load did");
    for engine in 0..engines {
        run.assert_stdout_contains(&format!("engine {engine}: namespace is empty\n"));
    }
    run.assert_stdout_lacks(&format!("engine {engines}: namespace"));
}

fn load_balancing(ranks: usize) {
    let run = mpirun(ranks, "load_balancing", &[]);
    let engines = ranks - 1;
    run.assert_success()
        .assert_stdout_contains("64 tasks, exponential durations with mean 20 ms");
    // Per engine, tasks that ran there; they add up to 64.
    let Some(sum) = run
        .lines_after("every task ran exactly once: 64 = ")
        .into_iter()
        .next()
    else {
        run.fail("no line saying every task ran exactly once");
    };
    let counts: Vec<usize> = sum
        .split(';')
        .next()
        .unwrap_or_default()
        .split(" + ")
        .map(|c| {
            c.trim()
                .parse()
                .unwrap_or_else(|_| run.fail(format_args!("bad count {c:?} in {sum:?}")))
        })
        .collect();
    if counts.len() != engines || counts.iter().sum::<usize>() != 64 {
        run.fail(format_args!(
            "{engines} engines' counts {counts:?} do not add up to 64"
        ));
    }
    if engines == 1 {
        run.assert_stdout_contains("; 0 ran on an engine that stole them");
    }
    // The queue status table when done: every engine idle, its completed
    // count the one of the summary.
    let done = run
        .stdout
        .split_once("queue status when done:\n")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| run.fail("no queue status when done"));
    let rows = status_rows(done).unwrap_or_else(|why| run.fail(why));
    for (engine, count) in counts.iter().enumerate() {
        let row = rows.iter().find(|r| r.get("engine") == Some(&engine));
        let figures = row.map(|r| (r.get("queued"), r.get("running"), r.get("completed")));
        if figures != Some((Some(&0), Some(&0), Some(count))) {
            run.fail(format_args!(
                "engine {engine} should be idle with {count} completed: {row:?}"
            ));
        }
    }
    let efficiency = run
        .lines_after("makespan ")
        .into_iter()
        .find_map(|l| l.rsplit_once(" = ").map(|(_, e)| e.parse::<f64>()));
    if !matches!(efficiency, Some(Ok(e)) if e > 0.0 && e <= 1.0) {
        run.fail(format_args!("efficiency {efficiency:?} is not in (0, 1]"));
    }
}

/// The rows of a queue status table (`QueueStatus`'s `Display`), each a map
/// from its column's heading to its figure: a heading line of names apart
/// by two spaces or more, then a line of figures per engine, up to the
/// controller's line. How wide the columns are is left to the table.
fn status_rows(table: &str) -> Result<Vec<BTreeMap<String, usize>>, String> {
    let mut lines = table.lines();
    let heading = lines.next().ok_or("no queue status table")?;
    let columns: Vec<&str> = heading
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    if columns.first() != Some(&"engine") {
        return Err(format!("the table's heading is {heading:?}"));
    }
    let mut rows = Vec::new();
    for line in lines.take_while(|l| !l.starts_with("controller:")) {
        let figures: Vec<usize> = line
            .split_whitespace()
            .map(|f| {
                f.parse()
                    .map_err(|_| format!("{f:?} in {line:?} is not a count"))
            })
            .collect::<Result<_, _>>()?;
        if figures.len() != columns.len() {
            return Err(format!("{line:?} does not fill the columns {columns:?}"));
        }
        rows.push(columns.iter().map(|c| c.to_string()).zip(figures).collect());
    }
    Ok(rows)
}

fn executors(ranks: usize) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let picture = dir.path().join("executors-timeline.svg");
    let path = picture.to_str().expect("a UTF-8 path");
    let run = mpirun(ranks, "executors", &[path]);
    let engines = ranks - 1;
    let ids: Vec<usize> = (0..engines).collect();
    run.assert_success()
        .assert_stdout_contains(&ids_line(ranks))
        .assert_stdout_contains("random_norm(100) on engine -1 = ")
        .assert_stdout_contains(&format!("ex_all targets {ids:?}"))
        .assert_stdout_contains(&format!(
            "rc.executor() is <ViewExecutor load-balanced view {ids:?}>"
        ))
        .assert_stdout_contains("the same results on every executor");
    // The callback's pid is the last engine's, as work() printed them.
    let callback: Vec<u32> = list_after(&run, "I got PID: ");
    let steps: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.trim_start_matches(". ").strip_prefix('['))
        .filter(|r| r.ends_with(']') && !r.starts_with('"'))
        .collect();
    if steps.len() != 4 || steps.iter().any(|s| s != &steps[0]) {
        run.fail(format_args!(
            "work() should print the same pids 4 times: {steps:?}"
        ));
    }
    let pids: Vec<u32> = steps[0]
        .trim_end_matches(']')
        .split(", ")
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| run.fail(format_args!("bad pid {p:?}")))
        })
        .collect();
    if pids.len() != engines || pids.last() != callback.first() {
        run.fail(format_args!(
            "{engines} engines' pids {pids:?}, callback's {callback:?}"
        ));
    }
    // The ticker printed dots between the results.
    if run.stdout.matches(". ").count() < 5 {
        run.fail("the background ticker printed fewer than 5 dots");
    }
    // One table row per executor, each with the notebook's strings.
    for name in [
        format!("local pool ({engines} threads)"),
        format!("direct view {ids:?}"),
        format!("load-balanced view {ids:?}"),
    ] {
        let row = run.lines_after(&name);
        if !matches!(row.as_slice(), [rest] if rest.contains(r#"["0", "1", "2", "3", "4"]"#)) {
            run.fail(format_args!("no table row for {name}: {row:?}"));
        }
    }
    // The job's timeline: well-formed SVG, one lane per engine (lanes are
    // the rectangles of the two lane shades `Timeline` documents).
    let svg = std::fs::read_to_string(&picture)
        .unwrap_or_else(|e| run.fail(format_args!("no {}: {e}", picture.display())));
    let doc = roxmltree::Document::parse(&svg)
        .unwrap_or_else(|e| run.fail(format_args!("the timeline is not XML: {e}")));
    let lanes = doc
        .descendants()
        .filter(|n| n.has_tag_name("rect"))
        .filter(|n| matches!(n.attribute("fill"), Some("#F2F2F2" | "#E4E4E4")))
        .count();
    if lanes != engines {
        run.fail(format_args!(
            "{lanes} lanes in the timeline of {engines} engines"
        ));
    }
    run.assert_stdout_contains(&format!("timeline written to {path}"));
}

/// `client pid 7; engine pids [8, 9]` is one line with two lists.
/// `mpi_psum` (ipyparallel's "Parallel computing with MPI"): every
/// engine's allreduced sum is the local sum (the example checks it), and
/// the reversed view's ranks follow its targets; one engine has no
/// communicator.
fn mpi_psum(ranks: usize) {
    let run = mpirun(ranks, "mpi_psum", &[]);
    run.assert_success();
    if ranks == 2 {
        run.assert_stdout_contains("mpi_psum: one engine has no communicator: ");
        return;
    }
    let engines = ranks - 1;
    let total: u64 = (0..1_000_003u64).sum();
    run.assert_stdout_contains(&format!(
        "psum of 1000003 numbers: {:?} (local sum {total})",
        vec![total as f64; engines]
    ));
    let reversed: Vec<usize> = (0..engines).rev().collect();
    let ranks: Vec<(usize, usize)> = (0..engines).map(|k| (k, engines)).collect();
    run.assert_stdout_contains(&format!(
        "reversed view {reversed:?}: (rank, size) = {ranks:?}"
    ));
    run.assert_stdout_contains("mpi_psum: every engine's psum is the local sum");
}

#[test]
fn list_after_reads_both_lists() {
    let run = Run {
        command: "none".into(),
        status: std::os::unix::process::ExitStatusExt::from_raw(0),
        stdout: "client pid 7; engine pids [8, 9]\n".into(),
        stderr: String::new(),
        elapsed: Duration::ZERO,
    };
    assert_eq!(list_after::<u32>(&run, "client pid "), vec![7]);
    assert_eq!(list_after::<u32>(&run, "engine pids "), vec![8, 9]);
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

// 32 ranks: start-up and every collective at a size where anything
// quadratic at rank 0 would show (start-up is meant to stay within 0.15 s
// of a raw MPI program's up to 128 ranks; issue 11).
on_ranks!(
    quickstart: quickstart_2_ranks = 2,
    quickstart_3_ranks = 3,
    quickstart_5_ranks = 5,
    quickstart_32_ranks = 32
);
on_ranks!(
    basic_interface: basic_interface_2_ranks = 2,
    basic_interface_3_ranks = 3,
    basic_interface_5_ranks = 5,
    basic_interface_32_ranks = 32
);
on_ranks!(
    going_parallel: going_parallel_2_ranks = 2,
    going_parallel_3_ranks = 3,
    going_parallel_5_ranks = 5,
    going_parallel_32_ranks = 32
);
on_ranks!(
    follow_norms: follow_norms_2_ranks = 2,
    follow_norms_3_ranks = 3,
    follow_norms_5_ranks = 5
);
on_ranks!(
    load_balancing: load_balancing_2_ranks = 2,
    load_balancing_3_ranks = 3,
    load_balancing_5_ranks = 5
);
on_ranks!(
    executors: executors_2_ranks = 2,
    executors_3_ranks = 3,
    executors_5_ranks = 5
);
on_ranks!(
    mpi_psum: mpi_psum_2_ranks = 2,
    mpi_psum_3_ranks = 3,
    mpi_psum_5_ranks = 5,
    mpi_psum_9_ranks = 9
);
