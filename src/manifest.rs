//! The model and data manifests (`models/manifest.json`, `data/manifest.json`): which
//! registry package each default file comes from, its path, size, SHA-256 and licence.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestFile {
    /// The model this file belongs to (model manifest).
    #[serde(default)]
    pub model: Option<String>,
    /// The data set this file belongs to (data manifest).
    #[serde(default)]
    pub dataset: Option<String>,
    /// Path under the manifest's `files/` folder.
    pub dest: String,
    pub package: String,
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    pub licence: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub files: Vec<ManifestFile>,
}

impl Manifest {
    pub fn parse(file: &str, text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::InvalidConfig {
            file: file.to_string(),
            reason: e.to_string(),
        })
    }

    /// Finds the entry whose `dest` is `dest`.
    pub fn file(&self, dest: &str) -> Result<&ManifestFile> {
        self.files
            .iter()
            .find(|entry| entry.dest == dest)
            .ok_or_else(|| Error::InvalidConfig {
                file: "manifest.json".into(),
                reason: format!("no entry with dest {dest:?}"),
            })
    }
}

/// Paths, relative to `models/files/` and `data/files/`, of the default files.
pub mod defaults {
    pub const MINILM_WEIGHTS: &str = "all-MiniLM-L6-v2/model.safetensors";
    pub const MINILM_TOKENIZER: &str = "all-MiniLM-L6-v2/tokenizer.json";
    pub const MINILM_CONFIG: &str = "all-MiniLM-L6-v2/config.json";
    pub const MINILM_SENTENCE_CONFIG: &str = "all-MiniLM-L6-v2/sentence_bert_config.json";
    pub const SMOLLM2_GGUF: &str = "SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
    pub const GSM8K: &str = "gsm8k/test.jsonl";
    pub const HUMANEVAL: &str = "humaneval/HumanEval.jsonl.gz";
    pub const UCI_SOURCES: [(&str, &str); 3] = [
        ("yelp", "uci-sentiment/yelp.json"),
        ("amazon", "uci-sentiment/amazon.json"),
        ("imdb", "uci-sentiment/imdb.json"),
    ];
}
