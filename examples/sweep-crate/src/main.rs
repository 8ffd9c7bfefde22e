// src/main.rs
use sweep::{energy, grid};

fn main() {
    let best = rankview::launch(|rc| -> rankview::Result<_> {
        let points = grid(&[0.5, 1.0, 2.0, 4.0], &[0.001, 0.01, 0.1]);
        let energies = rc.load_balanced_view().map_sync(energy, points.clone())?;
        let (point, e) = points
            .into_iter()
            .zip(energies)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("the grid is not empty");
        Ok((point, e))
    });
    // Only rank 0 gets here: the engines end inside `launch`.
    println!("best: {:?} with energy {:.3e}", best.0, best.1);
}
