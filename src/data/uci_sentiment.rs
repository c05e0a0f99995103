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

#[derive(Deserialize)]
struct UserLine {
    id: Option<String>,
    text: Option<String>,
    label: Option<serde_json::Value>,
}

/// Parses a user's JSONL file, one `{"text", "label"}` per line with the label
/// `positive`/`negative` or 1/0 (and an optional `id`); errors name the line and field.
pub fn parse_jsonl(file: &str, text: &str) -> Result<Vec<SentimentItem>> {
    super::parse_jsonl(file, text, |line_number, parsed: UserLine, invalid| {
        let sentence = parsed
            .text
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| invalid("missing or empty field \"text\"".into()))?;
        let label = match &parsed.label {
            Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("positive") => 1,
            Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("negative") => 0,
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(1) => 1,
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(0) => 0,
            other => {
                return Err(invalid(format!(
                    "field \"label\" is {}, expected \"positive\", \"negative\", 1 or 0",
                    other
                        .as_ref()
                        .map_or("missing".to_string(), |v| v.to_string())
                )))
            }
        };
        Ok(SentimentItem {
            id: parsed.id.unwrap_or_else(|| format!("line-{line_number}")),
            source: file.to_string(),
            text: sentence,
            label,
        })
    })
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
    fn user_jsonl_accepts_words_and_digits() {
        let text = "{\"text\": \"Great.\", \"label\": \"Positive\"}\n\n{\"id\": \"b\", \"text\": \"Bad.\", \"label\": 0}";
        let items = parse_jsonl("mine.jsonl", text).unwrap();
        assert_eq!((items[0].label, items[1].label), (1, 0));
        assert_eq!(
            (items[0].id.as_str(), items[1].id.as_str()),
            ("line-1", "b")
        );
    }

    #[test]
    fn user_jsonl_errors_name_line_and_field() {
        let text =
            "{\"text\": \"Great.\", \"label\": 1}\n{\"text\": \"Meh.\", \"label\": \"neutral\"}";
        let message = parse_jsonl("mine.jsonl", text).unwrap_err().to_string();
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("\"label\""), "{message}");
        let message = parse_jsonl("mine.jsonl", "{\"label\": 1}")
            .unwrap_err()
            .to_string();
        assert!(message.contains("line 1"), "{message}");
        assert!(message.contains("\"text\""), "{message}");
    }

    #[test]
    fn bad_label_names_item() {
        let text = r#"[{"text":"Good.","class":3}]"#;
        let message = parse("yelp.json", "yelp", text).unwrap_err().to_string();
        assert!(message.contains("item 0"), "{message}");
    }
}
