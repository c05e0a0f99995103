//! The crate's error type: each variant names the file or value that failed and how to fix it.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file's SHA-256 differs from the one the manifest or the caller pinned.
    #[error("SHA-256 mismatch for {file}: expected {expected}, got {actual}. The file is corrupt or not the pinned version; delete it and fetch it again")]
    ChecksumMismatch {
        file: String,
        expected: String,
        actual: String,
    },

    /// A model file could not be parsed.
    #[error("invalid model file {file}: {reason}. Check that it is a complete, uncorrupted {format} file; re-download it if it was truncated")]
    InvalidModelFile {
        file: String,
        format: &'static str,
        reason: String,
    },

    /// A required weight is absent from a model file.
    #[error("tensor {name} not found in {file}; the file is not a {architecture} checkpoint this loader understands")]
    MissingTensor {
        file: String,
        name: String,
        architecture: &'static str,
    },

    /// A configuration file or GGUF metadata key is absent or has the wrong type.
    #[error("invalid configuration in {file}: {reason}")]
    InvalidConfig { file: String, reason: String },

    /// Input text that the model cannot take.
    #[error("empty input text: give at least one non-whitespace character")]
    EmptyText,

    /// A prompt longer than the context window.
    #[error("the {tokens}-token prompt plus {reserved} new tokens exceed the model's {limit}-token context window; use at most {} new tokens or a shorter prompt", limit.saturating_sub(*tokens))]
    PromptTooLong {
        tokens: usize,
        limit: usize,
        reserved: usize,
    },

    /// A requested option outside its allowed range.
    #[error("invalid value {value} for {option}: {expected}")]
    InvalidOption {
        option: &'static str,
        value: String,
        expected: String,
    },

    /// A data set file or item that does not match its schema.
    #[error("invalid data in {file} at line {line}: {reason}")]
    InvalidData {
        file: String,
        line: usize,
        reason: String,
    },

    /// A data file that cannot be read as a whole (bad compression or encoding).
    #[error("invalid data file {file}: {reason}")]
    InvalidDataFile { file: String, reason: String },

    /// Code execution that the caller has not allowed, or that failed to start.
    #[error("{0}")]
    Execution(String),

    #[error("tokenizer error: {0}")]
    Tokenizer(String),

    #[error("chat template error: {0}")]
    ChatTemplate(String),

    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),

    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),

    #[error("I/O error on {path}: {error}")]
    Io { path: String, error: std::io::Error },

    /// No GPU could be used; the CPU path can run instead.
    #[error("no usable GPU: {reason}. Use the CPU back end (--backend cpu, or CPU in the page)")]
    GpuUnavailable { reason: String },

    /// The GPU device went away during the work (driver reset, device destroyed, tab in the background too long).
    #[error("the GPU device was lost ({reason}); the remaining work can run on the CPU back end")]
    GpuDeviceLost { reason: String },

    /// A buffer the model needs exceeds what the GPU allows.
    #[error("{what} needs {needed} bytes in one GPU buffer, but {adapter} allows {available}; use the CPU back end or a smaller model")]
    GpuLimit {
        what: String,
        needed: u64,
        available: u64,
        adapter: String,
    },

    /// The GPU reported an error that is not a lost device.
    #[error("GPU error: {message}")]
    Gpu { message: String },

    /// The run was cancelled by the caller; results finished before it are kept.
    #[error("cancelled")]
    Cancelled,
}

pub type Result<T> = std::result::Result<T, Error>;

/// Returns the first line of an error's message, because candle appends a backtrace on the following
/// lines when `RUST_BACKTRACE` is set, which would bury the reason.
pub fn first_line(error: impl fmt::Display) -> String {
    error
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

impl Error {
    pub fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            error: source,
        }
    }

    pub fn tokenizer(error: impl fmt::Display) -> Self {
        Error::Tokenizer(error.to_string())
    }
}
