//! The CPU backend: candle-core tensors, in the browser (wasm32, SIMD128) and natively.

mod quantized;

pub use quantized::{BlockFormat, QuantizedMatrix};

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor, D};

use super::{AttentionMask, Backend};
use crate::error::Result;

/// A weight matrix `[n, k]` kept as loaded: dense f32, or GGUF blocks that are never
/// expanded to an f32 copy. Q4_1 and Q8_0 use this crate's ggml-compatible kernel;
/// other block formats use candle's quantized matmul.
pub enum CpuWeight {
    Dense(Tensor),
    Blocks(QuantizedMatrix),
    Quantized {
        matmul: QMatMul,
        table: Arc<QTensor>,
    },
}

#[derive(Debug, Clone, Default)]
pub struct CpuBackend {
    f32_activations: bool,
}

impl CpuBackend {
    pub fn new() -> Self {
        CpuBackend::default()
    }

    /// Creates a backend that expands Q4_1 and Q8_0 weights to f32 at load and
    /// multiplies them by unrounded activations. The f32 copy is 6.4 times the size of
    /// Q4_1 blocks. It serves to compare the backends without 8-bit activation rounding,
    /// because that rounding turns last-bit differences into whole quantization steps.
    pub fn with_f32_activations() -> Self {
        CpuBackend {
            f32_activations: true,
        }
    }
}

fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?;
    let exp = x.broadcast_sub(&max)?.exp()?;
    let sum = exp.sum_keepdim(D::Minus1)?;
    exp.broadcast_div(&sum)
}

/// Builds the additive mask for scores laid out `[b, hkv, group * tq, tk]`, where row
/// `r * tq + j` is query position `j` of the `r`-th query head sharing a key head.
fn build_mask(
    mask: &AttentionMask,
    batch: usize,
    group: usize,
    tq: usize,
    tk: usize,
) -> Result<Tensor> {
    match mask {
        AttentionMask::Causal { offset } => {
            let mut values = vec![0f32; group * tq * tk];
            for row in 0..group * tq {
                let query_position = offset + row % tq;
                for key in (query_position + 1).min(tk)..tk {
                    values[row * tk + key] = f32::NEG_INFINITY;
                }
            }
            Ok(Tensor::from_vec(
                values,
                (1, 1, group * tq, tk),
                &Device::Cpu,
            )?)
        }
        AttentionMask::Padding { lengths } => {
            let mut values = vec![0f32; batch * tk];
            for (row, &length) in lengths.iter().enumerate() {
                for key in length.min(tk)..tk {
                    values[row * tk + key] = f32::NEG_INFINITY;
                }
            }
            Ok(Tensor::from_vec(values, (batch, 1, 1, tk), &Device::Cpu)?)
        }
    }
}

impl Backend for CpuBackend {
    type Tensor = Tensor;
    type Weight = CpuWeight;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn upload(&self, host: &Tensor) -> Result<Tensor> {
        Ok(host.to_dtype(DType::F32)?.contiguous()?)
    }

    fn upload_weight(&self, host: &Tensor) -> Result<CpuWeight> {
        Ok(CpuWeight::Dense(host.to_dtype(DType::F32)?.contiguous()?))
    }

    fn upload_quantized(&self, host: QTensor) -> Result<CpuWeight> {
        let format = match host.dtype() {
            GgmlDType::Q4_1 => Some(BlockFormat::Q4_1),
            GgmlDType::Q8_0 => Some(BlockFormat::Q8_0),
            _ => None,
        };
        if format.is_some() && self.f32_activations {
            return Ok(CpuWeight::Dense(host.dequantize(&Device::Cpu)?));
        }
        if let (Some(format), Ok((rows, columns))) = (format, host.shape().dims2()) {
            let data = host.data()?.into_owned();
            return Ok(CpuWeight::Blocks(QuantizedMatrix {
                format,
                rows,
                columns,
                data,
            }));
        }
        let table = Arc::new(host);
        let matmul = QMatMul::from_arc(table.clone())?;
        Ok(CpuWeight::Quantized { matmul, table })
    }

    fn embedding(&self, table: &CpuWeight, ids: &[u32], batch: usize) -> Result<Tensor> {
        let ids_tensor = Tensor::from_slice(ids, ids.len(), &Device::Cpu)?;
        let rows = match table {
            CpuWeight::Dense(weights) => weights.index_select(&ids_tensor, 0)?,
            CpuWeight::Quantized { table, .. } => {
                table.embedding(&ids_tensor)?.to_dtype(DType::F32)?
            }
            CpuWeight::Blocks(matrix) => Tensor::from_vec(
                matrix.rows_f32(ids),
                (ids.len(), matrix.columns),
                &Device::Cpu,
            )?,
        };
        let channels = rows.dim(1)?;
        Ok(rows.reshape((batch, ids.len() / batch, channels))?)
    }

    fn linear(&self, x: &Tensor, w: &CpuWeight, bias: Option<&Tensor>) -> Result<Tensor> {
        let y = match w {
            CpuWeight::Dense(weights) => x.broadcast_matmul(&weights.t()?)?,
            CpuWeight::Quantized { matmul, .. } => matmul.forward(x)?,
            CpuWeight::Blocks(matrix) => {
                let mut dims = x.dims().to_vec();
                let columns = dims.pop().unwrap_or(0);
                let tokens = x.elem_count() / columns.max(1);
                let values = x.flatten_all()?.to_vec1::<f32>()?;
                dims.push(matrix.rows);
                Tensor::from_vec(matrix.matmul(&values, tokens), dims, &Device::Cpu)?
            }
        };
        Ok(match bias {
            Some(bias) => y.broadcast_add(bias)?,
            None => y,
        })
    }

    fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        Ok(a.broadcast_add(b)?)
    }

    fn layer_norm(&self, x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centered = x.broadcast_sub(&mean)?;
        let variance = centered.sqr()?.mean_keepdim(D::Minus1)?;
        let normalized = centered.broadcast_div(&(variance + eps)?.sqrt()?)?;
        Ok(normalized.broadcast_mul(gamma)?.broadcast_add(beta)?)
    }

    fn rms_norm(&self, x: &Tensor, gamma: &Tensor, eps: f64) -> Result<Tensor> {
        let mean_square = x.sqr()?.mean_keepdim(D::Minus1)?;
        let normalized = x.broadcast_div(&(mean_square + eps)?.sqrt()?)?;
        Ok(normalized.broadcast_mul(gamma)?)
    }

    fn gelu(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.gelu_erf()?)
    }

    fn silu_mul(&self, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        Ok((gate.silu()? * up)?)
    }

    fn split_heads(&self, x: &Tensor, heads: usize) -> Result<Tensor> {
        let (batch, seq, channels) = x.dims3()?;
        Ok(x.reshape((batch, seq, heads, channels / heads))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    fn merge_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, heads, seq, head_dim) = x.dims4()?;
        Ok(x.transpose(1, 2)?
            .contiguous()?
            .reshape((batch, seq, heads * head_dim))?)
    }

    fn rope(&self, x: &Tensor, offset: usize, base: f32) -> Result<Tensor> {
        let (batch, heads, seq, head_dim) = x.dims4()?;
        let half = head_dim / 2;
        let (cos, sin) = super::rope_tables(seq, head_dim, offset, base);

        let mut values = x.flatten_all()?.to_vec1::<f32>()?;
        for row in values.chunks_exact_mut(head_dim).enumerate() {
            let (index, row) = row;
            let t = index % seq;
            for i in 0..half {
                let (c, s) = (cos[t * half + i], sin[t * half + i]);
                let (x0, x1) = (row[2 * i], row[2 * i + 1]);
                row[2 * i] = x0 * c - x1 * s;
                row[2 * i + 1] = x0 * s + x1 * c;
            }
        }
        Ok(Tensor::from_vec(
            values,
            (batch, heads, seq, head_dim),
            &Device::Cpu,
        )?)
    }

    fn append_sequence(&self, cache: Option<&Tensor>, new: &Tensor) -> Result<Tensor> {
        Ok(match cache {
            Some(cache) => Tensor::cat(&[cache, new], 2)?,
            None => new.clone(),
        })
    }

    fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: &AttentionMask,
    ) -> Result<Tensor> {
        let (batch, query_heads, tq, head_dim) = q.dims4()?;
        let (_, kv_heads, tk, _) = k.dims4()?;
        let group = query_heads / kv_heads;

        // Grouped-query attention without copying the cache: the query heads that share
        // a key head are stacked along the sequence dimension.
        let q = q.reshape((batch, kv_heads, group * tq, head_dim))?;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?;
        let scores = scores.broadcast_add(&build_mask(mask, batch, group, tq, tk)?)?;
        let probabilities = softmax_last_dim(&scores)?;
        let context = probabilities.matmul(v)?;
        Ok(context.reshape((batch, query_heads, tq, head_dim))?)
    }

    fn mean_pool(&self, x: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let (batch, seq, _) = x.dims3()?;
        let mut weights = vec![0f32; batch * seq];
        for (row, &length) in lengths.iter().enumerate() {
            for position in 0..length.min(seq) {
                weights[row * seq + position] = 1.0 / length as f32;
            }
        }
        let weights = Tensor::from_vec(weights, (batch, seq, 1), &Device::Cpu)?;
        Ok(x.broadcast_mul(&weights)?.sum(1)?)
    }

    fn l2_normalize(&self, x: &Tensor) -> Result<Tensor> {
        // Same floor as torch.nn.functional.normalize (eps = 1e-12).
        let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(1e-12)?;
        Ok(x.broadcast_div(&norm)?)
    }

    fn last_position(&self, x: &Tensor) -> Result<Tensor> {
        let seq = x.dim(1)?;
        Ok(x.narrow(1, seq - 1, 1)?.contiguous()?)
    }

    fn dims(&self, x: &Tensor) -> Vec<usize> {
        x.dims().to_vec()
    }

    async fn read(&self, x: &Tensor) -> Result<Vec<f32>> {
        Ok(x.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    }
}
