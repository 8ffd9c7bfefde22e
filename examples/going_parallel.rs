//! ipyparallel's notebook "Going parallel with IPython: the basics", in Rust.
//! Run it with `rankview run -n 5 --example going_parallel`.
//!
//! `longrun` timed locally, on one engine and on every engine; the process id
//! of every engine; views and their lengths; `longrun` mapped over
//! `[1000, 500, 1000, 200]` by the built-in map and by a load-balanced view
//! (`map_sync`), same values, both timed; a value set on one engine is
//! there and not on another (a `NameError`). Then partitioning data: 200,000
//! random numbers scattered as `a`, the partitions read back per engine,
//! `CostlyOperation` (square the local chunk) on every engine, and `gather`
//! giving back the original array.

use std::time::{Duration, Instant};

use ndarray::{concatenate, Array1, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use rankview::{globals, Error, TaskResult};

/// Adds `n` pseudo-random integers in 1..=100 (the "Going parallel with IPython" notebook's
/// `random.randint(1, 100)`), from a generator seeded by `n`.
#[rankview::remote]
fn longrun(n: u64) -> u64 {
    let mut rng = StdRng::seed_from_u64(n);
    (0..n).map(|_| rng.random_range(1..=100u64)).sum()
}

#[rankview::remote]
fn getpid() -> u32 {
    std::process::id()
}

/// `array = np.copy(a); return array * array`
#[rankview::remote]
#[allow(non_snake_case)]
fn CostlyOperation() -> TaskResult<Array1<f64>> {
    let a = globals().get::<Array1<f64>>("a")?;
    Ok(&*a * &*a)
}

/// Normally distributed numbers plus one (`np.random.randn(n) + 1`).
fn randn_plus_one(n: usize, seed: u64) -> Array1<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(1.0, 1.0).unwrap_or_else(|e| unreachable!("N(1, 1): {e}"));
    Array1::from_shape_fn(n, |_| normal.sample(&mut rng))
}

/// Best of `runs` wall times of `f`.
fn best_of<T>(
    runs: usize,
    mut f: impl FnMut() -> rankview::Result<T>,
) -> rankview::Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

fn main() {
    rankview::launch(|rc| -> rankview::Result<()> {
        println!("rc.ids = {:?}", rc.ids());
        let n = 10_000;
        let expected = longrun(n);
        assert!((n..=100 * n).contains(&expected));

        let local = best_of(20, || Ok(longrun(n)))?;
        let last = rc.engine(-1)?;
        assert_eq!(last.apply_sync(longrun, (n,))?, expected);
        let one = best_of(20, || last.apply_sync(longrun, (n,)))?;
        let all = rc.all();
        assert!(all
            .apply_sync(longrun, (n,))?
            .iter()
            .all(|&r| r == expected));
        let every = best_of(20, || all.apply_sync(longrun, (n,)))?;
        println!(
            "longrun({n}): local {local:?}, on engine -1 {one:?}, on all {every:?} (best of 20)"
        );

        let me = std::process::id();
        let pid0 = rc.engine(0)?.apply_sync(getpid, ())?;
        let mut pids = all.apply_sync(getpid, ())?;
        println!("client pid {me}; engine pids {pids:?}");
        assert_eq!(pids[0], pid0);
        pids.push(me);
        pids.sort();
        pids.dedup();
        assert_eq!(
            pids.len(),
            rc.len() + 1,
            "every engine is a process of its own"
        );

        // len(rc[1:3]) and type(rc[:]).
        match rc.view(1..3) {
            Ok(view) => {
                assert!(rc.len() >= 3);
                assert_eq!(view.len(), 2);
                println!("len(rc[1:3]) = {}", view.len());
            }
            Err(Error::InvalidTarget { .. }) => {
                assert!(rc.len() < 3);
                println!("rc[1:3] needs 3 engines; this job has {}", rc.len());
            }
            Err(e) => return Err(e),
        }
        println!("rc[:] is {all:?}");

        // map: the built-in one, then a load-balanced view's.
        let items = [1000u64, 500, 1000, 200];
        let serial: Vec<u64> = items.iter().map(|&n| longrun(n)).collect();
        println!("map(longrun, {items:?}) = {serial:?}");
        let serial_time = best_of(20, || Ok(items.map(longrun)))?;
        let view = rc.load_balanced_view();
        assert_eq!(view.map_sync(longrun, items)?, serial);
        let balanced_time = best_of(20, || view.map_sync(longrun, items))?;
        println!(
            "map of longrun: built-in {serial_time:?}, load-balanced view.map_sync \
             {balanced_time:?} (best of 20)"
        );
        println!("view is {view:?}");

        // A value set on one engine is not defined on another.
        let (there, elsewhere) = if rc.len() >= 2 {
            (rc.engine(1)?, rc.engine(0)?)
        } else {
            (rc.engine(0)?, rc.engine(-1)?)
        };
        there.set("myVarIn1", &"I am in 1".to_string())?;
        assert_eq!(there.get::<String>("myVarIn1")?, "I am in 1");
        let missing = if rc.len() >= 2 {
            "myVarIn1"
        } else {
            "myVarIn0"
        };
        match elsewhere.get::<String>(missing) {
            Err(Error::NameError { engine, name }) => {
                println!("engine {engine}: NameError: name '{name}' is not defined");
                assert_eq!(engine, elsewhere.targets()[0]);
            }
            other => panic!("expected a NameError, got {other:?}"),
        }

        // Partitioning data.
        let a = randn_plus_one(200_000, 0x5eed);
        println!("{} {}", a, a.len());
        let other_view = rc.all();
        println!("{other_view:?}");
        other_view.scatter("a", &a).get()?;
        // With other_view['a'] you can see the partitions.
        let partitions: Vec<Array1<f64>> = other_view.get("a")?;
        let p = rc.len();
        for (k, part) in partitions.iter().enumerate() {
            assert_eq!(part.len(), 200_000 / p + usize::from(k < 200_000 % p));
            println!("engine {k}: {} values, first {:.8}", part.len(), part[0]);
        }
        let views: Vec<_> = partitions.iter().map(|x| x.view()).collect();
        assert_eq!(concatenate(Axis(0), &views).ok(), Some(a.clone()));

        let t = Instant::now();
        let squared = other_view.apply_sync(CostlyOperation, ())?;
        let remote = t.elapsed();
        let t = Instant::now();
        let local = &a * &a;
        println!(
            "CostlyOperation: on every engine {remote:?}, locally {:?}",
            t.elapsed()
        );
        let squared_views: Vec<_> = squared.iter().map(|x| x.view()).collect();
        assert_eq!(concatenate(Axis(0), &squared_views).ok(), Some(local));

        // We can get the original a that was distributed this way.
        let b: Array1<f64> = other_view.gather("a").get()?;
        println!("{} {}", b, b.len());
        assert_eq!(b, a);
        Ok(())
    });
}
