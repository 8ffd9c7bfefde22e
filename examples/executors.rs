//! ipyparallel's notebook "Futures in IPython Parallel" (futures and
//! executors), in Rust.
//! Run it with `rankview run -n 3 --example executors`.
//!
//! Every cell that maps to Rust, each checked: `random_norm(100)` on the
//! last engine (a random vector from `rand`, its norm from `nalgebra`),
//! read with `get` and with `.await`; the engine's pid through an `on_done`
//! callback; a tokio program whose background ticker keeps printing while
//! `work()` awaits `rc.all().apply(sleep_task, t)` for four growing `t`;
//! executors of a direct view and of a load-balanced view over the even
//! engines; then the "Futures in IPython Parallel" notebook's comparison: the same `map` calls on a local
//! pool, a direct view's executor and the load-balanced executor, with
//! each one's name, result and time in a table, and equal results. Last,
//! the job's timeline as a picture: `executors-timeline.svg`, or the path
//! given as the first argument.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use nalgebra::DVector;
use rand::Rng;
use rankview::{Client, Executor, LocalPool};

/// Generates a vector of `n` uniform numbers and computes its 2-norm.
#[rankview::remote]
fn random_norm(n: usize) -> f64 {
    let mut rng = rand::rng();
    DVector::<f64>::from_fn(n, |_, _| rng.random()).norm()
}

#[rankview::remote]
fn getpid() -> u32 {
    std::process::id()
}

/// Sleeps `t` seconds and returns the pid (the "Futures in IPython Parallel" notebook's `sleep_task`).
#[rankview::remote]
fn sleep_task(t: f64) -> u32 {
    std::thread::sleep(Duration::from_secs_f64(t));
    std::process::id()
}

/// The pid, whatever the item (the notebook's `lambda x: os.getpid()`).
#[rankview::remote]
fn pid_of(_: u32) -> u32 {
    std::process::id()
}

/// `str(x)`.
#[rankview::remote]
fn show(x: u64) -> String {
    x.to_string()
}

/// Allocates a vector of `n` ones and computes its 2-norm (the "Futures in IPython Parallel" notebook's `task`).
#[rankview::remote]
fn task(n: usize) -> f64 {
    DVector::<f64>::from_element(n, 1.0).norm()
}

/// The background coroutine: prints a dot every `period` and counts them.
async fn background(period: Duration, ticks: Arc<AtomicUsize>) {
    let mut interval = tokio::time::interval(period);
    interval.tick().await;
    loop {
        interval.tick().await;
        print!(". ");
        ticks.fetch_add(1, Ordering::Relaxed);
    }
}

/// Submits some work and prints the results when complete; returns the
/// pids each step saw.
async fn work(rc: &Client) -> rankview::Result<Vec<Vec<u32>>> {
    let mut seen = Vec::new();
    for t in [0.1, 0.2, 0.3, 0.4] {
        let result = rc.all().apply(sleep_task, (t,)).await?; // this waits
        println!("{result:?}");
        seen.push(result);
    }
    Ok(seen)
}

/// The best of `runs` timings of `f`, and its last value.
fn best_of<T>(
    runs: usize,
    mut f: impl FnMut() -> rankview::Result<T>,
) -> rankview::Result<(T, Duration)> {
    let mut best = Duration::MAX;
    let mut value = None;
    for _ in 0..runs {
        let t0 = Instant::now();
        value = Some(f()?);
        best = best.min(t0.elapsed());
    }
    match value {
        Some(v) => Ok((v, best)),
        None => Err(rankview::Error::Usage("best_of needs a run".into())),
    }
}

/// One row of the comparison: the same calls on any executor.
fn compare(ex: &impl Executor, sizes: &[usize], reference: &[f64]) -> rankview::Result<Duration> {
    let strings = ex.map(show, 0..5u64).get()?;
    assert_eq!(strings, ["0", "1", "2", "3", "4"]);
    let (norms, time) = best_of(3, || ex.map(task, sizes.iter().copied()).get())?;
    assert_eq!(norms, reference, "{} != the local reference", ex.name());
    println!(
        "{:<32} {:<27} {:>10.1?}",
        ex.name(),
        format!("{strings:?}"),
        time
    );
    Ok(time)
}

fn main() {
    let picture = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "executors-timeline.svg".into());
    rankview::launch(|rc| -> rankview::Result<()> {
        println!("rc.ids = {:?}", rc.ids());
        let pids = rc.all().apply_sync(getpid, ())?;

        // f = rc[-1].apply(random_norm, 100); f.get(); f.result()
        let f = rc.engine(-1)?.apply(random_norm, (100usize,));
        let norm = f.get()?;
        // 100 uniform numbers: the norm is about sqrt(100 / 3) = 5.77.
        assert!((4.0..8.0).contains(&norm), "norm {norm}");
        println!("random_norm(100) on engine -1 = {norm}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| rankview::Error::Usage(e.to_string()))?;
        assert_eq!(runtime.block_on(f.clone())?, norm);

        // f.add_done_callback(lambda _: print("I got PID: %i" % _.result()))
        let f = rc.engine(-1)?.apply(getpid, ());
        let (told, heard) = mpsc::channel();
        f.on_done(move |r| {
            if let Ok(pid) = r.get() {
                println!("I got PID: {pid}");
                let _ = told.send(pid);
            }
        });
        let pid = f.get()?;
        let from_callback = heard
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| rankview::Error::Usage("the callback never ran".into()))?;
        assert_eq!(from_callback, pid);
        assert_eq!(Some(&pid), pids.last());
        assert_ne!(pid, std::process::id());

        // loop.add_callback(background); loop.run_sync(work), the
        // notebook's seconds as tenths of seconds.
        let ticks = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let seen = runtime.block_on(async {
            let ticker = tokio::spawn(background(Duration::from_millis(100), ticks.clone()));
            let seen = work(rc).await;
            ticker.abort();
            seen
        })?;
        let took = t0.elapsed();
        let ticked = ticks.load(Ordering::Relaxed);
        println!("work took {took:.2?}; the ticker ticked {ticked} times meanwhile");
        assert!(seen.iter().all(|step| step == &pids));
        assert!(took >= Duration::from_millis(1000) && took < Duration::from_secs(3));
        // About ten ticks in a second: the awaits never blocked the runtime.
        assert!(ticked >= 5, "only {ticked} ticks");

        // ex_all = rc[:].executor; ex_all.view.targets
        let ex_all = rc.all().executor();
        println!("ex_all targets {:?}", ex_all.targets());
        assert_eq!(ex_all.targets(), rc.ids().as_slice());
        // even_lbview = rc.load_balanced_view(targets=rc.ids[::2])
        let even: Vec<usize> = rc.ids().into_iter().step_by(2).collect();
        let ex_even = rc.view(even.clone())?.load_balanced().executor();
        for pid in ex_even.map(pid_of, 0..10u32) {
            let pid = pid?;
            println!("{pid}");
            assert!(
                even.iter().any(|&e| pids[e] == pid),
                "{pid} is not an even engine's"
            );
        }
        // ex = rc.executor(); ex.view
        let ex = rc.executor();
        println!("rc.executor() is {ex:?}");
        assert_eq!(ex.targets(), rc.ids().as_slice());

        // Comparing executors. The notebook's sizes are 2^20..2^24; these are
        // 2^16..2^20 (16 sizes, log-spaced) to suit a small machine.
        let sizes: Vec<usize> = (0..16)
            .map(|k| 2f64.powf(16.0 + 4.0 * f64::from(k) / 15.0) as usize)
            .collect();
        assert_eq!((sizes[0], sizes[15]), (1 << 16, 1 << 20));
        let (reference, local_time) = best_of(3, || {
            Ok(sizes.iter().map(|&n| task(n)).collect::<Vec<f64>>())
        })?;
        println!("sizes {sizes:?}");
        println!("local time (a plain loop): {local_time:.1?}");
        println!(
            "{:<32} {:<27} {:>10}",
            "executor", "map(show, 0..5)", "map(task)"
        );
        compare(&LocalPool::new(rc.len())?, &sizes, &reference)?;
        compare(&ex_all, &sizes, &reference)?;
        compare(&ex, &sizes, &reference)?;
        println!("the same results on every executor");

        // Where every engine task of the job ran, and when.
        let timeline = rc.timeline();
        assert!(!timeline.is_empty());
        timeline.write_svg(&picture)?;
        println!("timeline written to {picture}");
        Ok(())
    });
}
