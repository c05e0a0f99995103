//! The tensor operations that every model's forward pass is written against.
//!
//! A model is generic over [`Backend`], so its forward pass exists once. The CPU
//! implementation ([`cpu::CpuBackend`]) runs on candle-core tensors; a GPU
//! implementation provides the same operations with WGSL kernels. Weights are
//! loaded on the host as candle tensors (from safetensors or GGUF) and handed to
//! [`Backend::upload`] / [`Backend::upload_quantized`], which place them where the
//! backend computes.
//!
//! Shapes use the names `b` (batch), `t` (sequence), `h` (heads), `d` (head size)
//! and `c` (channels, `h * d`).

pub mod auto;
pub mod conformance;
pub mod cpu;
pub mod gpu;

use candle_core::quantized::QTensor;

use crate::error::Result;

/// The set of keys each query may attend to.
#[derive(Debug, Clone)]
pub enum AttentionMask {
    /// Bidirectional attention over the first `lengths[i]` keys of batch row `i`; the
    /// rest are right padding.
    Padding { lengths: Vec<usize> },
    /// Causal attention: query `j` sees keys `0..=offset + j`, where `offset` is the
    /// number of keys already in the cache before this step.
    Causal { offset: usize },
}

/// The operations a model may use. Each returns a new tensor; none mutates its inputs.
pub trait Backend {
    /// A tensor on the backend's device, f32 unless stated.
    type Tensor: Clone;
    /// A weight matrix `[n, k]` for [`Backend::linear`], dense or block-quantized.
    type Weight;
    /// The keys or the values of the positions processed so far (a KV cache), extended
    /// by [`Backend::append_sequence`].
    type Sequence;

    /// Short name recorded in reports, e.g. `cpu`.
    fn name(&self) -> &'static str;

    /// Places a host tensor on the device as f32.
    fn upload(&self, host: &candle_core::Tensor) -> Result<Self::Tensor>;

    /// Places a dense host matrix `[n, k]` on the device as a weight.
    fn upload_weight(&self, host: &candle_core::Tensor) -> Result<Self::Weight>;

    /// Places a GGUF block-quantized matrix `[n, k]` on the device without expanding it to f32.
    fn upload_quantized(&self, host: QTensor) -> Result<Self::Weight>;

    /// Rows `ids` of `table` (`[vocab, c]`), as `[b, t, c]` with `ids` laid out `b × t`.
    fn embedding(&self, table: &Self::Weight, ids: &[u32], batch: usize) -> Result<Self::Tensor>;

    /// `y = x @ w.t() + bias` over the last dimension of `x`.
    fn linear(
        &self,
        x: &Self::Tensor,
        w: &Self::Weight,
        bias: Option<&Self::Tensor>,
    ) -> Result<Self::Tensor>;

    /// Elementwise `a + b`, broadcasting `b` over leading dimensions.
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;

    /// Layer norm over the last dimension with weight `gamma` and bias `beta`.
    fn layer_norm(
        &self,
        x: &Self::Tensor,
        gamma: &Self::Tensor,
        beta: &Self::Tensor,
        eps: f64,
    ) -> Result<Self::Tensor>;

    /// RMS norm over the last dimension with weight `gamma`.
    fn rms_norm(&self, x: &Self::Tensor, gamma: &Self::Tensor, eps: f64) -> Result<Self::Tensor>;

    /// GELU with the exact erf form, as BERT uses it.
    fn gelu(&self, x: &Self::Tensor) -> Result<Self::Tensor>;

    /// `silu(gate) * up`, the gated feed-forward of llama-style models.
    fn silu_mul(&self, gate: &Self::Tensor, up: &Self::Tensor) -> Result<Self::Tensor>;

    /// Splits `[b, t, h * d]` into `[b, h, t, d]`.
    fn split_heads(&self, x: &Self::Tensor, heads: usize) -> Result<Self::Tensor>;

    /// Merges `[b, h, t, d]` into `[b, t, h * d]`.
    fn merge_heads(&self, x: &Self::Tensor) -> Result<Self::Tensor>;

    /// Rotary position embedding on `[b, h, t, d]` for positions `offset..offset + t`,
    /// rotating adjacent pairs `(2i, 2i + 1)` as GGUF llama checkpoints expect.
    fn rope(&self, x: &Self::Tensor, offset: usize, base: f32) -> Result<Self::Tensor>;

    /// Appends `new` (`[b, h, t, d]`) to `cache` along the sequence dimension. The cache
    /// is taken by value, so a backend may extend it in place.
    fn append_sequence(
        &self,
        cache: Option<Self::Sequence>,
        new: &Self::Tensor,
    ) -> Result<Self::Sequence>;

    /// Returns the positions in `sequence` as a `[b, h, t, d]` tensor for
    /// [`Backend::attention`]. The tensor is a view where the backend can make one.
    fn sequence_tensor(&self, sequence: &Self::Sequence) -> Result<Self::Tensor>;

    /// Scaled dot-product attention `softmax(q k^T / sqrt(d) + mask) v`.
    ///
    /// `q` is `[b, hq, tq, d]`; `k` and `v` are `[b, hkv, tk, d]` with `hq` a multiple
    /// of `hkv` (grouped-query attention). Returns `[b, hq, tq, d]`.
    fn attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        mask: &AttentionMask,
    ) -> Result<Self::Tensor>;

    /// Mean over the first `lengths[i]` positions of each batch row of `[b, t, c]`, giving `[b, c]`.
    fn mean_pool(&self, x: &Self::Tensor, lengths: &[usize]) -> Result<Self::Tensor>;

    /// Divides each row of `[b, c]` by its L2 norm.
    fn l2_normalize(&self, x: &Self::Tensor) -> Result<Self::Tensor>;

    /// Selects the last position of `[b, t, c]`, as `[b, 1, c]`.
    fn last_position(&self, x: &Self::Tensor) -> Result<Self::Tensor>;

    /// Returns the tensor's dimensions.
    fn dims(&self, x: &Self::Tensor) -> Vec<usize>;

    /// Copies a tensor back to the host, flattened in row-major order.
    ///
    /// Asynchronous because a GPU readback must wait for the device without
    /// blocking a browser thread; the CPU backend returns at once.
    fn read(&self, x: &Self::Tensor) -> impl std::future::Future<Output = Result<Vec<f32>>>;

    /// Called with an error a model's forward pass returned: when the backend can move
    /// the work elsewhere (a lost GPU device to the CPU), it does so and returns true,
    /// and the model runs the pass again from its inputs.
    fn recover(&self, _error: &crate::error::Error) -> bool {
        false
    }
}

/// Computes the rotary embedding's cos and sin tables, `[seq, head_dim / 2]` each, for
/// positions `offset..offset + seq`. Both backends use these same f32 values.
pub fn rope_tables(seq: usize, head_dim: usize, offset: usize, base: f32) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let mut cos = vec![0f32; seq * half];
    let mut sin = vec![0f32; seq * half];
    for t in 0..seq {
        for i in 0..half {
            let inverse_frequency = base.powf(-(2.0 * i as f32) / head_dim as f32);
            let angle = (offset + t) as f32 * inverse_frequency;
            cos[t * half + i] = angle.cos();
            sin[t * half + i] = angle.sin();
        }
    }
    (cos, sin)
}
