//! What happens to tasks around the scheduler: when a handle is dropped,
//! when a task is aborted, and when the client returns. Run it with
//! `rankview run -n 3 --package rankview-checks --bin check_lifecycle`; `tests/lifecycle.rs` runs
//! it on 3 and 5 ranks, under MPICH and over TCP only.
//!
//! Owns the checks that a dependency on a `map` outlives the map's handle,
//! that an empty map is a met dependency and a submission that failed before
//! it was sent a failed one, that a map that could not be submitted yields
//! its error, that an abort stops a running task's retries, that dropping or
//! aborting an `imap` aborts what it submitted and did not start, that
//! queued direct-view requests can be aborted (in stream order for the
//! rest), that huge durations and chunk sizes mean "no limit", and that a
//! task closing its stdout does not send later tasks' output elsewhere.
//! Modes that end the job in a way a check cannot watch from inside:
//! `imap_stop` (a client that stops an endless `imap` early and returns),
//! `callbacks` (a client that returns while `on_done` callbacks still have
//! work to do), `stuck_callback` (one that never returns), `progress`
//! (`wait_interactive` on a map, for the bar) and `quick` (a short job, for
//! settings read at shutdown).
//! Prints one line per check and exits non-zero unless every check held.

mod checklist;

use std::io::{Read, Seek, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use checklist::{expect_err, Checklist};
use rankview::{Client, Error, Executor, Ref, TaskResult};

#[rankview::remote]
fn plus_one(x: u64) -> u64 {
    x + 1
}

#[rankview::remote]
fn sleep_for(seconds: f64) -> TaskResult<usize> {
    std::thread::sleep(Duration::from_secs_f64(seconds));
    Ok(rankview::globals().engine()?)
}

/// Sleeps a millisecond and counts the call in the engine's `runs`.
#[rankview::remote]
fn counted(x: u64) -> TaskResult<u64> {
    std::thread::sleep(Duration::from_millis(1));
    let g = rankview::globals();
    let runs = g.get::<u64>("runs").map(|r| *r).unwrap_or(0);
    g.insert("runs", runs + 1)?;
    Ok(x)
}

/// Takes the engine's `runs` count (0 when none) and resets it.
#[rankview::remote]
fn take_runs() -> TaskResult<u64> {
    let g = rankview::globals();
    let runs = g.get::<u64>("runs").map(|r| *r).unwrap_or(0);
    g.insert("runs", 0u64)?;
    Ok(runs)
}

/// Counts a try in the engine's `runs`, sleeps, then fails.
#[rankview::remote]
fn slow_failure(seconds: f64) -> TaskResult<()> {
    let g = rankview::globals();
    let runs = g.get::<u64>("runs").map(|r| *r).unwrap_or(0);
    g.insert("runs", runs + 1)?;
    std::thread::sleep(Duration::from_secs_f64(seconds));
    Err(rankview::TaskError::msg("this try fails"))
}

#[rankview::remote]
fn read_string(name: String) -> TaskResult<String> {
    Ok((*rankview::globals().get::<String>(&name)?).clone())
}

#[rankview::remote]
fn read_u64(name: String) -> TaskResult<u64> {
    Ok(*rankview::globals().get::<u64>(&name)?)
}

/// Closes the engine process's descriptor 1, as a C library's
/// `fclose(stdout)` does.
#[rankview::remote]
fn close_stdout() {
    // SAFETY: closing a descriptor takes no pointer; what this task does to
    // the process's stdout is exactly what the check is about.
    unsafe {
        libc::close(1);
    }
}

/// Prints a line, writes `DATA` into a fresh temporary file (which may be
/// given descriptor 1 if nothing holds it) and returns what the file holds.
#[rankview::remote]
fn write_a_file() -> TaskResult<String> {
    let mut file = tempfile::tempfile()?;
    println!("progress: writing the data file");
    file.write_all(b"DATA\n")?;
    file.rewind()?;
    let mut held = String::new();
    file.read_to_string(&mut held)?;
    Ok(held)
}

#[rankview::remote]
fn say(line: String) {
    println!("{line}");
}

/// Waits until no load-balanced task is queued, running, waiting or unsent.
fn settle(rc: &Client) -> rankview::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = rc.queue_status()?;
        let busy = s.waiting
            + s.unassigned
            + s.engines
                .iter()
                .map(|e| e.queued + e.running)
                .sum::<usize>();
        if busy == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Usage(format!("tasks never settled:\n{s}")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Load-balanced runs counted on every engine since the last call.
fn runs(rc: &Client) -> rankview::Result<u64> {
    Ok(rc.all().apply_sync(take_runs, ())?.iter().sum())
}

fn lifecycle(rc: &Client, list: &mut Checklist) {
    let lv = rc.load_balanced_view();

    list.check("a_map_dependency_outlives_the_map", || {
        // The map's handle is a temporary, dropped once the task is sent.
        let one = lv
            .after(&lv.map(plus_one, 0..8u64))
            .apply(plus_one, (1u64,));
        assert_eq!(one.get()?, 2);
        // A finished map, dropped before the dependent task is submitted.
        let map = lv.map(plus_one, 0..8u64);
        map.get()?;
        let after = lv.after(&map);
        let follow = lv.follow(&lv.map(plus_one, vec![5u64]));
        drop(map);
        assert_eq!(after.apply_sync(plus_one, (2u64,))?, 3);
        assert_eq!(follow.apply_sync(plus_one, (3u64,))?, 4);
        Ok(())
    });

    list.check("empty_maps_and_failed_submissions_as_dependencies", || {
        let empty = lv.map(plus_one, Vec::<u64>::new());
        assert_eq!(lv.after(&empty).apply_sync(plus_one, (1u64,))?, 2);
        assert_eq!(lv.after(&empty).any().apply_sync(plus_one, (1u64,))?, 2);
        assert_eq!(lv.follow(&empty).apply_sync(plus_one, (1u64,))?, 2);
        // A map that could not be sent (a Ref item) is a failed dependency.
        let failed = lv.map(read_u64, vec![Ref::<String>::new("name")]);
        expect_err(failed.get(), |e| matches!(e, Error::Usage(_)))?;
        expect_err(lv.after(&failed).apply_sync(plus_one, (1u64,)), |e| {
            matches!(e, Error::ImpossibleDependency { .. })
        })?;
        assert_eq!(
            lv.after(&failed)
                .success_only(false)
                .apply_sync(plus_one, (1u64,))?,
            2
        );
        // A direct view's result cannot be a dependency.
        let direct = rc.engine(0)?.apply(plus_one, (1u64,));
        expect_err(lv.after(&direct).apply_sync(plus_one, (1u64,)), |e| {
            matches!(e, Error::Usage(_))
        })?;
        // Aborting a direct result through the view or on its own agree.
        let hold = rc.engine(0)?.apply(sleep_for, (0.3,));
        let one = rc.engine(0)?.apply(plus_one, (1u64,));
        let two = rc.engine(0)?.apply(plus_one, (2u64,));
        lv.abort(&one)?;
        two.abort()?;
        for r in [&one, &two] {
            expect_err(r.get(), |e| matches!(e, Error::TaskAborted { .. }))?;
        }
        hold.get()?;
        direct.get()?;
        Ok(())
    });

    list.check("a_map_that_could_not_be_submitted_yields_its_error", || {
        let refs = vec![Ref::<String>::new("a"), Ref::new("b")];
        let mut seen = Vec::new();
        for r in lv.map(read_u64, refs.clone()) {
            seen.push(r);
        }
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(matches!(seen[0], Err(Error::Usage(_))), "{seen:?}");
        let through: Vec<_> = rc.executor().map(read_u64, refs).collect();
        assert_eq!(through.len(), 1, "{through:?}");
        assert!(through[0].is_err(), "{through:?}");
        Ok(())
    });

    list.check("abort_stops_the_retries_of_a_running_task", || {
        runs(rc)?;
        let task = lv.retries(3).apply(slow_failure, (0.4,));
        // Wait until the first try runs.
        let deadline = Instant::now() + Duration::from_secs(10);
        while rc.queue_status()?.engines.iter().all(|e| e.running == 0) {
            assert!(Instant::now() < deadline, "the task never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        task.abort()?;
        let e = expect_err(task.get(), |e| matches!(e, Error::Remote { .. }))?;
        assert!(e.to_string().contains("this try fails"), "{e}");
        settle(rc)?;
        assert_eq!(runs(rc)?, 1, "an aborted task is never tried again");
        Ok(())
    });

    list.check("dropping_an_imap_aborts_what_it_did_not_start", || {
        runs(rc)?;
        let first: Vec<u64> = lv
            .imap(counted, 0u64..)
            .take(3)
            .collect::<rankview::Result<_>>()?;
        assert_eq!(first, vec![0, 1, 2]);
        settle(rc)?;
        let ran = runs(rc)?;
        // 10,000 tasks of a millisecond were in flight: most never started.
        assert!(ran < 5_000, "{ran} of 10,000 tasks ran after the drop");
        // The same with `break` in a `for` loop.
        for r in lv.imap(counted, 0u64..) {
            if r? >= 2 {
                break;
            }
        }
        settle(rc)?;
        let ran = runs(rc)?;
        assert!(ran < 5_000, "{ran} of 10,000 tasks ran after the break");
        Ok(())
    });

    list.check("imap_abort_says_what_it_aborted", || {
        let mut it = lv.chunksize(2).imap(counted, 0u64..100_000);
        assert_eq!(it.next().transpose()?, Some(0));
        it.abort()?;
        let mut aborted = 0;
        let mut values = 0;
        for r in it.by_ref() {
            match r {
                Ok(_) => values += 1,
                Err(Error::TaskAborted { .. }) => aborted += 1,
                Err(e) => return Err(e.into()),
            }
        }
        assert!(aborted > 0, "nothing was aborted ({values} values)");
        assert!(
            values + aborted < 100_000,
            "items were drawn after the abort"
        );
        assert!(it.next().is_none());
        settle(rc)?;
        runs(rc)?;
        Ok(())
    });

    list.check("queued_direct_requests_can_be_aborted", || {
        let e = rc.engine(-1)?;
        // A non-numeric value pushed to one engine is a request in its
        // stream (numeric data is broadcast: a collective).
        e.set("x", &"before".to_string())?;
        let running = e.apply(sleep_for, (0.5,));
        let set = e.push("x", &"aborted".to_string());
        let one = e.apply(plus_one, (1u64,));
        let read = e.apply(read_string, ("x".to_string(),));
        set.abort()?;
        one.abort()?;
        // A push answers for its view: one error per engine.
        expect_err(set.get(), |e| match e {
            Error::Composite(all) => matches!(all[..], [Error::TaskAborted { .. }]),
            _ => false,
        })?;
        expect_err(one.get(), |e| matches!(e, Error::TaskAborted { .. }))?;
        // What was not aborted ran, in order: the push never happened.
        assert_eq!(read.get()?, "before");
        // A request that has started runs to its end.
        running.abort()?;
        running.get()?;
        assert_eq!(e.apply_sync(plus_one, (3u64,))?, 4);
        // A collective cannot be taken back once sent.
        let gather = rc.all().gather::<Vec<u64>>("nothing");
        assert!(matches!(gather.abort(), Err(Error::Usage(_))));
        let _ = gather.get();
        Ok(())
    });

    list.check("huge_durations_and_chunks_mean_no_limit", || {
        let dep = lv.apply(sleep_for, (0.2,));
        let after = lv.after(&dep).timeout(Duration::MAX);
        assert_eq!(after.apply_sync(plus_one, (1u64,))?, 2);
        let r = lv.apply(plus_one, (2u64,));
        assert_eq!(r.get_timeout(Duration::MAX)?, 3);
        assert!(r.wait_timeout(Duration::MAX));
        let direct = rc.engine(0)?.apply(plus_one, (3u64,));
        assert_eq!(direct.get_timeout(Duration::MAX)?, 4);
        for size in [usize::MAX, 1 << 32] {
            let got: Vec<u64> = lv
                .chunksize(size)
                .imap(plus_one, 0..10u64)
                .collect::<rankview::Result<_>>()?;
            assert_eq!(got, (1..11).collect::<Vec<u64>>(), "chunksize {size}");
            let got = lv.chunksize(size).map_sync(plus_one, 0..10u64)?;
            assert_eq!(got, (1..11).collect::<Vec<u64>>(), "chunksize {size}");
        }
        let got = lv.max_outstanding(usize::MAX).imap(plus_one, 0..10u64);
        assert_eq!(got.count(), 10);
        Ok(())
    });

    list.check("a_task_closing_stdout_leaves_later_output_captured", || {
        let e = rc.engine(0)?;
        e.apply_sync(close_stdout, ())?;
        let ar = e.apply(write_a_file, ());
        assert_eq!(ar.get()?, "DATA\n", "the task's output went into its file");
        assert_eq!(ar.metadata()[0].stdout, "progress: writing the data file\n");
        let later = e.apply(say, ("a later line".to_string(),));
        later.get()?;
        assert_eq!(later.metadata()[0].stdout, "a later line\n");
        Ok(())
    });

    list.check(
        "a_short_tasks_reply_does_not_wait_for_the_next_task",
        || {
            // Both on engine 0, in one batch: the short task's reply waits in
            // the inbox while the long one runs, until the MPI thread's next
            // pass reports it (src/engine/inbox.rs, `Progress`).
            let one = rc.engine(0)?.load_balanced();
            let t = Instant::now();
            let short = one.apply(plus_one, (1,));
            let long = one.apply(sleep_for, (3.0,));
            assert_eq!(short.get()?, 2);
            let waited = t.elapsed();
            assert!(
                waited < Duration::from_secs(2),
                "the short task's reply waited {waited:?}, for the task after it"
            );
            long.get()?;
            Ok(())
        },
    );
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    rankview::launch(|rc| -> Result<(), String> {
        let lv = rc.load_balanced_view();
        match mode.as_str() {
            // Stops an endless imap early (take, then break) and returns:
            // the job must end cleanly, without waiting for its queue.
            "imap_stop" => {
                let first: Vec<u64> = lv
                    .imap(counted, 0u64..)
                    .take(3)
                    .collect::<rankview::Result<_>>()
                    .map_err(|e| e.to_string())?;
                println!("check_lifecycle: took {first:?}");
                for r in lv.imap(counted, 0u64..) {
                    if r.map_err(|e| e.to_string())? >= 2 {
                        break;
                    }
                }
                println!("check_lifecycle: stopped an endless imap");
                Ok(())
            }
            // Returns while a 300 ms task has two callbacks to run: one
            // sleeps, one submits more work. Both must finish.
            "callbacks" => {
                let done = Arc::new(AtomicUsize::new(0));
                let task = lv.apply(sleep_for, (0.3,));
                let d = done.clone();
                task.on_done(move |_| {
                    std::thread::sleep(Duration::from_millis(500));
                    println!("check_lifecycle: the sleeping callback ended");
                    d.fetch_add(1, Ordering::SeqCst);
                });
                let lv2 = lv.clone();
                task.on_done(move |_| {
                    let more = lv2.apply(sleep_for, (0.3,));
                    match more.get() {
                        Ok(engine) => {
                            println!("check_lifecycle: the callback's task ran on engine {engine}")
                        }
                        Err(e) => println!("check_lifecycle: the callback's task failed: {e}"),
                    }
                });
                println!("check_lifecycle: the client returns");
                Ok(())
            }
            // Waits for a map of 40 items with wait_interactive: a bar when
            // the user sees a terminal, plain lines otherwise.
            "progress" => {
                let map = lv.chunksize(1).map(sleep_for, vec![0.025f64; 40]);
                map.wait_interactive();
                map.get().map_err(|e| e.to_string())?;
                println!("check_lifecycle: the map is done");
                Ok(())
            }
            // Returns while a callback blocks forever: the job must end
            // after the shutdown grace, naming the callback.
            "stuck_callback" => {
                let task = lv.apply(plus_one, (1u64,));
                task.on_done(|_| std::thread::sleep(Duration::from_secs(3600)));
                task.wait();
                println!("check_lifecycle: left a callback blocked");
                Ok(())
            }
            "quick" => {
                let got = lv
                    .map_sync(plus_one, 0..100u64)
                    .map_err(|e| e.to_string())?;
                assert_eq!(got.iter().sum::<u64>(), (1..101).sum::<u64>());
                println!("check_lifecycle: quick job done");
                Ok(())
            }
            _ => {
                let mut list = Checklist::new("check_lifecycle");
                lifecycle(rc, &mut list);
                list.finish()
            }
        }
    });
}
