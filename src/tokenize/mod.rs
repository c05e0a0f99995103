//! Tokenizers that the `tokenizers` crate does not load directly from a file.

pub mod gguf;
