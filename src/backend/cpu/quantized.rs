//! GGUF block-quantized matrix × f32 activations, computed the way ggml's CPU backend
//! computes it: each activation row is quantized to 8-bit blocks (Q8_1 for Q4_1
//! weights, Q8_0 for Q8_0 weights) and dotted block by block in integers.
//!
//! Matching ggml's rounding (block scales stored as f16, `s = f16(d × Σq)`) keeps the
//! logits within float noise of llama.cpp's on the same file.
//! Block layouts follow ggml's `block_q4_1` and `block_q8_0` (ggml-common.h).
//!
//! The scalar kernels here define the results. The AVX2 (x86_64, chosen at run time)
//! and SIMD128 (wasm32 built with `+simd128`) kernels in the submodules return the same
//! bits, which the tests at the end of this file check.

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

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;

use super::parallel::{for_each_chunk, rows_per_task};
use super::weight_bytes::WeightBytes;

fn read_f16(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

fn round_to_f16(value: f32) -> f32 {
    f16::from_f32(value).to_f32()
}

/// Activation rows are zero-padded to a multiple of this many blocks, so that SIMD
/// kernels load whole groups of blocks without reading past the end.
const PAD_BLOCKS: usize = 8;

/// Activation rows quantized to 8-bit blocks (ggml's Q8_1, which is Q8_0 plus `s`),
/// stored field by field so that SIMD kernels load the scales of consecutive blocks
/// with one instruction.
struct QuantizedActivations {
    /// Blocks per row, without padding.
    blocks: usize,
    /// Blocks per row, with padding: `blocks` rounded up to a multiple of `PAD_BLOCKS`.
    stride: usize,
    /// The f16-rounded scale `d` of each block.
    scales: Vec<f32>,
    /// The f16-rounded `s = d·Σq` of each block, which Q8_0 weights ignore.
    sums: Vec<f32>,
    /// `BLOCK` quantized values per block.
    values: Vec<i8>,
    /// `values` widened to i16 in the order that the SIMD128 kernels read, written by
    /// their `Kernels::prepare`. Empty for other kernels.
    widened: Vec<i16>,
    /// `values` in the order that the AVX2 Q4_1 kernel reads, written by its
    /// `Kernels::prepare`. Empty for other kernels.
    paired: Vec<i8>,
}

impl QuantizedActivations {
    /// Quantizes `x`, laid out `[rows, columns]`, one row at a time.
    fn new(x: &[f32], columns: usize, kernels: Kernels) -> Self {
        let blocks = columns / BLOCK;
        let rows = if columns == 0 { 0 } else { x.len() / columns };
        let mut activations = QuantizedActivations::zeroed(rows, blocks);
        let stride = activations.stride;
        for (row, input) in x.chunks_exact(columns.max(1)).take(rows).enumerate() {
            let first = row * stride;
            let out = ActivationRowMut {
                scales: &mut activations.scales[first..first + blocks],
                sums: &mut activations.sums[first..first + blocks],
                values: &mut activations.values[first * BLOCK..(first + blocks) * BLOCK],
            };
            // SAFETY: `kernels` came from `Kernels::detect`, which checked the CPU features.
            unsafe { (kernels.quantize)(&input[..blocks * BLOCK], out) };
        }
        activations.prepare(kernels);
        activations
    }

    fn zeroed(rows: usize, blocks: usize) -> Self {
        let stride = blocks.div_ceil(PAD_BLOCKS) * PAD_BLOCKS;
        QuantizedActivations {
            blocks,
            stride,
            scales: vec![0.0; rows * stride],
            sums: vec![0.0; rows * stride],
            values: vec![0; rows * stride * BLOCK],
            widened: Vec::new(),
            paired: Vec::new(),
        }
    }

    fn prepare(&mut self, kernels: Kernels) {
        if let Some(prepare) = kernels.prepare {
            // SAFETY: `kernels` came from `Kernels::detect`, which checked the CPU features.
            unsafe { prepare(self) };
        }
    }

    fn row(&self, row: usize) -> ActivationRow<'_> {
        let blocks = row * self.stride..(row + 1) * self.stride;
        let values = blocks.start * BLOCK..blocks.end * BLOCK;
        ActivationRow {
            blocks: self.blocks,
            scales: &self.scales[blocks.clone()],
            sums: &self.sums[blocks],
            values: &self.values[values.clone()],
            widened: self.widened.get(values.clone()).unwrap_or(&[]),
            paired: self.paired.get(values).unwrap_or(&[]),
        }
    }
}

/// One row of `QuantizedActivations`, padding included.
#[derive(Clone, Copy)]
struct ActivationRow<'a> {
    blocks: usize,
    scales: &'a [f32],
    sums: &'a [f32],
    values: &'a [i8],
    #[cfg_attr(
        not(all(target_arch = "wasm32", target_feature = "simd128")),
        allow(dead_code)
    )]
    widened: &'a [i16],
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    paired: &'a [i8],
}

impl ActivationRow<'_> {
    /// Returns the bytes per weight row after checking the arguments of a `DotKernel`:
    /// `weights` holds `rows` rows of `block_bytes`-byte blocks, `out` has room for
    /// `rows` outputs `stride` apart, and this row has its padding. The SIMD kernels rely
    /// on this check to access memory within bounds.
    fn check(
        &self,
        weights: &[u8],
        rows: usize,
        block_bytes: usize,
        out: &[f32],
        stride: usize,
    ) -> usize {
        let padded = self.blocks.div_ceil(PAD_BLOCKS) * PAD_BLOCKS;
        assert!(
            self.scales.len() == padded
                && self.sums.len() == padded
                && self.values.len() == padded * BLOCK,
            "activation row of {} blocks without its padding",
            self.blocks
        );
        let row_bytes = self.blocks * block_bytes;
        assert!(
            weights.len() >= rows * row_bytes,
            "{} weight bytes hold fewer than {rows} rows of {row_bytes} bytes",
            weights.len()
        );
        assert!(
            rows == 0 || (rows - 1) * stride < out.len(),
            "{} outputs leave no room for {rows} rows {stride} apart",
            out.len()
        );
        row_bytes
    }
}

/// The output of quantizing one activation row.
struct ActivationRowMut<'a> {
    scales: &'a mut [f32],
    sums: &'a mut [f32],
    values: &'a mut [i8],
}

impl ActivationRowMut<'_> {
    /// Checks that this output has room for the blocks of `x`; the SIMD kernels rely on
    /// this check to write within bounds.
    fn check(&self, x: &[f32]) {
        let blocks = self.scales.len();
        assert_eq!(
            x.len(),
            blocks * BLOCK,
            "input of {} values for {blocks} blocks",
            x.len()
        );
        assert_eq!(self.sums.len(), blocks, "room for {} sums", self.sums.len());
        assert_eq!(
            self.values.len(),
            x.len(),
            "room for {} values",
            self.values.len()
        );
    }
}

/// ggml's `quantize_row_q8_1` (and `q8_0`, which is the same without `s`).
fn quantize_row(x: &[f32], out: ActivationRowMut) {
    out.check(x);
    for (block, chunk) in x.chunks_exact(BLOCK).enumerate() {
        let amax = chunk.iter().fold(0f32, |max, v| max.max(v.abs()));
        let d = amax / 127.0;
        let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
        let qs = &mut out.values[block * BLOCK..(block + 1) * BLOCK];
        let mut sum = 0i32;
        for (q, &value) in qs.iter_mut().zip(chunk) {
            // ggml's AVX path rounds half to even (_MM_ROUND_NEAREST).
            *q = (value * inverse).round_ties_even() as i8;
            sum += *q as i32;
        }
        out.scales[block] = round_to_f16(d);
        out.sums[block] = round_to_f16(sum as f32 * d);
    }
}

/// Computes one Q4_1 block's term of a dot product, `d·d_a·Σq·q_a + m·s_a`.
fn q4_1_block_term(block: &[u8], activations: ActivationRow, index: usize) -> f32 {
    let d = read_f16(block, 0);
    let m = read_f16(block, 2);
    let nibbles = &block[4..20];
    let qs = &activations.values[index * BLOCK..(index + 1) * BLOCK];
    let mut sum = 0i32;
    for j in 0..16 {
        let low = (nibbles[j] & 0x0f) as i32;
        let high = (nibbles[j] >> 4) as i32;
        sum += low * qs[j] as i32 + high * qs[j + 16] as i32;
    }
    d * activations.scales[index] * sum as f32 + m * activations.sums[index]
}

/// Computes one Q8_0 block's term of a dot product, `Σq·q_a·(d·d_a)`.
fn q8_0_block_term(block: &[u8], activations: ActivationRow, index: usize) -> f32 {
    let d = read_f16(block, 0);
    let qs = &activations.values[index * BLOCK..(index + 1) * BLOCK];
    let mut sum = 0i32;
    for j in 0..BLOCK {
        sum += (block[2 + j] as i8) as i32 * qs[j] as i32;
    }
    sum as f32 * (d * activations.scales[index])
}

/// Computes dot products of weight rows with an activation row, as `DotKernel`
/// describes, from the terms that `block_term` returns. Each row's terms are added
/// block by block in order. Every SIMD kernel keeps this order, so all return the same
/// bits.
fn dot_rows(
    format: BlockFormat,
    block_term: fn(&[u8], ActivationRow, usize) -> f32,
    weights: &[u8],
    rows: usize,
    activations: ActivationRow,
    out: &mut [f32],
    stride: usize,
) {
    let bytes = format.block_bytes();
    let row_bytes = activations.check(weights, rows, bytes, out, stride);
    for row in 0..rows {
        let mut total = 0f32;
        let blocks = weights[row * row_bytes..(row + 1) * row_bytes].chunks_exact(bytes);
        for (index, block) in blocks.enumerate() {
            total += block_term(block, activations, index);
        }
        out[row * stride] = total;
    }
}

fn dot_q4_1(
    weights: &[u8],
    rows: usize,
    activations: ActivationRow,
    out: &mut [f32],
    stride: usize,
) {
    dot_rows(
        BlockFormat::Q4_1,
        q4_1_block_term,
        weights,
        rows,
        activations,
        out,
        stride,
    );
}

fn dot_q8_0(
    weights: &[u8],
    rows: usize,
    activations: ActivationRow,
    out: &mut [f32],
    stride: usize,
) {
    dot_rows(
        BlockFormat::Q8_0,
        q8_0_block_term,
        weights,
        rows,
        activations,
        out,
        stride,
    );
}

/// Dot products of `rows` consecutive weight rows with one activation row, with row `i`
/// going to `out[i * stride]`. `weights` starts at the first row and may continue past the
/// last one, and kernels may read (but ignore) those extra bytes. It is `unsafe`
/// because a SIMD implementation requires the CPU features that `Kernels::detect` checked.
type DotKernel = unsafe fn(&[u8], usize, ActivationRow, &mut [f32], usize);

/// Quantization of one activation row, `unsafe` for the same reason as `DotKernel`.
type QuantizeKernel = unsafe fn(&[f32], ActivationRowMut);

/// Fills the copy of `QuantizedActivations::values` that a dot kernel reads in place of
/// `values`, `unsafe` for the same reason as `DotKernel`.
type PrepareKernel = unsafe fn(&mut QuantizedActivations);

/// One implementation of each kernel. All implementations return identical bits.
#[derive(Clone, Copy)]
struct Kernels {
    q4_1: DotKernel,
    q8_0: DotKernel,
    quantize: QuantizeKernel,
    /// Runs after quantization, for dot kernels that read a reordered copy of the values.
    prepare: Option<PrepareKernel>,
}

impl Kernels {
    // With SIMD128 compiled in, only the tests use the scalar kernels.
    #[cfg_attr(
        all(target_arch = "wasm32", target_feature = "simd128"),
        allow(dead_code)
    )]
    const SCALAR: Kernels = Kernels {
        q4_1: dot_q4_1,
        q8_0: dot_q8_0,
        quantize: quantize_row,
        prepare: None,
    };

    /// Selects the fastest kernels this CPU supports: AVX2 with F16C on x86_64 (checked
    /// at run time), SIMD128 in wasm built with `+simd128`, and scalar code otherwise.
    fn detect() -> Kernels {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        {
            simd128::KERNELS
        }
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        {
            #[cfg(target_arch = "x86_64")]
            if avx2::is_supported() {
                return avx2::KERNELS;
            }
            Kernels::SCALAR
        }
    }

    fn dot(self, format: BlockFormat) -> DotKernel {
        match format {
            BlockFormat::Q4_1 => self.q4_1,
            BlockFormat::Q8_0 => self.q8_0,
        }
    }
}

/// Rows per kernel call when a matmul has several tokens: 16 Q8_0 rows of 1536 columns
/// take 25.5 KiB, so they stay in a 32 KiB L1 data cache while every token passes.
const ROWS_PER_PASS: usize = 16;

/// A quantized weight matrix `[rows, columns]` in ggml's row-major block layout.
pub struct QuantizedMatrix {
    pub format: BlockFormat,
    pub rows: usize,
    pub columns: usize,
    pub data: WeightBytes,
}

impl QuantizedMatrix {
    fn row_bytes(&self) -> usize {
        self.columns / BLOCK * self.format.block_bytes()
    }

    /// `y = x @ w.t()` for `x` laid out `[tokens, columns]`; returns `[tokens, rows]`.
    pub fn matmul(&self, x: &[f32], tokens: usize) -> Vec<f32> {
        self.matmul_with(Kernels::detect(), x, tokens)
    }

    fn matmul_with(&self, kernels: Kernels, x: &[f32], tokens: usize) -> Vec<f32> {
        assert_eq!(
            x.len(),
            tokens * self.columns,
            "matmul input must be [tokens, columns] = [{tokens}, {}]",
            self.columns
        );
        if tokens == 0 || self.rows == 0 {
            return vec![0f32; tokens * self.rows];
        }
        let row_bytes = self.row_bytes();
        let activations = QuantizedActivations::new(x, self.columns, kernels);
        let dot = kernels.dot(self.format);

        // Each task computes a run of rows for every token, into `[rows, tokens]` order.
        // With several tokens, it goes through `ROWS_PER_PASS` rows at a time for each
        // token, so those rows stay in the L1 cache.
        let rows_per_task = rows_per_task(self.rows, self.columns * tokens);
        let rows_per_pass = if tokens == 1 {
            rows_per_task
        } else {
            ROWS_PER_PASS
        };
        let mut by_row = vec![0f32; self.rows * tokens];
        for_each_chunk(&mut by_row, rows_per_task * tokens, |task, out| {
            let task_rows = out.len() / tokens;
            for first in (0..task_rows).step_by(rows_per_pass) {
                let rows = rows_per_pass.min(task_rows - first);
                let weights = &self.data[(task * rows_per_task + first) * row_bytes..];
                for token in 0..tokens {
                    let out = &mut out[first * tokens + token..];
                    // SAFETY: `kernels` came from `Kernels::detect`, which checked the
                    // CPU features.
                    unsafe { dot(weights, rows, activations.row(token), out, tokens) };
                }
            }
        });
        if tokens == 1 {
            return by_row;
        }

        let mut out = vec![0f32; tokens * self.rows];
        for (row, outputs) in by_row.chunks_exact(tokens).enumerate() {
            for (token, &value) in outputs.iter().enumerate() {
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

/// SIMD kernels against the scalar ones, bit for bit. Natively these compare AVX2 when
/// the CPU has it, and built for wasm they compare SIMD128.
#[cfg(test)]
mod kernel_tests {
    use super::*;

    /// splitmix64, so the cases are the same on every target.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn byte(&mut self) -> u8 {
            self.next() as u8
        }

        /// Returns a float of random sign with a magnitude in `2^-20 ..= 2^11`.
        fn float(&mut self) -> f32 {
            let magnitude = (self.next() % 1_000_000) as f32 / 1_000_000.0;
            let exponent = (self.next() % 31) as i32 - 20;
            let sign = if self.next() % 2 == 0 { 1.0 } else { -1.0 };
            sign * (1.0 + magnitude) * 2f32.powi(exponent)
        }
    }

    /// f16 bit patterns that stress the scale conversion: zeros, subnormals, the
    /// largest finite value, infinities and a NaN.
    const SPECIAL_F16: [u16; 8] = [
        0x0000, 0x8000, 0x0001, 0x03ff, 0x7bff, 0xfbff, 0x7c00, 0x7e01,
    ];

    /// Equal bits, or NaN on both sides (wasm leaves NaN payloads unspecified).
    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    /// Writes a block's f16 fields (`d`, then `m` for Q4_1) for case `case`.
    fn fill_scales(block: &mut [u8], fields: usize, case: usize, random: &mut Random) {
        for field in 0..fields {
            let bits = match case % 4 {
                0 => SPECIAL_F16[random.next() as usize % SPECIAL_F16.len()],
                _ => f16::from_f32(random.float() / 64.0).to_bits(),
            };
            block[2 * field..2 * field + 2].copy_from_slice(&bits.to_le_bytes());
        }
    }

    struct Case {
        weights: Vec<u8>,
        activations: QuantizedActivations,
    }

    /// Weight rows per case. The SIMD kernels take 8 (AVX2) or 4 (SIMD128) rows at a
    /// time and the rest one by one, and they read a partial last group from the next
    /// row's bytes except in the last row, which they copy.
    const ROWS: usize = 11;

    /// Builds `ROWS` rows of `blocks` blocks with random contents and an activation row
    /// whose values `fill` picks.
    fn case(
        format: BlockFormat,
        blocks: usize,
        seed: u64,
        fill: impl Fn(&mut Random) -> i8,
    ) -> Case {
        let mut random = Random(seed);
        let bytes = format.block_bytes();
        let mut weights: Vec<u8> = (0..ROWS * blocks * bytes).map(|_| random.byte()).collect();
        let fields = if format == BlockFormat::Q4_1 { 2 } else { 1 };
        for (index, block) in weights.chunks_exact_mut(bytes).enumerate() {
            fill_scales(block, fields, index + seed as usize, &mut random);
        }
        let mut activations = QuantizedActivations::zeroed(1, blocks);
        for index in 0..blocks {
            activations.scales[index] = if index % 5 == 3 {
                0.0
            } else {
                round_to_f16(random.float() / 128.0)
            };
            activations.sums[index] = round_to_f16(random.float());
        }
        for value in &mut activations.values[..blocks * BLOCK] {
            *value = fill(&mut random);
        }
        activations.prepare(Kernels::detect());
        Case {
            weights,
            activations,
        }
    }

    fn assert_dots_match(format: BlockFormat, case: &Case, label: &str) {
        let simd = Kernels::detect().dot(format);
        let scalar = Kernels::SCALAR.dot(format);
        let row = case.activations.row(0);
        // Outputs two apart, as with two tokens.
        let mut expected = [0f32; 2 * ROWS];
        let mut actual = [0f32; 2 * ROWS];
        // SAFETY: `Kernels::detect` checked the CPU features.
        unsafe {
            scalar(&case.weights, ROWS, row, &mut expected, 2);
            simd(&case.weights, ROWS, row, &mut actual, 2);
        }
        for (index, (e, a)) in expected.iter().zip(&actual).enumerate() {
            assert!(
                same(*e, *a),
                "{format:?} {label}, output {index}: scalar {e:e}, SIMD {a:e}"
            );
        }
    }

    /// Block counts that cover whole SIMD groups, partial ones and the model's widths.
    const BLOCK_COUNTS: [usize; 13] = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 18, 48];

    #[test]
    fn simd_dots_match_scalar_on_random_blocks() {
        for format in [BlockFormat::Q4_1, BlockFormat::Q8_0] {
            for blocks in BLOCK_COUNTS {
                for seed in 0..8 {
                    let case = case(format, blocks, seed * 1000 + blocks as u64, |random| {
                        random.byte() as i8
                    });
                    assert_dots_match(format, &case, &format!("{blocks} blocks, seed {seed}"));
                }
            }
        }
    }

    #[test]
    fn simd_dots_match_scalar_on_extreme_values() {
        for format in [BlockFormat::Q4_1, BlockFormat::Q8_0] {
            for blocks in [8, 17] {
                for (name, activation) in [("-128", -128i8), ("127", 127), ("0", 0)] {
                    // Weight bytes 0x00 are nibbles 0 and Q8_0 value 0, 0xff are nibbles 15
                    // and Q8_0 -1, and 0x80 and 0x7f are the Q8_0 extremes.
                    for weight_byte in [0x00u8, 0xff, 0x80, 0x7f] {
                        let mut case = case(format, blocks, 7, |_| activation);
                        let bytes = format.block_bytes();
                        let first_value = if format == BlockFormat::Q4_1 { 4 } else { 2 };
                        for block in case.weights.chunks_exact_mut(bytes) {
                            block[first_value..].fill(weight_byte);
                        }
                        let label = format!(
                            "{blocks} blocks, activations {name}, weights {weight_byte:#04x}"
                        );
                        assert_dots_match(format, &case, &label);
                    }
                }
            }
        }
    }

    #[test]
    fn simd_dots_match_scalar_on_large_sums() {
        // Weight bytes 0xff (nibbles 15, Q8_0 value -1) or 0x7f (nibbles 15 and 7, Q8_0
        // value 127) with activations in 64..128 give block sums of 15 to 16 significant
        // bits. `Σ·d_a` is then inexact, so a change in the order of the multiplies shows.
        for format in [BlockFormat::Q4_1, BlockFormat::Q8_0] {
            for weight_byte in [0xffu8, 0x7f] {
                for seed in 0..8 {
                    let mut case = case(format, 18, 100 + seed, |random| {
                        (64 + random.next() % 64) as i8
                    });
                    let bytes = format.block_bytes();
                    let first_value = if format == BlockFormat::Q4_1 { 4 } else { 2 };
                    for (index, block) in case.weights.chunks_exact_mut(bytes).enumerate() {
                        block[first_value..].fill(weight_byte);
                        let d = f16::from_f32(0.013 + index as f32 * 1e-4).to_bits();
                        block[..2].copy_from_slice(&d.to_le_bytes());
                    }
                    for (index, scale) in case.activations.scales.iter_mut().enumerate() {
                        *scale = round_to_f16(0.0071 + index as f32 * 1.3e-5);
                    }
                    let label = format!("weights {weight_byte:#04x}, seed {seed}");
                    assert_dots_match(format, &case, &label);
                }
            }
        }
    }

    #[test]
    fn simd_dots_match_scalar_with_zero_scales() {
        for format in [BlockFormat::Q4_1, BlockFormat::Q8_0] {
            let mut case = case(format, 18, 11, |random| random.byte() as i8);
            for block in case.weights.chunks_exact_mut(format.block_bytes()) {
                block[..2].fill(0);
            }
            assert_dots_match(format, &case, "zero weight scales");
            case.activations.scales.fill(0.0);
            case.activations.sums.fill(0.0);
            assert_dots_match(format, &case, "zero weight and activation scales");
        }
    }

    fn assert_quantization_matches(x: &[f32], label: &str) {
        let columns = x.len();
        let expected = QuantizedActivations::new(x, columns, Kernels::SCALAR);
        let actual = QuantizedActivations::new(x, columns, Kernels::detect());
        assert_eq!(actual.values, expected.values, "values of {label}");
        for (block, (a, e)) in actual.scales.iter().zip(&expected.scales).enumerate() {
            assert!(
                same(*a, *e),
                "scale of block {block} of {label}: scalar {e:e}, SIMD {a:e}"
            );
        }
        for (block, (a, e)) in actual.sums.iter().zip(&expected.sums).enumerate() {
            assert!(
                same(*a, *e),
                "sum of block {block} of {label}: scalar {e:e}, SIMD {a:e}"
            );
        }
    }

    #[test]
    fn simd_quantization_matches_scalar_on_random_rows() {
        let mut random = Random(3);
        for blocks in [1, 2, 18, 48] {
            let x: Vec<f32> = (0..blocks * BLOCK).map(|_| random.float()).collect();
            assert_quantization_matches(&x, &format!("{blocks} random blocks"));
        }
    }

    #[test]
    fn simd_quantization_matches_scalar_on_special_values() {
        let cases: [(&str, fn(usize) -> f32); 13] = [
            // With a maximum of 127 the scale is 1, so `x.5` values are exact ties.
            (
                "ties to even",
                |i| if i == 0 { 127.0 } else { i as f32 - 15.5 },
            ),
            ("negative ties", |i| {
                if i == 0 {
                    -127.0
                } else {
                    -(i as f32) - 0.5
                }
            }),
            ("zeros", |_| 0.0),
            ("signed zeros", |i| if i % 2 == 0 { -0.0 } else { 0.0 }),
            ("a NaN", |i| if i == 3 { f32::NAN } else { i as f32 }),
            ("all NaN", |_| f32::NAN),
            (
                "an infinity",
                |i| if i == 3 { f32::INFINITY } else { i as f32 },
            ),
            ("a negative infinity", |i| {
                if i == 3 {
                    f32::NEG_INFINITY
                } else {
                    1.0
                }
            }),
            ("values near f32::MAX", |i| (i as f32 - 16.0) * 1e37),
            // A subnormal maximum gives a scale whose reciprocal overflows to infinity.
            ("subnormals", |i| (i as f32 - 16.0) * 1e-44),
            ("one subnormal", |i| if i == 5 { 1e-40 } else { 0.0 }),
            ("values below the smallest f16 normal", |i| {
                (i as f32 - 16.0) * 7e-6
            }),
            (
                "a negative zero maximum",
                |i| if i == 0 { -0.0 } else { 0.0 },
            ),
        ];
        for (label, fill) in cases {
            let x: Vec<f32> = (0..BLOCK).map(fill).collect();
            assert_quantization_matches(&x, label);
        }
    }

    #[test]
    fn simd_matmul_matches_scalar() {
        let mut random = Random(5);
        for format in [BlockFormat::Q4_1, BlockFormat::Q8_0] {
            // 300 rows of 288 columns span several parallel tasks natively.
            for (rows, columns, tokens) in [(7, 32, 1), (300, 288, 1), (300, 288, 3), (33, 576, 5)]
            {
                let bytes = format.block_bytes();
                let mut data: Vec<u8> = (0..rows * columns / BLOCK * bytes)
                    .map(|_| random.byte())
                    .collect();
                let fields = if format == BlockFormat::Q4_1 { 2 } else { 1 };
                for block in data.chunks_exact_mut(bytes) {
                    fill_scales(block, fields, 1, &mut random);
                }
                let matrix = QuantizedMatrix {
                    format,
                    rows,
                    columns,
                    data: WeightBytes::copy_of(&data),
                };
                let x: Vec<f32> = (0..tokens * columns).map(|_| random.float()).collect();
                let expected = matrix.matmul_with(Kernels::SCALAR, &x, tokens);
                let actual = matrix.matmul(&x, tokens);
                assert_eq!(actual.len(), expected.len());
                for (index, (a, e)) in actual.iter().zip(&expected).enumerate() {
                    let shape = format!("{format:?} {rows}x{columns}, {tokens} tokens");
                    assert!(
                        same(*a, *e),
                        "{shape}, output {index}: scalar {e:e}, SIMD {a:e}"
                    );
                }
            }
        }
    }
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
            data: WeightBytes::copy_of(&quantized.data().unwrap()),
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
                data: WeightBytes::copy_of(&quantized.data().unwrap()),
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
