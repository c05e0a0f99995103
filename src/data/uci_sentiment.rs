//! UCI Sentiment Labelled Sentences as shipped by npm `sentiment`: `[{"text", "class"}]`
//! per source (Yelp, Amazon, IMDB), each ending with one empty item that is skipped.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize)]
pub struct SentimentItem {
    /// `<source>-<index>`, counting from 0 in the file.
    pub id: String,
    pub source: String,
    pub text: String,
    /// 1 positive, 0 negative.
    pub label: u8,
}

#[derive(Deserialize)]
struct Row {
    text: Option<String>,
    class: Option<u8>,
}

/// Parses one source file; `source` is `yelp`, `amazon` or `imdb`.
pub fn parse(file: &str, source: &str, text: &str) -> Result<Vec<SentimentItem>> {
    let rows: Vec<Row> = serde_json::from_str(text).map_err(|e| Error::InvalidData {
        file: file.to_string(),
        line: e.line(),
        reason: e.to_string(),
    })?;
    let mut items = Vec::with_capacity(rows.len());
    for (index, row) in rows.into_iter().enumerate() {
        let sentence = row.text.unwrap_or_default();
        if sentence.trim().is_empty() && row.class.is_none() {
            continue;
        }
        let label = match row.class {
            Some(label @ (0 | 1)) => label,
            other => {
                return Err(Error::InvalidData {
                    file: file.to_string(),
                    line: 1,
                    reason: format!("item {index}: field \"class\" is {other:?}, expected 0 or 1"),
                })
            }
        };
        items.push(SentimentItem {
            id: format!("{source}-{index}"),
            source: source.to_string(),
            text: sentence,
            label,
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_trailing_empty_item() {
        let text = r#"[{"text":"Good.","class":1},{"text":"","class":null}]"#;
        let items = parse("yelp.json", "yelp", text).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].id, "yelp-0");
    }

    #[test]
    fn bad_label_names_item() {
        let text = r#"[{"text":"Good.","class":3}]"#;
        let message = parse("yelp.json", "yelp", text).unwrap_err().to_string();
        assert!(message.contains("item 0"), "{message}");
    }
}
