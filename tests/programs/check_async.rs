//! `AsyncResult` as a future, with callbacks, metadata and timings, checked
//! on real engines. Run it with `rankview run -n 3 --package rankview-checks --bin check_async`
//! (or `mpirun -n 3 target/debug/check_async`); `tests/async_results.rs`
//! runs it on 2, 3 and 5 ranks.
//!
//! Owns the checks of what ipyparallel's "Futures in IPython Parallel"
//! notebook shows of results, in Rust's terms:
//! awaiting from a tokio current-thread runtime does not block it (a tokio
//! interval keeps ticking during the await, and a request made by a second
//! future is sent before the first one's reply comes back), a map awaited
//! as one result, `on_done` callbacks for pending, finished and failed
//! results, callbacks that block on more work (`map` inside `on_done`),
//! per-engine metadata in target order with captured
//! output (also of `map`), `display_outputs` in engine order, and
//! consistent `elapsed`/`wall_time`/`serial_time`; and what capture keeps:
//! C stdio output flushed into its task's metadata, a long output cut to its
//! tail. Prints one line per check and exits non-zero unless every check
//! held.

mod checklist;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use checklist::{Checklist, Outcome};
use rankview::{Client, Error, Ref};
use tokio::runtime::Runtime;

#[rankview::remote]
fn sleep_for(seconds: f64) -> f64 {
    std::thread::sleep(Duration::from_secs_f64(seconds));
    seconds
}

/// Sleeps for the engine's own `delay` (passed as a `Ref`).
#[rankview::remote]
fn sleep_ref(seconds: &f64) -> f64 {
    std::thread::sleep(Duration::from_secs_f64(*seconds));
    *seconds
}

/// Writes a line to stdout and one to stderr; returns the engine's pid.
#[rankview::remote]
fn announce(tag: String) -> u32 {
    println!("{tag} from pid {}", std::process::id());
    eprintln!("{tag} on stderr");
    std::process::id()
}

#[rankview::remote]
fn getpid() -> u32 {
    std::process::id()
}

/// Prints the item on its own line; returns twice the item.
#[rankview::remote]
fn shout(item: u32) -> u32 {
    println!("item {item}");
    item * 2
}

/// Writes `text` through Rust's stdout, then through C's `puts`.
#[rankview::remote]
fn c_puts(text: String) -> bool {
    println!("rust {text}");
    let Ok(line) = std::ffi::CString::new(format!("c {text}")) else {
        return false;
    };
    // SAFETY: `line` is a NUL-terminated string that outlives the call.
    unsafe { libc::puts(line.as_ptr()) >= 0 }
}

/// Prints `lines` numbered lines of 19 bytes each.
#[rankview::remote]
fn flood(lines: u32) {
    for i in 0..lines {
        println!("flood line {i:07}");
    }
}

/// What [`maybe_write`] writes for task `i` to stdout and to stderr: most
/// tasks nothing; some a Rust line, a C line, bytes starting with NUL
/// through `write(2)`, or a stderr fragment without a newline.
fn written_by(i: u32) -> (String, String) {
    let mut out = String::new();
    if i % 7 == 0 {
        out += &format!("rust {i}\n");
    }
    if i % 13 == 0 {
        out += &format!("\0raw {i}\n");
    }
    if i % 17 == 0 {
        out += &format!("c {i}\n");
    }
    let err = if i % 11 == 0 {
        format!("err {i}")
    } else {
        String::new()
    };
    (out, err)
}

/// Writes what [`written_by`] says, through the path it names.
#[rankview::remote]
fn maybe_write(i: u32) -> bool {
    let mut ok = true;
    if i % 7 == 0 {
        println!("rust {i}");
    }
    if i % 13 == 0 {
        let raw = format!("\0raw {i}\n");
        // SAFETY: `raw` outlives the call and holds `raw.len()` bytes.
        let wrote = unsafe { libc::write(1, raw.as_ptr().cast(), raw.len()) };
        ok &= wrote == raw.len() as isize;
    }
    if i % 17 == 0 {
        let line = std::ffi::CString::new(format!("c {i}")).expect("no NUL");
        // SAFETY: `line` is a NUL-terminated string that outlives the call.
        ok &= unsafe { libc::puts(line.as_ptr()) } >= 0;
    }
    if i % 11 == 0 {
        eprint!("err {i}");
    }
    ok
}

#[rankview::remote]
fn boom() -> u8 {
    panic!("a callback sees this")
}

fn futures(rc: &Client, runtime: &Runtime, list: &mut Checklist) {
    list.check("await_keeps_runtime_running", || {
        runtime.block_on(async {
            let ticks = Arc::new(AtomicUsize::new(0));
            let counter = ticks.clone();
            let ticker = tokio::spawn(async move {
                let mut interval = tokio::time::interval(Duration::from_millis(10));
                loop {
                    interval.tick().await;
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
            tokio::task::yield_now().await;
            let before = ticks.load(Ordering::Relaxed);
            let t0 = Instant::now();
            let slept = rc.engine(0)?.apply(sleep_for, (0.3,)).await?;
            let waited = t0.elapsed();
            let during = ticks.load(Ordering::Relaxed) - before;
            ticker.abort();
            assert_eq!(slept, 0.3);
            assert!(waited >= Duration::from_millis(300), "{waited:?}");
            assert!(
                during >= 5,
                "only {during} ticks of a 10 ms interval during a {waited:?} await"
            );
            println!("  {during} ticks during a {waited:.2?} await");
            Outcome::Ok(())
        })
    });
    list.check("awaits_overlap", || {
        runtime.block_on(async {
            // Each request is made inside its own future, so it is sent
            // when tokio first polls that future: had awaiting the first
            // blocked the runtime, the second would be sent only after the
            // first came back. The results' own times say which it was.
            let sent_and_awaited = |view: rankview::DirectView<rankview::One>| async move {
                let ar = view.apply(sleep_for, (0.4,));
                let value = ar.clone().await;
                (value, ar.metadata().remove(0))
            };
            let (a, b) = tokio::join!(
                sent_and_awaited(rc.engine(0)?),
                sent_and_awaited(rc.engine(-1)?)
            );
            assert_eq!((a.0?, b.0?), (0.4, 0.4));
            let (a, b) = (a.1, b.1);
            let received = |m: &rankview::Metadata| m.received.ok_or("no received time");
            assert!(
                b.submitted < received(&a)? && a.submitted < received(&b)?,
                "one request was sent after the other came back: {a:?} {b:?}"
            );
            Outcome::Ok(())
        })
    });
    list.check("await_many_in_target_order", || {
        let pids = rc.all().apply_sync(getpid, ())?;
        let reversed: Vec<usize> = rc.ids().into_iter().rev().collect();
        let view = rc.view(reversed)?;
        let got = runtime.block_on(view.apply(getpid, ()))?;
        let mut expected = pids;
        expected.reverse();
        assert_eq!(got, expected);
        Ok(())
    });
    list.check("timeout_then_await", || {
        runtime.block_on(async {
            let ar = rc.engine(0)?.apply(sleep_for, (0.3,));
            let early = tokio::time::timeout(Duration::from_millis(30), ar.clone()).await;
            assert!(early.is_err(), "done after 30 ms: {early:?}");
            assert!(!ar.ready());
            assert_eq!(ar.clone().await?, 0.3);
            assert!(ar.ready());
            Outcome::Ok(())
        })
    });
}

fn callbacks(rc: &Client, list: &mut Checklist) {
    let me = std::thread::current().id();
    list.check("on_done_pending", || {
        let (tx, rx) = mpsc::channel();
        let ar = rc.engine(0)?.apply(sleep_for, (0.3,));
        ar.on_done(move |r| {
            let _ = tx.send((r.ready(), r.get().ok(), std::thread::current().id()));
        });
        assert!(
            matches!(rx.try_recv(), Err(TryRecvError::Empty)),
            "called before the 300 ms task ended"
        );
        let (ready, value, thread) = rx.recv_timeout(Duration::from_secs(10))?;
        assert!(ready, "the result is ready inside its callback");
        assert_eq!(value, Some(0.3));
        assert_ne!(thread, me, "a pending result's callback runs elsewhere");
        Ok(())
    });
    list.check("on_done_finished", || {
        let (tx, rx) = mpsc::channel();
        let ar = rc.all().apply(getpid, ());
        let pids = ar.get()?;
        ar.on_done(move |r| {
            let _ = tx.send((r.get().ok(), std::thread::current().id()));
        });
        let (value, thread) = rx.try_recv()?;
        assert_eq!(value, Some(pids));
        assert_eq!(
            thread, me,
            "a finished result's callback runs at once, here"
        );
        Ok(())
    });
    list.check("on_done_failed", || {
        let (tx, rx) = mpsc::channel();
        let ar = rc.all().apply(boom, ());
        ar.on_done(move |r| {
            let _ = tx.send(r.get());
        });
        match rx.recv_timeout(Duration::from_secs(10))? {
            Err(Error::Composite(errors)) => {
                assert_eq!(errors.len(), rc.len());
                assert!(errors
                    .iter()
                    .all(|e| e.to_string().contains("a callback sees this")));
            }
            other => return Err(format!("expected a Composite, got {other:?}").into()),
        }
        Ok(())
    });
    list.check("map_inside_on_done", || {
        let (tx, rx) = mpsc::channel();
        let all = rc.all();
        let ar = rc.engine(0)?.apply(sleep_for, (0.05,));
        ar.on_done(move |_| {
            let _ = tx.send(all.map_sync(shout, 0..4u32));
        });
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "map_sync inside on_done did not return within 10 s")??;
        assert_eq!(got, vec![0, 2, 4, 6]);
        // Later callbacks still run.
        let (tx, rx) = mpsc::channel();
        let later = rc.engine(-1)?.apply(sleep_for, (0.05,));
        later.on_done(move |r| {
            let _ = tx.send(r.get().ok());
        });
        let value = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "a later callback did not run within 10 s")?;
        assert_eq!(value, Some(0.05));
        Ok(())
    });
}

fn metadata(rc: &Client, list: &mut Checklist) {
    let n = rc.len();
    list.check("metadata_in_target_order", || {
        let targets: Vec<usize> = rc.ids().into_iter().rev().collect();
        let ar = rc
            .view(targets.clone())?
            .apply(announce, ("meta".to_string(),));
        let pids = ar.get()?;
        let meta = ar.metadata();
        let engines: Vec<usize> = meta.iter().map(|m| m.engine).collect();
        assert_eq!(engines, targets);
        for (m, pid) in meta.iter().zip(&pids) {
            let (started, completed) =
                (m.started.ok_or("started")?, m.completed.ok_or("completed")?);
            assert!(started <= completed, "{m:?}");
            assert!(m.submitted <= m.received.ok_or("received")?, "{m:?}");
            assert_eq!(m.task, meta[0].task, "one task id per submission");
            assert_eq!(m.stdout, format!("meta from pid {pid}\n"), "{m:?}");
            assert_eq!(m.stderr, "meta on stderr\n", "{m:?}");
        }
        Ok(())
    });
    list.check("outputs_in_engine_order", || {
        let targets: Vec<usize> = rc.ids().into_iter().rev().collect();
        let ar = rc.view(targets)?.apply(announce, ("out".to_string(),));
        let mut pids = ar.get()?;
        pids.reverse(); // now in engine order
        let text = ar.outputs();
        let mut last = 0;
        for (engine, pid) in pids.iter().enumerate() {
            let block = format!("[stdout:{engine}] out from pid {pid}\n");
            let at = text
                .find(&block)
                .ok_or_else(|| format!("no {block:?} in {text:?}"))?;
            assert!(at >= last, "engine {engine} out of order in {text:?}");
            last = at;
        }
        for engine in 0..n {
            let block = format!("[stderr:{engine}] out on stderr\n");
            let at = text
                .find(&block)
                .ok_or_else(|| format!("no {block:?} in {text:?}"))?;
            assert!(
                at >= last,
                "stderr of engine {engine} out of order in {text:?}"
            );
            last = at;
        }
        // tests/async_results.rs reads these lines in the job's stdout.
        println!("display_outputs:");
        ar.display_outputs();
        println!("end of display_outputs");
        Ok(())
    });
    list.check("map_metadata_per_part", || {
        let items: Vec<u32> = (0..3 * n as u32).collect();
        let ar = rc.all().map(shout, items.clone());
        let doubled = ar.get()?;
        assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let meta = ar.metadata();
        let engines: Vec<usize> = meta.iter().map(|m| m.engine).collect();
        assert_eq!(engines, rc.ids(), "one part per engine, in target order");
        let tasks: BTreeSet<_> = meta.iter().map(|m| m.task).collect();
        assert_eq!(tasks.len(), n, "one task per engine: {meta:?}");
        for (k, m) in meta.iter().enumerate() {
            let expected: String = (3 * k..3 * k + 3).map(|i| format!("item {i}\n")).collect();
            assert_eq!(m.stdout, expected, "{m:?}");
            let (started, completed) =
                (m.started.ok_or("started")?, m.completed.ok_or("completed")?);
            assert!(started <= completed, "{m:?}");
            assert!(m.submitted <= m.received.ok_or("received")?, "{m:?}");
        }
        assert!(ar.serial_time().is_some() && ar.successful());
        Ok(())
    });
    list.check("c_stdio_in_metadata", || {
        let ar = rc.all().apply(c_puts, ("hello".to_string(),));
        assert!(ar.get()?.iter().all(|&ok| ok), "puts failed");
        for m in ar.metadata() {
            assert_eq!(m.stdout, "rust hello\nc hello\n", "{m:?}");
        }
        Ok(())
    });
    list.check("load_balanced_output_is_each_tasks_own", || {
        // Mostly silent tasks of a few microseconds, back to back on each
        // engine: the capture files' marks alone tell which task wrote.
        let lv = rc.load_balanced_view();
        let results: Vec<_> = (0..2000u32).map(|i| lv.apply(maybe_write, (i,))).collect();
        for (i, r) in (0u32..).zip(&results) {
            assert!(r.get()?, "task {i} could not write");
            let m = &r.metadata()[0];
            let (out, err) = written_by(i);
            assert_eq!((&m.stdout, &m.stderr), (&out, &err), "task {i}: {m:?}");
        }
        Ok(())
    });
    list.check("long_output_keeps_its_tail", || {
        // 19-byte lines, well past the default limit of 1 MiB.
        const LINES: u32 = 120_000;
        const LIMIT: usize = 1 << 20;
        let ar = rc.all().apply(flood, (LINES,));
        ar.get()?;
        let cut = 19 * LINES as usize - LIMIT;
        for m in ar.metadata() {
            let (first, rest) = m.stdout.split_once('\n').ok_or("no line")?;
            assert_eq!(first, format!("[rankview: {cut} earlier bytes cut]"));
            assert_eq!(rest.len(), LIMIT);
            assert!(
                rest.ends_with(&format!("flood line {:07}\n", LINES - 1)),
                "engine {}",
                m.engine
            );
        }
        Ok(())
    });
    list.check("timings_consistent", || {
        for engine in 0..n {
            let delay = 0.05 * (engine + 1) as f64;
            rc.engine(engine as i64)?.set("delay", &delay)?;
        }
        let ar = rc.all().apply(sleep_ref, (Ref::<f64>::new("delay"),));
        assert!(
            ar.wall_time().is_none() && ar.serial_time().is_none(),
            "not done yet"
        );
        let delays = ar.get()?;
        let longest = Duration::from_secs_f64(0.05 * n as f64);
        assert_eq!(delays.last().copied(), Some(longest.as_secs_f64()));
        let runs: Vec<Duration> = ar
            .metadata()
            .iter()
            .map(|m| {
                let (s, c) = (m.started.expect("started"), m.completed.expect("completed"));
                c.duration_since(s).expect("completed after started")
            })
            .collect();
        for (run, delay) in runs.iter().zip(&delays) {
            let delay = Duration::from_secs_f64(*delay);
            assert!(
                *run + Duration::from_millis(1) >= delay,
                "ran {run:?} < {delay:?}"
            );
        }
        let serial = ar.serial_time().ok_or("serial_time")?;
        let wall = ar.wall_time().ok_or("wall_time")?;
        let max_run = runs.iter().max().copied().unwrap_or_default();
        assert_eq!(serial, runs.iter().sum::<Duration>());
        assert!(runs.iter().all(|r| serial >= *r));
        assert!(wall >= max_run, "wall {wall:?} < longest run {max_run:?}");
        assert!(wall >= longest, "wall {wall:?} < longest delay {longest:?}");
        assert_eq!(ar.elapsed(), wall);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(ar.elapsed(), wall, "elapsed stops at the last reply");
        println!("  wall {wall:.2?}, serial {serial:.2?}, runs {runs:.2?}");
        Ok(())
    });
    list.check("engine_pids_distinct", || {
        let pids = rc.all().apply_sync(getpid, ())?;
        let distinct: BTreeSet<u32> = pids.iter().copied().collect();
        assert_eq!(distinct.len(), n, "{pids:?}");
        assert!(
            !distinct.contains(&std::process::id()),
            "an engine is the client"
        );
        Ok(())
    });
}

/// Clones of one result awaited by two tasks: both are woken; and a map
/// awaited whole through `AsyncMap::result`.
fn shared_awaits(rc: &Client, runtime: &Runtime, list: &mut Checklist) {
    list.check("clones_awaited_by_two_tasks", || {
        runtime.block_on(async {
            let ar = rc.engine(0)?.apply(sleep_for, (0.2,));
            let first = tokio::spawn(ar.clone());
            let second = tokio::spawn(ar.clone());
            let both = tokio::time::timeout(Duration::from_secs(5), async {
                (first.await, second.await)
            })
            .await;
            let (a, b) = both.map_err(|_| "an await of a clone was never woken (5 s)")?;
            assert_eq!((a??, b??), (0.2, 0.2));
            Outcome::Ok(())
        })
    });
    list.check("a_map_awaited_as_one_result", || {
        // `result()` is the whole map: awaited, every item in input
        // order, one metadata entry per task; the map iterates still.
        let map = rc.load_balanced_view().chunksize(3).map(shout, 0..10u32);
        let whole = map.result();
        let got = runtime.block_on(whole.clone())?;
        assert_eq!(got, (0..10).map(|i| i * 2).collect::<Vec<u32>>());
        assert_eq!(whole.metadata().len(), 4, "10 items in tasks of 3");
        let items: Vec<u32> = map.collect::<rankview::Result<_>>()?;
        assert_eq!(items, got);
        Ok(())
    });
}

fn main() {
    rankview::launch(|rc| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| format!("cannot start tokio: {e}"))?;
        let mut list = Checklist::new("check_async");
        futures(rc, &runtime, &mut list);
        shared_awaits(rc, &runtime, &mut list);
        callbacks(rc, &mut list);
        metadata(rc, &mut list);
        list.finish()
    });
}
