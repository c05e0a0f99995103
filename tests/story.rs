//! The story task's metrics against their reference implementations: BERTScore-style
//! F1 against bert_score with all-MiniLM-L6-v2, and perplexity against llama.cpp.

mod common;

use common::{fixture, u32s};

#[test]
fn bertscore_matches_bert_score() {
    let encoder = common::encoder();
    let reference = fixture("story_reference.json");
    for case in reference["bertscore"]["cases"].as_array().unwrap() {
        let candidate =
            pollster::block_on(encoder.token_states(case["candidate"].as_str().unwrap())).unwrap();
        let target =
            pollster::block_on(encoder.token_states(case["reference"].as_str().unwrap())).unwrap();
        let score = seedling::tasks::metrics::bertscore::greedy_match(&candidate, &target);
        for (ours, name) in [
            (score.precision, "precision"),
            (score.recall, "recall"),
            (score.f1, "f1"),
        ] {
            let expected = case[name].as_f64().unwrap();
            assert!(
                (ours - expected).abs() < 1e-4,
                "{name} for {:?}: ours {ours}, bert_score {expected}",
                case["candidate"]
            );
        }
    }
}

#[test]
fn perplexity_matches_llama_cpp() {
    let llm = common::llm();
    let reference = fixture("story_reference.json");
    for case in reference["perplexity"]["cases"].as_array().unwrap() {
        let prompt = u32s(&case["prompt_ids"]);
        let continuation = u32s(&case["continuation_ids"]);
        assert_eq!(
            llm.tokenizer()
                .encode_text(case["continuation"].as_str().unwrap())
                .unwrap(),
            continuation
        );
        let ours = pollster::block_on(llm.perplexity(&prompt, &continuation)).unwrap();
        let expected = case["perplexity"].as_f64().unwrap();
        // Per-token log-likelihoods differ by up to about 0.35 nats from llama.cpp's (whose
        // own perplexity moves 1.7% between batch sizes 1 and 512 on the first case): allow
        // 0.12 in mean log-likelihood, about 12% in perplexity.
        assert!(
            (ours.ln() - expected.ln()).abs() < 0.12,
            "{:?}: ours {ours}, llama.cpp {expected}",
            case["continuation"]
        );
    }
}

#[test]
fn story_task_needs_user_file() {
    use std::process::Command;
    // A fixture made here: one background and its reference story.
    let data = tempfile::Builder::new()
        .suffix(".jsonl")
        .tempfile()
        .unwrap();
    std::fs::write(
        data.path(),
        "{\"background\": \"Two farms share a river. The upstream farm builds a dam.\", \"story\": \"The downstream farm ran dry that summer, and its corn failed.\"}\n",
    )
    .unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_seedling"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "eval",
            "--tasks",
            "story",
            "--limit",
            "1",
            "--max-new-tokens",
            "16",
            "--data",
        ])
        .arg(format!("story={}", data.path().display()))
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path()).unwrap()).unwrap();
    let task = &report["tasks"][0];
    assert_eq!(task["metric"], "bertscore_f1");
    let item = &task["items"][0];
    let f1 = item["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&f1), "{f1}");
    assert!(item["metrics"]["reference_perplexity"].as_f64().unwrap() > 1.0);
    assert!(task["extra_metrics"]["sentence_cosine"].is_number());

    let output = Command::new(env!("CARGO_BIN_EXE_seedling"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["eval", "--tasks", "story", "--limit", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("--data") || stderr.contains("your own data"),
        "{stderr}"
    );
}
