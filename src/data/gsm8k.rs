//! GSM8K test split as JSONL: `{"question": ..., "answer": "...#### N"}` per line.

use serde::{Deserialize, Serialize};

use crate::error::Result;

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
    super::parse_jsonl(file, text, |line_number, parsed: Line, invalid| {
        let question = parsed
            .question
            .ok_or_else(|| invalid("missing field \"question\"".into()))?;
        let solution = parsed
            .answer
            .ok_or_else(|| invalid("missing field \"answer\"".into()))?;
        // GSM8K's worked solutions end in `#### N`; a user's file may give N alone.
        let final_part = solution
            .rsplit_once("####")
            .map_or(solution.as_str(), |(_, number)| number);
        let answer = final_part.trim().replace(',', "");
        if answer.is_empty() || answer.parse::<f64>().is_err() {
            return Err(invalid(
                "field \"answer\" must end in \"#### N\" or be a number N".into(),
            ));
        }
        Ok(Gsm8kItem {
            id: format!("gsm8k-test-{line_number}"),
            question,
            solution,
            answer,
        })
    })
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
    fn answer_plain_number_or_marker() {
        let items = parse("t.jsonl", r#"{"question": "q?", "answer": "42"}"#).unwrap();
        assert_eq!(items[0].answer, "42");
        let message = parse("t.jsonl", r#"{"question": "q?", "answer": "forty"}"#)
            .unwrap_err()
            .to_string();
        assert!(message.contains("#### N"), "{message}");
    }

    #[test]
    fn missing_field_names_line_and_field() {
        let text = "{\"question\": \"q\", \"answer\": \"#### 1\"}\n{\"question\": \"q\"}";
        let message = parse("t.jsonl", text).unwrap_err().to_string();
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("\"answer\""), "{message}");
    }
}
