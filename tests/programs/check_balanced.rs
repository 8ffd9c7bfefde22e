//! The load-balanced view as a user drives it. Run it with
//! `rankview run -n 3 --package rankview-checks --bin check_balanced` (or `mpirun -n 3
//! target/debug/check_balanced`); `tests/balanced.rs` runs it on 2,
//! 3 and 5 ranks, under MPICH and over TCP only.
//!
//! Owns the checks of `apply` (one run, where it ran), `map` (order,
//! chunking with 0, 1, a prime and 10^5 items, completion order, a
//! panicking item; maps of numbers sent raw against a local computation,
//! panics inside a raw chunk), `imap` (bounded in flight), every dependency option and
//! its failure modes (`after`, `follow`, `any`, `success_only`, `timeout`;
//! impossible dependencies failing at once), retries landing on another
//! engine, aborts of queued tasks, the stream fence (a task sees what the
//! client pushed to its engine before it, stolen or not), exactly-once
//! execution under forced steals, tasks beside an engine busy with direct
//! work (they run elsewhere at once, and idle thieves do not spin), and the
//! queue status (direct work included). With `stuck` it
//! returns while load-balanced tasks run "forever" (the job must end after
//! the shutdown grace, naming them); with `panic` the client panics with
//! thousands of tasks queued (every rank must end at once). Checks that need
//! two engines say so and check what one engine allows. Prints one line per
//! check and exits non-zero unless every check held.

mod checklist;
mod gate;

use std::cell::Cell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use checklist::{expect_err, skip, stderr_of, wait_until, Checklist};
use rankview::{Client, Error, TaskResult};

/// The engine running the task.
#[rankview::remote]
fn whoami() -> TaskResult<usize> {
    Ok(rankview::globals().engine()?)
}

#[rankview::remote]
fn sleep_for(seconds: f64) -> TaskResult<usize> {
    std::thread::sleep(Duration::from_secs_f64(seconds));
    Ok(rankview::globals().engine()?)
}

/// Keeps the core busy `us` microseconds; returns the engine.
#[rankview::remote]
fn spin_for(us: u64) -> TaskResult<usize> {
    let end = Instant::now() + Duration::from_micros(us);
    while Instant::now() < end {
        std::hint::spin_loop();
    }
    Ok(rankview::globals().engine()?)
}

/// This engine's idle yields (`rankview::__private::idle_yields`) when
/// the first task of a run started and when its last task ended.
static RUN_YIELDS: [std::sync::atomic::AtomicU64; 2] = [
    std::sync::atomic::AtomicU64::new(0),
    std::sync::atomic::AtomicU64::new(0),
];

/// Item `i` of a run of `n` tasks keeping the core busy `us` microseconds
/// each; the first and the last note the idle yields so far.
#[rankview::remote]
fn counted_spin(i: u64, n: u64, us: u64) -> TaskResult<usize> {
    use std::sync::atomic::Ordering;
    if i == 0 {
        RUN_YIELDS[0].store(rankview::__private::idle_yields(), Ordering::Relaxed);
    }
    let engine = spin_for(us)?;
    if i + 1 == n {
        RUN_YIELDS[1].store(rankview::__private::idle_yields(), Ordering::Relaxed);
    }
    Ok(engine)
}

/// Whether this rank runs with `RANKVIEW_FUNNELED`, and the idle yields
/// between the start of the last run's first task and the end of its last.
#[rankview::remote]
fn run_yields() -> (bool, u64) {
    use std::sync::atomic::Ordering;
    let [start, end] = &RUN_YIELDS;
    (
        std::env::var_os("RANKVIEW_FUNNELED").is_some(),
        end.load(Ordering::Relaxed)
            .saturating_sub(start.load(Ordering::Relaxed)),
    )
}

#[rankview::remote]
fn plus_one(x: u64) -> u64 {
    x + 1
}

/// Panics on 13.
#[rankview::remote]
fn unlucky(x: u64) -> u64 {
    assert!(x != 13, "13 is unlucky");
    x
}

/// A raw map's u64 work: wrapping, so every item has a value.
#[rankview::remote]
fn mix(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) ^ x
}

#[rankview::remote]
fn root(x: f64) -> f64 {
    x.sqrt() - 0.5
}

/// Generic, registered for two element types (each instantiation raw).
#[rankview::remote(<f32>, <i16>)]
fn twice<T: std::ops::Add<Output = T> + Copy>(x: T) -> T {
    x + x
}

/// Not numeric: the per-item path.
#[rankview::remote]
fn shout(s: String) -> String {
    s.to_uppercase()
}

/// Panics on every multiple of 50 but 0.
#[rankview::remote]
fn fifties(x: u64) -> u64 {
    assert!(x == 0 || x % 50 != 0, "{x} is a multiple of 50");
    x * 3
}

#[rankview::remote]
fn fail_always() -> TaskResult<()> {
    let g = rankview::globals();
    let tries = g.get::<u64>("tries").map(|t| *t).unwrap_or(0);
    g.insert("tries", tries + 1)?;
    Err(rankview::TaskError::msg("this task always fails"))
}

/// Fails on an engine holding `bad`; else returns the engine id.
#[rankview::remote]
fn fail_where_bad() -> TaskResult<usize> {
    let g = rankview::globals();
    if g.contains("bad")? {
        return Err(rankview::TaskError::msg("this engine is bad"));
    }
    Ok(g.engine()?)
}

/// Stores `value` as `name`; returns the engine id.
#[rankview::remote]
fn store(name: String, value: u64) -> TaskResult<usize> {
    let g = rankview::globals();
    g.insert(name, value)?;
    Ok(g.engine()?)
}

/// Reads `name`, removes it; returns it with the engine id.
#[rankview::remote]
fn take(name: String) -> TaskResult<(u64, usize)> {
    let g = rankview::globals();
    let value = *g.get::<u64>(&name)?;
    g.remove(&name)?;
    Ok((value, g.engine()?))
}

#[rankview::remote]
fn read_u64(name: String) -> TaskResult<u64> {
    Ok(*rankview::globals().get::<u64>(&name)?)
}

/// Records that task `id` ran here.
#[rankview::remote]
fn record(id: u64) -> TaskResult<()> {
    let g = rankview::globals();
    if !g.contains("ran")? {
        g.insert("ran", Vec::<u64>::new())?;
    }
    g.get_mut::<Vec<u64>>("ran")?.push(id);
    Ok(())
}

/// Records that task `id` ran here; returns the engine id.
#[rankview::remote]
fn record_here(id: u64) -> TaskResult<usize> {
    record(id)?;
    Ok(rankview::globals().engine()?)
}

/// Four tasks of 10 ms, waited for: their results, the engines they ran
/// on, and how long they took from submission.
type ShortTasks = (Vec<rankview::AsyncResult<usize>>, Vec<usize>, Duration);

fn four_short_tasks(lv: &rankview::LoadBalancedView) -> rankview::Result<ShortTasks> {
    let start = Instant::now();
    let tasks: Vec<_> = (0..4).map(|_| lv.apply(sleep_for, (0.01,))).collect();
    let ran = tasks
        .iter()
        .map(|t| t.get())
        .collect::<rankview::Result<Vec<usize>>>()?;
    Ok((tasks, ran, start.elapsed()))
}

fn balanced(rc: &Client, list: &mut Checklist) {
    let lv = rc.load_balanced_view();
    let engines = rc.len();

    list.check("apply_runs_once_and_says_where", || {
        // Each task records its run in its engine's namespace: the records
        // say how often and where it ran, the result where it says it ran.
        rc.all().apply_sync(clear_ran, ())?;
        let mut said = HashMap::new();
        for id in 0..20u64 {
            let ar = lv.apply(record_here, (id,));
            let ran = ar.get()?;
            let meta = ar.metadata();
            assert_eq!(meta.len(), 1);
            assert_eq!(meta[0].engine, ran);
            assert!(ran < engines);
            said.insert(id, ran);
        }
        let mut recorded = HashMap::new();
        for (engine, ids) in rc.all().apply_sync(take_ran, ())?.into_iter().enumerate() {
            for id in ids {
                let again = recorded.insert(id, engine);
                assert!(again.is_none(), "task {id} ran on {again:?} and {engine}");
            }
        }
        assert_eq!(
            recorded, said,
            "where each task ran, and where it said it ran"
        );
        assert_eq!(lv.apply_sync(plus_one, (41u64,))?, 42);
        Ok(())
    });

    list.check("subset_views_stay_in_their_engines", || {
        let last = engines - 1;
        let sub = rc.view(vec![last])?.load_balanced();
        assert_eq!(sub.targets(), &[last]);
        let ran = sub.map_sync(sleep_for, vec![0.001f64; 20])?;
        assert!(ran.iter().all(|&e| e == last), "{ran:?}");
        Ok(())
    });

    list.check("map_order_and_chunking", || {
        for n in [0u64, 1, 97, 100_000] {
            let input: Vec<u64> = (0..n).collect();
            let want: Vec<u64> = input.iter().map(|x| x + 1).collect();
            assert_eq!(lv.map_sync(plus_one, input.clone())?, want, "{n} items");
            for size in [1usize, 7] {
                if n > 10_000 && size == 1 {
                    continue;
                }
                let m = lv.chunksize(size).map(plus_one, input.clone());
                assert_eq!(m.tasks() as u64, n.div_ceil(size as u64));
                let streamed: Vec<u64> = m.collect::<rankview::Result<_>>()?;
                assert_eq!(streamed, want, "{n} items in chunks of {size}");
            }
            let mut any_order: Vec<u64> = lv
                .ordered(false)
                .chunksize(3)
                .map(plus_one, input)
                .collect::<rankview::Result<_>>()?;
            any_order.sort_unstable();
            assert_eq!(any_order, want);
        }
        Ok(())
    });

    list.check("raw_maps_match_local", || {
        let input: Vec<u64> = (0..10_007u64).map(|x| x * 7919).collect();
        let want: Vec<u64> = input.iter().map(|&x| mix(x)).collect();
        assert_eq!(lv.map_sync(mix, input.clone())?, want, "u64 -> u64");
        assert_eq!(lv.map_sync(mix, input.iter())?, want, "&u64 -> u64");
        assert_eq!(
            lv.chunksize(1).map_sync(mix, input[..50].to_vec())?,
            want[..50]
        );
        let floats: Vec<f64> = (0..5000).map(|x| x as f64 * 0.25).collect();
        let roots: Vec<f64> = floats.iter().map(|&x| root(x)).collect();
        let back = lv.map_sync(root, floats)?;
        assert!(
            back.iter()
                .zip(&roots)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "f64 -> f64"
        );
        assert_eq!(
            lv.map_sync(twice::<f32>, vec![1.5f32, -2.0])?,
            vec![3.0f32, -4.0]
        );
        assert_eq!(
            lv.map_sync(twice::<i16>, -3..3i16)?,
            vec![-6, -4, -2, 0, 2, 4]
        );
        let words = vec!["a".to_string(), "bc".to_string(), "déf".to_string()];
        assert_eq!(lv.map_sync(shout, words)?, vec!["A", "BC", "DÉF"]);
        Ok(())
    });

    list.check("a_panic_inside_a_raw_chunk_fails_its_item", || {
        // Chunks of 100: items 50 and 150 panic mid-chunk, 100 and 200 first
        // in theirs; the items around them still come back.
        let m = lv.chunksize(100).map(fifties, 0..250u64);
        let e = expect_err(m.get(), |e| matches!(e, Error::MapItem { index: 50, .. }))?;
        assert!(e.to_string().contains("50 is a multiple of 50"), "{e}");
        let items: Vec<rankview::Result<u64>> = m.collect();
        assert_eq!(items.len(), 250);
        for (i, item) in items.iter().enumerate() {
            match item {
                Ok(v) => assert_eq!(*v, i as u64 * 3, "item {i}"),
                Err(Error::MapItem { index, error }) => {
                    assert!(i > 0 && i % 50 == 0 && *index == i, "item {i}: {error}");
                    assert!(error.to_string().contains(&format!("{i} is a multiple")));
                }
                Err(e) => return Err(format!("item {i}: {e}").into()),
            }
        }
        assert_eq!(items.iter().filter(|r| r.is_err()).count(), 4);
        Ok(())
    });

    list.check("a_panicking_item_spares_the_others", || {
        let m = lv.chunksize(4).map(unlucky, 0..40u64);
        let e = expect_err(m.get(), |e| matches!(e, Error::MapItem { index: 13, .. }))?;
        assert!(e.to_string().contains("13 is unlucky"), "{e}");
        assert!(!m.successful());
        let items: Vec<rankview::Result<u64>> = m.collect();
        assert_eq!(items.len(), 40);
        for (i, item) in items.iter().enumerate() {
            match item {
                Ok(v) => assert_eq!(*v, i as u64),
                Err(Error::MapItem { index, .. }) => assert_eq!(*index, 13),
                Err(e) => return Err(format!("item {i}: {e}").into()),
            }
        }
        assert_eq!(items.iter().filter(|r| r.is_err()).count(), 1);
        Ok(())
    });

    list.check("imap_keeps_a_bounded_window", || {
        let drawn = Cell::new(0u64);
        let source = (0..20_000u64).inspect(|_| drawn.set(drawn.get() + 1));
        let view = lv.max_outstanding(100).chunksize(2);
        let mut read = 0u64;
        let mut most_ahead = 0u64;
        for (i, r) in view.imap(plus_one, source).enumerate() {
            assert_eq!(r?, i as u64 + 1);
            read += 1;
            most_ahead = most_ahead.max(drawn.get() - read);
        }
        assert_eq!(read, 20_000);
        // 100 tasks of 2 items in flight, plus the one being read.
        assert!(
            most_ahead <= 202,
            "{most_ahead} items drawn ahead of the reader"
        );
        Ok(())
    });

    list.check("after_waits_for_its_dependency", || {
        let first = lv.apply(sleep_for, (0.3,));
        let second = lv.after(&first).apply(whoami, ());
        second.get()?;
        let done = first.metadata()[0].completed.ok_or("no completion time")?;
        let started = second.metadata()[0].started.ok_or("no start time")?;
        assert!(started >= done, "{started:?} before {done:?}");
        Ok(())
    });

    list.check("follow_runs_where_its_dependency_ran", || {
        for k in 0..20u64 {
            let name = format!("f{k}");
            let stored = lv.apply(store, (name.clone(), k));
            let (value, at) = lv.follow(&stored).apply_sync(take, (name,))?;
            assert_eq!(value, k);
            assert_eq!(at, stored.get()?);
        }
        Ok(())
    });

    list.check("follow_tasks_are_never_stolen", || {
        if engines < 2 {
            return skip("one engine: nobody to steal");
        }
        // The anchor's engine is held at the gate by a task that follows
        // the anchor. Queued behind it: a task of a view of that engine
        // alone, which no other engine may take but which counts in the
        // load figures as work to steal (so the others ask this engine for
        // work), then follow tasks. A map of short tasks on the other
        // engines brings each of them those figures and leaves it idle:
        // idle engines steal within milliseconds, from the back of the
        // queue, and a stolen follow task would run, and be ready, while
        // its engine is still held. One second is the window.
        let anchor = lv.apply(whoami, ());
        let home = anchor.get()?;
        let alone = rc.view(vec![home])?.load_balanced();
        let queued = || -> rankview::Result<usize> { Ok(rc.queue_status()?.engines[home].queued) };
        let mut tries = 0;
        let (held, bait, pinned) = loop {
            // Short tasks make the engine's prefetch depth (which follows
            // its tasks' mean duration) room for both kinds; on a loaded
            // machine it may take another round.
            alone.chunksize(1).map_sync(plus_one, 0..64u64)?;
            let generation = gate::closed();
            let held = lv.follow(&anchor).apply(gate::hold, (generation,));
            gate::await_waiting(rc, 1)?;
            let bait = alone.apply(whoami, ());
            wait_until("the task of the one-engine view queued", || {
                Ok(queued()? >= 1)
            })?;
            let pinned: Vec<_> = (0..8)
                .map(|_| lv.follow(&anchor).apply(whoami, ()))
                .collect();
            let start = Instant::now();
            while queued()? < 2 && start.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(5));
            }
            if queued()? >= 2 {
                break (held, bait, pinned);
            }
            gate::open(rc)?;
            for r in [&held, &bait].into_iter().chain(&pinned) {
                r.get()?;
            }
            tries += 1;
            if tries == 5 {
                return Err("five times no room for a follow task beside the other".into());
            }
        };
        let others: Vec<usize> = (0..engines).filter(|&e| e != home).collect();
        rc.view(others)?
            .load_balanced()
            .chunksize(1)
            .map_sync(plus_one, 0..4 * engines as u64)?;
        let window = Instant::now();
        while window.elapsed() < Duration::from_secs(1) {
            if let Some(early) = pinned.iter().find(|p| p.ready()) {
                let ran = early.metadata()[0].engine;
                gate::open(rc)?;
                return Err(format!(
                    "a follow task ran on engine {ran} while engine {home} was held"
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        gate::open(rc)?;
        assert_eq!(held.get()?, home);
        assert_eq!(bait.get()?, home);
        for p in &pinned {
            assert_eq!(p.get()?, home);
            assert!(!p.metadata()[0].stolen);
        }
        Ok(())
    });

    list.check("any_and_on_failure", || {
        let failed = lv.apply(fail_always, ());
        let fine = lv.apply(whoami, ());
        // Any: one success is enough.
        lv.after(&failed)
            .after(&fine)
            .any()
            .apply_sync(whoami, ())?;
        let deps: [&dyn rankview::Dependencies; 2] = [&failed, &fine];
        lv.after(&deps).any().apply_sync(whoami, ())?;
        // Also on failure: a failed dependency counts as done.
        lv.after(&failed)
            .success_only(false)
            .apply_sync(whoami, ())?;
        Ok(())
    });

    list.check("impossible_dependencies_fail_at_once", || {
        let failed = lv.apply(fail_always, ());
        let _ = failed.get();
        let start = Instant::now();
        let e = expect_err(lv.after(&failed).apply_sync(whoami, ()), |e| {
            matches!(e, Error::ImpossibleDependency { .. })
        })?;
        assert!(e.to_string().contains("failed"), "{e}");
        // A chain below it fails too.
        let below = lv.after(&failed).apply(whoami, ());
        let further = lv.after(&below).apply(whoami, ());
        expect_err(further.get(), |e| {
            matches!(e, Error::ImpossibleDependency { .. })
        })?;
        // Follow of a task that never ran.
        expect_err(lv.follow(&failed).apply_sync(whoami, ()), |e| {
            matches!(e, Error::ImpossibleDependency { .. })
        })?;
        // A direct view's result cannot be a dependency.
        let direct = rc.engine(0)?.apply(whoami, ());
        expect_err(lv.after(&direct).apply_sync(whoami, ()), |e| {
            matches!(e, Error::Usage(_))
        })?;
        if engines >= 2 {
            // Follow every one of two tasks that ran on different engines.
            let on0 = rc.view(vec![0])?.load_balanced().apply(whoami, ());
            let on1 = rc.view(vec![1])?.load_balanced().apply(whoami, ());
            expect_err(lv.follow(&[&on0, &on1]).apply_sync(whoami, ()), |e| {
                matches!(e, Error::ImpossibleDependency { .. })
            })?;
            // Follow a task that ran outside the view.
            let outside = rc.view(vec![1])?.load_balanced().follow(&on0);
            expect_err(outside.apply_sync(whoami, ()), |e| {
                matches!(e, Error::ImpossibleDependency { .. })
            })?;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        Ok(())
    });

    list.check("dependency_timeout", || {
        // The dependency waits at the gate: it cannot end before the gate
        // opens, after the timeout has had its say.
        let generation = gate::closed();
        let slow = lv.apply(gate::hold, (generation,));
        let start = Instant::now();
        let e = expect_err(
            lv.after(&slow)
                .timeout(Duration::from_millis(200))
                .apply_sync(whoami, ()),
            |e| matches!(e, Error::DependencyTimeout { .. }),
        )?;
        assert!(!slow.ready(), "the dependency ended first: {e}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{e}: {:?}",
            start.elapsed()
        );
        gate::open(rc)?;
        slow.get()?;
        // Met in time: no timeout.
        let quick = lv.apply(whoami, ());
        lv.after(&quick)
            .timeout(Duration::from_secs(5))
            .apply_sync(whoami, ())?;
        Ok(())
    });

    list.check("retries_then_the_last_error", || {
        rc.all().apply_sync(clear_tries, ())?;
        let e = expect_err(lv.retries(2).apply_sync(fail_always, ()), |e| {
            matches!(e, Error::Remote { .. })
        })?;
        assert!(e.to_string().contains("always fails"), "{e}");
        let tries: u64 = rc.all().apply_sync(tries, ())?.iter().sum();
        assert_eq!(tries, 3, "one try and two retries");
        Ok(())
    });

    list.check("retries_land_on_another_engine", || {
        if engines < 2 {
            return skip("one engine: a retry has no other engine to land on");
        }
        rc.engine(0)?.set("bad", &true)?;
        let ran = lv
            .retries(1)
            .map_sync(fail_where_bad_item, vec![0u64; 30])?;
        assert!(ran.iter().all(|&e| e != 0), "{ran:?}");
        rc.engine(0)?.apply_sync(forget_bad, ())?;
        Ok(())
    });

    list.check("abort_drops_queued_tasks", || {
        // Every engine runs a task held at the gate: what follows queues.
        let hold_every_engine = || -> rankview::Result<Vec<_>> {
            let generation = gate::closed();
            (0..engines)
                .map(|e| {
                    Ok(rc
                        .view(vec![e])?
                        .load_balanced()
                        .apply(gate::hold, (generation,)))
                })
                .collect()
        };
        let busy = hold_every_engine()?;
        gate::await_waiting(rc, engines as u64)?;
        let queued: Vec<_> = (0..40).map(|_| lv.apply(whoami, ())).collect();
        lv.abort(&queued)?;
        let aborted = queued
            .iter()
            .filter(|q| matches!(q.get(), Err(Error::TaskAborted { .. })))
            .count();
        assert_eq!(aborted, 40, "every queued task is aborted");
        gate::open(rc)?;
        for b in &busy {
            b.get()?;
        }
        // abort() on one result, and abort_all.
        let more = hold_every_engine()?;
        gate::await_waiting(rc, engines as u64)?;
        let one = lv.apply(whoami, ());
        one.abort()?;
        expect_err(one.get(), |e| matches!(e, Error::TaskAborted { .. }))?;
        let rest: Vec<_> = (0..10).map(|_| lv.apply(whoami, ())).collect();
        rc.abort_all()?;
        for r in &rest {
            expect_err(r.get(), |e| matches!(e, Error::TaskAborted { .. }))?;
        }
        gate::open(rc)?;
        for m in &more {
            m.get()?;
        }
        // A direct request that has answered keeps its value when aborted
        // (aborting queued direct requests: check_lifecycle).
        let answered = rc.engine(0)?.apply(whoami, ());
        answered.get()?;
        answered.abort()?;
        assert_eq!(answered.get()?, 0);
        Ok(())
    });

    list.check("tasks_see_what_was_pushed_before_them", || {
        let dv = rc.all();
        for round in 0..30u64 {
            dv.set("v", &round)?;
            let seen = lv
                .chunksize(1)
                .map_sync(read_u64, vec!["v".to_string(); 16])?;
            assert!(seen.iter().all(|&v| v == round), "round {round}: {seen:?}");
        }
        Ok(())
    });

    list.check("exactly_once_under_forced_steals", || {
        rc.all().apply_sync(clear_ran, ())?;
        let ids: Vec<u64> = (0..10_000).collect();
        // Engine 0 is held up by a direct request while its queue is full:
        // the others steal from it.
        let hold = rc.engine(0)?.apply(sleep_for, (0.5,));
        let m = lv.chunksize(1).map(record, ids.clone());
        m.get()?;
        hold.get()?;
        let stolen = m.metadata().iter().filter(|meta| meta.stolen).count();
        let ran: Vec<Vec<u64>> = rc.all().apply_sync(take_ran, ())?;
        let mut count: HashMap<u64, usize> = HashMap::new();
        for id in ran.into_iter().flatten() {
            *count.entry(id).or_default() += 1;
        }
        assert_eq!(count.len(), ids.len(), "every task ran");
        assert!(count.values().all(|&c| c == 1), "some task ran twice");
        if engines >= 2 {
            assert!(stolen > 0, "no task was stolen");
        }
        println!("({stolen} of 10000 tasks were stolen)");
        let status = rc.queue_status()?;
        let stolen_in: usize = status.engines.iter().map(|e| e.stolen_in).sum();
        let stolen_out: usize = status.engines.iter().map(|e| e.stolen_out).sum();
        assert_eq!(stolen_in, stolen_out);
        assert!(stolen_in >= stolen);
        let table = status.to_string();
        assert!(table.contains("stolen in"), "{table}");
        print!("{table}");
        Ok(())
    });

    list.check("no_task_waits_behind_a_busy_engine", || {
        if engines < 2 {
            return skip("one engine: nowhere else to run");
        }
        // Engine 0's execution thread is held by a direct request for 3 s;
        // four short tasks must run elsewhere meanwhile, well before it ends.
        let hold = rc.engine(0)?.apply(sleep_for, (3.0,));
        std::thread::sleep(Duration::from_millis(100));
        let (tasks, ran, took) = four_short_tasks(&lv)?;
        assert!(
            took < Duration::from_secs(2),
            "4 tasks of 10 ms took {took:?} beside a busy engine 0 (ran on {ran:?})"
        );
        assert!(!hold.ready(), "the direct request ended first");
        for t in &tasks {
            assert_ne!(t.metadata()[0].engine, 0, "a task ran on the busy engine");
        }
        hold.get()?;
        if engines < 3 {
            println!("(two engines: no gather with a third engine free)");
            return Ok(());
        }
        // A gather over engines 0 and 1 while engine 1 sleeps 3 s: engine 0
        // lends its value and waits for engine 1 the whole time, so both are
        // busy, and tasks must run on the others.
        let pair = rc.view(vec![0, 1])?;
        pair.set("g", &vec![7u64])?;
        let hold = rc.engine(1)?.apply(sleep_for, (3.0,));
        let gathered = pair.gather::<Vec<u64>>("g");
        std::thread::sleep(Duration::from_millis(100));
        let (_, ran, took) = four_short_tasks(&lv)?;
        assert!(
            took < Duration::from_secs(2),
            "4 tasks of 10 ms took {took:?} beside a gather waiting on engine 1 (ran on {ran:?})"
        );
        assert!(!gathered.ready(), "the gather ended first");
        assert!(ran.iter().all(|&e| e >= 2), "ran on busy engines: {ran:?}");
        hold.get()?;
        assert_eq!(gathered.get()?, vec![7, 7]);
        Ok(())
    });

    list.check("a_busy_engine_and_an_idle_one_do_not_spin", || {
        if engines < 2 {
            return skip("one engine: no thief");
        }
        // Engine 0 is held 3 s by a direct request; the others empty its
        // load-balanced queue, then must wait quietly (an idle engine uses
        // about 0.02 s of CPU in 2 s; a thief asking again and again, 0.5 s).
        let others = rc.view((1..engines).collect::<Vec<_>>())?;
        let hold = rc.engine(0)?.apply(sleep_for, (3.0,));
        std::thread::sleep(Duration::from_millis(100));
        let tasks: Vec<_> = (0..4).map(|_| lv.apply(sleep_for, (0.01,))).collect();
        let before = others.apply_sync(cpu_ns, ())?;
        std::thread::sleep(Duration::from_secs(2));
        let after = others.apply_sync(cpu_ns, ())?;
        assert!(
            before.iter().all(|&ns| ns > 0),
            "no CPU time measured: {before:?}"
        );
        assert!(
            !hold.ready(),
            "the window must lie inside the direct request"
        );
        for t in &tasks {
            t.get()?;
        }
        hold.get()?;
        let used: Vec<f64> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| a.saturating_sub(*b) as f64 / 1e9)
            .collect();
        println!("(CPU of engines 1.. over 2 s beside a busy engine 0: {used:.3?} s)");
        assert!(
            used.iter().all(|&s| s < 0.2),
            "engines spun beside a busy engine: {used:.3?} s of CPU in 2 s"
        );
        Ok(())
    });

    list.check("the_pollers_leave_the_cores_to_running_tasks", || {
        // While an engine's execution thread runs load-balanced tasks, its
        // MPI thread and the controller sleep between polls rather than
        // spinning and yielding: under `MPI_THREAD_SERIALIZED` the
        // execution thread polls itself when it has replies to send or
        // runs out of tasks, and the client when it waits for a result.
        // A yielding MPI thread took turns with the task on its core after
        // every task.
        // One engine, so that its queue rarely runs dry and no thief idles;
        // the yields counted are those from the start of the first task to
        // the end of the last (an idle engine yields before sleeping).
        // Rank 0's yields are the controller's, over the same run.
        let tasks = 600u64;
        let view = rc.view(vec![engines - 1])?.load_balanced().chunksize(1);
        let before = rankview::__private::idle_yields();
        let run: Vec<_> = (0..tasks)
            .map(|i| view.apply(counted_spin, (i, tasks, 500u64)))
            .collect();
        for task in run {
            task.get()?;
        }
        let controller = rankview::__private::idle_yields() - before;
        let (funneled, yields) = rc.engine(engines as i64 - 1)?.apply_sync(run_yields, ())?;
        println!(
            "(idle yields during {tasks} tasks of 0.5 ms on one engine: the engine's \
             {yields}, the controller's {controller})"
        );
        if funneled {
            // Only the MPI thread polls under `RANKVIEW_FUNNELED`.
            return Ok(());
        }
        // A yielding MPI thread made 30–110 yields a task here (Open MPI
        // and MPICH); a dozing one none, but for the spells where the
        // queue ran dry and it was idle (0–2.6 a task, each spell of
        // cheap yields counting hundreds; 10.1 a task once over TCP only,
        // where replies take longer and the queue runs dry more often).
        assert!(
            yields < 20 * tasks,
            "the engine's MPI thread yielded {yields} times during its {tasks} tasks"
        );
        // The controller dozes too while only load-balanced tasks are out
        // (12,000–198,000 yields over the run when it did not).
        assert!(
            controller < 10 * tasks,
            "the controller yielded {controller} times during the {tasks} tasks"
        );
        Ok(())
    });

    list.check("queue_status_counts_direct_work", || {
        let hold = rc.engine(0)?.apply(sleep_for, (0.5,));
        let status = rc.queue_status()?;
        let direct: Vec<usize> = status.engines.iter().map(|e| e.direct).collect();
        assert_eq!(
            direct[0], 1,
            "a direct request running on engine 0:\n{status}"
        );
        assert!(direct[1..].iter().all(|&d| d == 0), "{status}");
        let table = status.to_string();
        assert!(
            table.lines().next().is_some_and(|l| l.ends_with("direct")),
            "{table}"
        );
        hold.get()?;
        let status = rc.queue_status()?;
        assert!(status.engines.iter().all(|e| e.direct == 0), "{status}");
        if engines >= 2 {
            // A gather waiting on engine 1: both of its engines are busy with it.
            let pair = rc.view(vec![0, 1])?;
            pair.set("q", &vec![1u64])?;
            let hold = rc.engine(1)?.apply(sleep_for, (0.5,));
            let gathered = pair.gather::<Vec<u64>>("q");
            let status = rc.queue_status()?;
            let direct: Vec<usize> = status.engines.iter().map(|e| e.direct).collect();
            assert_eq!(
                direct[..2],
                [1, 2],
                "a gather waiting on a busy engine 1:\n{status}"
            );
            hold.get()?;
            assert_eq!(gathered.get()?, vec![1, 1]);
            let status = rc.queue_status()?;
            assert!(status.engines.iter().all(|e| e.direct == 0), "{status}");
        }
        Ok(())
    });

    list.check("wait_interactive_reports_progress", || {
        // 50 items in tasks of 2: a map's progress counts items, a
        // result's counts tasks, and the last report says all are done.
        let m = lv.chunksize(2).map(sleep_for, vec![0.01f64; 50]);
        let shown = stderr_of(|| m.wait_interactive())?;
        assert!(m.ready());
        assert_eq!(m.get()?.len(), 50);
        assert!(
            shown.contains("50/50 items"),
            "no \"50/50 items\" in the progress shown: {shown:?}"
        );
        let all = rc.all().apply(sleep_for, (0.01,));
        let shown = stderr_of(|| all.wait_interactive())?;
        assert!(all.ready());
        let done = format!("{engines}/{engines} tasks");
        assert!(
            shown.contains(&done),
            "no {done:?} in the progress shown: {shown:?}"
        );
        Ok(())
    });
}

/// CPU time this engine's process has used (every thread), in
/// nanoseconds: the sum of its threads' schedstat, or where the kernel
/// keeps none, its utime + stime from /proc/self/stat (ticks of 10 ms).
#[rankview::remote]
fn cpu_ns() -> u64 {
    let mut total = 0u64;
    let mut measured = false;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            if let Some(ns) = stat
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
            {
                total += ns;
                measured = true;
            }
        }
    }
    if measured {
        return total;
    }
    // After the command name (in parentheses, maybe with spaces), utime
    // and stime are the 12th and 13th fields.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    ticks * 10_000_000
}

#[rankview::remote]
fn clear_tries() -> TaskResult<()> {
    rankview::globals().remove("tries")?;
    Ok(())
}

#[rankview::remote]
fn tries() -> TaskResult<u64> {
    Ok(rankview::globals()
        .get::<u64>("tries")
        .map(|t| *t)
        .unwrap_or(0))
}

#[rankview::remote]
fn fail_where_bad_item(_: u64) -> TaskResult<usize> {
    fail_where_bad()
}

#[rankview::remote]
fn forget_bad() -> TaskResult<()> {
    rankview::globals().remove("bad")?;
    Ok(())
}

#[rankview::remote]
fn clear_ran() -> TaskResult<()> {
    rankview::globals().remove("ran")?;
    Ok(())
}

#[rankview::remote]
fn take_ran() -> TaskResult<Vec<u64>> {
    let g = rankview::globals();
    if !g.contains("ran")? {
        return Ok(Vec::new());
    }
    let ran = (*g.get::<Vec<u64>>("ran")?).clone();
    g.remove("ran")?;
    Ok(ran)
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    gate::sections(rankview::Launch::new()).run(|rc| -> Result<(), String> {
        let lv = rc.load_balanced_view();
        match mode.as_str() {
            // Returns while load-balanced tasks run "forever" and more wait
            // behind them: the job must end after the shutdown grace.
            "stuck" => {
                let _long: Vec<_> = (0..rc.len())
                    .map(|_| lv.apply(sleep_for, (3600.0,)))
                    .collect();
                let _queued: Vec<_> = (0..20).map(|_| lv.apply(whoami, ())).collect();
                std::thread::sleep(Duration::from_millis(200));
                println!("check_balanced: left load-balanced tasks running");
                Ok(())
            }
            // Panics with thousands of tasks queued and running: every rank
            // must end at once.
            "panic" => {
                let _queued = lv.chunksize(1).map(sleep_for, vec![0.05f64; 5000]);
                std::thread::sleep(Duration::from_millis(200));
                panic!("the client gives up with tasks queued");
            }
            _ => {
                let mut list = Checklist::new("check_balanced");
                balanced(rc, &mut list);
                list.finish()
            }
        }
    });
}
