//! Accuracy, macro-F1 and the Wilson 95% interval for a proportion.

use serde::Serialize;

/// A proportion with its 95% Wilson score interval.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Proportion {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

/// Computes the 95% Wilson score interval (z = 1.959964) for `successes` out of `trials`.
pub fn wilson(successes: usize, trials: usize) -> Proportion {
    if trials == 0 {
        return Proportion {
            value: 0.0,
            low: 0.0,
            high: 1.0,
        };
    }
    let z = 1.959_963_984_540_054_f64;
    let n = trials as f64;
    let p = successes as f64 / n;
    let denominator = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denominator;
    let half_width = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denominator;
    Proportion {
        value: p,
        low: (centre - half_width).max(0.0),
        high: (centre + half_width).min(1.0),
    }
}

/// Computes the mean over classes of the per-class F1, as scikit-learn's `f1_score(average="macro")`;
/// a class with no predicted and no true items scores 0.
pub fn macro_f1(predictions: &[u8], truth: &[u8], classes: usize) -> f64 {
    let mut total = 0.0;
    for class in 0..classes as u8 {
        let true_positive = predictions
            .iter()
            .zip(truth)
            .filter(|(p, t)| **p == class && **t == class)
            .count() as f64;
        let predicted = predictions.iter().filter(|p| **p == class).count() as f64;
        let actual = truth.iter().filter(|t| **t == class).count() as f64;
        if predicted + actual > 0.0 {
            total += 2.0 * true_positive / (predicted + actual);
        }
    }
    total / classes as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_worked_example() {
        // 8 of 10 successes: the Wilson formula gives 0.4902-0.9433.
        let interval = wilson(8, 10);
        assert!((interval.low - 0.4902).abs() < 1e-4, "{interval:?}");
        assert!((interval.high - 0.9433).abs() < 1e-4, "{interval:?}");
    }

    #[test]
    fn macro_f1_worked_example() {
        // Class 0: precision 1/2, recall 1/1, F1 2/3. Class 1: precision 2/2, recall 2/3, F1 4/5.
        let predictions = [0, 1, 1, 0];
        let truth = [0, 1, 1, 1];
        assert!((macro_f1(&predictions, &truth, 2) - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn wilson_of_no_trials_is_uninformative() {
        assert_eq!(
            wilson(0, 0),
            Proportion {
                value: 0.0,
                low: 0.0,
                high: 1.0
            }
        );
    }
}
