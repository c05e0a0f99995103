//! The native binary end to end: `seedling eval`, `embed` and `generate` on the default files.

use std::process::Command;

fn seedling() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_seedling"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

#[test]
fn eval_writes_report_with_scores_and_energy() {
    let out = tempfile::NamedTempFile::new().unwrap();
    let status = seedling()
        .args([
            "eval",
            "--tasks",
            "gsm8k,embed",
            "--limit",
            "1",
            "--max-new-tokens",
            "16",
            "--out",
        ])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path()).unwrap()).unwrap();
    assert_eq!(report["schema"], "seedling-report/1");
    assert_eq!(report["runtime"]["target"], "native");
    let task = &report["tasks"][0];
    assert_eq!(task["task"], "gsm8k");
    assert_eq!(task["items"].as_array().unwrap().len(), 1);
    let item = &task["items"][0];
    assert!(item["tokens_out"].as_u64().unwrap() <= 16);
    assert!(item["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(
        task["energy"]["attributional_wh"]["estimate"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let band = &task["energy"]["attributional_wh"];
    assert!(band["low"].as_f64().unwrap() < band["high"].as_f64().unwrap());
    assert_eq!(report["grid"]["code"], "WORLD");
    assert!(report["models"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["files"][0]["sha256"].as_str().unwrap().len() == 64));
    assert_eq!(report["embeddings"]["items"].as_array().unwrap().len(), 1);
    assert!(report["hosted_reference"].as_array().unwrap().len() >= 2);
}

#[test]
fn embed_prints_one_line_per_text() {
    let output = seedling()
        .args(["embed", "Bonjour à tous", "歯"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2);
    let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first["embedding"]["vector"].as_array().unwrap().len(), 384);
}

#[test]
fn generate_with_wrong_sha256_fails_clearly() {
    let gguf = "models/files/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
    let output = seedling()
        .args([
            "generate",
            "Hi",
            "--model",
            gguf,
            "--sha256",
            &"a".repeat(64),
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("SHA-256 mismatch"), "{stderr}");
    assert!(stderr.contains("b179c952"), "{stderr}");
}

#[test]
fn unknown_task_rejected() {
    let output = seedling()
        .args(["eval", "--tasks", "poetry"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("poetry"), "{stderr}");
}
