//! The CPU steps between the matrix products, each done in one pass over contiguous
//! f32 slices: the bias added inside the product, layer and RMS norm, GELU, and
//! attention with its scaling, mask and softmax fused.
//!
//! candle-core runs each of these as a chain of elementwise operations that each
//! allocate a tensor, and computes `exp` and `erf` with scalar library calls. In V8
//! that chain took about a third of a MiniLM forward pass (Node's profiler, 512 tokens).
//! Here `exp` and `erf` are polynomials without branches, so that they run four lanes
//! at a time: written with simd128 intrinsics in wasm, left to LLVM natively.

use gemm::{gemm, Parallelism};

use super::parallel::{for_each_chunk, rows_per_task};

/// Query rows whose scores are computed together: 64 rows of 512 keys are 128 KiB, so
/// a block's scores stay in the core's cache between the two products.
const QUERY_BLOCK: usize = 64;

/// `y = x @ w.t() + bias` for `x` of `rows × k` and `w` of `n × k`, both row-major,
/// giving `rows × n`. The bias is written into the output first and the product
/// accumulated onto it, so the addition costs no extra pass.
pub fn linear(x: &[f32], rows: usize, w: &[f32], n: usize, bias: Option<&[f32]>) -> Vec<f32> {
    let k = w.len() / n.max(1);
    assert_eq!(x.len(), rows * k, "linear: x is not rows × k");
    assert_eq!(w.len(), n * k, "linear: w is not n × k");
    let mut y = match bias {
        Some(bias) => {
            assert_eq!(bias.len(), n, "linear: bias length is not n");
            let mut y = Vec::with_capacity(rows * n);
            for _ in 0..rows {
                y.extend_from_slice(bias);
            }
            y
        }
        None => vec![0f32; rows * n],
    };
    if rows == 0 || n == 0 {
        return y;
    }
    // Each task multiplies a run of x's rows into the same rows of y.
    let rows_per_task = rows_per_task(rows, n * k);
    for_each_chunk(&mut y, rows_per_task * n, |task, y| {
        let first = task * rows_per_task;
        let rows = y.len() / n;
        let x = &x[first * k..(first + rows) * k];
        // SAFETY: the strides describe `x` as rows × k, `w.t()` as k × n and `y` as
        // rows × n, all within the lengths asserted above.
        unsafe {
            gemm(
                rows,
                n,
                k,
                y.as_mut_ptr(),
                1,
                n as isize,
                bias.is_some(),
                x.as_ptr(),
                1,
                k as isize,
                w.as_ptr(),
                k as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    });
    y
}

/// `e^x` to within 2 ulp over the range where the result is a normal f32; inputs
/// below -87.3 give about 1.2e-38 instead of a subnormal or 0.
///
/// The argument is reduced to `x = n ln 2 + r` with `|r| <= ln 2 / 2`, and `e^r` is the
/// Cephes single-precision polynomial.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that `n * LN2_HIGH` is exact for |n| < 2^10.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // 1.5 × 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let p = 1.987_569_2e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let two_n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    e_r * two_n
}

/// `erf(x)` to within 5e-7 (Abramowitz and Stegun 7.1.26, whose 1.5e-7 grows with f32
/// rounding near `|erf(x)| = 1`), with `exp` above.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = 1.061_405_4;
    let p = p * t - 1.453_152;
    let p = p * t + 1.421_413_8;
    let p = p * t - 0.284_496_72;
    let p = p * t + 0.254_829_6;
    let magnitude = 1.0 - p * t * exp(-a * a);
    magnitude.copysign(x)
}

/// GELU in its exact form, `x Φ(x) = x (1 + erf(x / √2)) / 2`.
#[inline(always)]
fn gelu_one(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU in its exact form, in place.
pub fn gelu_erf(values: &mut [f32]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    lanes::map(values, lanes::gelu, gelu_one);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for value in values.iter_mut() {
        *value = gelu_one(*value);
    }
}

/// `exp`, `erf` and GELU four lanes at a time with wasm's 128-bit SIMD, which LLVM does
/// not produce from the scalar loops. Each performs the scalar function's operations
/// in the same order, so both give the same bits.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod lanes {
    use std::arch::wasm32::*;

    #[inline(always)]
    fn splat(value: f32) -> v128 {
        f32x4_splat(value)
    }

    /// Applies `vector` to each whole group of four values and `scalar` to the rest.
    #[inline(always)]
    pub fn map(values: &mut [f32], vector: impl Fn(v128) -> v128, scalar: impl Fn(f32) -> f32) {
        let mut groups = values.chunks_exact_mut(4);
        for group in &mut groups {
            // SAFETY: `group` is four f32, which v128 loads and stores unaligned.
            unsafe {
                let pointer = group.as_mut_ptr() as *mut v128;
                v128_store(pointer, vector(v128_load(pointer)));
            }
        }
        for value in groups.into_remainder() {
            *value = scalar(*value);
        }
    }

    /// Computes [`super::exp`] in each lane.
    #[inline(always)]
    pub fn exp(x: v128) -> v128 {
        // pmin and pmax keep a NaN in x, as `f32::clamp` does.
        let x = f32x4_pmax(f32x4_pmin(x, splat(88.3)), splat(-87.3));
        let n = f32x4_sub(
            f32x4_add(
                f32x4_mul(x, splat(std::f32::consts::LOG2_E)),
                splat(12_582_912.0),
            ),
            splat(12_582_912.0),
        );
        let r = f32x4_sub(
            f32x4_sub(x, f32x4_mul(n, splat(0.693_359_4))),
            f32x4_mul(n, splat(-2.121_944_4e-4)),
        );
        let mut p = splat(1.987_569_2e-4);
        for coefficient in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            p = f32x4_add(f32x4_mul(p, r), splat(coefficient));
        }
        let e_r = f32x4_add(f32x4_add(f32x4_mul(f32x4_mul(p, r), r), r), splat(1.0));
        let two_n = i32x4_shl(i32x4_add(i32x4_trunc_sat_f32x4(n), i32x4_splat(127)), 23);
        f32x4_mul(e_r, two_n)
    }

    /// Computes [`super::erf`] in each lane.
    #[inline(always)]
    pub fn erf(x: v128) -> v128 {
        let a = f32x4_abs(x);
        let t = f32x4_div(
            splat(1.0),
            f32x4_add(splat(1.0), f32x4_mul(splat(0.327_591_1), a)),
        );
        let mut p = splat(1.061_405_4);
        for coefficient in [-1.453_152, 1.421_413_8, -0.284_496_72, 0.254_829_6] {
            p = f32x4_add(f32x4_mul(p, t), splat(coefficient));
        }
        let magnitude = f32x4_sub(
            splat(1.0),
            f32x4_mul(f32x4_mul(p, t), exp(f32x4_mul(f32x4_neg(a), a))),
        );
        v128_bitselect(x, magnitude, u32x4_splat(0x8000_0000))
    }

    /// Computes [`super::gelu_one`] in each lane.
    #[inline(always)]
    pub fn gelu(x: v128) -> v128 {
        let half_x = f32x4_mul(splat(0.5), x);
        let sum = f32x4_add(
            splat(1.0),
            erf(f32x4_mul(x, splat(std::f32::consts::FRAC_1_SQRT_2))),
        );
        f32x4_mul(half_x, sum)
    }
}

/// `silu(gate) * up`, with `silu(x) = x / (1 + e^-x)`.
pub fn silu_mul(gate: &[f32], up: &[f32]) -> Vec<f32> {
    assert_eq!(
        gate.len(),
        up.len(),
        "silu_mul: gate and up differ in length"
    );
    gate.iter()
        .zip(up)
        .map(|(g, u)| g / (1.0 + exp(-g)) * u)
        .collect()
}

/// Layer norm of each `gamma.len()`-wide row of `x`.
pub fn layer_norm(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> Vec<f32> {
    let columns = gamma.len();
    let mut out = vec![0f32; x.len()];
    for (row, out) in x.chunks_exact(columns).zip(out.chunks_exact_mut(columns)) {
        let mean = sum(row) / columns as f32;
        let mut squares = 0f32;
        for (value, centered) in row.iter().zip(out.iter_mut()) {
            *centered = value - mean;
        }
        for centered in out.iter() {
            squares += centered * centered;
        }
        let deviation = (squares / columns as f32 + eps).sqrt();
        for ((value, g), b) in out.iter_mut().zip(gamma).zip(beta) {
            *value = *value / deviation * g + b;
        }
    }
    out
}

/// RMS norm of each `gamma.len()`-wide row of `x`.
pub fn rms_norm(x: &[f32], gamma: &[f32], eps: f32) -> Vec<f32> {
    let columns = gamma.len();
    let mut out = vec![0f32; x.len()];
    for (row, out) in x.chunks_exact(columns).zip(out.chunks_exact_mut(columns)) {
        let squares: f64 = row.iter().map(|&value| value as f64 * value as f64).sum();
        let scale = 1.0 / ((squares / columns as f64) as f32 + eps).sqrt();
        for ((out, value), g) in out.iter_mut().zip(row).zip(gamma) {
            *out = value * scale * g;
        }
    }
    out
}

/// Returns the largest value, found in eight lanes with comparisons, because `f32::max`
/// is a library call in wasm.
fn maximum(values: &[f32]) -> f32 {
    let pick = |a: f32, b: f32| if b > a { b } else { a };
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, value) in lanes.iter_mut().zip(chunk) {
            *lane = pick(*lane, *value);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| pick(a, b));
    lanes.iter().fold(tail, |a, &b| pick(a, b))
}

/// Sums in eight lanes, which LLVM keeps in two SIMD registers.
fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, value) in lanes.iter_mut().zip(chunk) {
            *lane += value;
        }
    }
    let tail: f32 = chunks.remainder().iter().sum();
    lanes.iter().sum::<f32>() + tail
}

/// Replaces `row[..valid]` by `softmax(scale * row[..valid])` and zeroes the rest.
pub fn softmax_prefix(row: &mut [f32], valid: usize, scale: f32) {
    let (kept, masked) = row.split_at_mut(valid.min(row.len()));
    masked.fill(0.0);
    if kept.is_empty() {
        return;
    }
    let max = maximum(kept);
    let exponent = |value: f32| exp((value - max) * scale);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use std::arch::wasm32::{f32x4_mul, f32x4_splat, f32x4_sub};
        let (max4, scale4) = (f32x4_splat(max), f32x4_splat(scale));
        lanes::map(
            kept,
            |x| lanes::exp(f32x4_mul(f32x4_sub(x, max4), scale4)),
            exponent,
        );
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    for value in kept.iter_mut() {
        *value = exponent(*value);
    }
    let inverse = 1.0 / sum(kept);
    for value in kept.iter_mut() {
        *value *= inverse;
    }
}

/// The shape of one attention call: `q` is `[batch, kv_heads * group, tq, d]`,
/// contiguous, and `k`, `v` are `[batch, kv_heads, tk, d]` with contiguous rows and
/// `kv_stride` elements from one head to the next (`tk * d` when contiguous, more in a
/// KV cache with room to grow).
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub batch: usize,
    pub kv_heads: usize,
    pub group: usize,
    pub tq: usize,
    pub tk: usize,
    pub head_dim: usize,
    pub kv_stride: usize,
}

/// The keys that each query row attends to.
pub enum Visible<'a> {
    /// Row `i` of the batch attends to its first `lengths[i]` keys.
    Prefix { lengths: &'a [usize] },
    /// Query `j` attends to keys `0..=offset + j`.
    Causal { offset: usize },
}

/// Computes `softmax(q k^T / sqrt(d) + mask) v`, giving `[batch, kv_heads * group, tq, d]`.
///
/// The query heads that share a key head form one block of rows, so each key head is
/// read once for its group. Scores are computed `QUERY_BLOCK` rows at a time, only over
/// the keys that some row of the block attends to. Masked keys get probability 0
/// without an added `-inf`, and a row that attends to no key gives zeros. Natively,
/// blocks run on the CPU threads when the work is large enough.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: AttentionShape,
    visible: &Visible<'_>,
) -> Vec<f32> {
    let AttentionShape {
        batch,
        kv_heads,
        group,
        tq,
        tk,
        head_dim,
        kv_stride,
    } = shape;
    let rows = group * tq;
    let heads = batch * kv_heads;
    assert_eq!(q.len(), heads * rows * head_dim, "attention: q shape");
    assert!(kv_stride >= tk * head_dim, "attention: heads overlap");
    let kv_len = heads.saturating_sub(1) * kv_stride + tk * head_dim;
    assert!(
        k.len() >= kv_len && v.len() >= kv_len,
        "attention: k or v too short"
    );
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut out = vec![0f32; q.len()];
    if out.is_empty() {
        return out;
    }
    let block_len = rows * head_dim;
    let visible_keys = |b: usize, row: usize| -> usize {
        match visible {
            Visible::Prefix { lengths } => lengths.get(b).copied().unwrap_or(tk).min(tk),
            Visible::Causal { offset } => (offset + row % tq + 1).min(tk),
        }
    };
    let serial = heads * rows * tk * head_dim < 1 << 16;
    let run = |index: usize, out: &mut [f32]| {
        let b = index / kv_heads;
        let q = &q[index * block_len..(index + 1) * block_len];
        let k = &k[index * kv_stride..][..tk * head_dim];
        let v = &v[index * kv_stride..][..tk * head_dim];
        let mut scores = Vec::new();
        let mut keys_transposed = Vec::new();
        for start in (0..rows).step_by(QUERY_BLOCK) {
            let end = (start + QUERY_BLOCK).min(rows);
            let keys = (start..end)
                .map(|row| visible_keys(b, row))
                .max()
                .unwrap_or(0);
            let out = &mut out[start * head_dim..end * head_dim];
            if keys == 0 {
                continue;
            }
            scores.clear();
            scores.resize((end - start) * keys, 0.0);
            // gemm computes products of at most 16 × 16 whose operands are both
            // contiguous along the summed dimension as dot products in SIMD lanes, and
            // larger ones as running sums, which round differently. A decoding step
            // (few rows) would then disagree with the prefill of the same positions,
            // and 8-bit activations magnify that into whole quantization steps. Small
            // blocks therefore read the keys from a transposed copy, which keeps every
            // score a running sum in the same order.
            let (keys_ptr, key_row_stride, key_column_stride) = if (end - start) * keys <= 256 {
                keys_transposed.clear();
                keys_transposed.resize(head_dim * keys, 0.0);
                for (key, row) in k.chunks_exact(head_dim).take(keys).enumerate() {
                    for (i, value) in row.iter().enumerate() {
                        keys_transposed[i * keys + key] = *value;
                    }
                }
                (keys_transposed.as_ptr(), keys as isize, 1)
            } else {
                (k.as_ptr(), 1, head_dim as isize)
            };
            // SAFETY (both calls): the strides describe rows start..end of q, the first
            // `keys` rows of k (read transposed, or their transposed copy) and of v,
            // `scores` as (end - start) × keys and `out` as (end - start) × head_dim.
            // Every one lies within its slice.
            unsafe {
                gemm(
                    end - start,
                    keys,
                    head_dim,
                    scores.as_mut_ptr(),
                    1,
                    keys as isize,
                    false,
                    q[start * head_dim..].as_ptr(),
                    1,
                    head_dim as isize,
                    keys_ptr,
                    key_column_stride,
                    key_row_stride,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
            for (offset, row) in scores.chunks_exact_mut(keys).enumerate() {
                softmax_prefix(row, visible_keys(b, start + offset), scale);
            }
            unsafe {
                gemm(
                    end - start,
                    head_dim,
                    keys,
                    out.as_mut_ptr(),
                    1,
                    head_dim as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    keys as isize,
                    v.as_ptr(),
                    1,
                    head_dim as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        }
    };
    if serial {
        for (index, block) in out.chunks_mut(block_len).enumerate() {
            run(index, block);
        }
    } else {
        for_each_chunk(&mut out, block_len, run);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The straightforward definition, in f64, to compare the fused kernel against.
    fn reference_attention(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        shape: AttentionShape,
        visible: &Visible<'_>,
    ) -> Vec<f32> {
        let d = shape.head_dim;
        let rows = shape.group * shape.tq;
        let mut out = vec![0f32; q.len()];
        for b in 0..shape.batch {
            for kv in 0..shape.kv_heads {
                let block = b * shape.kv_heads + kv;
                for row in 0..rows {
                    let seen = match visible {
                        Visible::Prefix { lengths } => lengths[b].min(shape.tk),
                        Visible::Causal { offset } => (offset + row % shape.tq + 1).min(shape.tk),
                    };
                    let query = &q[(block * rows + row) * d..][..d];
                    let scores: Vec<f64> = (0..seen)
                        .map(|key| {
                            let key = &k[block * shape.kv_stride + key * d..][..d];
                            query
                                .iter()
                                .zip(key)
                                .map(|(a, b)| *a as f64 * *b as f64)
                                .sum::<f64>()
                                / (d as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f64 = weights.iter().sum();
                    for (key, weight) in weights.iter().enumerate() {
                        let value = &v[block * shape.kv_stride + key * d..][..d];
                        for i in 0..d {
                            out[(block * rows + row) * d + i] +=
                                (weight / total * value[i] as f64) as f32;
                        }
                    }
                }
            }
        }
        out
    }

    /// Deterministic values in [-2, 2), generated by the test.
    fn values(count: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        (0..count)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32) * 4.0 - 2.0
            })
            .collect()
    }

    #[test]
    fn exp_within_two_ulp() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let relative = ((exp(x) as f64 - (x as f64).exp()) / (x as f64).exp()).abs();
            worst = worst.max(relative);
            x += 0.001_3;
        }
        assert!(worst < 2.5e-7, "worst relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NEG_INFINITY) < 1.25e-38 && exp(f32::NEG_INFINITY) >= 0.0);
    }

    #[test]
    fn erf_close_to_libm() {
        let mut worst = 0f64;
        let mut x = -6.0f32;
        while x < 6.0 {
            worst = worst.max((erf(x) as f64 - libm::erf(x as f64)).abs());
            x += 0.000_7;
        }
        assert!(worst < 5e-7, "worst absolute error {worst:e}");
        assert_eq!(erf(40.0), 1.0);
        assert_eq!(erf(-40.0), -1.0);
        assert!(erf(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_close_to_f64_value() {
        let inputs: Vec<f32> = (-8000..8000).map(|i| i as f32 * 0.001).collect();
        let mut values = inputs.clone();
        gelu_erf(&mut values);
        for (x, got) in inputs.iter().zip(values) {
            let x = *x as f64;
            let want = 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
            assert!(
                (got as f64 - want).abs() < 1e-6 * x.abs().max(1.0),
                "gelu({x}) = {got}, expected {want}"
            );
        }
    }

    #[test]
    fn gelu_keeps_its_known_values() {
        let mut values = vec![-3.0, -1.0, 0.0, 1.0, 3.0];
        gelu_erf(&mut values);
        let expected = [-0.004_049_7, -0.158_655_25, 0.0, 0.841_344_7, 2.995_950_3];
        for (got, want) in values.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{got} against {want}");
        }
    }

    #[test]
    fn layer_norm_scales_each_row() {
        let x = [1.0, 2.0, 3.0, 4.0, -4.0, 0.0, 0.0, 4.0];
        let out = layer_norm(&x, &[1.0, 1.0, 2.0, 2.0], &[0.0, 0.0, 0.0, 1.0], 0.0);
        let deviation = 1.25f32.sqrt();
        assert!((out[0] + 1.5 / deviation).abs() < 1e-6);
        assert!((out[3] - (2.0 * 1.5 / deviation + 1.0)).abs() < 1e-6);
        assert!((out[4] + 4.0 / 8f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn softmax_prefix_zeroes_masked_keys() {
        let mut row = vec![1.0, 2.0, 3.0, 100.0];
        softmax_prefix(&mut row, 3, 0.5);
        assert_eq!(row[3], 0.0);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let mut none = vec![5.0; 3];
        softmax_prefix(&mut none, 0, 1.0);
        assert_eq!(none, vec![0.0; 3]);
    }

    #[test]
    fn linear_adds_the_bias_once() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let w = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let y = linear(&x, 2, &w, 3, Some(&[10.0, 20.0, 30.0]));
        assert_eq!(y, vec![11.0, 22.0, 33.0, 13.0, 24.0, 37.0]);
        assert_eq!(linear(&x, 2, &w, 3, None)[5], 7.0);
    }

    #[test]
    fn decode_step_equals_prefill_row() {
        let (kv_heads, group, d) = (3, 3, 64);
        for positions in [2, 9, 40, 100] {
            let prefill = AttentionShape {
                batch: 1,
                kv_heads,
                group,
                tq: positions,
                tk: positions,
                head_dim: d,
                kv_stride: positions * d,
            };
            let q = values(kv_heads * group * positions * d, 31);
            let k = values(kv_heads * positions * d, 32);
            let v = values(kv_heads * positions * d, 33);
            let all = attention(&q, &k, &v, prefill, &Visible::Causal { offset: 0 });
            let last_rows = |x: &[f32]| -> Vec<f32> {
                x.chunks_exact(positions * d)
                    .flat_map(|head| head[(positions - 1) * d..].to_vec())
                    .collect()
            };
            let step = AttentionShape { tq: 1, ..prefill };
            let stepped = attention(
                &last_rows(&q),
                &k,
                &v,
                step,
                &Visible::Causal {
                    offset: positions - 1,
                },
            );
            assert_eq!(stepped, last_rows(&all), "{positions} positions");
        }
    }

    #[test]
    fn attention_matches_reference_masks() {
        let shape = |batch, kv_heads, group, tq, tk, head_dim, capacity| AttentionShape {
            batch,
            kv_heads,
            group,
            tq,
            tk,
            head_dim,
            kv_stride: capacity * head_dim,
        };
        let cases = [
            (
                shape(3, 2, 1, 70, 70, 8, 70),
                Visible::Prefix {
                    lengths: &[70, 33, 1],
                },
            ),
            (shape(1, 3, 3, 5, 9, 16, 9), Visible::Causal { offset: 4 }),
            // A KV cache with room for 128 positions, 9 of them filled.
            (shape(2, 3, 3, 5, 9, 16, 128), Visible::Causal { offset: 4 }),
            (
                shape(1, 3, 3, 1, 300, 64, 300),
                Visible::Causal { offset: 299 },
            ),
        ];
        for (number, (shape, visible)) in cases.iter().enumerate() {
            let q_len = shape.batch * shape.kv_heads * shape.group * shape.tq * shape.head_dim;
            let kv_len = shape.batch * shape.kv_heads * shape.kv_stride;
            let (q, k, v) = (
                values(q_len, 1 + number as u32),
                values(kv_len, 11 + number as u32),
                values(kv_len, 21 + number as u32),
            );
            let got = attention(&q, &k, &v, *shape, visible);
            let want = reference_attention(&q, &k, &v, *shape, visible);
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-5, "case {number}: worst difference {worst:e}");
        }
    }
}
