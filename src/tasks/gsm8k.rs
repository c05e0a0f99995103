//! Chain-of-thought arithmetic on GSM8K, scored by exact match of the final number.

/// Changes whenever the prompt or the parser changes, so reports stay comparable.
pub const PROMPT_VERSION: &str = "gsm8k-v1";

pub const METRIC: &str = "exact_match";

/// Builds the user message sent to every model, small or hosted.
pub fn prompt(question: &str) -> String {
    format!(
        "Solve this math word problem. Reason step by step, then write the final answer \
         as a number on the last line in the form \"Answer: <number>\".\n\nProblem: {question}"
    )
}

/// Extracts the final number from a model's output.
///
/// Rules, in order: the number after the last `####`, else after the last
/// `answer:`/`answer is`, else the last number anywhere. Thousands separators,
/// currency signs and a trailing period are ignored.
pub fn parse_final_number(output: &str) -> Option<String> {
    // ASCII lowering keeps byte offsets valid for slicing `output`.
    let lower = output.to_ascii_lowercase();
    let tail_start = ["####", "answer:", "answer is"]
        .iter()
        .filter_map(|marker| lower.rfind(marker).map(|at| at + marker.len()))
        .next();
    if let Some(start) = tail_start {
        if let Some(number) = numbers_in(&output[start..]).into_iter().next() {
            return Some(number);
        }
    }
    numbers_in(output).pop()
}

/// Numbers in `text`, normalised: `-1,234.50` becomes `-1234.5`.
fn numbers_in(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut numbers = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let negative =
            i > 0 && chars[i - 1] == '-' && (i < 2 || !chars[i - 2].is_ascii_alphanumeric());
        let mut digits = String::new();
        while i < chars.len() {
            let c = chars[i];
            let next_is_digit = chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
            if c.is_ascii_digit() {
                digits.push(c);
            } else if c == ',' && next_is_digit && !digits.contains('.') {
                // Thousands separator: skipped.
            } else if c == '.' && next_is_digit && !digits.contains('.') {
                digits.push('.');
            } else {
                break;
            }
            i += 1;
        }
        numbers.push(normalize(&digits, negative));
    }
    numbers
}

fn normalize(digits: &str, negative: bool) -> String {
    let mut text = digits.to_string();
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    let text = text.trim_start_matches('0');
    let text = if text.is_empty() || text.starts_with('.') {
        format!("0{text}")
    } else {
        text.to_string()
    };
    if negative && text != "0" {
        format!("-{text}")
    } else {
        text
    }
}

/// True when the parsed prediction equals the reference number.
pub fn exact_match(prediction: Option<&str>, reference: &str) -> bool {
    let reference = numbers_in(reference).pop();
    match (prediction, reference) {
        (Some(prediction), Some(reference)) => prediction == reference,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(output: &str) -> Option<String> {
        parse_final_number(output)
    }

    #[test]
    fn takes_last_number() {
        assert_eq!(parsed("3 + 4 = 7, then 7 * 2 = 14").as_deref(), Some("14"));
    }

    #[test]
    fn prefers_answer_marker() {
        assert_eq!(
            parsed("Answer: 18\nCheck: 9 * 2 = 18 and 5").as_deref(),
            Some("18")
        );
    }

    #[test]
    fn prefers_hash_marker() {
        assert_eq!(parsed("so 5 eggs #### 42 and 7").as_deref(), Some("42"));
    }

    #[test]
    fn ignores_thousands_separator() {
        assert_eq!(
            parsed("The total is 1,234 dollars").as_deref(),
            Some("1234")
        );
    }

    #[test]
    fn ignores_currency_sign() {
        assert_eq!(parsed("She makes $18 every day").as_deref(), Some("18"));
        assert_eq!(parsed("It costs €7").as_deref(), Some("7"));
    }

    #[test]
    fn ignores_trailing_period() {
        assert_eq!(parsed("The answer is 18.").as_deref(), Some("18"));
    }

    #[test]
    fn normalizes_decimal_zeros() {
        assert_eq!(parsed("Answer: $18.00").as_deref(), Some("18"));
        assert_eq!(parsed("Answer: 2.50").as_deref(), Some("2.5"));
    }

    #[test]
    fn keeps_negative_sign() {
        assert_eq!(parsed("Answer: -5").as_deref(), Some("-5"));
        assert_eq!(parsed("from 10-5 we get").as_deref(), Some("5"));
    }

    #[test]
    fn no_number_gives_none() {
        assert_eq!(parsed("I do not know"), None);
    }

    #[test]
    fn exact_match_compares_numbers() {
        assert!(exact_match(Some("1234"), "1,234"));
        assert!(!exact_match(Some("18"), "19"));
        assert!(!exact_match(None, "19"));
    }
}
