//! The native binary end to end: `seedling eval`, `embed` and `generate` on the default files.

mod common;

use common::{eval_report, seedling};

#[test]
fn eval_writes_report_with_scores_and_energy() {
    let out = tempfile::NamedTempFile::new().unwrap();
    let status = seedling()
        .args([
            "eval",
            "--tasks",
            "gsm8k,sentiment,embed",
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
    let sentiment = &report["tasks"][1];
    assert_eq!(sentiment["task"], "sentiment");
    assert_eq!(sentiment["metric"], "accuracy");
    assert_eq!(sentiment["items"].as_array().unwrap().len(), 1);
    assert!(sentiment["extra_metrics"]["macro_f1"].is_number());
    assert!(sentiment["interval"][0].as_f64().unwrap() <= sentiment["score"].as_f64().unwrap());
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

/// Serves the files of `folder` over HTTP on 127.0.0.1 for `requests` requests, then stops.
fn serve_folder(
    folder: std::path::PathBuf,
    requests: usize,
) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader, Write};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut request_line = String::new();
            BufReader::new(&stream)
                .read_line(&mut request_line)
                .unwrap();
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_string();
            match std::fs::read(folder.join(&path)) {
                Ok(body) => {
                    let header = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream
                        .write_all(header.as_bytes())
                        .and_then(|_| stream.write_all(&body));
                }
                Err(_) => {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
            }
        }
    });
    (base, handle)
}

#[test]
fn embed_loads_model_from_url() {
    let folder =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/files/all-MiniLM-L6-v2");
    // model.safetensors, tokenizer.json, config.json and sentence_bert_config.json.
    let (base, server) = serve_folder(folder, 4);
    let output = seedling()
        .args(["embed", "--model", &base, "A sentence from a URL."])
        .output()
        .unwrap();
    server.join().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let local = seedling()
        .args(["embed", "A sentence from a URL."])
        .output()
        .unwrap();
    let remote: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let local: serde_json::Value = serde_json::from_slice(&local.stdout).unwrap();
    assert_eq!(remote["embedding"]["vector"], local["embedding"]["vector"]);
}

#[test]
fn generate_reports_missing_url_clearly() {
    let (base, server) = serve_folder(std::env::temp_dir().join("seedling-empty-folder"), 1);
    let url = format!("{base}/missing.gguf");
    let output = seedling()
        .args(["generate", "Hi", "--model", &url])
        .output()
        .unwrap();
    server.join().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("missing.gguf"), "{stderr}");
    assert!(stderr.contains("404"), "{stderr}");
}

#[test]
fn code_tasks_run_and_execute_the_generated_code() {
    let (output, report) = eval_report(&[
        "--tasks",
        "code-summary,humaneval",
        "--limit",
        "1",
        "--max-new-tokens",
        "16",
        "--execute-untrusted-code",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: --execute-untrusted-code"),
        "{stderr}"
    );
    let report = report.expect("report written");
    let summary = &report["tasks"][0];
    assert_eq!(summary["task"], "code-summary");
    assert_eq!(summary["metric"], "rouge_l_f1");
    assert!(summary["extra_metrics"]["bleu"].is_number());
    let humaneval = &report["tasks"][1];
    assert_eq!(humaneval["metric"], "pass@1");
    let detail = humaneval["items"][0]["detail"].as_str().unwrap();
    assert!(
        detail == "passed" || detail == "timed out" || detail.starts_with("failed: "),
        "{detail}"
    );
    assert_eq!(humaneval["prompt_version"], "humaneval-v1");
}

#[test]
fn humaneval_without_the_flag_stops_before_running() {
    let (output, report) = eval_report(&[
        "--tasks",
        "humaneval",
        "--limit",
        "1",
        "--max-new-tokens",
        "4",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("--execute-untrusted-code"), "{stderr}");
    assert!(report.is_none(), "no report for a refused run");
}

#[test]
fn user_data_file_is_scored_and_recorded() {
    // A fixture made here: two GSM8K-style questions, one with a plain-number answer.
    let data = tempfile::Builder::new()
        .suffix(".jsonl")
        .tempfile()
        .unwrap();
    std::fs::write(
        data.path(),
        "{\"question\": \"What is 2 + 3?\", \"answer\": \"#### 5\"}\n{\"question\": \"What is 10 - 4?\", \"answer\": \"6\"}\n",
    )
    .unwrap();
    let spec = format!("gsm8k={}", data.path().display());
    let (output, report) = eval_report(&[
        "--tasks",
        "gsm8k",
        "--limit",
        "5",
        "--max-new-tokens",
        "8",
        "--data",
        &spec,
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = report.unwrap();
    assert_eq!(report["tasks"][0]["user_data"], true);
    assert_eq!(report["tasks"][0]["items"].as_array().unwrap().len(), 2);
    let recorded = &report["datasets"][0];
    assert_eq!(recorded["name"], data.path().display().to_string());
    assert_eq!(recorded["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn bad_user_data_names_the_line_and_field() {
    let data = tempfile::Builder::new()
        .suffix(".jsonl")
        .tempfile()
        .unwrap();
    std::fs::write(
        data.path(),
        "{\"question\": \"q\", \"answer\": \"1\"}\n{\"answer\": \"2\"}\n",
    )
    .unwrap();
    let spec = format!("gsm8k={}", data.path().display());
    let (output, _) = eval_report(&[
        "--tasks",
        "gsm8k",
        "--limit",
        "1",
        "--max-new-tokens",
        "4",
        "--data",
        &spec,
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(stderr.contains("\"question\""), "{stderr}");

    let (output, _) = eval_report(&["--tasks", "gsm8k", "--data", "gsm8k"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TASK=PATH"), "{stderr}");
    let (output, _) = eval_report(&["--tasks", "gsm8k", "--data", "sentiment=x.jsonl"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not in --tasks"), "{stderr}");
}

#[test]
fn grid_is_picked_guessed_or_world() {
    let run = |lang: Option<&str>, grid: Option<&str>| {
        let out = tempfile::NamedTempFile::new().unwrap();
        let mut command = seedling();
        command
            .args(["eval", "--tasks", "embed", "--limit", "1", "--out"])
            .arg(out.path());
        if let Some(lang) = lang {
            command.env("LANG", lang);
        }
        if let Some(grid) = grid {
            command.args(["--grid", grid]);
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(out.path()).unwrap()).unwrap()
    };
    let picked = run(Some("fr_FR.UTF-8"), Some("DEU"));
    assert_eq!(picked["grid"]["code"], "DEU");
    assert_eq!(picked["grid_choice"]["guessed"], false);
    let guessed = run(Some("fr_FR.UTF-8"), None);
    assert_eq!(guessed["grid"]["code"], "FRA");
    assert_eq!(guessed["grid_choice"]["guessed"], true);
    let measurement = &picked["measurement"];
    assert_eq!(measurement["method"], "rapl");
    if measurement["available"] == true {
        assert_eq!(measurement["tasks"][0]["task"], "embed");
    } else {
        let reason = measurement["reason"].as_str().unwrap();
        assert!(
            reason.contains("powercap") || reason.contains("RAPL"),
            "{reason}"
        );
    }
    let fallback = run(None, None);
    assert!(
        fallback["one_off"]["wh_per_query"]["estimate"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(fallback["grid"]["code"], "WORLD");
    assert_eq!(fallback["grid_choice"]["chosen_by"], "fallback");
}

#[test]
fn emissions_csv_has_codecarbon_columns() {
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("report.json");
    let status = seedling()
        .args([
            "eval",
            "--tasks",
            "sentiment,embed",
            "--limit",
            "1",
            "--grid",
            "FRA",
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(folder.path().join("emissions.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        seedling::report::CODECARBON_COLUMNS.to_vec()
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][3], "sentiment");
    assert_eq!(&rows[0][15], "FRA");
    let energy_kwh: f64 = rows[0][13].parse().unwrap();
    let emissions_kg: f64 = rows[0][5].parse().unwrap();
    // France's grid in the table: 44.18 g/kWh.
    assert!((emissions_kg / energy_kwh - 0.04418).abs() < 1e-9);
}
