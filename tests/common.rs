//! Shared helpers for the integration tests: the default files and the reference fixtures.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use seedling::backend::cpu::CpuBackend;
use seedling::models::bert::SentenceEncoder;
use seedling::models::llama::CausalLm;
use seedling::native::Defaults;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn defaults() -> Defaults {
    Defaults::open(&root()).expect("manifests readable")
}

/// Loads the default encoder, failing with a hint when `./build.sh fetch` has not run.
pub fn encoder() -> SentenceEncoder<CpuBackend> {
    defaults()
        .encoder()
        .expect("default MiniLM files present and verified (run ./build.sh fetch)")
        .0
}

pub fn llm() -> CausalLm<CpuBackend> {
    defaults()
        .llm()
        .expect("default SmolLM2 GGUF present and verified (run ./build.sh fetch)")
        .0
}

pub fn gguf_bytes() -> Vec<u8> {
    defaults()
        .model_file(seedling::manifest::defaults::SMOLLM2_GGUF)
        .expect("GGUF present")
        .0
}

pub fn fixture(name: &str) -> serde_json::Value {
    let path = root().join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

pub fn u32s(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_u64().expect("integer") as u32)
        .collect()
}

pub fn f32s(value: &serde_json::Value) -> Vec<f32> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_f64().expect("number") as f32)
        .collect()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Returns the `seedling` binary, run from the repository root. LANG and
/// SEEDLING_API_KEY are removed so that no test guesses its grid from the machine's
/// locale or sends a key it did not set.
pub fn seedling() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_seedling"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("LANG")
        .env_remove("SEEDLING_API_KEY");
    command
}

/// Runs `seedling eval` with `args` and a temporary report path, and returns the
/// output and the report, if one was written.
pub fn eval_report(args: &[&str]) -> (std::process::Output, Option<serde_json::Value>) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let output = seedling()
        .arg("eval")
        .args(args)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let report = std::fs::read(out.path())
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    (output, report)
}
