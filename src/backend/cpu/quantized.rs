//! GGUF block-quantized matrix × f32 activations, computed the way ggml's CPU backend
//! computes it: each activation row is quantized to 8-bit blocks (Q8_1 for Q4_1
//! weights, Q8_0 for Q8_0 weights) and dotted block by block in integers.
//!
//! Matching ggml's rounding (block scales stored as f16, `s = f16(d × Σq)`) keeps the
//! logits within float noise of llama.cpp's on the same file.
//! Block layouts follow ggml's `block_q4_1` and `block_q8_0` (ggml-common.h).

use half::f16;

/// Elements per block for every format handled here.
pub const BLOCK: usize = 32;

/// The formats this kernel handles; others use candle's quantized matmul.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockFormat {
    /// 20 bytes: f16 scale `d`, f16 minimum `m`, 16 bytes of nibbles; `x = d·q + m`.
    Q4_1,
    /// 34 bytes: f16 scale `d`, 32 signed bytes; `x = d·q`.
    Q8_0,
}

impl BlockFormat {
    pub fn block_bytes(self) -> usize {
        match self {
            BlockFormat::Q4_1 => 20,
            BlockFormat::Q8_0 => 34,
        }
    }
}

/// One quantized activation block: the f16-rounded scale, `s = d·Σq` (Q8_1 only) and the values.
#[derive(Clone, Copy)]
struct ActivationBlock {
    d: f32,
    s: f32,
    qs: [i8; BLOCK],
}

fn read_f16(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// ggml's `quantize_row_q8_1` (and `q8_0`, which is the same without `s`).
fn quantize_activations(x: &[f32]) -> Vec<ActivationBlock> {
    x.chunks_exact(BLOCK)
        .map(|chunk| {
            let amax = chunk.iter().fold(0f32, |max, v| max.max(v.abs()));
            let d = amax / 127.0;
            let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
            let mut qs = [0i8; BLOCK];
            let mut sum = 0i32;
            for (q, &value) in qs.iter_mut().zip(chunk) {
                // ggml's AVX path rounds half to even (_MM_ROUND_NEAREST).
                *q = (value * inverse).round_ties_even() as i8;
                sum += *q as i32;
            }
            ActivationBlock {
                d: f16::from_f32(d).to_f32(),
                s: f16::from_f32(sum as f32 * d).to_f32(),
                qs,
            }
        })
        .collect()
}

fn dot_q4_1(row: &[u8], activations: &[ActivationBlock]) -> f32 {
    let mut total = 0f32;
    for (block, activation) in row.chunks_exact(20).zip(activations) {
        let d = read_f16(block, 0);
        let m = read_f16(block, 2);
        let nibbles = &block[4..20];
        let mut sum = 0i32;
        for j in 0..16 {
            let low = (nibbles[j] & 0x0f) as i32;
            let high = (nibbles[j] >> 4) as i32;
            sum += low * activation.qs[j] as i32 + high * activation.qs[j + 16] as i32;
        }
        total += d * activation.d * sum as f32 + m * activation.s;
    }
    total
}

fn dot_q8_0(row: &[u8], activations: &[ActivationBlock]) -> f32 {
    let mut total = 0f32;
    for (block, activation) in row.chunks_exact(34).zip(activations) {
        let d = read_f16(block, 0);
        let mut sum = 0i32;
        for j in 0..BLOCK {
            sum += (block[2 + j] as i8) as i32 * activation.qs[j] as i32;
        }
        total += sum as f32 * (d * activation.d);
    }
    total
}

/// A quantized weight matrix `[rows, columns]` in ggml's row-major block layout.
pub struct QuantizedMatrix {
    pub format: BlockFormat,
    pub rows: usize,
    pub columns: usize,
    pub data: Vec<u8>,
}

impl QuantizedMatrix {
    fn row_bytes(&self) -> usize {
        self.columns / BLOCK * self.format.block_bytes()
    }

    /// `y = x @ w.t()` for `x` laid out `[tokens, columns]`; returns `[tokens, rows]`.
    pub fn matmul(&self, x: &[f32], tokens: usize) -> Vec<f32> {
        let row_bytes = self.row_bytes();
        let activations: Vec<Vec<ActivationBlock>> = x
            .chunks_exact(self.columns)
            .map(quantize_activations)
            .collect();
        let dot = match self.format {
            BlockFormat::Q4_1 => dot_q4_1,
            BlockFormat::Q8_0 => dot_q8_0,
        };

        // Rows are independent; split them across threads where threads exist.
        let chunks = self.data.chunks_exact(row_bytes).enumerate();
        let results: Vec<(usize, Vec<f32>)> = parallel_map(chunks.collect(), |(row, weights)| {
            let mut column = vec![0f32; tokens];
            for (token, activation) in activations.iter().enumerate() {
                column[token] = dot(weights, activation);
            }
            (row, column)
        });
        let mut out = vec![0f32; tokens * self.rows];
        for (row, column) in results {
            for (token, value) in column.into_iter().enumerate() {
                out[token * self.rows + row] = value;
            }
        }
        out
    }

    /// Rows `ids` expanded to f32, for embedding lookup.
    pub fn rows_f32(&self, ids: &[u32]) -> Vec<f32> {
        let row_bytes = self.row_bytes();
        let mut out = Vec::with_capacity(ids.len() * self.columns);
        for &id in ids {
            let row = &self.data[id as usize * row_bytes..(id as usize + 1) * row_bytes];
            for block in row.chunks_exact(self.format.block_bytes()) {
                let d = read_f16(block, 0);
                match self.format {
                    BlockFormat::Q4_1 => {
                        let m = read_f16(block, 2);
                        let nibbles = &block[4..20];
                        let mut values = [0f32; BLOCK];
                        for j in 0..16 {
                            values[j] = d * (nibbles[j] & 0x0f) as f32 + m;
                            values[j + 16] = d * (nibbles[j] >> 4) as f32 + m;
                        }
                        out.extend_from_slice(&values);
                    }
                    BlockFormat::Q8_0 => {
                        out.extend(block[2..].iter().map(|&q| d * (q as i8) as f32))
                    }
                }
            }
        }
        out
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn parallel_map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
    use rayon::prelude::*;
    items.into_par_iter().map(f).collect()
}

#[cfg(target_arch = "wasm32")]
fn parallel_map<T, R>(items: Vec<T>, f: impl Fn(T) -> R) -> Vec<R> {
    items.into_iter().map(f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    fn reference(
        format: BlockFormat,
        rows: usize,
        columns: usize,
        tokens: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let weights: Vec<f32> = (0..rows * columns)
            .map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * 0.3)
            .collect();
        let x: Vec<f32> = (0..tokens * columns)
            .map(|i| (i * 53 % 97) as f32 / 48.0 - 1.0)
            .collect();
        let dtype = match format {
            BlockFormat::Q4_1 => GgmlDType::Q4_1,
            BlockFormat::Q8_0 => GgmlDType::Q8_0,
        };
        let host = Tensor::from_vec(weights, (rows, columns), &Device::Cpu).unwrap();
        let quantized = QTensor::quantize(&host, dtype).unwrap();
        let matrix = QuantizedMatrix {
            format,
            rows,
            columns,
            data: quantized.data().unwrap().to_vec(),
        };
        let ours = matrix.matmul(&x, tokens);

        // Independent check: dequantized weights times unquantized x, in f64.
        let dequantized = quantized
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut exact = vec![0f32; tokens * rows];
        for t in 0..tokens {
            for r in 0..rows {
                let sum: f64 = (0..columns)
                    .map(|c| dequantized[r * columns + c] as f64 * x[t * columns + c] as f64)
                    .sum();
                exact[t * rows + r] = sum as f32;
            }
        }
        (ours, exact)
    }

    #[test]
    fn q4_1_matmul_close_to_dequantized() {
        let (ours, exact) = reference(BlockFormat::Q4_1, 7, 96, 3);
        for (a, b) in ours.iter().zip(&exact) {
            // Activation quantization to 8 bits bounds the error at about 1% of the row's scale.
            assert!((a - b).abs() < 0.05 + 0.01 * b.abs(), "{a} vs {b}");
        }
    }

    #[test]
    fn q8_0_matmul_close_to_dequantized() {
        let (ours, exact) = reference(BlockFormat::Q8_0, 5, 64, 2);
        for (a, b) in ours.iter().zip(&exact) {
            assert!((a - b).abs() < 0.05 + 0.01 * b.abs(), "{a} vs {b}");
        }
    }

    #[test]
    fn rows_f32_matches_candle_dequantize() {
        let values: Vec<f32> = (0..4 * 64).map(|i| (i as f32 * 0.71).sin()).collect();
        let host = Tensor::from_vec(values, (4, 64), &Device::Cpu).unwrap();
        for (format, dtype) in [
            (BlockFormat::Q4_1, GgmlDType::Q4_1),
            (BlockFormat::Q8_0, GgmlDType::Q8_0),
        ] {
            let quantized = QTensor::quantize(&host, dtype).unwrap();
            let matrix = QuantizedMatrix {
                format,
                rows: 4,
                columns: 64,
                data: quantized.data().unwrap().to_vec(),
            };
            let expected = quantized
                .dequantize(&Device::Cpu)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            assert_eq!(matrix.rows_f32(&[2]), expected[2]);
        }
    }
}
