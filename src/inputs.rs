//! The data each task reads: the default files pinned by SHA-256 in the data manifest,
//! or a user's own file, parsed and cut to the run's seeded subset.

use crate::data::gsm8k::{self, Gsm8kItem};
use crate::data::humaneval::{self, Problem};
use crate::data::seeded_subset;
use crate::data::stories::{self, StoryItem};
use crate::data::uci_sentiment::{self, SentimentItem};
use crate::error::{Error, Result};
use crate::integrity;
use crate::manifest::defaults;
use crate::report::FileRecord;
use crate::tasks::code_summary::{self, SummaryItem};

/// Every task a run can name, in the order reports list them.
pub const TASKS: [&str; 6] = [
    "sentiment",
    "story",
    "gsm8k",
    "code-summary",
    "humaneval",
    "embed",
];

/// Tasks whose default data this build cannot fetch, so a run needs the user's file.
// NOTE: the story data (ROPES story generation) ships only in PyPI `bigbench` 1.0.0,
// which the package registry this project is built against does not serve.
pub const NEEDS_USER_DATA: [&str; 1] = ["story"];

/// One data file handed to a run.
#[derive(Debug, Clone)]
pub struct DataInput {
    /// The manifest destination of a default file, or the user's file name.
    pub name: String,
    pub bytes: Vec<u8>,
    /// The manifest's SHA-256 for a default file; `None` for a user's file, whose
    /// hash is computed and recorded instead.
    pub pinned_sha256: Option<String>,
}

impl DataInput {
    fn verified_record(&self) -> Result<FileRecord> {
        let sha256 = match &self.pinned_sha256 {
            Some(expected) => integrity::verify_sha256(&self.name, &self.bytes, expected)?,
            None => integrity::sha256_hex(&self.bytes),
        };
        Ok(FileRecord {
            name: self.name.clone(),
            sha256,
            bytes: self.bytes.len(),
        })
    }

    fn text(&self) -> Result<String> {
        humaneval::decompress_text(&self.name, &self.bytes)
    }
}

/// Checks that `task` is one Seedling runs.
pub fn check_task(task: &str) -> Result<()> {
    if TASKS.contains(&task) {
        Ok(())
    } else {
        Err(Error::InvalidOption {
            option: "tasks",
            value: task.to_string(),
            expected: format!("one of {}", TASKS.join(", ")),
        })
    }
}

/// Lists the default data files of `task` by their data-manifest destination.
pub fn default_files(task: &str) -> Result<Vec<&'static str>> {
    check_task(task)?;
    if NEEDS_USER_DATA.contains(&task) {
        return Err(Error::InvalidOption {
            option: "data",
            value: task.to_string(),
            expected: "your own data file for this task: its default data set (ROPES story \
                       generation, in PyPI bigbench 1.0.0) is not available from the package \
                       registry here. Give a JSONL file with \"background\" and \"story\" on \
                       each line, or BIG-bench's task.json"
                .into(),
        });
    }
    Ok(match task {
        "gsm8k" => vec![defaults::GSM8K],
        "code-summary" | "humaneval" => vec![defaults::HUMANEVAL],
        _ => defaults::UCI_SOURCES
            .iter()
            .map(|(_, dest)| *dest)
            .collect(),
    })
}

/// A task's items, typed by task.
#[derive(Debug, Clone)]
pub enum TaskItems {
    Sentiment(Vec<SentimentItem>),
    Gsm8k(Vec<Gsm8kItem>),
    CodeSummary(Vec<SummaryItem>),
    HumanEval(Vec<Problem>),
    Embed(Vec<SentimentItem>),
    Story(Vec<StoryItem>),
}

impl TaskItems {
    pub fn len(&self) -> usize {
        match self {
            TaskItems::Sentiment(items) | TaskItems::Embed(items) => items.len(),
            TaskItems::Gsm8k(items) => items.len(),
            TaskItems::CodeSummary(items) => items.len(),
            TaskItems::HumanEval(items) => items.len(),
            TaskItems::Story(items) => items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The subset a run scores, and the files it came from.
#[derive(Debug, Clone)]
pub struct TaskData {
    pub items: TaskItems,
    pub files: Vec<FileRecord>,
    /// The items come from a user's file rather than the defaults.
    pub user_file: bool,
}

fn pick<T: Clone>(all: &[T], limit: usize, seed: u64) -> Vec<T> {
    seeded_subset(all.len(), limit, seed)
        .into_iter()
        .map(|i| all[i].clone())
        .collect()
}

/// Verifies and parses the files of `task`, then picks `limit` items by `seed`.
///
/// Default sentiment files are split as for training and only the held-out part is
/// scored; a user's sentiment file is scored whole. User files are JSONL: GSM8K's
/// `{question, answer}`, sentiment's `{text, label}`, HumanEval's layout for code
/// summarization and code generation.
pub fn prepare(task: &str, inputs: &[DataInput], limit: usize, seed: u64) -> Result<TaskData> {
    check_task(task)?;
    if inputs.is_empty() {
        return Err(Error::InvalidOption {
            option: "data",
            value: task.to_string(),
            expected: "at least one data file for this task".into(),
        });
    }
    let files = inputs
        .iter()
        .map(DataInput::verified_record)
        .collect::<Result<Vec<_>>>()?;
    let user_file = inputs.iter().all(|input| input.pinned_sha256.is_none());
    let items = match task {
        "gsm8k" => {
            let mut all = Vec::new();
            for input in inputs {
                all.extend(gsm8k::parse(&input.name, &input.text()?)?);
            }
            TaskItems::Gsm8k(pick(&all, limit, seed))
        }
        "story" => {
            let mut all = Vec::new();
            for input in inputs {
                all.extend(stories::parse(&input.name, &input.text()?)?);
            }
            TaskItems::Story(pick(&all, limit, seed))
        }
        "code-summary" | "humaneval" => {
            let summaries = task == "code-summary";
            let mut all = Vec::new();
            for input in inputs {
                all.extend(humaneval::parse(&input.name, &input.text()?, summaries)?);
            }
            let chosen = pick(&all, limit, seed);
            if summaries {
                TaskItems::CodeSummary(
                    chosen
                        .iter()
                        .map(code_summary::item)
                        .collect::<Result<_>>()?,
                )
            } else {
                TaskItems::HumanEval(chosen)
            }
        }
        _ => {
            let all = if user_file {
                let mut all = Vec::new();
                for input in inputs {
                    all.extend(uci_sentiment::parse_jsonl(&input.name, &input.text()?)?);
                }
                all
            } else {
                let mut all = Vec::new();
                for input in inputs {
                    let source = input
                        .name
                        .rsplit('/')
                        .next()
                        .unwrap_or("uci")
                        .trim_end_matches(".json");
                    all.extend(uci_sentiment::parse(&input.name, source, &input.text()?)?);
                }
                all
            };
            if task == "embed" {
                TaskItems::Embed(pick(&all, limit, seed))
            } else if user_file {
                TaskItems::Sentiment(pick(&all, limit, seed))
            } else {
                let held_out = crate::tasks::sentiment::split(&all).test;
                let scored: Vec<SentimentItem> = held_out.iter().map(|&i| all[i].clone()).collect();
                TaskItems::Sentiment(pick(&scored, limit, seed))
            }
        }
    };
    if items.is_empty() {
        return Err(Error::InvalidOption {
            option: "data",
            value: inputs[0].name.clone(),
            expected: format!("at least one item for the {task} task"),
        });
    }
    Ok(TaskData {
        items,
        files,
        user_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, text: &str) -> DataInput {
        DataInput {
            name: name.into(),
            bytes: text.as_bytes().to_vec(),
            pinned_sha256: None,
        }
    }

    #[test]
    fn unknown_task_lists_the_known_ones() {
        let message = prepare("nli2", &[], 1, 1).unwrap_err().to_string();
        assert!(message.contains("nli2"), "{message}");
        assert!(message.contains("code-summary"), "{message}");
    }

    #[test]
    fn user_file_is_hashed_and_scored_whole() {
        let text = "{\"text\": \"Fine.\", \"label\": 1}\n{\"text\": \"Awful.\", \"label\": 0}\n";
        let data = prepare("sentiment", &[user("mine.jsonl", text)], 10, 7).unwrap();
        assert!(data.user_file);
        assert_eq!(data.items.len(), 2);
        assert_eq!(data.files[0].sha256, integrity::sha256_hex(text.as_bytes()));
    }

    #[test]
    fn pinned_file_with_wrong_hash_is_refused() {
        let input = DataInput {
            pinned_sha256: Some("0".repeat(64)),
            ..user(
                "gsm8k/test.jsonl",
                "{\"question\": \"q\", \"answer\": \"#### 1\"}",
            )
        };
        let message = prepare("gsm8k", &[input], 1, 1).unwrap_err().to_string();
        assert!(message.contains("SHA-256"), "{message}");
        assert!(message.contains("gsm8k/test.jsonl"), "{message}");
    }

    #[test]
    fn empty_user_file_is_an_error() {
        let message = prepare("gsm8k", &[user("empty.jsonl", "\n")], 1, 1)
            .unwrap_err()
            .to_string();
        assert!(message.contains("empty.jsonl"), "{message}");
        assert!(message.contains("at least one item"), "{message}");
    }
}
