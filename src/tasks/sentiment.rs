//! Binary sentiment of UCI review sentences: MiniLM embedding + a trained linear head,
//! scored by accuracy (main metric) and macro-F1 on the held-out split only.

use crate::data::splits::{stratified_split, Split};
use crate::data::uci_sentiment::SentimentItem;

pub const PROMPT_VERSION: &str = "sentiment-v1";
pub const METRIC: &str = "accuracy";

/// The seed and test share of the split; training and evaluation must use the same.
pub const SPLIT_SEED: u64 = 2026;
pub const TEST_FRACTION: f64 = 1.0 / 3.0;

/// Label names, indexed by class.
pub const LABELS: [&str; 2] = ["negative", "positive"];

/// Splits the UCI sentences into the training and held-out sets used everywhere.
pub fn split(items: &[SentimentItem]) -> Split {
    let texts: Vec<&str> = items.iter().map(|item| item.text.as_str()).collect();
    let labels: Vec<u8> = items.iter().map(|item| item.label).collect();
    stratified_split(&texts, &labels, TEST_FRACTION, SPLIT_SEED)
}

/// Builds the user message for a chat model, small or hosted.
pub fn prompt(text: &str) -> String {
    format!("Is the sentiment of this review positive or negative? Answer with one word.\n\nReview: {text}")
}

/// Reads a chat model's reply: the first of "positive" or "negative" it mentions, in
/// any case. Returns `None` when it names neither, or calls the review neutral or mixed
/// before naming one ("neutral, as it does not convey a negative opinion").
pub fn parse_label(output: &str) -> Option<u8> {
    let lower = output.to_lowercase();
    let positive = lower.find("positive");
    let negative = lower.find("negative");
    let first_label = positive.into_iter().chain(negative).min();
    let hedge = ["neutral", "mixed"]
        .iter()
        .filter_map(|word| lower.find(word))
        .min();
    if let (Some(hedge), Some(label)) = (hedge, first_label) {
        if hedge < label {
            return None;
        }
    }
    match (negative, positive) {
        (Some(n), Some(p)) => Some(if p < n { 1 } else { 0 }),
        (Some(_), None) => Some(0),
        (None, Some(_)) => Some(1),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_label_takes_first_named() {
        assert_eq!(parse_label("Positive."), Some(1));
        assert_eq!(parse_label("negative, not positive"), Some(0));
        assert_eq!(parse_label("It is POSITIVE rather than negative"), Some(1));
        assert_eq!(parse_label("neutral"), None);
        assert_eq!(
            parse_label("The sentiment is neutral, as it does not convey a negative opinion"),
            None
        );
        assert_eq!(parse_label("Negative, not neutral"), Some(0));
    }
}
