//! ROUGE-L F1 as Google's `rouge-score` 0.1.2 computes it with its default tokenizer
//! and no stemming: lowercase, every run of characters other than `a-z0-9` is a
//! separator, and the score is the F-measure of the longest common subsequence.

/// Tokenizes like `rouge_score.tokenize.tokenize(text, stemmer=None)`.
pub fn tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in lower.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            current.push(c);
        } else if !current.is_empty() {
            tokens.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

fn lcs_length(a: &[String], b: &[String]) -> usize {
    let mut previous = vec![0usize; b.len() + 1];
    let mut current = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            current[j + 1] = if x == y {
                previous[j] + 1
            } else {
                current[j].max(previous[j + 1])
            };
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// Precision, recall and F-measure of ROUGE-L for one prediction against one target.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RougeScore {
    pub precision: f64,
    pub recall: f64,
    pub fmeasure: f64,
}

/// ROUGE-L of `prediction` against `target`, as `RougeScorer(["rougeL"]).score(target, prediction)`.
pub fn rouge_l(target: &str, prediction: &str) -> RougeScore {
    let target = tokenize(target);
    let prediction = tokenize(prediction);
    if target.is_empty() || prediction.is_empty() {
        return RougeScore {
            precision: 0.0,
            recall: 0.0,
            fmeasure: 0.0,
        };
    }
    let lcs = lcs_length(&target, &prediction) as f64;
    let precision = lcs / prediction.len() as f64;
    let recall = lcs / target.len() as f64;
    let fmeasure = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    RougeScore {
        precision,
        recall,
        fmeasure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_drops_non_ascii_and_punctuation() {
        assert_eq!(
            tokenize("Return the SUM, élève 42!"),
            ["return", "the", "sum", "l", "ve", "42"]
        );
    }

    #[test]
    fn lcs_of_reordered_words() {
        let score = rouge_l("a b c d", "a c b d");
        assert!((score.fmeasure - 0.75).abs() < 1e-12);
    }

    #[test]
    fn empty_prediction_scores_zero() {
        assert_eq!(rouge_l("return the sum", "").fmeasure, 0.0);
    }
}
