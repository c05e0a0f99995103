//! Llama-architecture causal language model from a GGUF file (SmolLM2-135M-Instruct by default).
//!
//! Follows llama.cpp's `llm_build_llama` graph: pre-norm RMS layers, rotary position
//! embeddings on adjacent pairs, grouped-query attention, SiLU-gated feed-forward,
//! and an output projection tied to the token embeddings when `output.weight` is absent.
//! Block-quantized matrices stay quantized; only norms are expanded to f32.

use std::io::{Cursor, Read, Seek, SeekFrom};

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;
use serde::Serialize;

use crate::backend::{AttentionMask, Backend};
use crate::clock::{elapsed_ms, Instant};
use crate::error::{Error, Result};
use crate::models::chat::ChatTemplate;
use crate::models::sampling::{Sampler, Sampling};
use crate::tokenize::gguf::GgufTokenizer;

/// Hyper-parameters read from the GGUF metadata (`llama.*` keys).
#[derive(Debug, Clone, Serialize)]
pub struct LlamaConfig {
    pub block_count: usize,
    pub embedding_length: usize,
    pub feed_forward_length: usize,
    pub head_count: usize,
    pub head_count_kv: usize,
    pub context_length: usize,
    pub rms_epsilon: f64,
    pub rope_base: f32,
    pub vocab_size: usize,
}

struct Block<B: Backend> {
    attention_norm: B::Tensor,
    query: B::Weight,
    key: B::Weight,
    value: B::Weight,
    attention_output: B::Weight,
    ffn_norm: B::Tensor,
    gate: B::Weight,
    up: B::Weight,
    down: B::Weight,
}

/// Keys and values of every layer for the positions processed so far.
pub struct KvCache<B: Backend> {
    layers: Vec<Option<(B::Sequence, B::Sequence)>>,
    length: usize,
}

impl<B: Backend> KvCache<B> {
    pub fn len(&self) -> usize {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }
}

/// Settings of one generation.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Stop at the end-of-sequence or end-of-turn tokens.
    #[serde(default = "default_true")]
    pub stop_at_eos: bool,
}

fn default_true() -> bool {
    true
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 128,
            sampling: Sampling::Greedy,
            stop_at_eos: true,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndOfSequence,
    MaxTokens,
}

/// What one generation produced and how long it took.
#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub prompt_tokens: usize,
    pub token_ids: Vec<u32>,
    pub text: String,
    pub stop_reason: StopReason,
    /// Time to process the prompt and produce the first token.
    pub prefill_ms: f64,
    /// Time for the remaining tokens.
    pub decode_ms: f64,
}

impl Generation {
    /// Decode speed in tokens per second, over the tokens after the first.
    pub fn decode_tokens_per_second(&self) -> Option<f64> {
        let decoded = self.token_ids.len().saturating_sub(1);
        (decoded > 0 && self.decode_ms > 0.0).then(|| decoded as f64 / (self.decode_ms / 1000.0))
    }
}

pub struct CausalLm<B: Backend> {
    backend: B,
    config: LlamaConfig,
    tokenizer: GgufTokenizer,
    chat_template: ChatTemplate,
    token_embeddings: B::Weight,
    blocks: Vec<Block<B>>,
    output_norm: B::Tensor,
    output: Option<B::Weight>,
}

fn metadata_usize(content: &Content, file: &str, key: &str) -> Result<usize> {
    let value = content
        .metadata
        .get(key)
        .ok_or_else(|| Error::InvalidConfig {
            file: file.to_string(),
            reason: format!("GGUF metadata key {key} is missing"),
        })?;
    let number = value
        .to_u64()
        .or_else(|_| value.to_u32().map(u64::from))
        .map_err(|e| Error::InvalidConfig {
            file: file.to_string(),
            reason: format!("{key}: {e}"),
        })?;
    Ok(number as usize)
}

fn metadata_f32(content: &Content, key: &str, default: f32) -> f32 {
    content
        .metadata
        .get(key)
        .and_then(|value| value.to_f32().ok())
        .unwrap_or(default)
}

fn read_config(content: &Content, file: &str) -> Result<LlamaConfig> {
    let architecture = content
        .metadata
        .get("general.architecture")
        .and_then(|value| value.to_string().ok().cloned())
        .unwrap_or_default();
    if architecture != "llama" {
        return Err(Error::InvalidConfig {
            file: file.to_string(),
            reason: format!(
                "general.architecture is {architecture:?}; this loader runs \"llama\" models"
            ),
        });
    }
    let vocab_size = match content.metadata.get("tokenizer.ggml.tokens") {
        Some(tokens) => tokens.to_vec().map(|t| t.len()).unwrap_or(0),
        None => 0,
    };
    Ok(LlamaConfig {
        block_count: metadata_usize(content, file, "llama.block_count")?,
        embedding_length: metadata_usize(content, file, "llama.embedding_length")?,
        feed_forward_length: metadata_usize(content, file, "llama.feed_forward_length")?,
        head_count: metadata_usize(content, file, "llama.attention.head_count")?,
        head_count_kv: metadata_usize(content, file, "llama.attention.head_count_kv")?,
        context_length: metadata_usize(content, file, "llama.context_length")?,
        rms_epsilon: metadata_f32(content, "llama.attention.layer_norm_rms_epsilon", 1e-5) as f64,
        rope_base: metadata_f32(content, "llama.rope.freq_base", 10_000.0),
        vocab_size,
    })
}

struct TensorReader<'a, R> {
    content: &'a Content,
    reader: R,
    file: &'a str,
}

impl<R: Read + Seek> TensorReader<'_, R> {
    fn read(&mut self, name: &str) -> Result<QTensor> {
        if !self.content.tensor_infos.contains_key(name) {
            return Err(Error::MissingTensor {
                file: self.file.to_string(),
                name: name.to_string(),
                architecture: "llama",
            });
        }
        self.content
            .tensor(&mut self.reader, name, &Device::Cpu)
            .map_err(|e| Error::InvalidModelFile {
                file: self.file.to_string(),
                format: "GGUF",
                reason: format!("tensor {name}: {}", crate::error::first_line(&e)),
            })
    }

    fn vector<B: Backend>(&mut self, backend: &B, name: &str) -> Result<B::Tensor> {
        let tensor = self.read(name)?.dequantize(&Device::Cpu)?;
        backend.upload(&tensor)
    }

    fn matrix<B: Backend>(&mut self, backend: &B, name: &str) -> Result<B::Weight> {
        let tensor = self.read(name)?;
        match tensor.dtype() {
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => {
                backend.upload_weight(&tensor.dequantize(&Device::Cpu)?)
            }
            _ => backend.upload_quantized(tensor),
        }
    }
}

impl<B: Backend> CausalLm<B> {
    /// Parses a GGUF file held in memory; `file` names it in error messages.
    pub fn load(backend: B, bytes: &[u8], file: &str) -> Result<Self> {
        Self::load_from(backend, Cursor::new(bytes), file)
    }

    /// Parses a GGUF file from a seekable reader, reading each tensor only when it is
    /// converted, so the file need not be held in memory whole beside the weights.
    pub fn load_from<R: Read + Seek>(backend: B, mut reader: R, file: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidModelFile {
            file: file.to_string(),
            format: "GGUF",
            reason,
        };
        let io = |e: std::io::Error| Error::Io {
            path: file.to_string(),
            error: e,
        };
        let mut magic = Vec::with_capacity(4);
        (&mut reader).take(4).read_to_end(&mut magic).map_err(io)?;
        if magic.is_empty() {
            return Err(invalid("the file is empty (0 bytes)".into()));
        }
        if magic != b"GGUF" {
            let start = String::from_utf8_lossy(&magic).into_owned();
            return Err(invalid(format!(
                "not a GGUF file: it starts with {start:?}, expected \"GGUF\""
            )));
        }
        reader.seek(SeekFrom::Start(0)).map_err(io)?;
        let content = Content::read(&mut reader).map_err(|e| Error::InvalidModelFile {
            file: file.to_string(),
            format: "GGUF",
            reason: crate::error::first_line(&e),
        })?;
        let config = read_config(&content, file)?;
        let tokenizer = GgufTokenizer::from_gguf(&content, file)?;
        let chat_template = ChatTemplate::from_gguf(&content, &tokenizer.special)?;

        let mut tensors = TensorReader {
            content: &content,
            reader,
            file,
        };
        let token_embeddings = tensors.matrix(&backend, "token_embd.weight")?;
        let mut blocks = Vec::with_capacity(config.block_count);
        for index in 0..config.block_count {
            let name = |suffix: &str| format!("blk.{index}.{suffix}");
            blocks.push(Block {
                attention_norm: tensors.vector(&backend, &name("attn_norm.weight"))?,
                query: tensors.matrix(&backend, &name("attn_q.weight"))?,
                key: tensors.matrix(&backend, &name("attn_k.weight"))?,
                value: tensors.matrix(&backend, &name("attn_v.weight"))?,
                attention_output: tensors.matrix(&backend, &name("attn_output.weight"))?,
                ffn_norm: tensors.vector(&backend, &name("ffn_norm.weight"))?,
                gate: tensors.matrix(&backend, &name("ffn_gate.weight"))?,
                up: tensors.matrix(&backend, &name("ffn_up.weight"))?,
                down: tensors.matrix(&backend, &name("ffn_down.weight"))?,
            });
        }
        let output_norm = tensors.vector(&backend, "output_norm.weight")?;
        let output = if content.tensor_infos.contains_key("output.weight") {
            Some(tensors.matrix(&backend, "output.weight")?)
        } else {
            None
        };

        tracing::info!(file, blocks = config.block_count, pre = %tokenizer.pre, "loaded GGUF llama model");
        Ok(Self {
            backend,
            config,
            tokenizer,
            chat_template,
            token_embeddings,
            blocks,
            output_norm,
            output,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Renders a single user message with the model's chat template, ready to tokenize.
    pub fn chat_prompt(&self, system: Option<&str>, user: &str) -> Result<String> {
        if user.trim().is_empty() {
            return Err(Error::EmptyText);
        }
        self.chat_template.render_user_turn(system, user)
    }

    pub fn new_cache(&self) -> KvCache<B> {
        KvCache {
            layers: (0..self.config.block_count).map(|_| None).collect(),
            length: 0,
        }
    }

    /// Runs `ids` through the model after the positions already in `cache`, and returns
    /// the logits of the last position, or of every position when `all_positions`.
    pub async fn forward(
        &self,
        ids: &[u32],
        cache: &mut KvCache<B>,
        all_positions: bool,
    ) -> Result<Vec<f32>> {
        let backend = &self.backend;
        let offset = cache.length;
        let heads = self.config.head_count;
        let kv_heads = self.config.head_count_kv;
        let eps = self.config.rms_epsilon;
        let mask = AttentionMask::Causal { offset };

        let mut hidden = backend.embedding(&self.token_embeddings, ids, 1)?;
        for (block, layer_cache) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            let x = backend.rms_norm(&hidden, &block.attention_norm, eps)?;
            let q = backend.split_heads(&backend.linear(&x, &block.query, None)?, heads)?;
            let k = backend.split_heads(&backend.linear(&x, &block.key, None)?, kv_heads)?;
            let v = backend.split_heads(&backend.linear(&x, &block.value, None)?, kv_heads)?;
            let q = backend.rope(&q, offset, self.config.rope_base)?;
            let k = backend.rope(&k, offset, self.config.rope_base)?;

            let (cached_k, cached_v) = layer_cache.take().unzip();
            let keys = backend.append_sequence(cached_k, &k)?;
            let values = backend.append_sequence(cached_v, &v)?;
            let context = backend.merge_heads(&backend.attention(
                &q,
                &backend.sequence_tensor(&keys)?,
                &backend.sequence_tensor(&values)?,
                &mask,
            )?)?;
            *layer_cache = Some((keys, values));
            hidden = backend.add(
                &hidden,
                &backend.linear(&context, &block.attention_output, None)?,
            )?;

            let x = backend.rms_norm(&hidden, &block.ffn_norm, eps)?;
            let gated = backend.silu_mul(
                &backend.linear(&x, &block.gate, None)?,
                &backend.linear(&x, &block.up, None)?,
            )?;
            hidden = backend.add(&hidden, &backend.linear(&gated, &block.down, None)?)?;
        }
        cache.length += ids.len();

        let selected = if all_positions {
            hidden
        } else {
            backend.last_position(&hidden)?
        };
        let normalized = backend.rms_norm(&selected, &self.output_norm, eps)?;
        let output = self.output.as_ref().unwrap_or(&self.token_embeddings);
        let logits = backend.linear(&normalized, output, None)?;
        backend.read(&logits).await
    }

    /// Runs `new` (the tail of `so_far`) after the cache. When the backend moves to
    /// another device after an error, the cache is rebuilt there from all of `so_far`.
    async fn step(&self, so_far: &[u32], new: &[u32], cache: &mut KvCache<B>) -> Result<Vec<f32>> {
        match self.forward(new, cache, false).await {
            Err(error) if self.backend.recover(&error) => {
                *cache = self.new_cache();
                self.forward(so_far, cache, false).await
            }
            result => result,
        }
    }

    /// Perplexity of `continuation` after `prompt_ids`: the exponential of the mean
    /// negative log-likelihood of each continuation token, in one forward pass.
    pub async fn perplexity(&self, prompt_ids: &[u32], continuation: &[u32]) -> Result<f64> {
        if prompt_ids.is_empty() || continuation.is_empty() {
            return Err(Error::EmptyText);
        }
        let ids: Vec<u32> = prompt_ids.iter().chain(continuation).copied().collect();
        let limit = self.config.context_length;
        if ids.len() > limit {
            return Err(Error::PromptTooLong {
                tokens: prompt_ids.len(),
                limit,
                reserved: continuation.len(),
            });
        }
        let mut cache = self.new_cache();
        let logits = match self.forward(&ids, &mut cache, true).await {
            Err(error) if self.backend.recover(&error) => {
                self.forward(&ids, &mut self.new_cache(), true).await?
            }
            result => result?,
        };
        let vocab = logits.len() / ids.len();
        let mut total = 0.0f64;
        for (offset, &target) in continuation.iter().enumerate() {
            let row = &logits[(prompt_ids.len() + offset - 1) * vocab..][..vocab];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let log_sum = row
                .iter()
                .map(|&v| (v as f64 - max).exp())
                .sum::<f64>()
                .ln()
                + max;
            total += log_sum - row[target as usize] as f64;
        }
        Ok((total / continuation.len() as f64).exp())
    }

    /// Generates up to `options.max_new_tokens` after `prompt_ids`, calling `on_token`
    /// with each new token id as soon as it is chosen.
    pub async fn generate(
        &self,
        prompt_ids: &[u32],
        options: &GenerateOptions,
        mut on_token: impl FnMut(u32),
    ) -> Result<Generation> {
        if prompt_ids.is_empty() {
            return Err(Error::EmptyText);
        }
        let limit = self.config.context_length;
        if prompt_ids.len() + options.max_new_tokens > limit {
            return Err(Error::PromptTooLong {
                tokens: prompt_ids.len(),
                limit,
                reserved: options.max_new_tokens,
            });
        }

        let mut sampler = Sampler::new(&options.sampling)?;
        let mut cache = self.new_cache();
        let mut generated = Vec::with_capacity(options.max_new_tokens);
        let mut stop_reason = StopReason::MaxTokens;
        let start = Instant::now();
        let mut prefill_ms = 0.0;

        let mut logits = self.step(prompt_ids, prompt_ids, &mut cache).await?;
        for step in 0..options.max_new_tokens {
            let token = sampler.sample(&logits)?;
            if step == 0 {
                prefill_ms = elapsed_ms(start);
            }
            if options.stop_at_eos && self.tokenizer.special.stop.contains(&token) {
                stop_reason = StopReason::EndOfSequence;
                break;
            }
            generated.push(token);
            on_token(token);
            if step + 1 < options.max_new_tokens {
                let so_far: Vec<u32> = prompt_ids.iter().chain(&generated).copied().collect();
                logits = self.step(&so_far, &[token], &mut cache).await?;
            }
        }
        let total_ms = elapsed_ms(start);

        Ok(Generation {
            prompt_tokens: prompt_ids.len(),
            text: self.tokenizer.decode(&generated)?,
            token_ids: generated,
            stop_reason,
            prefill_ms,
            decode_ms: total_ms - prefill_ms,
        })
    }
}
