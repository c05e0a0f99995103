//! BERT sentence encoder (all-MiniLM-L6-v2 by default): mean-pooled, L2-normalised embeddings.
//!
//! Follows `transformers`' `BertModel` (post-norm layers, exact-erf GELU, absolute
//! position embeddings) and sentence-transformers' `Transformer → Pooling(mean) →
//! Normalize` pipeline for this model.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::backend::{AttentionMask, Backend};
use crate::error::{Error, Result};

/// Fields of a Hugging Face BERT `config.json` that the forward pass needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub hidden_act: Option<String>,
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

/// sentence-transformers' `sentence_bert_config.json`.
#[derive(Debug, Clone, Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

/// The files of a sentence-transformers model folder, as bytes.
pub struct BertFiles<'a> {
    pub weights: &'a [u8],
    pub tokenizer_json: &'a [u8],
    pub config_json: &'a [u8],
    /// `sentence_bert_config.json`; when absent the limit is `max_position_embeddings`.
    pub sentence_config_json: Option<&'a [u8]>,
}

/// One text's embedding and how it was tokenized.
#[derive(Debug, Clone, Serialize)]
pub struct Embedding {
    pub vector: Vec<f32>,
    pub token_ids: Vec<u32>,
    /// Token count before truncation, special tokens included.
    pub tokens_untruncated: usize,
    pub truncated: bool,
}

struct Layer<B: Backend> {
    query: B::Weight,
    query_bias: B::Tensor,
    key: B::Weight,
    key_bias: B::Tensor,
    value: B::Weight,
    value_bias: B::Tensor,
    attention_out: B::Weight,
    attention_out_bias: B::Tensor,
    attention_norm: (B::Tensor, B::Tensor),
    intermediate: B::Weight,
    intermediate_bias: B::Tensor,
    output: B::Weight,
    output_bias: B::Tensor,
    output_norm: (B::Tensor, B::Tensor),
}

pub struct SentenceEncoder<B: Backend> {
    backend: B,
    config: BertConfig,
    /// The tokenizer without padding or truncation, which counts a text's tokens.
    tokenizer: Tokenizer,
    /// The same tokenizer truncating to `max_length`, for texts beyond it.
    truncating: Tokenizer,
    max_length: usize,
    word_embeddings: B::Weight,
    position_embeddings: B::Weight,
    token_type_embeddings: B::Weight,
    embedding_norm: (B::Tensor, B::Tensor),
    layers: Vec<Layer<B>>,
}

struct Weights {
    file: String,
    tensors: HashMap<String, Tensor>,
    prefix: &'static str,
}

impl Weights {
    fn get(&self, name: &str) -> Result<&Tensor> {
        let full = format!("{}{name}", self.prefix);
        self.tensors.get(&full).ok_or_else(|| Error::MissingTensor {
            file: self.file.clone(),
            name: full,
            architecture: "BERT",
        })
    }
}

impl<B: Backend> SentenceEncoder<B> {
    /// Loads the encoder from a sentence-transformers folder's files; `file` names the
    /// weights in error messages.
    pub fn load(backend: B, files: BertFiles<'_>, file: &str) -> Result<Self> {
        let config: BertConfig =
            serde_json::from_slice(files.config_json).map_err(|e| Error::InvalidConfig {
                file: "config.json".into(),
                reason: crate::error::first_line(&e),
            })?;
        if let Some(activation) = &config.hidden_act {
            if activation != "gelu" {
                return Err(Error::InvalidConfig {
                    file: "config.json".into(),
                    reason: format!(
                        "hidden_act {activation:?} is not supported; only \"gelu\" (exact erf) is"
                    ),
                });
            }
        }

        let max_length = match files.sentence_config_json {
            Some(bytes) => {
                let sentence: SentenceBertConfig =
                    serde_json::from_slice(bytes).map_err(|e| Error::InvalidConfig {
                        file: "sentence_bert_config.json".into(),
                        reason: crate::error::first_line(&e),
                    })?;
                sentence.max_seq_length.min(config.max_position_embeddings)
            }
            None => config.max_position_embeddings,
        };

        let mut tokenizer =
            Tokenizer::from_bytes(files.tokenizer_json).map_err(|e| Error::InvalidModelFile {
                file: "tokenizer.json".into(),
                format: "Hugging Face tokenizer.json",
                reason: crate::error::first_line(&e),
            })?;
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(Error::tokenizer)?;

        let tensors =
            candle_core::safetensors::load_buffer(files.weights, &Device::Cpu).map_err(|e| {
                Error::InvalidModelFile {
                    file: file.to_string(),
                    format: "safetensors",
                    reason: crate::error::first_line(&e),
                }
            })?;
        // Checkpoints saved from `BertForMaskedLM` and similar prefix every name with `bert.`.
        let prefix = if tensors.contains_key("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let weights = Weights {
            file: file.to_string(),
            tensors,
            prefix,
        };

        let mut encoder = Self {
            word_embeddings: backend
                .upload_weight(weights.get("embeddings.word_embeddings.weight")?)?,
            position_embeddings: backend
                .upload_weight(weights.get("embeddings.position_embeddings.weight")?)?,
            token_type_embeddings: backend
                .upload_weight(weights.get("embeddings.token_type_embeddings.weight")?)?,
            embedding_norm: load_norm(&backend, &weights, "embeddings.LayerNorm")?,
            layers: Vec::with_capacity(config.num_hidden_layers),
            backend,
            config,
            truncating: tokenizer.clone(),
            tokenizer,
            max_length,
        };
        for index in 0..encoder.config.num_hidden_layers {
            let layer = load_layer(&encoder.backend, &weights, index)?;
            encoder.layers.push(layer);
        }
        encoder.set_max_length(max_length)?;
        Ok(encoder)
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Sets the token limit (special tokens included); texts beyond it are truncated
    /// and flagged. At most `max_position_embeddings` (512 for MiniLM).
    pub fn set_max_length(&mut self, max_length: usize) -> Result<()> {
        if max_length < 2 || max_length > self.config.max_position_embeddings {
            return Err(Error::InvalidOption {
                option: "max_length",
                value: max_length.to_string(),
                expected: format!(
                    "between 2 and {} (the model's position embeddings)",
                    self.config.max_position_embeddings
                ),
            });
        }
        self.truncating
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(Error::tokenizer)?;
        self.max_length = max_length;
        Ok(())
    }

    /// Tokenizes `text` as sentence-transformers does: special tokens added, no padding,
    /// truncated to `max_length`.
    pub fn tokenize(&self, text: &str) -> Result<(Vec<u32>, usize)> {
        if text.trim().is_empty() {
            return Err(Error::EmptyText);
        }
        let full = self
            .tokenizer
            .encode(text, true)
            .map_err(Error::tokenizer)?;
        let untruncated = full.get_ids().len();
        if untruncated <= self.max_length {
            return Ok((full.get_ids().to_vec(), untruncated));
        }
        let truncated = self
            .truncating
            .encode(text, true)
            .map_err(Error::tokenizer)?;
        Ok((truncated.get_ids().to_vec(), untruncated))
    }

    /// Embeds a batch of texts; rows are padded on the right and the padding is masked out.
    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Embedding>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut tokenized = Vec::with_capacity(texts.len());
        for text in texts {
            tokenized.push(self.tokenize(text)?);
        }

        let lengths: Vec<usize> = tokenized.iter().map(|(ids, _)| ids.len()).collect();
        let longest = *lengths.iter().max().unwrap_or(&1);
        let vectors = self.forward_pooled(&tokenized, &lengths, longest).await?;

        let hidden = self.config.hidden_size;
        Ok(tokenized
            .into_iter()
            .enumerate()
            .map(|(row, (token_ids, tokens_untruncated))| Embedding {
                vector: vectors[row * hidden..(row + 1) * hidden].to_vec(),
                truncated: tokens_untruncated > token_ids.len(),
                token_ids,
                tokens_untruncated,
            })
            .collect())
    }

    async fn forward_pooled(
        &self,
        tokenized: &[(Vec<u32>, usize)],
        lengths: &[usize],
        longest: usize,
    ) -> Result<Vec<f32>> {
        match self.pooled_once(tokenized, lengths, longest).await {
            Err(error) if self.backend.recover(&error) => {
                self.pooled_once(tokenized, lengths, longest).await
            }
            result => result,
        }
    }

    async fn pooled_once(
        &self,
        tokenized: &[(Vec<u32>, usize)],
        lengths: &[usize],
        longest: usize,
    ) -> Result<Vec<f32>> {
        let hidden = self.forward_hidden(tokenized, lengths, longest)?;
        let backend = &self.backend;
        let pooled = backend.mean_pool(&hidden, lengths)?;
        let normalized = backend.l2_normalize(&pooled)?;
        backend.read(&normalized).await
    }

    /// Returns the last layer's hidden state of every token of `text`, `[CLS]` first and
    /// `[SEP]` last: one `hidden_size` row per token.
    pub async fn token_states(&self, text: &str) -> Result<Vec<Vec<f32>>> {
        let tokenized = vec![self.tokenize(text)?];
        let length = tokenized[0].0.len();
        let states = async || {
            let hidden = self.forward_hidden(&tokenized, &[length], length)?;
            self.backend.read(&hidden).await
        };
        let values = match states().await {
            Err(error) if self.backend.recover(&error) => states().await?,
            result => result?,
        };
        Ok(values
            .chunks_exact(self.config.hidden_size)
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// Runs the padded batch through the encoder and returns the last layer's states.
    fn forward_hidden(
        &self,
        tokenized: &[(Vec<u32>, usize)],
        lengths: &[usize],
        longest: usize,
    ) -> Result<B::Tensor> {
        let backend = &self.backend;
        let batch = tokenized.len();

        let mut ids = vec![0u32; batch * longest];
        for (row, (token_ids, _)) in tokenized.iter().enumerate() {
            ids[row * longest..row * longest + token_ids.len()].copy_from_slice(token_ids);
        }
        let positions: Vec<u32> = (0..batch).flat_map(|_| 0..longest as u32).collect();
        let token_types = vec![0u32; batch * longest];

        let words = backend.embedding(&self.word_embeddings, &ids, batch)?;
        let positions = backend.embedding(&self.position_embeddings, &positions, batch)?;
        let types = backend.embedding(&self.token_type_embeddings, &token_types, batch)?;
        let summed = backend.add(&backend.add(&words, &positions)?, &types)?;
        let (gamma, beta) = &self.embedding_norm;
        let mut hidden = backend.layer_norm(&summed, gamma, beta, self.config.layer_norm_eps)?;

        let mask = AttentionMask::Padding {
            lengths: lengths.to_vec(),
        };
        for layer in &self.layers {
            hidden = self.forward_layer(layer, &hidden, &mask)?;
        }
        Ok(hidden)
    }

    fn forward_layer(
        &self,
        layer: &Layer<B>,
        x: &B::Tensor,
        mask: &AttentionMask,
    ) -> Result<B::Tensor> {
        let backend = &self.backend;
        let heads = self.config.num_attention_heads;
        let eps = self.config.layer_norm_eps;

        let q = backend.split_heads(
            &backend.linear(x, &layer.query, Some(&layer.query_bias))?,
            heads,
        )?;
        let k = backend.split_heads(
            &backend.linear(x, &layer.key, Some(&layer.key_bias))?,
            heads,
        )?;
        let v = backend.split_heads(
            &backend.linear(x, &layer.value, Some(&layer.value_bias))?,
            heads,
        )?;
        let context = backend.merge_heads(&backend.attention(&q, &k, &v, mask)?)?;

        let attended = backend.linear(
            &context,
            &layer.attention_out,
            Some(&layer.attention_out_bias),
        )?;
        let (gamma, beta) = &layer.attention_norm;
        let x = backend.layer_norm(&backend.add(&attended, x)?, gamma, beta, eps)?;

        let intermediate = backend.gelu(&backend.linear(
            &x,
            &layer.intermediate,
            Some(&layer.intermediate_bias),
        )?)?;
        let output = backend.linear(&intermediate, &layer.output, Some(&layer.output_bias))?;
        let (gamma, beta) = &layer.output_norm;
        backend.layer_norm(&backend.add(&output, &x)?, gamma, beta, eps)
    }
}

fn load_norm<B: Backend>(
    backend: &B,
    weights: &Weights,
    name: &str,
) -> Result<(B::Tensor, B::Tensor)> {
    Ok((
        backend.upload(weights.get(&format!("{name}.weight"))?)?,
        backend.upload(weights.get(&format!("{name}.bias"))?)?,
    ))
}

fn load_layer<B: Backend>(backend: &B, weights: &Weights, index: usize) -> Result<Layer<B>> {
    let name = |suffix: &str| format!("encoder.layer.{index}.{suffix}");
    let weight =
        |suffix: &str| -> Result<B::Weight> { backend.upload_weight(weights.get(&name(suffix))?) };
    let tensor =
        |suffix: &str| -> Result<B::Tensor> { backend.upload(weights.get(&name(suffix))?) };
    Ok(Layer {
        query: weight("attention.self.query.weight")?,
        query_bias: tensor("attention.self.query.bias")?,
        key: weight("attention.self.key.weight")?,
        key_bias: tensor("attention.self.key.bias")?,
        value: weight("attention.self.value.weight")?,
        value_bias: tensor("attention.self.value.bias")?,
        attention_out: weight("attention.output.dense.weight")?,
        attention_out_bias: tensor("attention.output.dense.bias")?,
        attention_norm: load_norm(backend, weights, &name("attention.output.LayerNorm"))?,
        intermediate: weight("intermediate.dense.weight")?,
        intermediate_bias: tensor("intermediate.dense.bias")?,
        output: weight("output.dense.weight")?,
        output_bias: tensor("output.dense.bias")?,
        output_norm: load_norm(backend, weights, &name("output.LayerNorm"))?,
    })
}
