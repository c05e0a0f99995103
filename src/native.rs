//! Native-only loading: files from a local path or a URL, and the default files
//! checked against the manifests.

use std::path::{Path, PathBuf};

use crate::backend::cpu::CpuBackend;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::integrity::verify_sha256;
use crate::manifest::{defaults, Manifest};
use crate::models::bert::{BertFiles, SentenceEncoder};
use crate::models::llama::CausalLm;
use crate::report::FileRecord;

/// CPU time (user + system) used by this process so far, in seconds, from `getrusage`.
pub fn cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only into the struct it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Reads a file from a local path or an `http://` / `https://` URL.
pub fn read_source(source: &str) -> Result<Vec<u8>> {
    if source.starts_with("http://") || source.starts_with("https://") {
        tracing::info!(url = source, "downloading");
        let response = ureq::get(source)
            .call()
            .map_err(|e| Error::io(source, std::io::Error::other(e.to_string())))?;
        let bytes = response
            .into_body()
            .with_config()
            .limit(8 * 1024 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| Error::io(source, std::io::Error::other(e.to_string())))?;
        return Ok(bytes);
    }
    std::fs::read(source).map_err(|e| Error::io(source, e))
}

/// Finds the repository root: the nearest ancestor of the current folder, or of the
/// executable, that contains `models/manifest.json`.
pub fn find_root() -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(current) = std::env::current_dir() {
        candidates.push(current);
    }
    if let Ok(executable) = std::env::current_exe() {
        candidates.push(executable);
    }
    for start in candidates {
        for folder in start.ancestors() {
            if folder.join("models/manifest.json").is_file() {
                return Ok(folder.to_path_buf());
            }
        }
    }
    Err(Error::io(
        "models/manifest.json",
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "run seedling from the repository, or pass --root",
        ),
    ))
}

/// Default model and data files, read and verified against the manifests.
pub struct Defaults {
    root: PathBuf,
    models: Manifest,
    data: Manifest,
}

impl Defaults {
    pub fn open(root: &Path) -> Result<Self> {
        let read_manifest = |relative: &str| -> Result<Manifest> {
            let path = root.join(relative);
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
            Manifest::parse(relative, &text)
        };
        Ok(Self {
            root: root.to_path_buf(),
            models: read_manifest("models/manifest.json")?,
            data: read_manifest("data/manifest.json")?,
        })
    }

    fn read_verified(
        &self,
        manifest: &Manifest,
        folder: &str,
        dest: &str,
    ) -> Result<(Vec<u8>, FileRecord)> {
        let entry = manifest.file(dest)?;
        let path = self.root.join(folder).join(dest);
        let bytes = std::fs::read(&path).map_err(|e| {
            Error::io(
                path.display(),
                std::io::Error::new(
                    e.kind(),
                    format!("{e}; run `./build.sh fetch` to download the default files"),
                ),
            )
        })?;
        verify_sha256(&path.display().to_string(), &bytes, &entry.sha256)?;
        let record = FileRecord {
            name: dest.to_string(),
            sha256: entry.sha256.clone(),
            bytes: bytes.len(),
        };
        Ok((bytes, record))
    }

    pub fn model_file(&self, dest: &str) -> Result<(Vec<u8>, FileRecord)> {
        self.read_verified(&self.models, "models/files", dest)
    }

    pub fn data_file(&self, dest: &str) -> Result<(Vec<u8>, FileRecord)> {
        self.read_verified(&self.data, "data/files", dest)
    }

    pub fn encoder(&self) -> Result<(SentenceEncoder<CpuBackend>, Vec<FileRecord>)> {
        self.encoder_on(CpuBackend::new())
    }

    /// Loads the default encoder with its weights on `backend`.
    pub fn encoder_on<B: Backend>(
        &self,
        backend: B,
    ) -> Result<(SentenceEncoder<B>, Vec<FileRecord>)> {
        let (weights, weights_record) = self.model_file(defaults::MINILM_WEIGHTS)?;
        let (tokenizer, tokenizer_record) = self.model_file(defaults::MINILM_TOKENIZER)?;
        let (config, config_record) = self.model_file(defaults::MINILM_CONFIG)?;
        let (sentence, sentence_record) = self.model_file(defaults::MINILM_SENTENCE_CONFIG)?;
        let files = BertFiles {
            weights: &weights,
            tokenizer_json: &tokenizer,
            config_json: &config,
            sentence_config_json: Some(&sentence),
        };
        let encoder = SentenceEncoder::load(backend, files, defaults::MINILM_WEIGHTS)?;
        Ok((
            encoder,
            vec![
                weights_record,
                tokenizer_record,
                config_record,
                sentence_record,
            ],
        ))
    }

    pub fn llm(&self) -> Result<(CausalLm<CpuBackend>, FileRecord)> {
        self.llm_on(CpuBackend::new())
    }

    /// Loads the default chat model with its weights on `backend`.
    pub fn llm_on<B: Backend>(&self, backend: B) -> Result<(CausalLm<B>, FileRecord)> {
        let (bytes, record) = self.model_file(defaults::SMOLLM2_GGUF)?;
        Ok((
            CausalLm::load(backend, &bytes, defaults::SMOLLM2_GGUF)?,
            record,
        ))
    }
}

/// Loads a sentence-transformers folder from a local folder or a base URL; files
/// other than the weights, tokenizer and config are optional.
pub fn load_encoder_from<B: Backend>(source: &str, backend: B) -> Result<SentenceEncoder<B>> {
    let join = |name: &str| format!("{}/{name}", source.trim_end_matches('/'));
    let weights = read_source(&join("model.safetensors"))?;
    let tokenizer = read_source(&join("tokenizer.json"))?;
    let config = read_source(&join("config.json"))?;
    let sentence = read_source(&join("sentence_bert_config.json")).ok();
    let files = BertFiles {
        weights: &weights,
        tokenizer_json: &tokenizer,
        config_json: &config,
        sentence_config_json: sentence.as_deref(),
    };
    SentenceEncoder::load(backend, files, &join("model.safetensors"))
}

/// Loads a GGUF file from a local path or URL, checking its SHA-256 when one is given.
pub fn load_llm_from<B: Backend>(
    source: &str,
    sha256: Option<&str>,
    backend: B,
) -> Result<CausalLm<B>> {
    let bytes = read_source(source)?;
    if let Some(expected) = sha256 {
        verify_sha256(source, &bytes, expected)?;
    }
    CausalLm::load(backend, &bytes, source)
}
