//! Shared helpers for the integration tests: the default files and the reference fixtures.

#![allow(dead_code)]

use std::path::PathBuf;

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
