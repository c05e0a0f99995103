//! Dense f32 weights packed once at load for wasm's 128-bit SIMD, and the product
//! `x @ w.t() + bias` on them. The page uses them. Native builds keep gemm, whose AVX
//! kernels are faster there, and compile this code on arrays of four f32 only so that
//! a unit test checks the packing and blocking against gemm.
//!
//! gemm repacks the weight matrix on every call, and its wasm kernel keeps 12
//! accumulators. Here the weights are stored as panels of 8 output features, each
//! panel `k × 8` with the 8 features of one input position side by side, so the kernel
//! reads them in order. The kernel keeps a 4 × 8 block of outputs in 8 registers and
//! takes one input position at a time: two loads of weights, four broadcasts of
//! activations, eight multiplications and eight additions. In Node's V8 on a 2-core Intel Xeon
//! virtual machine, MiniLM's products ran 1.3 to 1.4 times as fast as with gemm, and blocks of 5 or
//! 6 rows were slower than 4 (more accumulators than the registers hold).

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod lanes {
    use std::arch::wasm32::*;

    pub type F32x4 = v128;

    /// # Safety
    /// `p` must point to four readable f32.
    #[inline(always)]
    pub unsafe fn load(p: *const f32) -> F32x4 {
        v128_load(p as *const v128)
    }

    /// # Safety
    /// `p` must point to a readable f32.
    #[inline(always)]
    pub unsafe fn load_splat(p: *const f32) -> F32x4 {
        v128_load32_splat(p as *const u32)
    }

    /// # Safety
    /// `p` must point to four writable f32.
    #[inline(always)]
    pub unsafe fn store(p: *mut f32, v: F32x4) {
        v128_store(p as *mut v128, v)
    }

    #[inline(always)]
    pub fn zero() -> F32x4 {
        f32x4_splat(0.0)
    }

    #[inline(always)]
    pub fn add_product(acc: F32x4, a: F32x4, b: F32x4) -> F32x4 {
        f32x4_add(acc, f32x4_mul(a, b))
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod lanes {
    pub type F32x4 = [f32; 4];

    /// # Safety
    /// `p` must point to four readable f32.
    #[inline(always)]
    pub unsafe fn load(p: *const f32) -> F32x4 {
        std::ptr::read_unaligned(p as *const F32x4)
    }

    /// # Safety
    /// `p` must point to a readable f32.
    #[inline(always)]
    pub unsafe fn load_splat(p: *const f32) -> F32x4 {
        [*p; 4]
    }

    /// # Safety
    /// `p` must point to four writable f32.
    #[inline(always)]
    pub unsafe fn store(p: *mut f32, v: F32x4) {
        std::ptr::write_unaligned(p as *mut F32x4, v)
    }

    #[inline(always)]
    pub fn zero() -> F32x4 {
        [0.0; 4]
    }

    #[inline(always)]
    pub fn add_product(acc: F32x4, a: F32x4, b: F32x4) -> F32x4 {
        std::array::from_fn(|i| acc[i] + a[i] * b[i])
    }
}

use lanes::{add_product, load, load_splat, store, zero};

/// Output features per panel: two 128-bit vectors.
const PANEL: usize = 8;
/// Activation rows per kernel call.
const ROWS: usize = 4;
/// Input positions per pass: a 4 × 512 block of activations is 8 KiB, which stays in
/// the first-level cache while the panels pass over it.
const DEPTH: usize = 512;
/// Bytes of panels processed together before moving to the next activation rows, so
/// that they stay in the second-level cache while every row block passes over them.
const PANEL_GROUP_BYTES: usize = 256 * 1024;

/// A weight matrix `[n, k]` in panels of 8 rows, `n` a multiple of 8.
pub struct PackedMatrix {
    n: usize,
    k: usize,
    panels: Vec<f32>,
}

impl PackedMatrix {
    /// Packs a row-major `[n, k]` matrix, or returns `None` when `n` is not a multiple of 8.
    pub fn pack(w: &[f32], n: usize, k: usize) -> Option<Self> {
        if n % PANEL != 0 || w.len() != n * k || n == 0 || k == 0 {
            return None;
        }
        let mut panels = vec![0f32; n * k];
        for (panel, packed) in panels.chunks_exact_mut(PANEL * k).enumerate() {
            for (column, row) in w[panel * PANEL * k..][..PANEL * k]
                .chunks_exact(k)
                .enumerate()
            {
                for (position, value) in row.iter().enumerate() {
                    packed[position * PANEL + column] = *value;
                }
            }
        }
        Some(PackedMatrix { n, k, panels })
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    /// Row `index` of the original matrix.
    pub fn row(&self, index: usize) -> Vec<f32> {
        let panel = &self.panels[(index / PANEL) * PANEL * self.k..][..PANEL * self.k];
        panel
            .iter()
            .skip(index % PANEL)
            .step_by(PANEL)
            .copied()
            .collect()
    }

    /// `x @ w.t() + bias` for `x` of `rows × k`, giving `rows × n`.
    pub fn linear(&self, x: &[f32], rows: usize, bias: Option<&[f32]>) -> Vec<f32> {
        let (n, k) = (self.n, self.k);
        assert_eq!(x.len(), rows * k, "packed linear: x is not rows × k");
        if let Some(bias) = bias {
            assert_eq!(bias.len(), n, "packed linear: bias length is not n");
        }
        let mut y = vec![0f32; rows * n];
        let zeros = [0f32; PANEL];
        let panels = n / PANEL;
        for start in (0..k).step_by(DEPTH) {
            let depth = DEPTH.min(k - start);
            let group = (PANEL_GROUP_BYTES / (depth * PANEL * 4)).max(1);
            for first_panel in (0..panels).step_by(group) {
                let last_panel = (first_panel + group).min(panels);
                for row in (0..rows).step_by(ROWS) {
                    let block_rows = ROWS.min(rows - row);
                    for panel in first_panel..last_panel {
                        let initial = match (start, bias) {
                            (0, Some(bias)) => Initial::Values(&bias[panel * PANEL..][..PANEL]),
                            (0, None) => Initial::Values(&zeros),
                            _ => Initial::Output,
                        };
                        let weights = &self.panels[(panel * k + start) * PANEL..][..depth * PANEL];
                        let x = &x[row * k + start..];
                        let out = &mut y[row * n + panel * PANEL..];
                        // SAFETY: `x` has `block_rows` rows of stride k from `start`,
                        // `weights` has `depth` positions of 8 values, and `out` has
                        // `block_rows` rows of stride n from the panel's first column.
                        unsafe {
                            match block_rows {
                                4 => kernel::<4>(x, k, weights, depth, initial, out, n),
                                3 => kernel::<3>(x, k, weights, depth, initial, out, n),
                                2 => kernel::<2>(x, k, weights, depth, initial, out, n),
                                _ => kernel::<1>(x, k, weights, depth, initial, out, n),
                            }
                        }
                    }
                }
            }
        }
        y
    }
}

/// The starting values of the kernel's accumulators: the bias (or zeros) on the first
/// pass over the input positions, and the partial sums in the output on later passes.
#[derive(Clone, Copy)]
enum Initial<'a> {
    Values(&'a [f32]),
    Output,
}

/// Adds `x[r] · weights` for `depth` input positions to an `R × 8` block of `out`.
///
/// # Safety
///
/// `x` must hold `R` rows of stride `x_stride` with `depth` values each, `weights`
/// `depth * 8` values, and `out` `R` rows of stride `out_stride` with 8 values each.
#[inline(always)]
unsafe fn kernel<const R: usize>(
    x: &[f32],
    x_stride: usize,
    weights: &[f32],
    depth: usize,
    initial: Initial<'_>,
    out: &mut [f32],
    out_stride: usize,
) {
    debug_assert!(x.len() >= (R - 1) * x_stride + depth);
    debug_assert!(weights.len() >= depth * PANEL);
    debug_assert!(out.len() >= (R - 1) * out_stride + PANEL);
    let x = x.as_ptr();
    let w = weights.as_ptr();
    let out = out.as_mut_ptr();
    let mut low = [zero(); R];
    let mut high = [zero(); R];
    for r in 0..R {
        let source = match initial {
            Initial::Values(values) => values.as_ptr(),
            Initial::Output => out.add(r * out_stride),
        };
        low[r] = load(source);
        high[r] = load(source.add(4));
    }
    for position in 0..depth {
        let w_low = load(w.add(position * PANEL));
        let w_high = load(w.add(position * PANEL + 4));
        for r in 0..R {
            let a = load_splat(x.add(r * x_stride + position));
            low[r] = add_product(low[r], a, w_low);
            high[r] = add_product(high[r], a, w_high);
        }
    }
    for r in 0..R {
        store(out.add(r * out_stride), low[r]);
        store(out.add(r * out_stride + 4), high[r]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_product_matches_gemm() {
        for (rows, n, k) in [(1, 8, 3), (7, 16, 300), (13, 24, 600), (4, 384, 384)] {
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 7919) % 997) as f32 / 997.0 - 0.5)
                .collect();
            let x: Vec<f32> = (0..rows * k)
                .map(|i| ((i * 104_729) % 991) as f32 / 991.0 - 0.5)
                .collect();
            let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.25).collect();
            let packed = PackedMatrix::pack(&w, n, k).expect("n is a multiple of 8");
            for bias in [Some(&bias[..]), None] {
                let want = super::super::fused::linear(&x, rows, &w, n, bias);
                let got = packed.linear(&x, rows, bias);
                for (index, (a, b)) in got.iter().zip(&want).enumerate() {
                    let tolerance = 1e-5 * b.abs().max(1.0);
                    assert!(
                        (a - b).abs() < tolerance,
                        "{rows}x{n}x{k}, bias {}: element {index}: {a} against {b}",
                        bias.is_some()
                    );
                }
            }
            assert_eq!(packed.row(n - 3), w[(n - 3) * k..(n - 2) * k].to_vec());
        }
        assert!(PackedMatrix::pack(&[0.0; 12], 6, 2).is_none());
    }
}
