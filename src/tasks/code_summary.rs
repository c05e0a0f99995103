//! Code summarization on HumanEval: the model reads a function without its docstring
//! (the prompt's code plus the canonical body) and writes one sentence, scored against
//! the first sentence of the removed docstring by ROUGE-L F1 (main) and corpus BLEU.

use crate::data::humaneval::Problem;
use crate::error::{Error, Result};

pub const PROMPT_VERSION: &str = "code-summary-v1";
pub const METRIC: &str = "rouge_l_f1";

/// One summarization item: the code shown to the model and the reference sentence.
#[derive(Debug, Clone)]
pub struct SummaryItem {
    pub id: String,
    pub code: String,
    pub reference: String,
}

/// Builds the item of `problem`: its prompt without the entry point's docstring,
/// followed by the canonical body, and the docstring's first sentence.
pub fn item(problem: &Problem) -> Result<SummaryItem> {
    let invalid = |reason: &str| Error::InvalidData {
        file: problem.task_id.clone(),
        line: 1,
        reason: format!(
            "{reason}; code summarization needs a docstring in `{}`",
            problem.entry_point
        ),
    };
    let (code, docstring) = remove_docstring(&problem.prompt, &problem.entry_point)
        .ok_or_else(|| invalid("no docstring after the entry point's signature"))?;
    let reference = first_sentence(&docstring);
    if reference.is_empty() {
        return Err(invalid("the docstring has no opening sentence"));
    }
    Ok(SummaryItem {
        id: problem.task_id.clone(),
        code: format!("{code}{}", problem.canonical_solution),
        reference,
    })
}

/// Splits the docstring of `entry_point` out of `prompt`: returns the prompt without the
/// docstring's lines, and the docstring's text without its quotes.
pub fn remove_docstring(prompt: &str, entry_point: &str) -> Option<(String, String)> {
    let def_at = prompt.find(&format!("def {entry_point}("))?;
    let after_def = &prompt[def_at..];
    // The docstring is the first string literal after the signature's colon.
    let (quote_at, quote) = ["\"\"\"", "'''"]
        .iter()
        .filter_map(|q| after_def.find(q).map(|at| (at, *q)))
        .min_by_key(|(at, _)| *at)?;
    let open = def_at + quote_at;
    let body_start = open + quote.len();
    let close = body_start + prompt[body_start..].find(quote)?;
    let line_start = prompt[..open].rfind('\n').map_or(0, |at| at + 1);
    let line_end = prompt[close..]
        .find('\n')
        .map_or(prompt.len(), |at| close + at + 1);
    let code = format!("{}{}", &prompt[..line_start], &prompt[line_end..]);
    Some((code, prompt[body_start..close].to_string()))
}

/// Returns the opening sentence of a docstring. The text stops before the first blank
/// line, doctest or example section, and is cut after the first `.`, `!` or `?` that
/// ends a word other than `e.g.`, `i.e.` or `etc.`. Whitespace is collapsed.
pub fn first_sentence(docstring: &str) -> String {
    let mut words = Vec::new();
    for line in docstring.trim().lines() {
        let trimmed = line.trim();
        let lower = trimmed.to_lowercase();
        if trimmed.is_empty()
            || trimmed.starts_with(">>>")
            || lower.starts_with("example")
            || lower.starts_with("for example")
        {
            break;
        }
        words.extend(trimmed.split_whitespace().map(str::to_string));
    }
    let mut sentence = Vec::new();
    for word in words {
        let ends = word
            .trim_end_matches(['"', '\'', ')', '*', '`'])
            .ends_with(['.', '!', '?'])
            && !["e.g.", "i.e.", "etc."].contains(&word.to_lowercase().as_str());
        sentence.push(word);
        if ends {
            break;
        }
    }
    sentence.join(" ")
}

/// Builds the user message for a chat model, small or hosted.
pub fn prompt(code: &str) -> String {
    format!(
        "Summarize what this Python function does in one sentence, in the style of the first \
         line of a docstring. Reply with the sentence only.\n\n```python\n{}\n```",
        code.trim_end()
    )
}

/// Reads a summary from a model's output: the first non-empty line outside code
/// fences, without a leading label ("Summary:", "Answer:"), quotes or emphasis, cut
/// after its first sentence.
pub fn parse_summary(output: &str) -> String {
    let mut in_fence = false;
    for line in output.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || trimmed.is_empty() {
            continue;
        }
        let mut text = trimmed;
        for label in ["summary:", "answer:", "docstring:", "sentence:"] {
            if text.to_lowercase().starts_with(label) {
                text = text[label.len()..].trim_start();
            }
        }
        let text =
            text.trim_matches(|c: char| matches!(c, '"' | '\'' | '`' | '*' | '#' | '-' | ' '));
        if text.is_empty() {
            continue;
        }
        let sentence = first_sentence(text);
        return sentence
            .trim_matches(|c: char| matches!(c, '"' | '\'' | '`' | '*'))
            .to_string();
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(prompt: &str, solution: &str) -> Problem {
        Problem {
            task_id: "t/0".into(),
            prompt: prompt.into(),
            entry_point: "f".into(),
            canonical_solution: solution.into(),
            test: "def check(c): pass".into(),
        }
    }

    #[test]
    fn docstring_is_removed_and_body_appended() {
        let prompt = "import math\n\ndef f(x):\n    \"\"\" Doubles x. Then adds nothing.\n    >>> f(2)\n    4\n    \"\"\"\n";
        let item = item(&problem(prompt, "    return 2 * x\n")).unwrap();
        assert_eq!(item.code, "import math\n\ndef f(x):\n    return 2 * x\n");
        assert_eq!(item.reference, "Doubles x.");
    }

    #[test]
    fn only_the_entry_points_docstring_is_removed() {
        let prompt = "def helper(s):\n    \"\"\" Helper doc. \"\"\"\n    return s\n\n\ndef f(s):\n    '''Reverses s\n    using the helper.\n\n    More.\n    '''\n";
        let (code, docstring) = remove_docstring(prompt, "f").unwrap();
        assert!(code.contains("Helper doc."), "{code}");
        assert!(!code.contains("Reverses"), "{code}");
        assert_eq!(first_sentence(&docstring), "Reverses s using the helper.");
    }

    #[test]
    fn first_sentence_stops_at_examples_and_keeps_abbreviations() {
        assert_eq!(
            first_sentence("Return the sum, e.g. of 1.5 and 2.\nExample: f(1)"),
            "Return the sum, e.g. of 1.5 and 2."
        );
        assert_eq!(
            first_sentence("Count vowels\nFor example:\n>>> f('a')"),
            "Count vowels"
        );
        assert_eq!(first_sentence("Is it odd? Maybe."), "Is it odd?");
    }

    #[test]
    fn missing_docstring_is_an_error_naming_the_problem() {
        let message = item(&problem("def f(x):\n    pass\n", ""))
            .unwrap_err()
            .to_string();
        assert!(message.contains("t/0"), "{message}");
        assert!(message.contains("docstring"), "{message}");
    }

    #[test]
    fn parse_summary_skips_fences_labels_and_quotes() {
        assert_eq!(
            parse_summary("Summary: \"Returns the sum.\" More text."),
            "Returns the sum."
        );
        assert_eq!(
            parse_summary("```python\ndef f(): pass\n```\n\n**Doubles a number.**"),
            "Doubles a number."
        );
        assert_eq!(
            parse_summary("  \n- Checks if x is even\nsecond line"),
            "Checks if x is even"
        );
        assert_eq!(parse_summary(""), "");
    }
}
