//! GSM8K test split as JSONL: `{"question": ..., "answer": "...#### N"}` per line.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize)]
pub struct Gsm8kItem {
    /// `gsm8k-test-<line number>`, counting from 1.
    pub id: String,
    pub question: String,
    /// The worked solution, ending in `#### N`.
    pub solution: String,
    /// The final number after `####`, as written (commas removed).
    pub answer: String,
}

#[derive(Deserialize)]
struct Line {
    question: Option<String>,
    answer: Option<String>,
}

/// Parses GSM8K JSONL; a schema error names `file`, the line and the missing field.
pub fn parse(file: &str, text: &str) -> Result<Vec<Gsm8kItem>> {
    let mut items = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let invalid = |reason: String| Error::InvalidData {
            file: file.to_string(),
            line: line_number,
            reason,
        };
        let parsed: Line =
            serde_json::from_str(line).map_err(|e| invalid(format!("not a JSON object: {e}")))?;
        let question = parsed
            .question
            .ok_or_else(|| invalid("missing field \"question\"".into()))?;
        let solution = parsed
            .answer
            .ok_or_else(|| invalid("missing field \"answer\"".into()))?;
        let answer = solution
            .rsplit_once("####")
            .map(|(_, number)| number.trim().replace(',', ""))
            .filter(|number| !number.is_empty())
            .ok_or_else(|| invalid("field \"answer\" has no final \"#### N\"".into()))?;
        items.push(Gsm8kItem {
            id: format!("gsm8k-test-{line_number}"),
            question,
            solution,
            answer,
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answer_after_marker() {
        let text = r#"{"question": "q?", "answer": "a\n#### 1,234"}"#;
        let items = parse("t.jsonl", text).unwrap();
        assert_eq!(items[0].answer, "1234");
        assert_eq!(items[0].id, "gsm8k-test-1");
    }

    #[test]
    fn missing_field_names_line_and_field() {
        let text = "{\"question\": \"q\", \"answer\": \"#### 1\"}\n{\"question\": \"q\"}";
        let message = parse("t.jsonl", text).unwrap_err().to_string();
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("\"answer\""), "{message}");
    }
}
