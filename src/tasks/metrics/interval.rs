//! A 95% interval for the mean of bounded item scores (ROUGE-L, BERTScore-style F1),
//! by the percentile bootstrap with a fixed seed, so a report is reproducible.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

const RESAMPLES: usize = 2_000;

/// Returns the 2.5th and 97.5th percentiles of the mean over `RESAMPLES` resamples of
/// `values`; `(0, 0)` for no values and the value itself for one.
pub fn bootstrap_mean(values: &[f64], seed: u64) -> (f64, f64) {
    match values.len() {
        0 => return (0.0, 0.0),
        1 => return (values[0], values[0]),
        _ => {}
    }
    let n = values.len() as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let sum: f64 = (0..n).map(|_| values[(rng.next_u64() % n) as usize]).sum();
            sum / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (RESAMPLES - 1) as f64).round()) as usize];
    (at(0.025), at(0.975))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_brackets_mean_and_shrinks() {
        let few: Vec<f64> = (0..10).map(|i| (i % 2) as f64).collect();
        let many: Vec<f64> = (0..1000).map(|i| (i % 2) as f64).collect();
        let (low, high) = bootstrap_mean(&few, 1);
        assert!(low < 0.5, "{low}");
        assert!(high > 0.5, "{high}");
        let (low_many, high_many) = bootstrap_mean(&many, 1);
        assert!(high_many - low_many < (high - low) / 3.0);
        // Normal approximation for p = 0.5, n = 1000: ±0.031.
        assert!((high_many - 0.5 - 0.031).abs() < 0.01, "{high_many}");
    }

    #[test]
    fn constant_scores_have_no_spread() {
        assert_eq!(bootstrap_mean(&[0.25; 7], 3), (0.25, 0.25));
        assert_eq!(bootstrap_mean(&[], 3), (0.0, 0.0));
    }
}
