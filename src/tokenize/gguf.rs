//! Byte-level BPE tokenizer rebuilt from a GGUF file's `tokenizer.ggml.*` metadata.
//!
//! Matches llama.cpp's tokenizer for the pre-tokenizer types listed in
//! [`pre_tokenizer_for`]. The vocabulary, merges and control tokens come from the
//! file, and the splitting regexes are the ones llama.cpp (`llama-vocab.cpp`) uses
//! for each `tokenizer.ggml.pre` value.

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use crate::error::{Error, Result};

/// GGUF token types (llama.cpp `llama_token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Regex of the Llama 3 tokenizer (`llama-bpe`), also used with `\p{N}` instead of
/// `\p{N}{1,3}` by Qwen2.
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The special token ids a generator needs.
#[derive(Debug, Clone)]
pub struct SpecialTokens {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
    /// Tokens that end generation: EOS plus the chat end-of-turn tokens present in the vocabulary.
    pub stop: Vec<u32>,
    pub bos_text: String,
    pub eos_text: String,
}

pub struct GgufTokenizer {
    pub tokenizer: Tokenizer,
    pub special: SpecialTokens,
    pub pre: String,
}

fn metadata<'a>(content: &'a Content, file: &str, key: &str) -> Result<&'a Value> {
    content
        .metadata
        .get(key)
        .ok_or_else(|| Error::InvalidConfig {
            file: file.to_string(),
            reason: format!("GGUF metadata key {key} is missing"),
        })
}

fn invalid(file: &str, key: &str, error: impl std::fmt::Display) -> Error {
    Error::InvalidConfig {
        file: file.to_string(),
        reason: format!("GGUF metadata key {key}: {error}"),
    }
}

fn optional_u32(content: &Content, key: &str) -> Option<u32> {
    content
        .metadata
        .get(key)
        .and_then(|value| value.to_u32().ok())
}

fn pre_tokenizer_for(pre: &str) -> Result<PreTokenizerWrapper> {
    let byte_level = |use_regex| ByteLevel::new(false, true, use_regex);
    let split = |pattern: &str| -> Result<PreTokenizerWrapper> {
        let split = Split::new(
            SplitPattern::Regex(pattern.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(Error::tokenizer)?;
        Ok(split.into())
    };
    Ok(match pre {
        // llama.cpp splits digits one by one (`\p{N}`) before the GPT-2 regex.
        "smollm" | "starcoder" | "refact" | "codeshell" | "command-r" => {
            Sequence::new(vec![Digits::new(true).into(), byte_level(true).into()]).into()
        }
        "gpt2" | "default" | "gpt-2" => byte_level(true).into(),
        "llama-bpe" | "llama3" => Sequence::new(vec![split(LLAMA3_PATTERN)?, byte_level(false).into()]).into(),
        "qwen2" => Sequence::new(vec![split(QWEN2_PATTERN)?, byte_level(false).into()]).into(),
        other => {
            return Err(Error::Tokenizer(format!(
                "GGUF pre-tokenizer {other:?} is not supported; supported: smollm, starcoder, refact, gpt2, llama-bpe, qwen2"
            )))
        }
    })
}

impl GgufTokenizer {
    /// Rebuilds the tokenizer stored in `content`; `file` names the GGUF file in errors.
    pub fn from_gguf(content: &Content, file: &str) -> Result<Self> {
        let model = metadata(content, file, "tokenizer.ggml.model")?
            .to_string()
            .map_err(|e| invalid(file, "tokenizer.ggml.model", e))?;
        if model != "gpt2" {
            // NOTE: SentencePiece GGUF vocabularies (`llama`, used by Gemma and Llama 2) are not rebuilt yet.
            return Err(Error::Tokenizer(format!(
                "{file}: tokenizer.ggml.model is {model:?}; only byte-level BPE (\"gpt2\") vocabularies are supported"
            )));
        }
        let pre = match content.metadata.get("tokenizer.ggml.pre") {
            Some(value) => value
                .to_string()
                .map_err(|e| invalid(file, "tokenizer.ggml.pre", e))?
                .clone(),
            None => "default".to_string(),
        };

        let tokens = metadata(content, file, "tokenizer.ggml.tokens")?
            .to_vec()
            .map_err(|e| invalid(file, "tokenizer.ggml.tokens", e))?;
        let tokens: Vec<String> = tokens
            .iter()
            .map(|token| token.to_string().cloned())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| invalid(file, "tokenizer.ggml.tokens", e))?;
        let merges = metadata(content, file, "tokenizer.ggml.merges")?
            .to_vec()
            .map_err(|e| invalid(file, "tokenizer.ggml.merges", e))?;
        let mut merge_pairs = Vec::with_capacity(merges.len());
        for merge in merges {
            let merge = merge
                .to_string()
                .map_err(|e| invalid(file, "tokenizer.ggml.merges", e))?;
            let (left, right) = merge.split_once(' ').ok_or_else(|| {
                invalid(
                    file,
                    "tokenizer.ggml.merges",
                    format!("merge {merge:?} has no space"),
                )
            })?;
            merge_pairs.push((left.to_string(), right.to_string()));
        }
        let token_types: Vec<i32> = match content.metadata.get("tokenizer.ggml.token_type") {
            Some(value) => value
                .to_vec()
                .map_err(|e| invalid(file, "tokenizer.ggml.token_type", e))?
                .iter()
                .map(|t| t.to_i32())
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| invalid(file, "tokenizer.ggml.token_type", e))?,
            None => vec![1; tokens.len()],
        };

        let vocab: ahash::AHashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(id, token)| (token.clone(), id as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merge_pairs)
            .build()
            .map_err(Error::tokenizer)?;
        let mut tokenizer = Tokenizer::new(bpe);
        tokenizer.with_pre_tokenizer(Some(pre_tokenizer_for(&pre)?));
        tokenizer.with_decoder(Some(ByteLevelDecoder::default()));

        let mut special = Vec::new();
        let mut user_defined = Vec::new();
        for (id, token) in tokens.iter().enumerate() {
            match token_types.get(id) {
                Some(&TOKEN_TYPE_CONTROL) => special.push(AddedToken::from(token.clone(), true)),
                Some(&TOKEN_TYPE_USER_DEFINED) => {
                    user_defined.push(AddedToken::from(token.clone(), false))
                }
                _ => {}
            }
        }
        tokenizer
            .add_special_tokens(special)
            .map_err(Error::tokenizer)?;
        tokenizer
            .add_tokens(user_defined)
            .map_err(Error::tokenizer)?;

        let bos = optional_u32(content, "tokenizer.ggml.bos_token_id");
        let eos = optional_u32(content, "tokenizer.ggml.eos_token_id");
        let add_bos = content
            .metadata
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|value| value.to_bool().ok())
            .unwrap_or(false);
        let mut stop: Vec<u32> = eos.into_iter().collect();
        for end_of_turn in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>"] {
            if let Some(&id) = tokenizer.get_vocab(true).get(end_of_turn) {
                if !stop.contains(&id) {
                    stop.push(id);
                }
            }
        }
        let text_of = |id: Option<u32>| {
            id.and_then(|id| tokens.get(id as usize).cloned())
                .unwrap_or_default()
        };

        Ok(Self {
            special: SpecialTokens {
                bos,
                eos,
                add_bos,
                stop,
                bos_text: text_of(bos),
                eos_text: text_of(eos),
            },
            tokenizer,
            pre,
        })
    }

    /// Tokenizes user text: control tokens written in the text stay plain text, as
    /// llama.cpp does with `parse_special = false`. No BOS is added.
    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>> {
        let mut tokenizer = self.tokenizer.clone();
        tokenizer.set_encode_special_tokens(true);
        Ok(tokenizer
            .encode(text, false)
            .map_err(Error::tokenizer)?
            .get_ids()
            .to_vec())
    }

    /// Tokenizes a rendered prompt, where control tokens such as `<|im_start|>` are
    /// parsed as single tokens. Adds BOS when the file sets `tokenizer.ggml.add_bos_token`.
    pub fn encode_prompt(&self, prompt: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        if self.special.add_bos {
            if let Some(bos) = self.special.bos {
                ids.push(bos);
            }
        }
        let encoding = self
            .tokenizer
            .encode(prompt, false)
            .map_err(Error::tokenizer)?;
        ids.extend_from_slice(encoding.get_ids());
        Ok(ids)
    }

    /// Decodes ids to text, special tokens included.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, false).map_err(Error::tokenizer)
    }
}
