//! Corpus BLEU as sacreBLEU 2.5 computes it with its defaults: the `13a` tokenizer,
//! n-grams up to 4, the `exp` smoothing and the brevity penalty, one reference per
//! hypothesis. Scores are on sacreBLEU's 0–100 scale.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;

const MAX_ORDER: usize = 4;

/// sacreBLEU's `my_log(0)`: a large negative stand-in for log(0).
const LOG_ZERO: f64 = -9_999_999_999.0;

fn tokenizer_rules() -> &'static [(Regex, &'static str)] {
    static RULES: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    RULES.get_or_init(|| {
        vec![
            // Punctuation and symbols become separate tokens.
            (Regex::new(r"([\{-~\[-`\x20-&\(-\+:-@/])").unwrap(), " $1 "),
            // Periods and commas, unless preceded by a digit.
            (Regex::new(r"([^0-9])([\.,])").unwrap(), "$1 $2 "),
            // Periods and commas, unless followed by a digit.
            (Regex::new(r"([\.,])([^0-9])").unwrap(), " $1 $2"),
            // A dash preceded by a digit.
            (Regex::new(r"([0-9])(-)").unwrap(), "$1 $2 "),
        ]
    })
}

/// Tokenizes like sacreBLEU's `Tokenizer13a` (the mteval-v13a rules).
pub fn tokenize_13a(text: &str) -> Vec<String> {
    let mut line = text
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (rule, replacement) in tokenizer_rules() {
        line = rule.replace_all(&line, *replacement).into_owned();
    }
    line.split_whitespace().map(str::to_string).collect()
}

fn ngram_counts(tokens: &[String], order: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    if tokens.len() >= order {
        for window in tokens.windows(order) {
            *counts.entry(window).or_insert(0) += 1;
        }
    }
    counts
}

/// Matched and total n-gram counts and lengths, summed over a corpus.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BleuStatistics {
    pub matches: [usize; MAX_ORDER],
    pub totals: [usize; MAX_ORDER],
    pub hypothesis_length: usize,
    pub reference_length: usize,
}

impl BleuStatistics {
    fn add(&mut self, hypothesis: &str, reference: &str) {
        let hypothesis = tokenize_13a(hypothesis);
        let reference = tokenize_13a(reference);
        self.hypothesis_length += hypothesis.len();
        self.reference_length += reference.len();
        for order in 1..=MAX_ORDER {
            let reference_counts = ngram_counts(&reference, order);
            for (ngram, count) in ngram_counts(&hypothesis, order) {
                let clipped = count.min(reference_counts.get(ngram).copied().unwrap_or(0));
                self.matches[order - 1] += clipped;
            }
            self.totals[order - 1] += hypothesis.len().saturating_sub(order - 1);
        }
    }

    /// Computes the BLEU score (0–100) of these statistics. With `effective_order` it stops at the
    /// highest n-gram order that has any n-gram, as sacreBLEU's sentence BLEU does.
    pub fn score(&self, effective_order: bool) -> f64 {
        let brevity_penalty = if self.hypothesis_length == 0 {
            0.0
        } else if self.hypothesis_length < self.reference_length {
            (1.0 - self.reference_length as f64 / self.hypothesis_length as f64).exp()
        } else {
            1.0
        };

        let mut precisions = [0.0f64; MAX_ORDER];
        let mut smoothing = 1.0;
        let mut order_used = MAX_ORDER;
        for n in 0..MAX_ORDER {
            if self.totals[n] == 0 {
                break;
            }
            if effective_order {
                order_used = n + 1;
            }
            if self.matches[n] == 0 {
                smoothing *= 2.0;
                precisions[n] = 100.0 / (smoothing * self.totals[n] as f64);
            } else {
                precisions[n] = 100.0 * self.matches[n] as f64 / self.totals[n] as f64;
            }
        }
        let log_sum: f64 = precisions[..order_used]
            .iter()
            .map(|&p| if p == 0.0 { LOG_ZERO } else { p.ln() })
            .sum();
        brevity_penalty * (log_sum / order_used as f64).exp()
    }
}

/// Corpus BLEU over pairs of (hypothesis, reference), as `sacrebleu.corpus_bleu`.
pub fn corpus_bleu<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> f64 {
    let mut statistics = BleuStatistics::default();
    for (hypothesis, reference) in pairs {
        statistics.add(hypothesis, reference);
    }
    statistics.score(false)
}

/// Sentence BLEU of one hypothesis, as `sacrebleu.sentence_bleu` (effective order on).
pub fn sentence_bleu(hypothesis: &str, reference: &str) -> f64 {
    let mut statistics = BleuStatistics::default();
    statistics.add(hypothesis, reference);
    statistics.score(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_splits_punctuation_but_not_numbers() {
        assert_eq!(
            tokenize_13a("Hello, world! It costs 3.50."),
            ["Hello", ",", "world", "!", "It", "costs", "3.50", "."]
        );
    }

    #[test]
    fn identical_text_scores_100() {
        let text = "the cat sat on the mat today";
        assert!((corpus_bleu([(text, text)]) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn empty_hypothesis_scores_0() {
        assert_eq!(corpus_bleu([("", "the cat sat on the mat")]), 0.0);
    }
}
