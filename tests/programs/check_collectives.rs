//! The collectives of a `DirectView`, checked on real engines. Run it with
//! `rankview run -n 3 --package rankview-checks --bin check_collectives`; `tests/collectives.rs`
//! runs it on 2, 3 and 5 ranks.
//!
//! Owns the checks of scatter and gather (uneven splits, empty blocks, 1-D
//! and 2-D arrays, non-contiguous input, strings, round-robin order, views
//! in any target order, a gathered value read again after `successful`),
//! broadcast push, reduce with every operation and with a user function,
//! `map`, MPI sections and the `with_mpi` prelude, and the errors of
//! collectives (`NameError` for the engine lacking a name, `TypeMismatch`,
//! unequal lengths in a reduce). Prints one line per check and exits
//! non-zero unless every check held.

mod checklist;

use checklist::{skip, Checklist};
use rankview::mpi::collective::CommunicatorCollectives;
use rankview::mpi::topology::Communicator;
use rankview::ndarray::{s, Array1, Array2};
use rankview::{globals, Client, Distribution, Error, ReduceOp, TaskResult};

/// The length of this engine's `Vec<u64>` called `name`.
#[rankview::remote]
fn len_of(name: String) -> TaskResult<usize> {
    Ok(globals().get::<Vec<u64>>(&name)?.len())
}

/// The shape of this engine's `Array2<f64>` called `name`.
#[rankview::remote]
fn shape_of(name: String) -> TaskResult<Vec<usize>> {
    Ok(globals().get::<Array2<f64>>(&name)?.shape().to_vec())
}

/// Stores `value` repeated `len` times as `Vec<f64>` under `name`.
#[rankview::remote]
fn store_vec(name: String, value: f64, len: usize) -> TaskResult<()> {
    globals().insert(name, vec![value; len])?;
    Ok(())
}

/// Stores `value` as an `f64` scalar under `name`.
#[rankview::remote]
fn store_scalar(name: String, value: f64) -> TaskResult<()> {
    globals().insert(name, value)?;
    Ok(())
}

#[rankview::remote]
fn forget(name: String) -> TaskResult<bool> {
    Ok(globals().remove(&name)?)
}

/// Sum of this engine's `Vec<f64>` called `name`.
#[rankview::remote]
fn sum_of(name: String) -> TaskResult<f64> {
    Ok(globals().get::<Vec<f64>>(&name)?.iter().sum())
}

#[rankview::remote]
fn square(x: i64) -> i64 {
    x * x
}

#[rankview::remote]
fn engine_label(prefix: String) -> String {
    format!("{prefix}{}", std::process::id())
}

/// The block rule: how many of `n` items engine `k` of `p` gets.
fn block(n: usize, p: usize, k: usize) -> usize {
    n / p + usize::from(k < n % p)
}

/// The numbers scattered as `ids` over `p` engines: 1000 per engine less
/// one, so that `p - 1` are left over, the most a split can leave.
fn ids(p: usize) -> Vec<u64> {
    (0..(1000 * p - 1) as u64).collect()
}

fn scatter_gather(rc: &Client, list: &mut Checklist) {
    let dv = rc.all();
    let p = rc.len();

    list.check("uneven_split_lengths", || {
        let ids = ids(p);
        dv.scatter("ids", &ids).get()?;
        let lens = dv.apply_sync(len_of, ("ids".to_string(),))?;
        let expected: Vec<usize> = (0..p).map(|k| block(ids.len(), p, k)).collect();
        assert!(
            p == 1 || expected[0] > expected[p - 1],
            "the split must be uneven: {expected:?}"
        );
        assert_eq!(lens, expected);
        let back: Vec<u64> = dv.gather("ids").get()?;
        assert_eq!(back, ids);
        Ok(())
    });

    list.check("fewer_items_than_engines", || {
        let few: Vec<u64> = vec![7, 8];
        dv.scatter("few", &few).get()?;
        let lens = dv.apply_sync(len_of, ("few".to_string(),))?;
        let expected: Vec<usize> = (0..p).map(|k| block(2, p, k)).collect();
        assert_eq!(lens, expected);
        let back: Vec<u64> = dv.gather("few").get()?;
        assert_eq!(back, few);
        let none: Vec<u64> = Vec::new();
        dv.scatter("none", &none).get()?;
        let back: Vec<u64> = dv.gather("none").get()?;
        assert!(back.is_empty());
        Ok(())
    });

    list.check("array1_round_trip", || {
        let a = Array1::from_shape_fn(10_001, |i| (i as f64).sin());
        dv.scatter("a1", &a).get()?;
        let parts: Vec<Array1<f64>> = dv.get("a1")?;
        for (k, part) in parts.iter().enumerate() {
            assert_eq!(part.len(), block(10_001, p, k));
        }
        let back: Array1<f64> = dv.gather("a1").get()?;
        assert_eq!(back, a);
        Ok(())
    });

    list.check("array2_round_trip", || {
        let a = Array2::from_shape_fn((7, 3), |(i, j)| (i * 10 + j) as f64);
        dv.scatter("a2", &a).get()?;
        let shapes = dv.apply_sync(shape_of, ("a2".to_string(),))?;
        for (k, shape) in shapes.iter().enumerate() {
            assert_eq!(shape, &vec![block(7, p, k), 3]);
        }
        let back: Array2<f64> = dv.gather("a2").get()?;
        assert_eq!(back, a);
        Ok(())
    });

    list.check("non_contiguous_input", || {
        let a = Array2::from_shape_fn((5, 4), |(i, j)| (i * 4 + j) as f64);
        let transposed = a.t();
        dv.scatter("t", &transposed).get()?;
        let back: Array2<f64> = dv.gather("t").get()?;
        assert_eq!(back, transposed.to_owned());
        let long = Array1::from_shape_fn(101, |i| i as f64);
        let stepped = long.slice(s![..;3]);
        dv.scatter("stepped", &stepped).get()?;
        let back: Array1<f64> = dv.gather("stepped").get()?;
        assert_eq!(back, stepped.to_owned());
        Ok(())
    });

    list.check("strings_round_trip", || {
        let words: Vec<String> = (0..57)
            .map(|i| format!("word {i} {}", "x".repeat(i % 7)))
            .collect();
        dv.scatter("words", &words).get()?;
        let back: Vec<String> = dv.gather("words").get()?;
        assert_eq!(back, words);
        Ok(())
    });

    list.check("round_robin_order", || {
        let items: Vec<u64> = (0..10).collect();
        dv.scatter_with("rr", &items, Distribution::RoundRobin)
            .get()?;
        let per_engine: Vec<Vec<u64>> = dv.get("rr")?;
        for (k, held) in per_engine.iter().enumerate() {
            let expected: Vec<u64> = (k as u64..10).step_by(p).collect();
            assert_eq!(held, &expected, "engine {k}");
        }
        let back: Vec<u64> = dv.gather("rr").get()?;
        assert_eq!(back, per_engine.concat());
        let a = Array2::from_shape_fn((6, 2), |(i, j)| (i * 2 + j) as f64);
        dv.scatter_with("rr2", &a, Distribution::RoundRobin).get()?;
        let parts: Vec<Array2<f64>> = dv.get("rr2")?;
        for (k, part) in parts.iter().enumerate() {
            for (r, row) in part.rows().into_iter().enumerate() {
                assert_eq!(row, a.row(k + r * p));
            }
        }
        Ok(())
    });

    list.check("views_in_any_order", || {
        let targets: Vec<usize> = (0..p).rev().collect();
        let reversed = rc.view(targets.clone())?;
        let items: Vec<u64> = (0..100).collect();
        reversed.scatter("rev", &items).get()?;
        // Block k goes to targets[k]: the last engine holds the first block.
        let first = rc.engine(targets[0] as i64)?.get::<Vec<u64>>("rev")?;
        assert_eq!(first, (0..block(100, p, 0) as u64).collect::<Vec<_>>());
        let back: Vec<u64> = reversed.gather("rev").get()?;
        assert_eq!(back, items);
        if p >= 2 {
            let pair = rc.view(0..2)?;
            pair.scatter("pair", &items).get()?;
            let back: Vec<u64> = pair.gather("pair").get()?;
            assert_eq!(back, items);
        }
        Ok(())
    });

    list.check("gathered_value_reads_again", || {
        let ar = dv.gather::<Vec<u64>>("ids");
        ar.wait();
        assert!(ar.successful(), "inspected before any get");
        let first = ar.get()?;
        assert_eq!(first, ids(p));
        assert!(ar.successful(), "inspected after a get");
        assert_eq!(ar.get()?, first, "a second get");
        assert_eq!(ar.clone().into_value()?, first, "into_value of a clone");
        assert_eq!(ar.into_value()?, first, "into_value of the last handle");
        Ok(())
    });
}

fn broadcast(rc: &Client, list: &mut Checklist) {
    let dv = rc.all();
    list.check("broadcast_push_numeric", || {
        let big: Vec<f64> = (0..1_000_000).map(|i| i as f64).collect();
        dv.push("big", &big).get()?;
        let sums = dv.apply_sync(sum_of, ("big".to_string(),))?;
        let expected: f64 = big.iter().sum();
        assert!(sums.iter().all(|&s| s == expected), "{sums:?}");
        let m = Array2::from_shape_fn((3, 4), |(i, j)| (i + j) as f64);
        dv.push("m", &m).get()?;
        let back: Vec<Array2<f64>> = dv.get("m")?;
        assert!(back.iter().all(|x| *x == m));
        Ok(())
    });
    list.check("broadcast_push_serde", || {
        let text = "bar".to_string();
        dv.push("foo", &text).get()?;
        let back: Vec<String> = dv.get("foo")?;
        assert_eq!(back, vec![text; rc.len()]);
        Ok(())
    });
}

fn reductions(rc: &Client, list: &mut Checklist) {
    let dv = rc.all();
    let p = rc.len();
    list.check("reduce_every_op", || {
        // Engine k holds [k + 1.0; 5] and the scalar k + 1.0.
        for k in 0..p {
            let e = rc.engine(k as i64)?;
            e.apply_sync(store_vec, ("v".to_string(), k as f64 + 1.0, 5))?;
            e.apply_sync(store_scalar, ("x".to_string(), k as f64 + 1.0))?;
        }
        let values: Vec<f64> = (1..=p).map(|k| k as f64).collect();
        let expect = |op: ReduceOp| match op {
            ReduceOp::Sum => values.iter().sum(),
            ReduceOp::Prod => values.iter().product(),
            ReduceOp::Min => values.iter().cloned().fold(f64::INFINITY, f64::min),
            ReduceOp::Max => values.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        };
        for op in [ReduceOp::Sum, ReduceOp::Prod, ReduceOp::Min, ReduceOp::Max] {
            let v: Vec<f64> = dv.reduce("v", op).get()?;
            assert_eq!(v, vec![expect(op); 5], "{op:?}");
            let x: f64 = dv.reduce("x", op).get()?;
            assert_eq!(x, expect(op), "{op:?}");
        }
        Ok(())
    });
    list.check("reduce_with_user_function", || {
        let labels: Vec<String> = dv.apply_sync(engine_label, ("pid".to_string(),))?;
        let joined = dv
            .apply_reduce(engine_label, ("pid".to_string(),), |a, b| a + "," + &b)
            .get()?;
        assert_eq!(joined, labels.join(","));
        let longest = dv
            .reduce_with(
                "v",
                |a: Vec<f64>, b: Vec<f64>| if a[0] >= b[0] { a } else { b },
            )
            .get()?;
        assert_eq!(longest, vec![p as f64; 5]);
        Ok(())
    });
    list.check("reduce_unequal_lengths_is_an_error", || {
        if p < 2 {
            return skip("one engine: no other engine to hold a vector of another length");
        }
        rc.engine(0)?
            .apply_sync(store_vec, ("uneven".to_string(), 1.0, 3))?;
        for k in 1..p {
            rc.engine(k as i64)?
                .apply_sync(store_vec, ("uneven".to_string(), 1.0, 4))?;
        }
        match dv.reduce::<Vec<f64>>("uneven", ReduceOp::Sum).get() {
            Err(Error::Usage(message)) => assert!(message.contains("length"), "{message}"),
            other => return Err(format!("expected a usage error, got {other:?}").into()),
        }
        // The engines are free again.
        let v: Vec<f64> = dv.reduce("v", ReduceOp::Sum).get()?;
        assert_eq!(v.len(), 5);
        Ok(())
    });
}

fn errors(rc: &Client, list: &mut Checklist) {
    let dv = rc.all();
    let p = rc.len();
    list.check("gather_missing_name_is_name_error", || {
        let items: Vec<u64> = (0..30).collect();
        dv.scatter("partly", &items).get()?;
        let last = p - 1;
        rc.engine(last as i64)?
            .apply_sync(forget, ("partly".to_string(),))?;
        match dv.gather::<Vec<u64>>("partly").get() {
            Err(Error::NameError { engine, name }) => {
                assert_eq!(engine, last);
                assert_eq!(name, "partly");
            }
            other => return Err(format!("expected a NameError, got {other:?}").into()),
        }
        // Everything still works afterwards.
        let back: Vec<u64> = dv.gather("ids").get()?;
        assert_eq!(back, ids(p));
        Ok(())
    });
    list.check("gather_wrong_type_is_type_mismatch", || {
        // Every engine holds a Vec<u64>: each one reports the mismatch.
        let errors = match dv.gather::<Vec<String>>("ids").get() {
            Err(Error::Composite(errors)) => errors,
            Err(e) => vec![e],
            Ok(v) => return Err(format!("gathered {} strings from u64s", v.len()).into()),
        };
        assert_eq!(errors.len(), p);
        for (k, e) in errors.iter().enumerate() {
            match e {
                Error::TypeMismatch {
                    engine,
                    expected,
                    found,
                    ..
                } => {
                    assert_eq!(*engine, k);
                    assert!(expected.contains("String"), "{expected}");
                    assert!(found.contains("u64"), "{found}");
                }
                other => return Err(format!("expected a TypeMismatch, got {other:?}").into()),
            }
        }
        match dv.gather::<Array1<f64>>("ids").get() {
            Err(Error::TypeMismatch { .. }) | Err(Error::Composite(_)) => {}
            other => return Err(format!("expected a TypeMismatch, got {other:?}").into()),
        }
        Ok(())
    });
}

fn mapping(rc: &Client, list: &mut Checklist) {
    let dv = rc.all();
    list.check("map_in_input_order", || {
        let squares = dv.map_sync(square, 0..100i64)?;
        assert_eq!(squares, (0..100i64).map(|x| x * x).collect::<Vec<_>>());
        let few = dv.map_sync(square, [3i64])?;
        assert_eq!(few, vec![9]);
        let none = dv.map_sync(square, Vec::<i64>::new())?;
        assert!(none.is_empty());
        Ok(())
    });
}

fn sections(rc: &Client, list: &mut Checklist) {
    list.check("mpi_section_runs_on_every_rank", || {
        rc.mpi_section("count").get()?;
        let counted = COUNT.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(counted, rc.len() + 1);
        match rc.mpi_section("nope").get() {
            Err(Error::Usage(_)) => Ok(()),
            other => Err(format!("expected a usage error, got {other:?}").into()),
        }
    });
    list.check("with_mpi_runs_on_every_rank", || {
        // The prelude counted the ranks with a collective of its own, so
        // it ran on all of them; each engine says what its prelude saw.
        let ranks = rc.len() + 1;
        assert_eq!(PRELUDE.load(std::sync::atomic::Ordering::SeqCst), ranks);
        assert_eq!(rc.all().apply_sync(prelude_saw, ())?, vec![ranks; rc.len()]);
        Ok(())
    });
}

static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The ranks the `with_mpi` prelude counted on this rank (0: it never ran).
static PRELUDE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[rankview::remote]
fn prelude_saw() -> usize {
    PRELUDE.load(std::sync::atomic::Ordering::SeqCst)
}

/// Counts the ranks with `all_reduce` on `world`.
fn count_ranks(world: &rankview::World) -> usize {
    let mut ranks = 0u64;
    world.all_reduce_into(
        &1u64,
        &mut ranks,
        rankview::mpi::collective::SystemOperation::sum(),
    );
    assert_eq!(ranks, world.size() as u64);
    ranks as usize
}

fn main() {
    rankview::Launch::new()
        .with_mpi(|world| PRELUDE.store(count_ranks(world), std::sync::atomic::Ordering::SeqCst))
        .mpi_section("count", |world| {
            COUNT.store(count_ranks(world), std::sync::atomic::Ordering::SeqCst);
        })
        .run(|rc| {
            let mut list = Checklist::new("check_collectives");
            scatter_gather(rc, &mut list);
            broadcast(rc, &mut list);
            reductions(rc, &mut list);
            errors(rc, &mut list);
            mapping(rc, &mut list);
            sections(rc, &mut list);
            list.finish()
        });
}
