//! ipyparallel's "Parallel computing with MPI" (`psum`), in Rust. Run it
//! with `rankview run -n 5 --example mpi_psum` (four engines), or on any
//! number of ranks.
//!
//! An array is scattered over the engines of a direct view; on every
//! engine, a task sums its part and adds the parts' sums up across the
//! view's engines with an allreduce on the view's communicator
//! (`rankview::comm()`, rank 0 of the job not in it). Every engine must get
//! the array's sum, which the client also computes locally: the example
//! fails (exits non-zero) if any engine's differs. The same runs again on
//! the view in reverse order, where the communicator's ranks follow the
//! view's targets. With one engine there is no communicator: the example
//! checks that `comm()` says so.

use rankview::{Error, ReduceOp, Ref, TaskResult};

/// `psum(a)`: this engine's part of `a`, summed over the view's engines
/// (`MPI_Allreduce` with `MPI_SUM`); the parts are integers, so the sum is
/// exact whatever the order of the additions.
#[allow(clippy::ptr_arg)] // a `Ref` to a stored `Vec<f64>` arrives as `&Vec<f64>`
#[rankview::remote]
fn psum(a: &Vec<f64>) -> TaskResult<f64> {
    let comm = rankview::comm()?;
    let mine = a.iter().sum::<f64>();
    Ok(comm.all_reduce(mine, ReduceOp::Sum)?)
}

/// This engine's rank in the view's communicator, and the communicator's size.
#[rankview::remote]
fn rank_and_size() -> TaskResult<(usize, usize)> {
    let comm = rankview::comm()?;
    Ok((comm.rank(), comm.size()))
}

fn main() {
    rankview::launch(|rc| -> rankview::Result<()> {
        let view = rc.all();
        println!("rc.ids = {:?}", rc.ids());
        // The notebook's array, then a larger one.
        for n in [16usize, 1_000_003] {
            let a: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let local: f64 = a.iter().sum();
            view.scatter("a", &a).get()?;
            if n == 16 {
                for (engine, part) in view.pull::<Vec<f64>>("a").get()?.iter().enumerate() {
                    println!("engine {engine}: a = {part:?}");
                }
            }
            if view.len() < 2 {
                // One engine: no communicator, and the task says so.
                match view.apply_sync(psum, (Ref::<Vec<f64>>::new("a"),)) {
                    Err(e) if e.to_string().contains("rankview::comm()") => {
                        println!("mpi_psum: one engine has no communicator: {e}");
                        return Ok(());
                    }
                    other => {
                        return Err(Error::Usage(format!(
                            "psum on one engine should fail with rankview::comm()'s error, \
                             not {other:?}"
                        )))
                    }
                }
            }
            let sums = view.apply_sync(psum, (Ref::<Vec<f64>>::new("a"),))?;
            println!("psum of {n} numbers: {sums:?} (local sum {local})");
            for (engine, &sum) in sums.iter().enumerate() {
                if sum != local {
                    return Err(Error::Usage(format!(
                        "engine {engine}: psum {sum}, but the local sum is {local}"
                    )));
                }
            }
        }
        // The view in reverse: rank k is the view's target k.
        let reversed = rc.view((0..rc.len()).rev().collect::<Vec<_>>())?;
        let ranks = reversed.apply_sync(rank_and_size, ())?;
        println!(
            "reversed view {:?}: (rank, size) = {ranks:?}",
            reversed.targets()
        );
        for (k, &(rank, size)) in ranks.iter().enumerate() {
            if (rank, size) != (k, rc.len()) {
                return Err(Error::Usage(format!(
                    "target {k} of the reversed view has rank {rank} of {size}"
                )));
            }
        }
        println!("mpi_psum: every engine's psum is the local sum");
        Ok(())
    });
}
