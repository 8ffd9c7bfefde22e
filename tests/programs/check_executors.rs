//! The `Executor` trait on its three implementations, checked on real
//! engines. Run it with `rankview run -n 3 --package rankview-checks --bin check_executors` (or
//! `mpirun -n 3 target/debug/check_executors`);
//! `tests/executors.rs` runs it on 2 and 3 ranks, `ci/test-mpich.sh` under
//! MPICH.
//!
//! Owns the checks that code written once against `impl Executor` behaves
//! the same on a `LocalPool`, direct views' executors (every engine, the
//! last one) and load-balanced executors (every engine, the upper half):
//! the same results from one
//! generic function; 1000 `submit` futures in flight, awaited from a tokio
//! current-thread runtime whose other task keeps running; `map` results in
//! input order although items finish in another order, yielded as they
//! arrive; a panicking task giving the same `Error::Remote` everywhere and
//! a panicking `map` item its `Error::MapItem`, the executor working on
//! after; names; the local pool's lack of an engine namespace. Prints one
//! line per check and exits non-zero unless every check held.

mod checklist;
mod gate;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use checklist::{Checklist, Outcome};
use rankview::{Client, Error, Executor, LocalPool, TaskResult};
use tokio::runtime::Runtime;

#[rankview::remote]
fn show(x: u32) -> String {
    x.to_string()
}

/// The 2-norm of a vector of `n` ones, computed the long way.
#[rankview::remote]
fn norm_of_ones(n: u64) -> f64 {
    let ones = vec![1.0f64; usize::try_from(n).unwrap_or(0)];
    ones.iter().map(|x| x * x).sum::<f64>().sqrt()
}

#[rankview::remote]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[rankview::remote]
fn square(x: u64) -> u64 {
    x * x
}

/// Sleeps `micros` µs, then returns `x * x`.
#[rankview::remote]
fn slow_square(x: u64, micros: u64) -> u64 {
    std::thread::sleep(Duration::from_micros(micros));
    x * x
}

/// Sleeps the item's milliseconds; returns its index.
#[rankview::remote]
fn nap(item: (u32, u64)) -> u32 {
    std::thread::sleep(Duration::from_millis(item.1));
    item.0
}

/// Waits at the gate for the item's generation (none for 0); returns its
/// index.
#[rankview::remote]
fn at_gate(item: (u32, u64)) -> TaskResult<u32> {
    if item.1 > 0 {
        gate::pass(item.1)?;
    }
    Ok(item.0)
}

#[rankview::remote]
fn boom(x: u32) -> u32 {
    if x == 3 {
        panic!("item {x} is bad");
    }
    x * 10
}

#[rankview::remote]
fn which_engine() -> TaskResult<usize> {
    Ok(rankview::globals().engine()?)
}

/// Calls `$check(&executor, workers, ..)` for every kind of executor (a
/// local pool of 4 threads; a direct view's over every engine;
/// load-balanced over every engine and over the upper half; a direct
/// view's over the last engine), each failure labelled with the
/// executor's name.
macro_rules! on_every_executor {
    ($rc:expr, $check:ident $(, $arg:expr)*) => {{
        let rc: &Client = $rc;
        let labelled = |name: String, outcome: Outcome| -> Outcome {
            outcome.map_err(|e| format!("{name}: {e}").into())
        };
        let local = LocalPool::new(4)?;
        labelled(local.name(), $check(&local, local.threads() $(, $arg)*))?;
        let direct = rc.all().executor();
        labelled(direct.name(), $check(&direct, rc.len() $(, $arg)*))?;
        let balanced = rc.executor();
        labelled(balanced.name(), $check(&balanced, rc.len() $(, $arg)*))?;
        let subset = rc.view(rc.len() / 2..)?.load_balanced().executor();
        let workers = subset.targets().len();
        labelled(subset.name(), $check(&subset, workers $(, $arg)*))?;
        let one = rc.engine(-1)?.executor();
        labelled(one.name(), $check(&one, 1 $(, $arg)*))?;
        Outcome::Ok(())
    }};
}

/// The workload of ipyparallel's "Futures in IPython Parallel" notebook,
/// written once for any executor.
fn workload(ex: &impl Executor) -> rankview::Result<(Vec<String>, Vec<f64>, i64)> {
    let strings = ex.map(show, 0..5u32).get()?;
    let sizes: Vec<u64> = (0..8).map(|k| 1000 << k).collect();
    let norms = ex.map(norm_of_ones, sizes).get()?;
    let sum = ex.submit(add, (40i64, 2i64)).get()?;
    Ok((strings, norms, sum))
}

fn same_results(ex: &impl Executor, _: usize, reference: &(Vec<String>, Vec<f64>, i64)) -> Outcome {
    let got = workload(ex)?;
    assert_eq!(&got, reference);
    Ok(())
}

/// 1000 submissions in flight, awaited together from a current-thread
/// runtime while a ticker task runs.
fn many_awaited(ex: &impl Executor, _: usize, runtime: &Runtime) -> Outcome {
    runtime.block_on(async {
        let ticks = Arc::new(AtomicUsize::new(0));
        let counter = ticks.clone();
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(1));
            loop {
                interval.tick().await;
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::Relaxed);
        let results: Vec<_> = (0..1000u64)
            .map(|i| ex.submit(slow_square, (i, 1000u64)))
            .collect();
        let pending = results.iter().filter(|r| !r.ready()).count();
        let mut set = tokio::task::JoinSet::new();
        for (i, result) in results.into_iter().enumerate() {
            set.spawn(async move { (i as u64, result.await) });
        }
        let mut seen = 0;
        while let Some(joined) = set.join_next().await {
            let (i, value) = joined?;
            assert_eq!(value?, i * i);
            seen += 1;
        }
        let during = ticks.load(Ordering::Relaxed) - before;
        ticker.abort();
        assert_eq!(seen, 1000);
        assert!(pending > 0, "every task was done before any await");
        assert!(during > 0, "the ticker never ran during the awaits");
        Ok(())
    })
}

/// Items that finish in another order than they were given: the map's
/// results still come in input order, and the first comes before the
/// last has finished.
fn map_in_input_order(ex: &impl Executor, workers: usize, rc: &Client) -> Outcome {
    // A long first item: with several workers, later items finish first.
    let items: Vec<(u32, u64)> = (0..6).map(|i| (i, if i == 0 { 300 } else { 0 })).collect();
    let map = ex.map(nap, items);
    let completed: Vec<SystemTime> = {
        map.wait();
        map.metadata().iter().filter_map(|m| m.completed).collect()
    };
    let order: Vec<u32> = map.get()?;
    assert_eq!(order, (0..6).collect::<Vec<_>>());
    let got: Vec<u32> = map.collect::<rankview::Result<_>>()?;
    assert_eq!(got, order);
    if workers >= 2 && completed.len() == 6 {
        assert!(
            completed.windows(2).any(|w| w[1] < w[0]),
            "items finished in input order: nothing was tested"
        );
    }
    // The iterator yields the first item while the last still runs: the
    // last waits at the gate until the first has been read.
    let items: Vec<(u32, u64)> = vec![(0, 0), (1, gate::closed())];
    let mut map = ex.map(at_gate, items);
    assert_eq!(map.next().transpose()?, Some(0));
    let done = map.ready();
    gate::open(rc)?;
    assert!(!done, "the map was done before its first item was read");
    assert_eq!(map.next().transpose()?, Some(1));
    assert_eq!(map.next().transpose()?, None);
    Ok(())
}

/// The error of a panicking `submit`, and of a panicking `map` item; the
/// executor keeps working after both. Returns the submit's panic message.
fn panics_then_works(ex: &impl Executor, _: usize, messages: &mut Vec<String>) -> Outcome {
    match ex.submit(boom, (3u32,)).get() {
        Err(Error::Remote { kind, message, .. }) => {
            assert_eq!(kind, "panic");
            assert!(message.contains("item 3 is bad"), "{message}");
            messages.push(message);
        }
        other => return Err(format!("expected a panic, got {other:?}").into()),
    }
    let map = ex.map(boom, 0..6u32);
    match map.get() {
        Err(Error::MapItem { index: 3, error }) => {
            assert!(matches!(*error, Error::Remote { ref kind, .. } if kind == "panic"));
        }
        other => return Err(format!("expected item 3 to fail, got {other:?}").into()),
    }
    assert!(!map.successful());
    let items: Vec<rankview::Result<u32>> = map.collect();
    assert_eq!(items.len(), 6);
    for (i, item) in items.iter().enumerate() {
        match (i, item) {
            (3, Err(Error::MapItem { index: 3, .. })) => {}
            (3, other) => return Err(format!("item 3: {other:?}").into()),
            (i, Ok(v)) => assert_eq!(*v as usize, i * 10),
            (i, Err(e)) => return Err(format!("item {i} failed: {e}").into()),
        }
    }
    assert_eq!(ex.submit(square, (9u64,)).get()?, 81);
    assert_eq!(ex.map(square, 0..4u64).get()?, vec![0, 1, 4, 9]);
    Ok(())
}

fn executors(rc: &Client, runtime: &Runtime, list: &mut Checklist) {
    list.check("same_results_on_every_executor", || {
        let reference = workload(&LocalPool::new(2)?)?;
        assert_eq!(reference.0, ["0", "1", "2", "3", "4"]);
        assert_eq!(reference.2, 42);
        for (k, norm) in reference.1.iter().enumerate() {
            let expected = ((1000u64 << k) as f64).sqrt();
            assert!((norm - expected).abs() < 1e-9, "{norm} != {expected}");
        }
        on_every_executor!(rc, same_results, &reference)
    });
    list.check("many_submits_awaited_from_tokio", || {
        on_every_executor!(rc, many_awaited, runtime)
    });
    list.check("map_in_input_order", || {
        on_every_executor!(rc, map_in_input_order, rc)
    });
    list.check("panic_is_the_same_error_and_the_executor_goes_on", || {
        let mut messages = Vec::new();
        on_every_executor!(rc, panics_then_works, &mut messages)?;
        // The same message (function, location, text) wherever it ran.
        assert_eq!(messages.len(), 5);
        assert!(messages.iter().all(|m| m == &messages[0]), "{messages:#?}");
        assert!(messages[0].contains("boom panicked at"), "{}", messages[0]);
        Ok(())
    });
    list.check("names_say_where_tasks_run", || {
        assert_eq!(LocalPool::new(3)?.name(), "local pool (3 threads)");
        let all: Vec<usize> = rc.ids();
        assert_eq!(rc.executor().name(), format!("load-balanced view {all:?}"));
        assert_eq!(rc.all().executor().name(), format!("direct view {all:?}"));
        assert_eq!(rc.executor().targets(), all.as_slice());
        Ok(())
    });
    list.check("direct_executor_takes_engines_in_turn", || {
        let ex = rc.all().executor();
        let engines: Vec<usize> = (0..2 * rc.len())
            .map(|_| ex.submit(which_engine, ()).get())
            .collect::<rankview::Result<_>>()?;
        let expected: Vec<usize> = (0..2 * rc.len()).map(|k| k % rc.len()).collect();
        assert_eq!(engines, expected);
        Ok(())
    });
    list.check("local_pool_has_no_engine_namespace", || {
        let pool = LocalPool::new(2)?;
        let ar = pool.submit(which_engine, ());
        assert!(matches!(ar.get(), Err(Error::Usage(_))), "{:?}", ar.get());
        let meta = ar.metadata();
        assert_eq!(meta.len(), 1);
        assert!(meta[0].engine < 2, "thread index {}", meta[0].engine);
        assert!(meta[0].started.is_some() && meta[0].completed.is_some());
        Ok(())
    });
}

fn main() {
    gate::sections(rankview::Launch::new()).run(|rc| -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| e.to_string())?;
        let mut list = Checklist::new("check_executors");
        executors(rc, &runtime, &mut list);
        list.finish()
    });
}
