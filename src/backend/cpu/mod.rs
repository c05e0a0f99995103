//! The CPU backend: candle-core tensors, in the browser (wasm32, SIMD128) and natively.

mod fused;
// Native builds use it only in tests; the page packs every dense weight.
#[cfg_attr(
    not(all(target_arch = "wasm32", target_feature = "simd128")),
    allow(dead_code)
)]
mod packed;
mod parallel;
mod quantized;
mod weight_bytes;

#[cfg(not(target_arch = "wasm32"))]
pub use parallel::{set_threads, threads};
pub use quantized::{BlockFormat, QuantizedMatrix};
pub use weight_bytes::WeightBytes;

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Storage, Tensor, D};

use super::{AttentionMask, Backend};
use crate::error::Result;

/// A weight matrix `[n, k]` kept as loaded: dense f32, or GGUF blocks that are never
/// expanded to an f32 copy. Q4_1 and Q8_0 use this crate's ggml-compatible kernel;
/// other block formats use candle's quantized matmul.
pub enum CpuWeight {
    Dense(Tensor),
    /// Dense f32 in panels for the page's SIMD kernel (wasm only).
    Packed(packed::PackedMatrix),
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

/// Calls `f` with the f32 values of `tensor` in row-major order, without a copy when
/// the tensor is already contiguous.
fn with_values<R>(tensor: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let tensor = tensor.to_dtype(DType::F32)?.contiguous()?;
    let (storage, layout) = tensor.storage_and_layout();
    let Storage::Cpu(storage) = &*storage else {
        return Err(candle_core::Error::Msg(format!(
            "the CPU backend was given a tensor on {:?}",
            tensor.device()
        ))
        .into());
    };
    let values = storage.as_slice::<f32>()?;
    let (start, end) = layout
        .contiguous_offsets()
        .expect("a contiguous tensor has contiguous offsets");
    Ok(f(&values[start..end]))
}

/// Returns the number of elements from one head to the next of a `[b, h, t, d]` f32 CPU
/// tensor whose rows of `d` are contiguous and whose heads are evenly spaced, as in a
/// [`CpuSequence`] view. Other layouts give `None`.
fn head_stride(tensor: &Tensor) -> Option<usize> {
    let (batch, heads, seq, head_dim) = tensor.dims4().ok()?;
    let (storage, layout) = tensor.storage_and_layout();
    let stride = layout.stride();
    let evenly_spaced = stride[3] == 1
        && (seq == 1 || stride[2] == head_dim)
        && (batch == 1 || stride[0] == heads * stride[1])
        && stride[1] >= seq * head_dim;
    let f32_on_cpu =
        matches!(&*storage, Storage::Cpu(storage) if storage.as_slice::<f32>().is_ok());
    (evenly_spaced && f32_on_cpu && batch * heads > 0).then_some(stride[1])
}

/// Calls `f` with the values of a tensor for which [`head_stride`] is `Some(stride)`,
/// from its first element to the end of its last head.
fn with_head_rows<R>(tensor: &Tensor, stride: usize, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (batch, heads, seq, head_dim) = tensor.dims4()?;
    let (storage, layout) = tensor.storage_and_layout();
    let Storage::Cpu(storage) = &*storage else {
        return Err(
            candle_core::Error::Msg("the CPU backend was given a GPU tensor".into()).into(),
        );
    };
    let start = layout.start_offset();
    let len = (batch * heads - 1) * stride + seq * head_dim;
    Ok(f(&storage.as_slice::<f32>()?[start..start + len]))
}

/// Positions added to a KV cache's room each time it fills up.
const SEQUENCE_GROWTH: usize = 128;

/// A KV cache with room to grow: `buffer` is `[b, h, capacity, d]` and its first `length`
/// positions are filled. [`Backend::append_sequence`] writes new positions into the
/// room, and copies the cache only when the room runs out.
pub struct CpuSequence {
    buffer: Tensor,
    length: usize,
}

/// Returns an error naming `operation` unless `x`'s last dimension is `expected`. The
/// fused kernels assert their shapes, so a model file whose shapes disagree fails here
/// instead of panicking.
fn expect_last_dim(x: &Tensor, expected: usize, operation: &str) -> Result<()> {
    if x.dims().last() == Some(&expected) {
        return Ok(());
    }
    Err(candle_core::Error::Msg(format!(
        "{operation}: an input of shape {:?} does not end in {expected}",
        x.dims()
    ))
    .into())
}

/// Returns `dims` with its last entry replaced by `last`.
fn with_last_dim(dims: &[usize], last: usize) -> Vec<usize> {
    let mut dims = dims.to_vec();
    dims.pop();
    dims.push(last);
    dims
}

/// Computes `x @ w.t() + bias` for a dense weight of shape `(n, k)` with
/// `product(x, rows, bias)`, after checking the shapes. The result has `x`'s shape with
/// `n` in place of `k`.
fn dense_product(
    x: &Tensor,
    (n, k): (usize, usize),
    bias: Option<&Tensor>,
    product: impl FnOnce(&[f32], usize, Option<&[f32]>) -> Vec<f32>,
) -> Result<Tensor> {
    expect_last_dim(x, k, "linear")?;
    if let Some(bias) = bias {
        expect_last_dim(&bias.flatten_all()?, n, "linear bias")?;
    }
    let rows = x.elem_count() / k.max(1);
    let values = with_values(x, |x| match bias {
        Some(bias) => with_values(bias, |bias| product(x, rows, Some(bias))),
        None => Ok(product(x, rows, None)),
    })??;
    cpu_tensor(values, &with_last_dim(x.dims(), n))
}

fn cpu_tensor(values: Vec<f32>, dims: &[usize]) -> Result<Tensor> {
    Ok(Tensor::from_vec(values, dims, &Device::Cpu)?)
}

impl Backend for CpuBackend {
    type Tensor = Tensor;
    type Weight = CpuWeight;
    type Sequence = CpuSequence;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn upload(&self, host: &Tensor) -> Result<Tensor> {
        Ok(host.to_dtype(DType::F32)?.contiguous()?)
    }

    fn upload_weight(&self, host: &Tensor) -> Result<CpuWeight> {
        let dense = host.to_dtype(DType::F32)?.contiguous()?;
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if let Ok((n, k)) = dense.dims2() {
            if let Some(matrix) = with_values(&dense, |w| packed::PackedMatrix::pack(w, n, k))? {
                return Ok(CpuWeight::Packed(matrix));
            }
        }
        Ok(CpuWeight::Dense(dense))
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
            return Ok(CpuWeight::Blocks(QuantizedMatrix {
                format,
                rows,
                columns,
                data: WeightBytes::copy_of(&host.data()?),
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
            CpuWeight::Packed(matrix) => {
                let (n, _) = matrix.dims();
                if let Some(&id) = ids.iter().find(|&&id| id as usize >= n) {
                    return Err(candle_core::Error::Msg(format!(
                        "row {id} is beyond the {n} rows of the embedding table"
                    ))
                    .into());
                }
                let values = ids.iter().flat_map(|&id| matrix.row(id as usize)).collect();
                Tensor::from_vec(values, (ids.len(), matrix.dims().1), &Device::Cpu)?
            }
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
            CpuWeight::Dense(weights) => {
                let (n, k) = weights.dims2()?;
                return with_values(weights, |w| {
                    dense_product(x, (n, k), bias, |x, rows, bias| {
                        fused::linear(x, rows, w, n, bias)
                    })
                })?;
            }
            CpuWeight::Packed(matrix) => {
                return dense_product(x, matrix.dims(), bias, |x, rows, bias| {
                    matrix.linear(x, rows, bias)
                });
            }
            CpuWeight::Quantized { matmul, .. } => matmul.forward(x)?,
            CpuWeight::Blocks(matrix) => {
                expect_last_dim(x, matrix.columns, "linear")?;
                let tokens = x.elem_count() / matrix.columns.max(1);
                let values = with_values(x, |x| matrix.matmul(x, tokens))?;
                cpu_tensor(values, &with_last_dim(x.dims(), matrix.rows))?
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
        expect_last_dim(x, gamma.elem_count(), "layer norm")?;
        expect_last_dim(&beta.flatten_all()?, gamma.elem_count(), "layer norm bias")?;
        let values = with_values(x, |x| {
            with_values(gamma, |gamma| {
                with_values(beta, |beta| fused::layer_norm(x, gamma, beta, eps as f32))
            })
        })???;
        cpu_tensor(values, x.dims())
    }

    fn rms_norm(&self, x: &Tensor, gamma: &Tensor, eps: f64) -> Result<Tensor> {
        expect_last_dim(x, gamma.elem_count(), "RMS norm")?;
        let values = with_values(x, |x| {
            with_values(gamma, |gamma| fused::rms_norm(x, gamma, eps as f32))
        })??;
        cpu_tensor(values, x.dims())
    }

    fn gelu(&self, x: &Tensor) -> Result<Tensor> {
        let mut values = with_values(x, <[f32]>::to_vec)?;
        fused::gelu_erf(&mut values);
        cpu_tensor(values, x.dims())
    }

    fn silu_mul(&self, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        if gate.dims() != up.dims() {
            return Err(candle_core::Error::Msg(format!(
                "silu_mul: gate {:?} and up {:?} differ in shape",
                gate.dims(),
                up.dims()
            ))
            .into());
        }
        let values = with_values(gate, |gate| with_values(up, |up| fused::silu_mul(gate, up)))??;
        cpu_tensor(values, gate.dims())
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

    fn append_sequence(&self, cache: Option<CpuSequence>, new: &Tensor) -> Result<CpuSequence> {
        let new = new.to_dtype(DType::F32)?.contiguous()?;
        let (batch, heads, added, head_dim) = new.dims4()?;
        let (buffer, length) = match cache {
            Some(cache) => {
                let (b, h, capacity, d) = cache.buffer.dims4()?;
                if (b, h, d) != (batch, heads, head_dim) {
                    return Err(candle_core::Error::Msg(format!(
                        "cannot append positions of shape {:?} to a cache of shape {:?}",
                        new.dims(),
                        cache.buffer.dims()
                    ))
                    .into());
                }
                if cache.length + added <= capacity {
                    cache.buffer.slice_set(&new, 2, cache.length)?;
                    return Ok(CpuSequence {
                        length: cache.length + added,
                        buffer: cache.buffer,
                    });
                }
                (Some(cache.buffer), cache.length)
            }
            None => (None, 0),
        };
        let capacity = (length + added).next_multiple_of(SEQUENCE_GROWTH);
        let grown = Tensor::zeros((batch, heads, capacity, head_dim), DType::F32, &Device::Cpu)?;
        if let Some(buffer) = buffer {
            grown.slice_set(&buffer, 2, 0)?;
        }
        grown.slice_set(&new, 2, length)?;
        Ok(CpuSequence {
            buffer: grown,
            length: length + added,
        })
    }

    fn sequence_tensor(&self, sequence: &CpuSequence) -> Result<Tensor> {
        Ok(sequence.buffer.narrow(2, 0, sequence.length)?)
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
        if batch * kv_heads == 0 {
            return Ok(q.zeros_like()?);
        }
        // Grouped-query attention without copying the cache: the query heads that share
        // a key head are one block of rows.
        // A KV cache view is read in place when keys and values share a head stride;
        // other layouts are copied into contiguous tensors first.
        let (k, v, kv_stride) = match (head_stride(k), head_stride(v)) {
            (Some(k_stride), Some(v_stride)) if k_stride == v_stride => {
                (k.clone(), v.clone(), k_stride)
            }
            _ => (
                k.to_dtype(DType::F32)?.contiguous()?,
                v.to_dtype(DType::F32)?.contiguous()?,
                tk * head_dim,
            ),
        };
        // Grouped-query attention without copying the cache: the query heads that share
        // a key head are one block of rows.
        let shape = fused::AttentionShape {
            batch,
            kv_heads,
            group: query_heads / kv_heads,
            tq,
            tk,
            head_dim,
            kv_stride,
        };
        let visible = match mask {
            AttentionMask::Padding { lengths } => fused::Visible::Prefix { lengths },
            AttentionMask::Causal { offset } => fused::Visible::Causal { offset: *offset },
        };
        let values = with_values(q, |q| {
            with_head_rows(&k, shape.kv_stride, |k| {
                with_head_rows(&v, shape.kv_stride, |v| {
                    fused::attention(q, k, v, shape, &visible)
                })
            })
        })???;
        cpu_tensor(values, q.dims())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatched_shapes_return_errors() {
        let backend = CpuBackend::new();
        let x = Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap();
        let four = Tensor::ones(4, DType::F32, &Device::Cpu).unwrap();
        let weight = backend
            .upload_weight(&Tensor::ones((8, 4), DType::F32, &Device::Cpu).unwrap())
            .unwrap();

        let linear = backend.linear(&x, &weight, None).err().expect("linear");
        assert!(linear.to_string().contains("does not end in 4"), "{linear}");
        assert!(backend.layer_norm(&x, &four, &four, 1e-5).is_err());
        assert!(backend.rms_norm(&x, &four, 1e-5).is_err());
        assert!(backend.silu_mul(&x, &four).is_err());
    }
}
