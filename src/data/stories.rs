//! Story-writing items: a background paragraph and a reference story.
//!
//! Two layouts are read. The first is JSONL with `{"background", "story"}` per line,
//! where `input` and `target` are synonyms and `id` is optional. The second is
//! BIG-bench's `task.json`, `{"examples": [{"input", "target"}]}`, as in its ROPES
//! story-generation subtask; a list target contributes its first entry.

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct StoryItem {
    pub id: String,
    pub background: String,
    pub reference: String,
}

#[derive(Deserialize)]
struct Line {
    id: Option<String>,
    #[serde(alias = "input")]
    background: Option<String>,
    #[serde(alias = "target")]
    story: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct BigBenchTask {
    examples: Vec<Line>,
}

fn item(file: &str, line: usize, default_id: String, parsed: Line) -> Result<StoryItem> {
    let invalid = |reason: String| Error::InvalidData {
        file: file.to_string(),
        line,
        reason,
    };
    let background = parsed
        .background
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| invalid("missing or empty field \"background\" (or \"input\")".into()))?;
    let reference = match parsed.story {
        Some(serde_json::Value::String(text)) => Some(text),
        Some(serde_json::Value::Array(list)) => {
            list.first().and_then(|v| v.as_str()).map(str::to_string)
        }
        _ => None,
    }
    .filter(|text| !text.trim().is_empty())
    .ok_or_else(|| {
        invalid(
            "missing or empty field \"story\" (or \"target\"): a text or a list of texts".into(),
        )
    })?;
    Ok(StoryItem {
        id: parsed.id.unwrap_or(default_id),
        background,
        reference,
    })
}

/// Parses either layout; a schema error names `file`, the line (or the example's
/// index in a BIG-bench file, as line 1) and the field.
pub fn parse(file: &str, text: &str) -> Result<Vec<StoryItem>> {
    if let Ok(task) = serde_json::from_str::<BigBenchTask>(text) {
        return task
            .examples
            .into_iter()
            .enumerate()
            .map(|(index, example)| {
                item(file, 1, format!("example-{index}"), example).map_err(|e| match e {
                    Error::InvalidData { file, line, reason } => Error::InvalidData {
                        file,
                        line,
                        reason: format!("example {index}: {reason}"),
                    },
                    other => other,
                })
            })
            .collect();
    }
    super::parse_jsonl(file, text, |number, parsed: Line, _| {
        item(file, number, format!("line-{number}"), parsed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_jsonl_and_bigbench_layouts() {
        let jsonl = "{\"background\": \"Rain fell.\", \"story\": \"Ann got wet.\"}\n{\"id\": \"x\", \"input\": \"Sun.\", \"target\": \"Bo got warm.\"}";
        let items = parse("mine.jsonl", jsonl).unwrap();
        assert_eq!(
            (items[0].id.as_str(), items[1].id.as_str()),
            ("line-1", "x")
        );
        assert_eq!(items[1].reference, "Bo got warm.");
        let task = r#"{"name": "t", "examples": [{"input": "Wind.", "target": ["Kites flew.", "other"]}]}"#;
        let items = parse("task.json", task).unwrap();
        assert_eq!(items[0].reference, "Kites flew.");
        assert_eq!(items[0].id, "example-0");
    }

    #[test]
    fn schema_errors_name_line_and_field() {
        let message = parse(
            "mine.jsonl",
            "{\"background\": \"b\", \"story\": \"s\"}\n{\"background\": \"b\"}",
        )
        .unwrap_err()
        .to_string();
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("\"story\""), "{message}");
        let message = parse(
            "task.json",
            r#"{"examples": [{"input": "a", "target": "b"}, {"target": "c"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(message.contains("example 1"), "{message}");
        assert!(message.contains("\"background\""), "{message}");
    }
}
