//! Short-story writing: the chat model writes a story from a background paragraph,
//! scored against the reference story by BERTScore-style F1 over MiniLM's last-layer
//! token states (main), sentence-embedding cosine, and the model's perplexity on the
//! reference.

pub const PROMPT_VERSION: &str = "story-v1";
pub const METRIC: &str = "bertscore_f1";

/// Builds the user message for a chat model, small or hosted.
pub fn prompt(background: &str) -> String {
    format!(
        "Write a short story of three to five sentences that takes place in the situation \
         described below. Reply with the story only.\n\n{}",
        background.trim()
    )
}

/// Reads the story from a model's output: the text without a leading "Story:" label or
/// title line in bold, whitespace collapsed.
pub fn parse_story(output: &str) -> String {
    let mut lines: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.len() > 1 && lines[0].starts_with("**") && lines[0].ends_with("**") {
        lines.remove(0);
    }
    let text = lines.join(" ");
    let text = text
        .strip_prefix("Story:")
        .or_else(|| text.strip_prefix("story:"))
        .unwrap_or(&text);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_story_drops_label_and_title() {
        assert_eq!(
            parse_story("Story: Ann  walked.\nShe smiled."),
            "Ann walked. She smiled."
        );
        assert_eq!(parse_story("**The Rain**\n\nIt rained."), "It rained.");
        assert_eq!(parse_story("  "), "");
    }
}
