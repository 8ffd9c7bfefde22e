//! The data paths of the hot loop, checked on real engines. Run it with
//! `rankview run -n 3 --package rankview-checks --bin check_hotpath`; `tests/hotpath.rs` runs it
//! on 2, 3 and 5 ranks.
//!
//! Owns the checks of numeric `pull` as a raw buffer (every container kind,
//! many engines, a wrong type, reading a result twice, a value changed right
//! after it was pulled, a pull longer than one message piece), of receiving
//! a scatter or broadcast into the memory of the value it replaces (reused
//! only when the type and shape match and nothing holds the old value: a
//! running task's value and a queued task's view of it are never
//! overwritten; both for small data and for a megabyte or more, which goes
//! in two phases, with an `apply` submitted right behind a scatter seeing
//! its data), and of `gather_into` / `reduce_into` (right sizes, wrong
//! length, shape or element type refused before any data moves, a
//! non-contiguous array), and of encoded values of a megabyte or more,
//! which travel beside their messages as attachments: push, apply
//! arguments and results, pull (encoded or decoded on the engine), to many
//! engines at once, through the load-balanced view (apply, map and steals),
//! and a value longer than one message piece both ways. Prints one line per
//! check and exits non-zero unless every check held.

mod checklist;
mod gate;

use std::time::Duration;

use checklist::Checklist;
use rankview::ndarray::Array2;
use rankview::{globals, Client, Error, ReduceOp, TaskResult};

/// Where the elements of this engine's `Vec<f64>` called `name` live.
#[rankview::remote]
fn address_of(name: String) -> TaskResult<usize> {
    Ok(globals().get::<Vec<f64>>(&name)?.as_ptr() as usize)
}

/// Sum of this engine's `Vec<f64>` called `name`.
#[rankview::remote]
fn sum_of(name: String) -> TaskResult<f64> {
    Ok(globals().get::<Vec<f64>>(&name)?.iter().sum())
}

/// Holds `name` while it waits at the gate for `generation`, then sums
/// it: a running task that still reads the value.
#[rankview::remote]
fn hold_and_sum(name: String, generation: u64) -> TaskResult<f64> {
    let held = globals().get::<Vec<f64>>(&name)?;
    gate::pass(generation)?;
    Ok(held.iter().sum())
}

#[rankview::remote]
fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Stores a 3 × 2 `i32` array in column-major layout (not row-major).
#[rankview::remote]
fn store_transposed(name: String) -> TaskResult<()> {
    let a = Array2::from_shape_fn((2, 3), |(i, j)| (i * 3 + j) as i32).reversed_axes();
    globals().insert(name, a)?;
    Ok(())
}

/// Adds `x` to every element of `name` in place (exclusive use).
#[rankview::remote]
fn add_in_place(name: String, x: f64) -> TaskResult<()> {
    let mut v = globals().get_mut::<Vec<f64>>(&name)?;
    v.iter_mut().for_each(|e| *e += x);
    Ok(())
}

/// The byte at `i` of [`store_bytes`]'s value: 7, except a marker every
/// MiB and in the last byte (quick to write and check in a debug build).
fn byte_at(i: usize, len: usize) -> u8 {
    if i % (1 << 20) == 0 || i + 1 == len {
        (i / (1 << 20) % 241) as u8 + 11
    } else {
        7
    }
}

/// The positions [`byte_at`] marks.
fn marked(len: usize) -> impl Iterator<Item = usize> {
    (0..len).step_by(1 << 20).chain(len.checked_sub(1))
}

/// Stores `len` bytes (see [`byte_at`]) under `name`.
#[rankview::remote]
fn store_bytes(name: String, len: usize) -> TaskResult<()> {
    let mut bytes = vec![7u8; len];
    for i in marked(len) {
        bytes[i] = byte_at(i, len);
    }
    globals().insert(name, bytes)?;
    Ok(())
}

/// `n` strings of 64 characters, each with `seed` in it (about 64 `n`
/// bytes encoded).
fn strings(n: usize, seed: usize) -> Vec<String> {
    (0..n).map(|i| format!("{seed:08}:{i:055}")).collect()
}

/// Enough strings for well over a megabyte (the attachment threshold).
const OBJECT: usize = 40_000;

#[rankview::remote]
fn joined(a: Vec<String>, small: u32, b: Vec<String>) -> Vec<String> {
    let mut all = a;
    all.push(small.to_string());
    all.extend(b);
    all
}

#[rankview::remote]
fn count_strings(items: Vec<String>) -> usize {
    items.len()
}

/// Decodes the engine's `name` (so that a later pull encodes it again).
#[rankview::remote]
fn decode_strings(name: String) -> TaskResult<usize> {
    Ok(globals().get::<Vec<String>>(&name)?.len())
}

/// Stores a `String` of `len` bytes (see [`byte_at`]) under `name`.
#[rankview::remote]
fn store_text(name: String, len: usize) -> TaskResult<()> {
    let mut bytes = vec![b'a'; len];
    for i in marked(len) {
        bytes[i] = b'a' + byte_at(i, len) % 26;
    }
    let text = String::from_utf8(bytes).map_err(|e| rankview::TaskError::msg(e.to_string()))?;
    globals().insert(name, text)?;
    Ok(())
}

/// Whether the engine's `String` `name` is what [`store_text`] stores.
#[rankview::remote]
fn text_is_right(name: String, len: usize) -> TaskResult<bool> {
    let text = globals().get::<String>(&name)?;
    let bytes = text.as_bytes();
    Ok(bytes.len() == len && marked(len).all(|i| bytes[i] == b'a' + byte_at(i, len) % 26))
}

fn objects(rc: &Client, list: &mut Checklist) {
    let p = rc.len();
    let dv = rc.all();

    list.check("large_objects_push_apply_pull", || {
        let (a, b) = (strings(OBJECT, 1), strings(OBJECT, 2));
        dv.push("obj", &a).get()?;
        let both = dv.apply_sync(joined, (&a, 7u32, &b))?;
        let mut expected = a.clone();
        expected.push("7".into());
        expected.extend(b.iter().cloned());
        assert_eq!(both.len(), p);
        assert!(both.iter().all(|v| *v == expected));
        // Pulled as it was received, then after the engine decoded it.
        let pulled: Vec<Vec<String>> = dv.pull("obj").get()?;
        assert!(pulled.iter().all(|v| *v == a));
        assert_eq!(
            dv.apply_sync(decode_strings, ("obj".to_string(),))?,
            vec![OBJECT; p]
        );
        let pulled: Vec<Vec<String>> = dv.pull("obj").get()?;
        assert!(pulled.iter().all(|v| *v == a));
        dv.clear().get()?;
        Ok(())
    });

    list.check("large_objects_through_the_load_balancer", || {
        let lv = rc.load_balanced_view();
        let pending: Vec<_> = (0..3 * p)
            .map(|k| {
                lv.apply(
                    joined,
                    (strings(OBJECT, k), k as u32, strings(OBJECT, k + 1)),
                )
            })
            .collect();
        for (k, result) in pending.into_iter().enumerate() {
            let all = result.get()?;
            assert_eq!(all.len(), 2 * OBJECT + 1);
            assert_eq!(all[0], strings(1, k)[0]);
            assert_eq!(all[OBJECT], k.to_string());
            assert_eq!(all[OBJECT + 1], strings(1, k + 1)[0]);
        }
        let items: Vec<Vec<String>> = (0..4 * p).map(|k| strings(OBJECT + k, k)).collect();
        let counts = lv.chunksize(2).map_sync(count_strings, &items)?;
        assert_eq!(counts, (0..4 * p).map(|k| OBJECT + k).collect::<Vec<_>>());
        Ok(())
    });

    if p == 1 {
        list.check("large_object_longer_than_one_piece", || {
            let e0 = rc.engine(0)?;
            let len = (1usize << 30) + 5;
            e0.apply_sync(store_text, ("text".to_string(), len))?;
            let text: String = e0.get("text")?;
            assert_eq!(text.len(), len);
            e0.clear().get()?;
            e0.push("back", &text).get()?;
            drop(text);
            assert!(e0.apply_sync(text_is_right, ("back".to_string(), len))?);
            e0.clear().get()?;
            Ok(())
        });
    }
}

fn pull(rc: &Client, list: &mut Checklist) {
    let p = rc.len();
    let dv = rc.all();

    list.check("pull_every_numeric_kind", || {
        let e0 = rc.engine(-1)?;
        let v: Vec<f64> = (0..100_003).map(|i| i as f64 * 0.5).collect();
        e0.push("v", &v).get()?;
        assert_eq!(e0.get::<Vec<f64>>("v")?, v);
        let a = Array2::from_shape_fn((31, 7), |(i, j)| (i * 7 + j) as u16);
        e0.push("a", &a).get()?;
        assert_eq!(e0.get::<Array2<u16>>("a")?, a);
        e0.push("x", &2.5f32).get()?;
        assert_eq!(e0.get::<f32>("x")?, 2.5);
        let empty: Vec<i64> = Vec::new();
        e0.push("empty", &empty).get()?;
        assert_eq!(e0.get::<Vec<i64>>("empty")?, empty);
        // Stored by a task in column-major layout: pulled row-major.
        e0.apply_sync(store_transposed, ("t".to_string(),))?;
        let expected = Array2::from_shape_fn((2, 3), |(i, j)| (i * 3 + j) as i32).reversed_axes();
        assert_eq!(e0.get::<Array2<i32>>("t")?, expected);
        Ok(())
    });

    list.check("pull_from_many_engines", || {
        let ids: Vec<u64> = (0..10_000).collect();
        dv.scatter("ids", &ids).get()?;
        let parts: Vec<Vec<u64>> = dv.get("ids")?;
        assert_eq!(parts.len(), p);
        assert_eq!(parts.concat(), ids);
        Ok(())
    });

    list.check("pull_wrong_type_then_right_type", || {
        let e0 = rc.engine(0)?;
        let v = vec![1.0f64, 2.0, 3.0];
        e0.push("w", &v).get()?;
        match e0.pull::<Vec<i64>>("w").get() {
            Err(Error::TypeMismatch { name, found, .. }) => {
                assert_eq!(name, "w");
                assert!(found.contains("f64"), "{found}");
            }
            other => return Err(format!("expected TypeMismatch, got {other:?}").into()),
        }
        // The refused data did not stay on the wire: the next pull is right.
        assert_eq!(e0.get::<Vec<f64>>("w")?, v);
        Ok(())
    });

    list.check("pulled_result_reads_twice", || {
        let e0 = rc.engine(0)?;
        let v: Vec<i32> = (0..1000).collect();
        e0.push("twice", &v).get()?;
        let result = e0.pull::<Vec<i32>>("twice");
        result.wait();
        assert!(result.successful());
        assert_eq!(result.get()?, v);
        assert_eq!(result.get()?, v);
        assert_eq!(result.into_value()?, v);
        Ok(())
    });

    list.check("pull_then_change_in_place", || {
        let e0 = rc.engine(0)?;
        let v = vec![1.0f64; 1 << 20];
        e0.push("m", &v).get()?;
        let before = e0.pull::<Vec<f64>>("m");
        // Runs right after the pull on the engine: the value must not be
        // borrowed any more, and the pull must have seen the old values.
        e0.apply_sync(add_in_place, ("m".to_string(), 1.0))?;
        assert!(before.get()?.iter().all(|&x| x == 1.0));
        assert!(e0.get::<Vec<f64>>("m")?.iter().all(|&x| x == 2.0));
        Ok(())
    });

    if p == 1 {
        list.check("pull_longer_than_one_piece", || {
            let e0 = rc.engine(0)?;
            let len = (1usize << 30) + 5;
            e0.apply_sync(store_bytes, ("big".to_string(), len))?;
            let back: Vec<u8> = e0.get("big")?;
            assert_eq!(back.len(), len);
            assert!(marked(len).all(|i| back[i] == byte_at(i, len)));
            e0.clear().get()?;
            Ok(())
        });
    }
}

/// Elements per engine of the reuse checks that go in two phases (the
/// controller's threshold is a megabyte of data).
const TWO_PHASE_EACH: usize = 1 << 18;

/// The reuse checks with `each` elements per engine, their names ending in
/// `suffix`: small data goes at once, a megabyte or more in two phases
/// (engines ready their buffers, then rank 0 sends).
fn reuse(rc: &Client, list: &mut Checklist, each: usize, suffix: &str) {
    let dv = rc.all();
    let p = rc.len();
    let n = each * p;
    let named = |check: &str| format!("{check}{suffix}");
    let data = |shift: f64| -> Vec<f64> { (0..n).map(|i| i as f64 + shift).collect() };
    let addresses = |name: &str| dv.apply_sync(address_of, (name.to_string(),));

    list.check(
        &named("scatter_receives_into_the_value_it_replaces"),
        || {
            dv.scatter("r", &data(0.0)).get()?;
            let first = addresses("r")?;
            dv.scatter("r", &data(1.0)).get()?;
            assert_eq!(addresses("r")?, first, "same shape: same memory");
            let back: Vec<f64> = dv.gather("r").get()?;
            assert_eq!(back, data(1.0));
            // Another length: new memory, allocated while the old value lived.
            let longer: Vec<f64> = (0..n + p).map(|i| -(i as f64)).collect();
            dv.scatter("r", &longer).get()?;
            assert!(
                addresses("r")?.iter().zip(&first).all(|(a, b)| a != b),
                "a new shape must get new memory"
            );
            let back: Vec<f64> = dv.gather("r").get()?;
            assert_eq!(back, longer);
            // Another element type under the same name.
            let ints: Vec<i32> = (0..n as i32).collect();
            dv.scatter("r", &ints).get()?;
            let back: Vec<i32> = dv.gather("r").get()?;
            assert_eq!(back, ints);
            Ok(())
        },
    );

    list.check(
        &named("broadcast_receives_into_the_value_it_replaces"),
        || {
            let v: Vec<f64> = (0..5 * each).map(|i| i as f64).collect();
            dv.push("b", &v).get()?;
            let first = addresses("b")?;
            let w: Vec<f64> = v.iter().map(|x| x * 2.0).collect();
            dv.push("b", &w).get()?;
            assert_eq!(addresses("b")?, first);
            let sums = dv.apply_sync(sum_of, ("b".to_string(),))?;
            assert!(sums.iter().all(|&s| s == w.iter().sum::<f64>()));
            Ok(())
        },
    );

    list.check(&named("a_running_task_keeps_its_value"), || {
        let e0 = rc.engine(0)?;
        let len = 4 * each;
        let old = vec![1.0f64; len];
        e0.push("held", &old).get()?;
        // The task holds the value at the gate: it is running when the
        // new value is pushed.
        let running = e0.apply(hold_and_sum, ("held".to_string(), gate::closed()));
        gate::await_waiting(rc, 1)?;
        let new = vec![3.0f64; len];
        let pushed = e0.push("held", &new);
        gate::open(rc)?;
        pushed.get()?;
        assert_eq!(
            running.get()?,
            len as f64,
            "the running task saw the new data"
        );
        assert_eq!(
            e0.apply_sync(sum_of, ("held".to_string(),))?,
            3.0 * len as f64
        );
        Ok(())
    });

    list.check(
        &named("a_queued_task_sees_the_value_before_the_scatter"),
        || {
            dv.scatter("q", &data(0.0)).get()?;
            let old: Vec<f64> = dv.apply_sync(sum_of, ("q".to_string(),))?;
            let busy = dv.apply(sleep_ms, (200,));
            let queued = dv.apply(sum_of, ("q".to_string(),));
            dv.scatter("q", &data(10.0)).get()?;
            busy.get()?;
            assert_eq!(
                queued.get()?,
                old,
                "a task queued before the scatter saw its data"
            );
            let new: Vec<f64> = dv.apply_sync(sum_of, ("q".to_string(),))?;
            assert!(new.iter().zip(&old).all(|(n, o)| n > o));
            Ok(())
        },
    );

    list.check(&named("an_apply_right_after_a_scatter_sees_it"), || {
        // Submitted before the scatter has completed: the apply is behind
        // it in each engine's stream, on an idle and on a busy engine.
        for busy in [false, true] {
            let sleeping = busy.then(|| dv.apply(sleep_ms, (100,)));
            let scattered = dv.scatter("s", &data(busy as u8 as f64 + 5.0));
            let sums = dv.apply(sum_of, ("s".to_string(),));
            let expected: Vec<f64> = data(busy as u8 as f64 + 5.0)
                .chunks(each)
                .map(|c| c.iter().sum())
                .collect();
            assert_eq!(sums.get()?, expected, "busy: {busy}");
            scattered.get()?;
            if let Some(sleeping) = sleeping {
                sleeping.get()?;
            }
        }
        Ok(())
    });
}

fn into(rc: &Client, list: &mut Checklist) {
    let dv = rc.all();
    let p = rc.len();
    let n = 777 * p + 3;
    let data: Vec<f64> = (0..n).map(|i| i as f64 * 1.5).collect();

    list.check("gather_into_a_kept_buffer", || {
        dv.scatter("g", &data).get()?;
        let mut out = vec![0.0f64; n];
        let at = out.as_ptr();
        dv.gather_into("g", &mut out)?;
        assert_eq!(out, data);
        assert_eq!(out.as_ptr(), at);
        out.iter_mut().for_each(|x| *x = 0.0);
        dv.gather_into("g", &mut out[..])?;
        assert_eq!(out, data);
        Ok(())
    });

    list.check("gather_into_a_wrong_length_moves_nothing", || {
        dv.scatter("g", &data).get()?;
        let mut short = vec![-7.0f64; n - 1];
        match dv.gather_into("g", &mut short) {
            Err(Error::Usage(message)) => {
                assert!(message.contains("gather_into"), "{message}");
                assert!(message.contains(&n.to_string()), "{message}");
            }
            other => return Err(format!("expected a usage error, got {other:?}").into()),
        }
        assert!(short.iter().all(|&x| x == -7.0), "the buffer was written");
        // The engines still hold their blocks, and can gather again.
        let back: Vec<f64> = dv.gather("g").get()?;
        assert_eq!(back, data);
        Ok(())
    });

    list.check("gather_into_a_wrong_element_type", || {
        dv.scatter("g", &data).get()?;
        let mut floats = vec![0.0f32; n];
        match dv.gather_into("g", &mut floats) {
            Err(Error::TypeMismatch { .. }) => {}
            Err(Error::Composite(errors))
                if errors
                    .iter()
                    .all(|e| matches!(e, Error::TypeMismatch { .. })) => {}
            other => return Err(format!("expected TypeMismatch, got {other:?}").into()),
        }
        Ok(())
    });

    list.check("gather_into_arrays", || {
        let a = Array2::from_shape_fn((3 * p + 1, 5), |(i, j)| (i * 5 + j) as i64);
        dv.scatter("arr", &a).get()?;
        let mut out = Array2::<i64>::zeros((3 * p + 1, 5));
        dv.gather_into("arr", &mut out)?;
        assert_eq!(out, a);
        // Not row-major: filled through one staging copy.
        let mut fortran = Array2::<i64>::zeros((5, 3 * p + 1)).reversed_axes();
        dv.gather_into("arr", &mut fortran)?;
        assert_eq!(fortran, a);
        // Same number of elements, another shape: refused.
        let mut wrong = Array2::<i64>::zeros((5, 3 * p + 1));
        match dv.gather_into("arr", &mut wrong) {
            Err(Error::Usage(message)) => assert!(message.contains("shape"), "{message}"),
            other => return Err(format!("expected a usage error, got {other:?}").into()),
        }
        assert!(wrong.iter().all(|&x| x == 0));
        Ok(())
    });

    list.check("pull_into_a_kept_buffer", || {
        let e0 = rc.engine(-1)?;
        let v: Vec<f64> = (0..50_000).map(|i| i as f64 / 3.0).collect();
        e0.push("pv", &v).get()?;
        let mut out = vec![0.0f64; v.len()];
        e0.pull_into("pv", &mut out)?;
        assert_eq!(out, v);
        // Wrong length: refused, the buffer untouched, the engine fine.
        let mut short = vec![-1.0f64; v.len() - 1];
        match e0.pull_into("pv", &mut short) {
            Err(Error::Usage(message)) => assert!(message.contains("pull_into"), "{message}"),
            other => return Err(format!("expected a usage error, got {other:?}").into()),
        }
        assert!(short.iter().all(|&x| x == -1.0));
        // Wrong element type, and a value that is not numeric.
        let mut ints = vec![0i64; v.len()];
        assert!(matches!(
            e0.pull_into("pv", &mut ints),
            Err(Error::TypeMismatch { .. })
        ));
        e0.push("text", &"not numbers".to_string()).get()?;
        assert!(matches!(
            e0.pull_into("text", &mut out),
            Err(Error::TypeMismatch { .. })
        ));
        assert!(matches!(
            e0.pull_into("nowhere", &mut out),
            Err(Error::NameError { .. })
        ));
        // Arrays: the same shape, or a refusal.
        let a = Array2::from_shape_fn((6, 4), |(i, j)| (i * 4 + j) as f32);
        e0.push("pa", &a).get()?;
        let mut into = Array2::<f32>::zeros((6, 4));
        e0.pull_into("pa", &mut into)?;
        assert_eq!(into, a);
        let mut wrong = Array2::<f32>::zeros((4, 6));
        assert!(matches!(
            e0.pull_into("pa", &mut wrong),
            Err(Error::Usage(_))
        ));
        assert_eq!(e0.get::<Vec<f64>>("pv")?, v);
        if p > 1 {
            assert!(matches!(dv.pull_into("pv", &mut out), Err(Error::Usage(_))));
        }
        Ok(())
    });

    list.check("reduce_into_a_kept_buffer", || {
        dv.push("s", &vec![2.0f64; 100]).get()?;
        let mut out = vec![0.0f64; 100];
        dv.reduce_into("s", ReduceOp::Sum, &mut out)?;
        assert!(out.iter().all(|&x| x == 2.0 * p as f64));
        let mut short = vec![0.0f64; 99];
        assert!(matches!(
            dv.reduce_into("s", ReduceOp::Sum, &mut short),
            Err(Error::Usage(_))
        ));
        Ok(())
    });

    list.check("a_kept_buffer_lent_again_sends_its_new_contents", || {
        // 16 MiB, changed in place between loans: from the second loan on,
        // rank 0 has moved it onto huge pages (where the kernel allows).
        let mut kept = vec![0.0f64; 2 << 20];
        let p = rc.len();
        for round in 0..4 {
            for (i, x) in kept.iter_mut().enumerate() {
                *x = (i * (round + 1)) as f64;
            }
            dv.push("kept", &kept).get()?;
            dv.scatter("kept_part", &kept).get()?;
            let sums: Vec<f64> = dv.apply_sync(sum_of, ("kept".to_string(),))?;
            let whole: f64 = kept.iter().sum();
            assert!(
                sums.iter().all(|&s| s == whole),
                "round {round}: {sums:?} != {whole}"
            );
            let back: Vec<f64> = dv.gather("kept_part").get()?;
            assert!(back == kept, "round {round}: gather(scatter(kept)) != kept");
            assert_eq!(sums.len(), p);
        }
        Ok(())
    });
}

fn main() {
    gate::sections(rankview::Launch::new()).run(|rc| -> Result<(), String> {
        let mut list = Checklist::new("check_hotpath");
        pull(rc, &mut list);
        reuse(rc, &mut list, 1000, "");
        reuse(rc, &mut list, TWO_PHASE_EACH, "_in_two_phases");
        into(rc, &mut list);
        objects(rc, &mut list);
        list.finish()
    });
}
