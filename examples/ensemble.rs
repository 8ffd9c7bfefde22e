//! An ensemble of small MPI runs: a sweep of 32 parameter sets, each one
//! a steady-state heat solve on a 1-D rod (Jacobi iterations) split over
//! the two engines of a group, load-balanced over the groups.
//!
//! `rc.groups(2)` makes the view; each task runs on both engines of one
//! group, and `rankview::comm()` inside it is the group's communicator:
//! every step exchanges the halo points with the neighbour
//! (`send`/`receive_into`) and takes the largest change over the group
//! (`all_reduce` with `Max`); the rod's values come back gathered
//! (`all_gather_into`), the leader's copy as the task's value. Each
//! result is checked against the same iterations run serially here: the
//! same operations on the same values, so the two agree exactly.
//!
//! Run it with `rankview run -n 5 --example ensemble` (two groups; 3 ranks
//! make one group, 9 make four).

use rankview::{ReduceOp, TaskResult};
use serde::{Deserialize, Serialize};

/// Points of the rod (split evenly over the group's engines).
const POINTS: usize = 96;
/// Jacobi iterations per solve.
const STEPS: usize = 400;
/// Parameter sets of the sweep.
const SETS: usize = 32;

/// One parameter set: the temperatures held at the rod's two ends and a
/// uniform heat source.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Params {
    left: f64,
    right: f64,
    source: f64,
}

/// The sweep: every combination of four left ends, four right ends and
/// two sources.
fn sweep() -> Vec<Params> {
    (0..SETS)
        .map(|i| Params {
            left: (i % 4) as f64 * 10.0,
            right: 100.0 - ((i / 4) % 4) as f64 * 15.0,
            source: if i < SETS / 2 { 0.0 } else { 2.5 },
        })
        .collect()
}

/// One Jacobi update of `u` (interior points with a halo point at each
/// end) into `next`; the largest change. Shared by the group's solve and
/// the serial one, so that both do exactly the same arithmetic.
fn jacobi(u: &[f64], next: &mut [f64], source: f64) -> f64 {
    let h2 = 1.0 / ((POINTS + 1) * (POINTS + 1)) as f64;
    let mut change = 0.0f64;
    for i in 1..u.len() - 1 {
        next[i] = 0.5 * (u[i - 1] + u[i + 1]) + 0.5 * h2 * source;
        change = change.max((next[i] - u[i]).abs());
    }
    change
}

/// The solve on the group: this engine's share of the rod, halo exchanges
/// with its neighbours, the change reduced over the group each step.
/// Returns the whole rod and the last step's largest change.
#[rankview::remote]
fn solve(p: Params) -> TaskResult<(Vec<f64>, f64)> {
    let comm = rankview::comm()?;
    let (rank, size) = (comm.rank(), comm.size());
    if POINTS % size != 0 {
        return Err(rankview::TaskError::msg(format!(
            "{POINTS} points do not split over {size} engines"
        )));
    }
    let n = POINTS / size;
    let mut u = vec![0.0; n + 2];
    let mut next = vec![0.0; n + 2];
    let mut change = 0.0;
    for _ in 0..STEPS {
        // The lower rank of each pair sends first, the higher receives
        // first: a chain, never a cycle of waits.
        if rank > 0 {
            comm.receive_into(rank - 1, &mut u[..1])?;
            comm.send(rank - 1, &u[1..2])?;
        } else {
            u[0] = p.left;
        }
        if rank + 1 < size {
            comm.send(rank + 1, &u[n..n + 1])?;
            comm.receive_into(rank + 1, &mut u[n + 1..])?;
        } else {
            u[n + 1] = p.right;
        }
        let mine = jacobi(&u, &mut next, p.source);
        change = comm.all_reduce(mine, ReduceOp::Max)?;
        std::mem::swap(&mut u, &mut next);
    }
    let mut rod = vec![0.0; POINTS];
    comm.all_gather_into(&u[1..=n], &mut rod)?;
    Ok((rod, change))
}

/// The same iterations on one process.
fn serial(p: Params) -> (Vec<f64>, f64) {
    let mut u = vec![0.0; POINTS + 2];
    let mut next = vec![0.0; POINTS + 2];
    let mut change = 0.0;
    for _ in 0..STEPS {
        u[0] = p.left;
        u[POINTS + 1] = p.right;
        change = jacobi(&u, &mut next, p.source);
        std::mem::swap(&mut u, &mut next);
    }
    (u[1..=POINTS].to_vec(), change)
}

fn main() {
    rankview::launch(|rc| -> rankview::Result<()> {
        let groups = rc.groups(2)?;
        let params = sweep();
        let solves = groups.chunksize(1).map(solve, params.clone());
        let results = solves.get()?;
        let mut worst = 0.0f64;
        for (p, (rod, change)) in params.iter().zip(&results) {
            let (want, want_change) = serial(*p);
            assert_eq!(rod, &want, "the group's solve of {p:?}");
            assert_eq!(*change, want_change, "the last change of {p:?}");
            worst = worst.max(*change);
        }
        let mut per_group = vec![0usize; rc.len()];
        for meta in solves.metadata() {
            if let Some(count) = per_group.get_mut(meta.engine) {
                *count += 1;
            }
        }
        let leaders = groups.targets();
        println!(
            "ensemble: {} solves on {} group(s) of 2 (engines {:?}) match the serial solve",
            results.len(),
            leaders.len(),
            groups.groups()
        );
        println!(
            "ensemble: engine parts per group leader {:?}; largest last change {worst:.3e}",
            leaders.iter().map(|&l| per_group[l]).collect::<Vec<_>>()
        );
        Ok(())
    });
}
