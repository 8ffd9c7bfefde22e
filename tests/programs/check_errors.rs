//! Every error path of rankview, checked on real engines. Run it with
//! `rankview run -n 3 --package rankview-checks --bin check_errors` (or `mpirun -n 3
//! target/debug/check_errors`); `tests/errors.rs` runs it on 2, 3
//! and 5 ranks.
//!
//! Owns the checks of `Error`'s variants as a user meets them: panics and
//! `Err` returns in tasks (`Remote`, the engine keeps working and keeps its
//! namespace), missing and mistyped names (`NameError`, `TypeMismatch`, also
//! through `Ref`s), several engines failing (`Composite`), bad targets
//! (`InvalidTarget`), unregistered functions (`NotRegistered`, nothing sent),
//! `get_timeout` (`Timeout`), `keys`/`clear`, generic and `&str`/`&[T]`
//! remote functions, and 1,000 panics mixed with 1,000 good tasks (every good
//! result right, every panic reported, the engines alive).
//! Prints one line per check and exits non-zero unless every check held.

mod checklist;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use checklist::Checklist;
use rankview::{globals, Client, Error, Ref, TaskError, TaskResult, Values};

#[rankview::remote]
fn boom(message: String) -> u64 {
    panic!("{message}")
}

#[rankview::remote]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[rankview::remote]
fn parse_number(text: String) -> TaskResult<i32> {
    Ok(text.parse::<i32>()?)
}

#[rankview::remote]
fn refuse(message: String) -> TaskResult<u8> {
    Err(TaskError::msg(message))
}

#[rankview::remote]
fn double_held(x: &i64) -> i64 {
    x * 2
}

#[rankview::remote]
fn double_owned(x: i64) -> i64 {
    x * 2
}

/// Panics while holding a shared handle on a namespace value.
#[rankview::remote]
fn panic_holding(x: &i64) -> i64 {
    panic!("holding {x}")
}

/// `global v; v += 1; raise`: the increment must stay.
#[rankview::remote]
fn bump_then_panic(name: String) -> TaskResult<()> {
    let mut value = globals().get_mut::<i64>(&name)?;
    *value += 1;
    panic!("bumped {name} to {}", *value)
}

#[rankview::remote]
fn sleep_for(seconds: f64) -> f64 {
    std::thread::sleep(Duration::from_secs_f64(seconds));
    seconds
}

#[rankview::remote(<f64>, <i64>)]
fn total<T: Copy + std::iter::Sum<T>>(values: Vec<T>) -> T {
    values.into_iter().sum()
}

#[rankview::remote]
fn shout(text: &str) -> String {
    text.to_uppercase()
}

#[rankview::remote]
fn sum_slice(values: &[f64]) -> f64 {
    values.iter().sum()
}

#[rankview::remote]
fn odd_panics(i: u64) -> u64 {
    if i % 2 == 1 {
        panic!("odd task {i}");
    }
    3 * i
}

#[rankview::remote]
fn getpid() -> u32 {
    std::process::id()
}

/// Deliberately not `#[rankview::remote]`.
fn unregistered(x: u64) -> u64 {
    x + 1
}

/// The engines (in order) of a `Composite` made only of `NameError`s for `name`.
fn name_error_engines<T: std::fmt::Debug>(
    result: rankview::Result<T>,
    name: &str,
) -> Result<Vec<usize>, String> {
    match result {
        Err(Error::Composite(errors)) => errors
            .iter()
            .map(|e| match e {
                Error::NameError { engine, name: n } if n == name => Ok(*engine),
                other => Err(format!("expected a NameError for {name}, got {other:?}")),
            })
            .collect(),
        other => Err(format!("expected a Composite error, got {other:?}")),
    }
}

fn panics(rc: &Client, list: &mut Checklist) {
    let n = rc.len();
    list.check("panic_is_remote", || {
        let last = rc.engine(-1)?;
        let ar = last.apply(boom, ("kaboom 42".to_string(),));
        let error = ar.get().expect_err("a panicking task fails");
        let Error::Remote {
            engine,
            task,
            ref kind,
            ref message,
            ..
        } = error
        else {
            return Err(format!("expected Error::Remote, got {error:?}").into());
        };
        assert_eq!(engine, n - 1, "{error:?}");
        assert_eq!(kind, "panic", "{error:?}");
        assert!(message.contains("kaboom 42"), "{message}");
        assert!(message.contains("boom"), "names the function: {message}");
        let meta = ar.metadata();
        assert_eq!(task, meta[0].task, "the task id of the metadata");
        assert!(meta[0].stderr.contains("kaboom 42"), "{meta:?}");
        assert_eq!(error.engine(), Some(n - 1));
        let shown = error.to_string();
        assert!(shown.contains(&format!("engine {}", n - 1)), "{shown}");
        assert!(ar.ready() && !ar.successful());
        Ok(())
    });
    list.check("engine_survives_panic", || {
        let all = rc.all();
        all.set("survivor", &1234i64)?;
        let errors = match all.apply(boom, ("all at once".to_string(),)).get() {
            Err(Error::Composite(errors)) => errors,
            other => return Err(format!("expected a Composite, got {other:?}").into()),
        };
        let engines: Vec<_> = errors.iter().filter_map(Error::engine).collect();
        assert_eq!(engines, rc.ids(), "{errors:?}");
        assert!(errors
            .iter()
            .all(|e| matches!(e, Error::Remote { kind, .. } if kind == "panic")));
        assert_eq!(all.apply_sync(add, (2, 3))?, vec![5; n]);
        assert_eq!(all.get::<i64>("survivor")?, vec![1234; n]);
        Ok(())
    });
    list.check("ref_released_after_panic", || {
        let all = rc.all();
        all.set("held", &21i64)?;
        let held = Ref::<i64>::new("held");
        match all.apply(panic_holding, (held.clone(),)).get() {
            Err(Error::Composite(errors)) => assert!(
                errors.iter().all(
                    |e| matches!(e, Error::Remote { message, .. } if message.contains("holding 21"))
                ),
                "{errors:?}"
            ),
            other => return Err(format!("expected a Composite, got {other:?}").into()),
        }
        assert_eq!(all.apply_sync(double_held, (held,))?, vec![42; n]);
        Ok(())
    });
    list.check("get_mut_value_survives_panic", || {
        let all = rc.all();
        all.set("counter", &10i64)?;
        let result = all.apply(bump_then_panic, ("counter".to_string(),)).get();
        assert!(matches!(result, Err(Error::Composite(_))), "{result:?}");
        assert_eq!(all.get::<i64>("counter")?, vec![11; n]);
        Ok(())
    });
    list.check("thousand_panics_mixed", || {
        let all = rc.all();
        let t0 = Instant::now();
        let submitted: Vec<_> = (0..2000u64)
            .map(|i| (i, all.apply(odd_panics, (i,))))
            .collect();
        let (mut good, mut reported) = (0, 0);
        for (i, ar) in submitted {
            match ar.get() {
                Ok(values) if i % 2 == 0 => {
                    assert_eq!(values, vec![3 * i; n], "task {i}");
                    good += 1;
                }
                Err(Error::Composite(errors)) if i % 2 == 1 => {
                    assert_eq!(errors.len(), n, "task {i}: {errors:?}");
                    for (k, e) in errors.iter().enumerate() {
                        let ok = matches!(e, Error::Remote { engine, kind, message, .. }
                            if *engine == k && kind == "panic"
                                && message.ends_with(&format!("odd task {i}")));
                        assert!(ok, "task {i}, engine {k}: {e:?}");
                    }
                    reported += 1;
                }
                other => return Err(format!("task {i}: unexpected {other:?}").into()),
            }
        }
        assert_eq!((good, reported), (1000, 1000));
        let pids: BTreeSet<u32> = all.apply_sync(getpid, ())?.into_iter().collect();
        assert_eq!(pids.len(), n, "every engine still answers");
        println!(
            "  2000 tasks on {n} engines ({} panicked) in {:.2?}",
            1000 * n,
            t0.elapsed()
        );
        Ok(())
    });
}

fn task_errors(rc: &Client, list: &mut Checklist) {
    list.check("task_err_is_remote", || {
        let e0 = rc.engine(0)?;
        assert_eq!(e0.apply_sync(parse_number, ("42".to_string(),))?, 42);
        match e0.apply(parse_number, ("x".to_string(),)).get() {
            Err(Error::Remote {
                engine: 0,
                kind,
                message,
                ..
            }) => {
                assert!(kind.contains("ParseIntError"), "kind {kind}");
                assert_eq!(message, "invalid digit found in string");
            }
            other => return Err(format!("expected Error::Remote, got {other:?}").into()),
        }
        Ok(())
    });
    list.check("task_error_msg_kind", || {
        match rc
            .engine(-1)?
            .apply(refuse, ("not today".to_string(),))
            .get()
        {
            Err(Error::Remote {
                engine,
                kind,
                message,
                ..
            }) => {
                assert_eq!(engine, rc.len() - 1);
                assert_eq!(kind, "error");
                assert_eq!(message, "not today");
            }
            other => return Err(format!("expected Error::Remote, got {other:?}").into()),
        }
        Ok(())
    });
}

fn names(rc: &Client, list: &mut Checklist) {
    let n = rc.len();
    list.check("pull_missing_is_name_error", || {
        let result = rc.engine(-1)?.pull::<i64>("nowhere").get();
        match &result {
            Err(e @ Error::NameError { engine, name }) => {
                assert_eq!((*engine, name.as_str()), (n - 1, "nowhere"));
                let shown = e.to_string();
                assert!(shown.contains(&format!("engine {}", n - 1)), "{shown}");
                assert!(shown.contains("nowhere"), "{shown}");
            }
            other => return Err(format!("expected a NameError, got {other:?}").into()),
        }
        Ok(())
    });
    list.check("pull_wrong_type_is_type_mismatch", || {
        let last = rc.engine(-1)?;
        last.set("number", &7i64)?;
        let check = |result: rankview::Result<String>| match result {
            Err(Error::TypeMismatch {
                engine,
                name,
                expected,
                found,
            }) => {
                assert_eq!((engine, name.as_str()), (n - 1, "number"));
                assert!(expected.contains("String"), "expected {expected}");
                assert_eq!(found, "i64");
                Ok(())
            }
            other => Err(format!("expected a TypeMismatch, got {other:?}")),
        };
        // Still encoded as pushed...
        check(last.get::<String>("number"))?;
        // ...and once a task has decoded it on the engine.
        assert_eq!(
            last.apply_sync(double_held, (Ref::<i64>::new("number"),))?,
            14
        );
        check(last.get::<String>("number"))?;
        assert_eq!(last.get::<i64>("number")?, 7);
        Ok(())
    });
    list.check("ref_missing_is_name_error", || {
        let last = rc.engine(-1)?;
        let ghost = || Ref::<i64>::new("ghost");
        for result in [
            last.apply(double_held, (ghost(),)).get(),
            last.apply(double_owned, (ghost(),)).get(),
        ] {
            match result {
                Err(Error::NameError { engine, name }) => {
                    assert_eq!((engine, name.as_str()), (n - 1, "ghost"))
                }
                other => return Err(format!("expected a NameError, got {other:?}").into()),
            }
        }
        Ok(())
    });
    list.check("ref_wrong_type_is_type_mismatch", || {
        let e0 = rc.engine(0)?;
        e0.set("text", &"not a number".to_string())?;
        match e0.apply(double_held, (Ref::<i64>::new("text"),)).get() {
            Err(Error::TypeMismatch {
                engine: 0,
                expected,
                found,
                ..
            }) => {
                assert_eq!(expected, "i64");
                assert!(found.contains("String"), "found {found}");
            }
            other => return Err(format!("expected a TypeMismatch, got {other:?}").into()),
        }
        Ok(())
    });
    list.check("composite_lists_failed_engines", || {
        let all = rc.all();
        all.clear().get()?;
        let (odd, even): (Vec<usize>, Vec<usize>) = rc.ids().into_iter().partition(|e| e % 2 == 1);
        if !odd.is_empty() {
            rc.view(odd.clone())?.set("partial", &7i64)?;
        }
        assert_eq!(
            name_error_engines(all.pull::<i64>("partial").get(), "partial")?,
            even
        );
        let applied = all.apply(double_held, (Ref::<i64>::new("partial"),)).get();
        assert_eq!(name_error_engines(applied, "partial")?, even);
        if !odd.is_empty() {
            assert_eq!(
                rc.view(odd.clone())?.get::<i64>("partial")?,
                vec![7; odd.len()]
            );
        }
        // A one-engine view reports the error itself, not a Composite.
        let single = rc.engine(0)?.pull::<i64>("partial").get();
        assert!(
            matches!(&single, Err(Error::NameError { engine: 0, .. })),
            "{single:?}"
        );
        Ok(())
    });
    list.check("keys_sorted_and_clear", || {
        let all = rc.all();
        all.clear().get()?;
        assert_eq!(all.keys().get()?, vec![Vec::<String>::new(); n]);
        let values = Values::new()
            .with("zeta", &1u8)?
            .with("alpha", &"a".to_string())?
            .with("mid", &vec![1.0f64])?;
        all.push_values(values).get()?;
        let sorted = vec!["alpha".to_string(), "mid".into(), "zeta".into()];
        assert_eq!(all.keys().get()?, vec![sorted.clone(); n]);
        assert_eq!(rc.engine(-1)?.keys().get()?, sorted);
        all.clear().get()?;
        assert_eq!(all.keys().get()?, vec![Vec::<String>::new(); n]);
        let gone = rc.engine(0)?.pull::<String>("alpha").get();
        assert!(matches!(&gone, Err(Error::NameError { .. })), "{gone:?}");
        Ok(())
    });
}

fn client_side(rc: &Client, list: &mut Checklist) {
    let n = rc.len();
    list.check("invalid_targets", || {
        let expect = |what: &str, result: rankview::Result<Vec<usize>>, index: i64| match result {
            Err(Error::InvalidTarget { index: i, engines }) if i == index && engines == n => Ok(()),
            other => Err(format!(
                "{what}: expected InvalidTarget {{ index: {index}, engines: {n} }}, got {other:?}"
            )),
        };
        let ni = n as i64;
        expect(
            "engine(99)",
            rc.engine(99).map(|v| v.targets().to_vec()),
            99,
        )?;
        expect(
            "engine(-99)",
            rc.engine(-99).map(|v| v.targets().to_vec()),
            -99,
        )?;
        expect(
            "engine(len)",
            rc.engine(ni).map(|v| v.targets().to_vec()),
            ni,
        )?;
        expect(
            "view(0..99)",
            rc.view(0..99).map(|v| v.targets().to_vec()),
            ni,
        )?;
        assert_eq!(rc.engine(-ni)?.targets(), &[0]);
        assert_eq!(rc.engine(-1)?.targets(), &[n - 1]);
        assert_eq!(rc.view(..)?.targets(), rc.ids().as_slice());
        assert!(rc.view(vec![0, 0]).is_err(), "an engine listed twice");
        assert!(rc.view(n..n).is_err(), "an empty view");
        Ok(())
    });
    list.check("unregistered_is_not_registered", || {
        let all = rc.all();
        let before = all.apply(add, (1, 1));
        before.get()?;
        let ar = all.apply(unregistered, (1u64,));
        assert!(ar.ready(), "fails at once, on the client");
        assert!(ar.metadata().is_empty(), "no engine was asked");
        match ar.get() {
            Err(e @ Error::NotRegistered { .. }) => {
                let shown = e.to_string();
                assert!(shown.contains("unregistered"), "{shown}");
                assert!(shown.contains("#[rankview::remote]"), "{shown}");
            }
            other => return Err(format!("expected NotRegistered, got {other:?}").into()),
        }
        let closure = rc.engine(0)?.apply(|x: u64| x * 2, (3u64,)).get();
        assert!(
            matches!(closure, Err(Error::NotRegistered { .. })),
            "{closure:?}"
        );
        // No task id was spent: nothing went to the controller.
        let after = all.apply(add, (2, 2));
        assert_eq!(after.get()?, vec![4; n]);
        assert_eq!(after.metadata()[0].task, before.metadata()[0].task + 1);
        Ok(())
    });
    list.check("get_timeout_then_get", || {
        let ar = rc.engine(-1)?.apply(sleep_for, (1.0,));
        let t0 = Instant::now();
        match ar.get_timeout(Duration::from_millis(50)) {
            Err(Error::Timeout(d)) => assert_eq!(d, Duration::from_millis(50)),
            other => return Err(format!("expected a Timeout, got {other:?}").into()),
        }
        let waited = t0.elapsed();
        // Well before the 1 s task ends, even on a loaded machine.
        assert!(
            waited >= Duration::from_millis(50) && waited < Duration::from_millis(800),
            "get_timeout(50 ms) returned after {waited:?}"
        );
        assert!(!ar.ready() && ar.wall_time().is_none());
        assert_eq!(ar.get()?, 1.0);
        assert!(ar.ready() && ar.successful());
        assert_eq!(ar.get_timeout(Duration::ZERO)?, 1.0);
        Ok(())
    });
}

fn function_shapes(rc: &Client, list: &mut Checklist) {
    list.check("generic_instantiations", || {
        let e0 = rc.engine(0)?;
        assert_eq!(e0.apply_sync(total::<f64>, (vec![1.5, 2.25],))?, 3.75);
        assert_eq!(e0.apply_sync(total::<i64>, (vec![1, 2, 3],))?, 6);
        assert_eq!(
            rc.all().apply_sync(total::<i64>, (vec![-4, 4, 10],))?,
            vec![10; rc.len()]
        );
        let unlisted = e0.apply(total::<u8>, (vec![1u8],)).get();
        assert!(
            matches!(unlisted, Err(Error::NotRegistered { .. })),
            "{unlisted:?}"
        );
        Ok(())
    });
    list.check("str_and_slice_params", || {
        let all = rc.all();
        let n = rc.len();
        assert_eq!(all.apply_sync(shout, ("rank view",))?, vec!["RANK VIEW"; n]);
        all.set("greeting", &"hello engine".to_string())?;
        assert_eq!(
            all.apply_sync(shout, (Ref::<str>::new("greeting"),))?,
            vec!["HELLO ENGINE"; n]
        );
        let values = vec![0.5, 1.5, 2.0];
        assert_eq!(
            all.apply_sync(sum_slice, (values.as_slice(),))?,
            vec![4.0; n]
        );
        all.set("values", &values)?;
        assert_eq!(
            rc.engine(-1)?
                .apply_sync(sum_slice, (Ref::<[f64]>::new("values"),))?,
            4.0
        );
        Ok(())
    });
}

fn main() {
    rankview::launch(|rc| {
        let mut list = Checklist::new("check_errors");
        panics(rc, &mut list);
        task_errors(rc, &mut list);
        names(rc, &mut list);
        client_side(rc, &mut list);
        function_shapes(rc, &mut list);
        list.finish()
    });
}
