//! ipyparallel's notebook "Passing results as input in IPython.parallel", in
//! Rust.
//! Run it with `rankview run -n 3 --example follow_norms`.
//!
//! Passes the result of one task to the next without waiting for it: a
//! load-balanced task loads a random matrix into its engine's namespace,
//! the analysis task follows it (`follow`: same engine, once done) and reads
//! the matrix in place through a `Ref`, and a cleanup task follows the
//! analysis and removes the name. All thirty tasks are submitted before any
//! has run. Then the notebook's table of 2-norms, and every engine's namespace
//! is empty again. Random numbers come from `rand`, the 2-norm from
//! `nalgebra`'s SVD. Checked: each norm up to 128x128 is the one the client
//! computes from the same generator and seed, every norm lies between the
//! Frobenius bounds (and near n/2 for large uniform matrices), and the three
//! tasks of a size ran on one engine.

use nalgebra::DMatrix;
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rankview::{globals, Ref, TaskError, TaskResult};

/// A matrix of `sz` x `sz` numbers uniform in [0, 1), from `rand` seeded
/// by the size, so the client can make the same one.
fn random_matrix(sz: usize) -> Array2<f64> {
    let mut rng = StdRng::seed_from_u64(0x5eed_0000 + sz as u64);
    Array2::from_shape_fn((sz, sz), |_| rng.random())
}

/// The 2-norm (largest singular value) of a matrix, from nalgebra's SVD
/// (`numpy.linalg.norm(a, 2)` in the notebook).
fn two_norm(a: &Array2<f64>) -> f64 {
    DMatrix::from_fn(a.nrows(), a.ncols(), |i, j| a[[i, j]])
        .svd(false, false)
        .singular_values
        .max()
}

/// Loads a random array into the engine's namespace as `name`.
#[rankview::remote]
fn load_data(sz: usize, name: String) -> TaskResult<()> {
    globals().insert(name, random_matrix(sz))?;
    Ok(())
}

/// A simple analysis function: the 2-norm of an array.
#[rankview::remote]
fn get_norm(a: &Array2<f64>) -> f64 {
    two_norm(a)
}

/// Deletes a name from the engine's namespace (an error if it is not there,
/// as Python's `del` is).
#[rankview::remote]
fn cleanup_name(name: String) -> TaskResult<()> {
    if !globals().remove(&name)? {
        return Err(TaskError::msg(format!("name '{name}' is not defined")));
    }
    Ok(())
}

fn main() {
    rankview::launch(|rc| -> rankview::Result<()> {
        let view = rc.load_balanced_view();

        // Submit everything before knowing where any load will run. (The
        // seed waits for each cleanup inside the loop; here they are waited
        // for after it, so no task waits for another size's.)
        let sizes: Vec<usize> = (0..10).map(|p| 1 << p).collect();
        let mut tasks = Vec::new();
        for &sz in &sizes {
            // Unique names, to avoid collisions.
            let name = format!("data_{sz}");
            let load = view.apply(load_data, (sz, name.clone()));
            // The analysis runs on the engine of the load, on its data in place.
            let norm = view
                .follow(&load)
                .apply(get_norm, (Ref::<Array2<f64>>::new(name.clone()),));
            // A last task removes what the load put in the namespace.
            let cleanup = view.follow(&norm).apply(cleanup_name, (name,));
            tasks.push((sz, load, norm, cleanup));
        }

        let mut engines = Vec::new();
        for (sz, load, norm, cleanup) in &tasks {
            load.get()?;
            let value = norm.get()?;
            cleanup.get()?;
            println!("{sz:>4}x{sz:<4} 2-norm = {value:7.3}");

            let a = random_matrix(*sz);
            // The client recomputes the small ones (an SVD of 512x512 takes
            // seconds in a debug build); the bounds hold for all.
            if *sz <= 128 {
                assert_eq!(
                    value,
                    two_norm(&a),
                    "{sz}x{sz}: the engine's norm is not the client's"
                );
            }
            let frobenius = a.iter().map(|x| x * x).sum::<f64>().sqrt();
            let n = *sz as f64;
            assert!(
                frobenius / n.sqrt() <= value * (1.0 + 1e-12) && value <= frobenius * (1.0 + 1e-12),
                "{sz}x{sz}: 2-norm {value} outside the Frobenius bounds of {frobenius}"
            );
            if *sz >= 64 {
                assert!(
                    (value / (n / 2.0) - 1.0).abs() < 0.05,
                    "{sz}x{sz}: 2-norm {value} is not close to n/2"
                );
            }

            let ran = [
                load.metadata()[0].engine,
                norm.metadata()[0].engine,
                cleanup.metadata()[0].engine,
            ];
            assert!(
                ran.iter().all(|&e| e == ran[0] && e < rc.len()),
                "{sz}x{sz}: load, norm and cleanup ran on engines {ran:?}"
            );
            assert!(
                !norm.metadata()[0].stolen && !cleanup.metadata()[0].stolen,
                "{sz}x{sz}: a task pinned by follow was stolen"
            );
            engines.push(ran[0]);
        }
        println!("loads ran on engines {engines:?}; each norm and cleanup ran where its load did");

        // No data_N names linger on any engine.
        let names = rc.all().keys().get()?;
        assert_eq!(names.len(), rc.len());
        for (engine, names) in names.iter().enumerate() {
            assert!(names.is_empty(), "engine {engine} still holds {names:?}");
            println!("engine {engine}: namespace is empty");
        }
        Ok(())
    });
}
