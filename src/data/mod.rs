//! Data set loaders and deterministic, seeded subsets.

pub mod gsm8k;
pub mod humaneval;
pub mod splits;
pub mod stories;
pub mod uci_sentiment;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Builds the error for one line of a data file: the file, the line and the reason.
pub type LineError<'a> = &'a dyn Fn(String) -> Error;

/// Parses each non-blank line of JSONL `text` as a `T` and turns it into an item with
/// `item(line_number, parsed, invalid)`, where `invalid` names `file` and the line.
pub fn parse_jsonl<T: DeserializeOwned, I>(
    file: &str,
    text: &str,
    mut item: impl FnMut(usize, T, LineError<'_>) -> Result<I>,
) -> Result<Vec<I>> {
    let mut items = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_number = index + 1;
        let invalid = |reason: String| Error::InvalidData {
            file: file.to_string(),
            line: line_number,
            reason,
        };
        let parsed: T =
            serde_json::from_str(line).map_err(|e| invalid(format!("not a JSON object: {e}")))?;
        items.push(item(line_number, parsed, &invalid)?);
    }
    Ok(items)
}

/// Picks `limit` distinct indices out of `0..total` in a shuffled order that depends
/// only on `seed`, so the same seed selects the same items on every platform.
pub fn seeded_subset(total: usize, limit: usize, seed: u64) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..total).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Fisher-Yates, drawing with rejection so the bound is unbiased.
    for i in (1..total).rev() {
        let bound = (i + 1) as u64;
        let zone = u64::MAX - u64::MAX % bound;
        let j = loop {
            let draw = rng.next_u64();
            if draw < zone {
                break (draw % bound) as usize;
            }
        };
        indices.swap(i, j);
    }
    indices.truncate(limit.min(total));
    indices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_is_deterministic_and_distinct() {
        let first = seeded_subset(100, 10, 42);
        assert_eq!(first, seeded_subset(100, 10, 42));
        assert_ne!(first, seeded_subset(100, 10, 43));
        let mut sorted = first.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 10);
        assert!(first.iter().all(|&i| i < 100));
    }

    #[test]
    fn subset_larger_than_total_takes_all() {
        let mut all = seeded_subset(5, 50, 1);
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
    }
}
