// src/lib.rs
//! A parameter sweep: the model every engine runs, and the grid to sweep.

use serde::{Deserialize, Serialize};

/// One point of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub rate: f64,
    pub damping: f64,
}

/// The model: a damped oscillator stepped 10,000 times; returns the final
/// energy (smaller is better).
#[rankview::remote]
pub fn energy(p: Params) -> f64 {
    let (mut x, mut v) = (1.0f64, 0.0f64);
    for _ in 0..10_000 {
        v += -p.rate * x - p.damping * v;
        x += v * 0.01;
    }
    0.5 * (x * x + v * v)
}

/// Every combination of `rates` and `dampings`.
pub fn grid(rates: &[f64], dampings: &[f64]) -> Vec<Params> {
    let mut points = Vec::new();
    for &rate in rates {
        for &damping in dampings {
            points.push(Params { rate, damping });
        }
    }
    points
}
