// tests/sweep.rs
use rankview::Client;
use sweep::{energy, grid, Params};

/// Runs as its own MPI job of 3 ranks (a client and two engines).
#[rankview::test(ranks = 3)]
fn engines_agree_with_a_local_run(rc: &Client) -> rankview::Result<()> {
    let points = grid(&[1.0, 2.0], &[0.01, 0.1]);
    let remote = rc.load_balanced_view().map_sync(energy, points.clone())?;
    let local: Vec<f64> = points.into_iter().map(energy).collect();
    assert_eq!(remote, local);
    Ok(())
}

#[rankview::test(ranks = 2)]
fn one_engine_is_enough(rc: &Client) {
    let p = Params { rate: 1.0, damping: 0.1 };
    assert_eq!(rc.engine(0).unwrap().apply_sync(energy, (p,)).unwrap(), energy(p));
}

/// No MPI needed: an ordinary test in the same file.
#[test]
fn the_grid_has_every_combination() {
    assert_eq!(grid(&[1.0, 2.0], &[0.1, 0.2, 0.3]).len(), 6);
}
