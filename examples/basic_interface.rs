//! ipyparallel's notebook "The basic interface for remote computation with
//! IPython", in Rust.
//! Run it with `rankview run -n 3 --example basic_interface`.
//!
//! Every cell that maps to Rust, each checked: a function applied on engine 0
//! gives the same norms as locally; push and pull; engine globals changed by
//! `inc_a` and read by `mul_by_a`; `is_it_a` sees the engine's own value
//! through a `Ref`; eigenvalues and a norm of a matrix already on engine 0
//! (random numbers from `rand`, norms and eigenvalues from `nalgebra`);
//! an asynchronous task whose `get_timeout` times out before `get` succeeds;
//! the engine's pid and the result metadata.

use std::time::{Duration, Instant};

use nalgebra::{DMatrix, DVector};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rankview::{globals, Error, Ref, TaskResult, Values};

/// The p-norm of `a` for every level (`f64::INFINITY` for the max norm;
/// finite levels are whole numbers), from nalgebra as the notebook's come from
/// `numpy.linalg.norm`.
#[rankview::remote]
fn get_norms(a: &[f64], levels: Vec<f64>) -> Vec<(f64, f64)> {
    let a = DVector::from_column_slice(a);
    levels
        .iter()
        .map(|&p| {
            let norm = if p.is_infinite() {
                a.amax()
            } else {
                a.lp_norm(p as i32)
            };
            (p, norm)
        })
        .collect()
}

/// `global a; a += increment`
#[rankview::remote]
fn inc_a(increment: i64) -> TaskResult<()> {
    *globals().get_mut::<i64>("a")? += increment;
    Ok(())
}

/// Reads the global `a` without assigning it.
#[rankview::remote]
fn mul_by_a(b: i64) -> TaskResult<i64> {
    Ok(*globals().get::<i64>("a")? * b)
}

/// `a is b`: true only when `b` is the engine's own `a`, not a copy.
#[rankview::remote]
fn is_it_a(b: &i64) -> TaskResult<bool> {
    let a = globals().get::<i64>("a")?;
    Ok(std::ptr::eq(&*a, b))
}

/// `b = a[::-1]` on the engine.
#[rankview::remote]
fn reverse_a_into_b() -> TaskResult<()> {
    let reversed: Vec<i64> = globals()
        .get::<Vec<i64>>("a")?
        .iter()
        .rev()
        .copied()
        .collect();
    globals().insert("b", reversed)?;
    Ok(())
}

/// `a` as a nalgebra matrix.
fn to_matrix(a: &Array2<f64>) -> DMatrix<f64> {
    DMatrix::from_fn(a.nrows(), a.ncols(), |i, j| a[[i, j]])
}

/// Eigenvalues and 2-norm of a symmetric positive semi-definite matrix.
#[rankview::remote]
fn eigvals_and_norm(a: &Array2<f64>) -> (Vec<f64>, f64) {
    let m = to_matrix(a);
    let mut eigenvalues: Vec<f64> = m.clone().symmetric_eigenvalues().iter().copied().collect();
    eigenvalues.sort_by(f64::total_cmp);
    let norm = m.svd(false, false).singular_values.max();
    (eigenvalues, norm)
}

/// Sleeps `seconds` and returns how long it slept.
#[rankview::remote]
fn wait(seconds: f64) -> f64 {
    let tic = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    tic.elapsed().as_secs_f64()
}

#[rankview::remote]
fn getpid() -> u32 {
    println!("engine process {} says hello", std::process::id());
    std::process::id()
}

fn main() {
    rankview::launch(|rc| -> rankview::Result<()> {
        println!("rc.ids = {:?}", rc.ids());
        let e0 = rc.engine(0)?;
        println!("{e0:?}");

        // get_norms: remotely equal to locally.
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let a: Vec<f64> = (0..1024).map(|_| rng.random()).collect();
        let levels = vec![1.0, 2.0, 3.0, f64::INFINITY];
        let local = get_norms(&a, levels.clone());
        let remote = e0.apply_sync(get_norms, (&a[..], levels))?;
        println!("norms: {remote:?}");
        assert_eq!(remote, local);
        // ‖a‖₁ ≥ ‖a‖₂ ≥ ‖a‖₃ ≥ ‖a‖∞, and ‖a‖₂² is the sum of squares.
        let norms: Vec<f64> = remote.iter().map(|&(_, n)| n).collect();
        assert!(norms.windows(2).all(|w| w[0] >= w[1]), "{norms:?}");
        let squares: f64 = a.iter().map(|x| x * x).sum();
        assert!((norms[1] * norms[1] / squares - 1.0).abs() < 1e-12);

        // push a dict, pull one and several names.
        e0.push_values(Values::new().with("a", &1.03234f64)?.with("b", &3453i64)?)
            .get()?;
        assert_eq!(e0.pull::<f64>("a").get()?, 1.03234);
        let (b, a_again) = (e0.get::<i64>("b")?, e0.get::<f64>("a")?);
        assert_eq!((b, a_again), (3453, 1.03234));
        // The wrong type is an error naming both types, not a panic.
        match e0.get::<String>("b") {
            Err(Error::TypeMismatch {
                expected, found, ..
            }) => println!("pull of b as String: {expected} vs {found}"),
            other => panic!("expected a type mismatch, got {other:?}"),
        }

        // Engine globals: a = 5; inc_a(5); mul_by_a(10).
        e0.set("a", &5i64)?;
        print!(" {:2}", e0.get::<i64>("a")?);
        e0.apply_sync(inc_a, (5,))?;
        println!(" + 5 = {:2}", e0.get::<i64>("a")?);
        assert_eq!(e0.get::<i64>("a")?, 10);
        assert_eq!(e0.apply_sync(mul_by_a, (10,))?, 100);

        // A Ref is the engine's own value; a plain value is a copy.
        assert!(!e0.apply_sync(is_it_a, (5i64,))?);
        assert!(e0.apply_sync(is_it_a, (Ref::<i64>::new("a"),))?);

        // Dictionary interface: e0['a'] = range(5); b = a[::-1]; e0['b'].
        e0.set("a", &(0..5).collect::<Vec<i64>>())?;
        e0.apply_sync(reverse_a_into_b, ())?;
        assert_eq!(e0.get::<Vec<i64>>("b")?, vec![4, 3, 2, 1, 0]);

        // Exercise: eigenvalues and norm of an array already on e0.
        let m = Array2::from_shape_fn((16, 16), |_| rng.random::<f64>());
        let sym = m.dot(&m.t());
        e0.set("A", &sym)?;
        let (eigenvalues, norm) =
            e0.apply_sync(eigvals_and_norm, (Ref::<Array2<f64>>::new("A"),))?;
        let (local_eigenvalues, local_norm) = eigvals_and_norm(&sym);
        assert_eq!(eigenvalues, local_eigenvalues);
        assert_eq!(norm, local_norm);
        // The 2-norm of A is at least the norm of A times any unit vector.
        let ones = ndarray::Array1::from_elem(16, 0.25);
        let lower = sym.dot(&ones).mapv(|x| x * x).sum().sqrt();
        assert!(norm >= lower * (1.0 - 1e-9), "{norm} < {lower}");
        // A = M Mᵀ: its eigenvalues are real, non-negative, add up to its
        // trace, and the largest is its 2-norm.
        let trace: f64 = (0..16).map(|i| sym[[i, i]]).sum();
        let sum: f64 = eigenvalues.iter().sum();
        assert!((sum / trace - 1.0).abs() < 1e-9, "{sum} != trace {trace}");
        assert!(eigenvalues[0] > -1e-9, "{eigenvalues:?}");
        assert!(
            (eigenvalues[15] / norm - 1.0).abs() < 1e-9,
            "{eigenvalues:?} vs {norm}"
        );
        println!(
            "eigenvalues of A: {} values, 2-norm {norm:.3}",
            eigenvalues.len()
        );

        // Asynchronous execution.
        let ar = e0.apply(wait, (2.0,));
        assert!(!ar.ready());
        let t0 = Instant::now();
        match ar.get_timeout(Duration::from_secs(1)) {
            Err(Error::Timeout(_)) => println!("get(1 s) timed out after {:?}", t0.elapsed()),
            other => panic!("expected a timeout, got {other:?}"),
        }
        let slept = ar.get()?;
        assert!(slept >= 2.0, "slept {slept}");
        assert!(ar.ready() && ar.successful());
        println!("get() = {slept:.3} s");

        // apply_sync(getpid), apply + get, metadata.
        let pid = e0.apply_sync(getpid, ())?;
        assert_ne!(pid, std::process::id());
        let ar = e0.apply(getpid, ());
        assert_eq!(ar.get()?, pid);
        let meta = &ar.metadata()[0];
        assert_eq!(meta.engine, 0);
        assert!(meta.started.is_some() && meta.completed.is_some() && meta.received.is_some());
        assert!(meta.stdout.contains(&pid.to_string()));
        println!("metadata: {meta:#?}");
        ar.display_outputs();
        Ok(())
    });
}
