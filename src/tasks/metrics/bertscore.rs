//! BERTScore-style precision, recall and F1 by greedy matching of token embeddings,
//! as `bert_score.score` computes them without IDF weighting or baseline rescaling:
//! each token is matched to its most similar token (cosine) on the other side.
//!
//! Each side's rows start with `[CLS]` and end with `[SEP]`. As in bert_score, those
//! two can be the best match of another token but get no weight in the averages.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BertScore {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

fn normalized(rows: &[Vec<f32>]) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|row| {
            let norm = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            row.iter().map(|&v| v as f64 / norm.max(1e-12)).collect()
        })
        .collect()
}

/// Scores `candidate` token states against `reference` token states; a side with no
/// token between its `[CLS]` and `[SEP]` rows scores 0.
pub fn greedy_match(candidate: &[Vec<f32>], reference: &[Vec<f32>]) -> BertScore {
    if candidate.len() < 3 || reference.len() < 3 {
        return BertScore {
            precision: 0.0,
            recall: 0.0,
            f1: 0.0,
        };
    }
    let candidate = normalized(candidate);
    let reference = normalized(reference);
    let similarity: Vec<Vec<f64>> = candidate
        .iter()
        .map(|c| {
            reference
                .iter()
                .map(|r| c.iter().zip(r).map(|(a, b)| a * b).sum())
                .collect()
        })
        .collect();
    let inner = |len: usize| 1..len - 1;
    let precision = similarity[inner(candidate.len())]
        .iter()
        .map(|row| row.iter().copied().fold(f64::NEG_INFINITY, f64::max))
        .sum::<f64>()
        / (candidate.len() - 2) as f64;
    let recall = inner(reference.len())
        .map(|j| {
            similarity
                .iter()
                .map(|row| row[j])
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .sum::<f64>()
        / (reference.len() - 2) as f64;
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    BertScore {
        precision,
        recall,
        f1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wraps token rows in `[CLS]` and `[SEP]` rows pointing along a third axis.
    fn with_specials(rows: &[[f32; 3]]) -> Vec<Vec<f32>> {
        let special = vec![0.0, 0.0, 1.0];
        std::iter::once(special.clone())
            .chain(rows.iter().map(|r| r.to_vec()))
            .chain(std::iter::once(special))
            .collect()
    }

    #[test]
    fn identical_sides_score_one() {
        let rows = with_specials(&[[1.0, 0.0, 0.0], [0.3, 0.7, 0.0]]);
        let score = greedy_match(&rows, &rows);
        assert!((score.f1 - 1.0).abs() < 1e-12, "{score:?}");
    }

    #[test]
    fn greedy_matching_by_hand() {
        // Candidate tokens a=(1,0,0), b=(0,1,0); reference r=(1,0,0).
        // Precision: a→1, b→0 (its best match is a special row, cosine 0), mean 0.5.
        // Recall: r→1. F1 = 2·0.5·1/1.5.
        let candidate = with_specials(&[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]);
        let reference = with_specials(&[[3.0, 0.0, 0.0]]);
        let score = greedy_match(&candidate, &reference);
        assert!((score.precision - 0.5).abs() < 1e-12);
        assert!((score.recall - 1.0).abs() < 1e-12);
        assert!((score.f1 - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn special_rows_are_matched_but_not_averaged() {
        // The candidate token points along the special rows' axis: it matches them.
        let candidate = with_specials(&[[0.0, 0.0, 1.0]]);
        let reference = with_specials(&[[1.0, 0.0, 0.0]]);
        let score = greedy_match(&candidate, &reference);
        assert!((score.precision - 1.0).abs() < 1e-12);
        assert!(score.recall.abs() < 1e-12);
    }

    #[test]
    fn side_without_tokens_scores_zero() {
        assert_eq!(
            greedy_match(&with_specials(&[]), &with_specials(&[[1.0, 0.0, 0.0]])).f1,
            0.0
        );
    }
}
