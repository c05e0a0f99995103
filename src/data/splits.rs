//! Seeded, stratified train/test splits that never share a text between the two sides.

use std::collections::BTreeMap;

use super::seeded_subset;

/// Indices of the training and test items.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// Normalizes a text to the form under which two texts count as the same: trimmed, lowercased, inner
/// whitespace collapsed.
pub fn normalized(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Splits items into train and test with about `test_fraction` of each label in test.
///
/// Items whose normalized texts are equal are kept together, so no test text appears
/// in training even when a data set repeats a sentence. The groups of each label are
/// shuffled with `seed` before the cut.
pub fn stratified_split(texts: &[&str], labels: &[u8], test_fraction: f64, seed: u64) -> Split {
    // Group indices by (label, normalized text); BTreeMap keeps the order deterministic.
    let mut groups: BTreeMap<(u8, String), Vec<usize>> = BTreeMap::new();
    for (index, (text, label)) in texts.iter().zip(labels).enumerate() {
        groups
            .entry((*label, normalized(text)))
            .or_default()
            .push(index);
    }
    // A text that carries both labels goes wholly to training, so test stays unambiguous.
    let mut label_of_text: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (label, text) in groups.keys() {
        label_of_text.entry(text.clone()).or_default().push(*label);
    }

    let mut split = Split {
        train: Vec::new(),
        test: Vec::new(),
    };
    let label_values: std::collections::BTreeSet<u8> = labels.iter().copied().collect();
    for label in label_values {
        let members: Vec<&Vec<usize>> = groups
            .iter()
            .filter(|((l, _), _)| *l == label)
            .map(|(_, v)| v)
            .collect();
        let keys: Vec<&String> = groups
            .keys()
            .filter(|(l, _)| *l == label)
            .map(|(_, text)| text)
            .collect();
        let order = seeded_subset(members.len(), members.len(), seed ^ u64::from(label));
        let test_groups = (members.len() as f64 * test_fraction).round() as usize;
        let mut taken = 0;
        for group in order {
            let ambiguous = label_of_text[keys[group]].len() > 1;
            if taken < test_groups && !ambiguous {
                split.test.extend(members[group]);
                taken += 1;
            } else {
                split.train.extend(members[group]);
            }
        }
    }
    split.train.sort_unstable();
    split.test.sort_unstable();
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_disjoint_by_text() {
        let texts = [
            "Good.",
            "good. ",
            "Bad.",
            "Great food",
            "Awful",
            "Fine",
            "Meh",
            "Nice",
            "Poor",
            "Lovely",
        ];
        let labels = [1, 1, 0, 1, 0, 1, 0, 1, 0, 1];
        let split = stratified_split(&texts, &labels, 0.5, 3);
        let train: Vec<String> = split.train.iter().map(|&i| normalized(texts[i])).collect();
        for &i in &split.test {
            assert!(
                !train.contains(&normalized(texts[i])),
                "{:?} in both splits",
                texts[i]
            );
        }
        assert_eq!(split.train.len() + split.test.len(), texts.len());
    }

    #[test]
    fn split_is_stratified_and_seeded() {
        let texts: Vec<String> = (0..100).map(|i| format!("sentence {i}")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let labels: Vec<u8> = (0..100).map(|i| (i % 2) as u8).collect();
        let split = stratified_split(&refs, &labels, 0.3, 9);
        assert_eq!(split.test.len(), 30);
        assert_eq!(split.test.iter().filter(|&&i| labels[i] == 1).count(), 15);
        assert_eq!(split, stratified_split(&refs, &labels, 0.3, 9));
        assert_ne!(split, stratified_split(&refs, &labels, 0.3, 10));
    }

    #[test]
    fn text_with_both_labels_stays_in_training() {
        let texts = ["same", "same", "other"];
        let labels = [0, 1, 0];
        let split = stratified_split(&texts, &labels, 1.0, 1);
        assert!(split.train.contains(&0));
        assert!(split.train.contains(&1));
        assert_eq!(split.test, vec![2]);
    }
}
