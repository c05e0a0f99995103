//! Corrupt files, wrong hashes, empty and oversized inputs: each gives a clear error, never a panic.

mod common;

use common::{gguf_bytes, llm, root};
use seedling::backend::cpu::CpuBackend;
use seedling::models::bert::{BertFiles, SentenceEncoder};
use seedling::models::llama::{CausalLm, GenerateOptions};
use seedling::Error;

#[test]
fn truncated_gguf_rejected() {
    let bytes = gguf_bytes();
    let cut = &bytes[..bytes.len() / 2];
    let error = CausalLm::load(CpuBackend::new(), cut, "half.gguf")
        .err()
        .expect("truncated file rejected");
    let message = error.to_string();
    assert!(matches!(error, Error::InvalidModelFile { .. }), "{message}");
    assert!(message.contains("half.gguf"), "{message}");
}

#[test]
fn gguf_with_bad_magic_rejected() {
    let mut bytes = gguf_bytes()[..4096].to_vec();
    bytes[..4].copy_from_slice(b"NOPE");
    let message = CausalLm::load(CpuBackend::new(), &bytes, "bad.gguf")
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("bad.gguf"), "{message}");
    assert!(message.contains("GGUF"), "{message}");
}

#[test]
fn header_only_gguf_rejected() {
    let bytes = gguf_bytes();
    let message = CausalLm::load(CpuBackend::new(), &bytes[..64], "header.gguf")
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("header.gguf"), "{message}");
}

fn minilm_file(name: &str) -> Vec<u8> {
    std::fs::read(root().join("models/files/all-MiniLM-L6-v2").join(name))
        .expect("run ./build.sh fetch")
}

#[test]
fn truncated_safetensors_rejected() {
    let weights = minilm_file("model.safetensors");
    let tokenizer = minilm_file("tokenizer.json");
    let config = minilm_file("config.json");
    let files = BertFiles {
        weights: &weights[..weights.len() - 1000],
        tokenizer_json: &tokenizer,
        config_json: &config,
        sentence_config_json: None,
    };
    let message = SentenceEncoder::load(CpuBackend::new(), files, "cut.safetensors")
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("cut.safetensors"), "{message}");
    assert!(message.contains("safetensors"), "{message}");
}

#[test]
fn corrupt_tokenizer_json_rejected() {
    let weights = minilm_file("model.safetensors");
    let config = minilm_file("config.json");
    let files = BertFiles {
        weights: &weights,
        tokenizer_json: b"{not json",
        config_json: &config,
        sentence_config_json: None,
    };
    let message = SentenceEncoder::load(CpuBackend::new(), files, "model.safetensors")
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("tokenizer.json"), "{message}");
}

#[test]
fn wrong_hash_names_file_and_hashes() {
    let path = root().join("models/files/all-MiniLM-L6-v2/config.json");
    let bytes = std::fs::read(&path).unwrap();
    let wrong = "0".repeat(64);
    let message = seedling::integrity::verify_sha256("config.json", &bytes, &wrong)
        .unwrap_err()
        .to_string();
    assert!(message.contains("config.json"), "{message}");
    assert!(message.contains(&wrong), "{message}");
    assert!(message.contains("953f9c0d"), "{message}");
}

#[test]
fn corrupted_default_file_detected() {
    // A copy of the repository's manifests with one default file corrupted.
    let temporary = tempfile::tempdir().unwrap();
    let copy = temporary.path();
    for folder in ["models", "data"] {
        std::fs::create_dir_all(copy.join(folder)).unwrap();
        std::fs::copy(
            root().join(folder).join("manifest.json"),
            copy.join(folder).join("manifest.json"),
        )
        .unwrap();
    }
    let target = copy.join("models/files/all-MiniLM-L6-v2");
    std::fs::create_dir_all(&target).unwrap();
    let mut config =
        std::fs::read(root().join("models/files/all-MiniLM-L6-v2/config.json")).unwrap();
    config[10] ^= 0xff;
    std::fs::write(target.join("config.json"), config).unwrap();

    let defaults = seedling::native::Defaults::open(copy).unwrap();
    let error = defaults
        .model_file("all-MiniLM-L6-v2/config.json")
        .err()
        .unwrap();
    assert!(matches!(error, Error::ChecksumMismatch { .. }), "{error}");
    let missing = defaults
        .model_file("all-MiniLM-L6-v2/model.safetensors")
        .err()
        .unwrap()
        .to_string();
    assert!(missing.contains("./build.sh fetch"), "{missing}");
}

#[test]
fn empty_prompt_rejected() {
    let llm = llm();
    assert!(matches!(llm.chat_prompt(None, "  "), Err(Error::EmptyText)));
    let options = GenerateOptions::default();
    assert!(matches!(
        pollster::block_on(llm.generate(&[], &options, |_| {})),
        Err(Error::EmptyText)
    ));
}

#[test]
fn prompt_over_context_rejected() {
    let llm = llm();
    let limit = llm.config().context_length;
    let ids = vec![100u32; limit - 10];
    let options = GenerateOptions {
        max_new_tokens: 64,
        ..GenerateOptions::default()
    };
    let error = pollster::block_on(llm.generate(&ids, &options, |_| {}))
        .err()
        .unwrap();
    let message = error.to_string();
    assert!(matches!(error, Error::PromptTooLong { .. }), "{message}");
    assert!(message.contains(&limit.to_string()), "{message}");
}

#[test]
fn empty_gguf_rejected() {
    let message = CausalLm::load(CpuBackend::new(), &[], "empty.gguf")
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("empty (0 bytes)"), "{message}");
}

#[test]
fn text_file_as_gguf_rejected() {
    let message = CausalLm::load(CpuBackend::new(), b"hello world", "notes.txt")
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("not a GGUF file"), "{message}");
    assert!(message.contains("\"hell\""), "{message}");
}
