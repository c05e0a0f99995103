//! wasm32 SIMD128 kernels, compiled in when the module is built with `+simd128`.
//!
//! Each function returns bit for bit what its scalar counterpart in the parent module
//! returns. The integer block sums are exact, and the per-block float terms are computed
//! with the same operations in the same order, then added to the row total one block at
//! a time.
//!
//! SIMD128 has no byte multiply-add, so the dot kernels multiply 16-bit lanes with
//! `i32x4_dot_i16x8`. The activations are widened to i16 once per matmul, in the order in
//! which the weights come out of a 16-bit lane. Each block has the even elements of
//! 0..16, then the odd ones, then the even and odd elements of 16..32. Shifting and
//! masking a Q4_1 lane that contains bytes `2k` and `2k + 1` yields elements `2k`,
//! `2k + 1`, `2k + 16` and `2k + 17`, and a Q8_0 lane yields elements `2k` and `2k + 1`.

use core::arch::wasm32::*;

use super::{
    ActivationRow, ActivationRowMut, BlockFormat, Kernels, QuantizedActivations, BLOCK, PAD_BLOCKS,
};

/// Blocks reduced together, as many as a 128-bit register has `i32` lanes.
const GROUP: usize = 4;

/// The largest block handled here, Q8_0's 34 bytes.
const MAX_BLOCK_BYTES: usize = 34;

/// Rows whose totals advance together, one per lane of a 128-bit register.
const ROWS_TOGETHER: usize = 4;

/// Groups of terms buffered per row before they are added: 16 groups are 64 blocks,
/// whole rows of up to 2048 columns.
const BUFFERED_GROUPS: usize = 16;

// Whole groups of activation blocks are loaded, so padding must cover a group.
const _: () = assert!(PAD_BLOCKS % GROUP == 0);

/// The kernels in this module.
pub(super) const KERNELS: Kernels = Kernels {
    q4_1: dot::<false>,
    q8_0: dot::<true>,
    quantize: quantize_row,
    prepare: Some(widen),
};

/// Fills `activations.widened`: the values widened to i16 in the order described in the
/// module documentation.
unsafe fn widen(activations: &mut QuantizedActivations) {
    let values = &activations.values;
    let out = &mut activations.widened;
    out.resize(values.len(), 0);
    assert!(values.len() % BLOCK == 0);
    for block in 0..values.len() / BLOCK {
        let source = values.as_ptr().add(block * BLOCK) as *const v128;
        let target = out.as_mut_ptr().add(block * BLOCK) as *mut v128;
        for half in 0..2 {
            // Each 16-bit lane contains elements `2k` (low byte) and `2k + 1` (high byte).
            let pairs = v128_load(source.add(half));
            v128_store(target.add(2 * half), i16x8_shr(i16x8_shl(pairs, 8), 8));
            v128_store(target.add(2 * half + 1), i16x8_shr(pairs, 8));
        }
    }
}

/// Sums each of four `i32x4` vectors into lane `i` of the result for `v[i]`.
fn sum_each(v: [v128; GROUP]) -> v128 {
    let ab = i32x4_add(
        i32x4_shuffle::<0, 4, 1, 5>(v[0], v[1]),
        i32x4_shuffle::<2, 6, 3, 7>(v[0], v[1]),
    );
    let cd = i32x4_add(
        i32x4_shuffle::<0, 4, 1, 5>(v[2], v[3]),
        i32x4_shuffle::<2, 6, 3, 7>(v[2], v[3]),
    );
    i32x4_add(
        i32x4_shuffle::<0, 1, 4, 5>(ab, cd),
        i32x4_shuffle::<2, 3, 6, 7>(ab, cd),
    )
}

/// Adds the first `count` lanes of `terms` to `total` in lane order, as the scalar loop
/// adds block terms.
fn add_in_order(total: f32, terms: v128, count: usize) -> f32 {
    let lanes = [
        f32x4_extract_lane::<0>(terms),
        f32x4_extract_lane::<1>(terms),
        f32x4_extract_lane::<2>(terms),
        f32x4_extract_lane::<3>(terms),
    ];
    let mut total = total;
    for term in &lanes[..count] {
        total += term;
    }
    total
}

/// Converts the f16 values in the low 16 bits of each `u32` lane to f32: the same bits
/// as `half::f16::to_f32` except for NaN, which stays a NaN with another payload.
fn f16_to_f32(halves: v128) -> v128 {
    let sign = i32x4_shl(v128_and(halves, u32x4_splat(0x8000)), 16);
    let magnitude = i32x4_shl(v128_and(halves, u32x4_splat(0x7fff)), 13);
    // Shifting the exponent and mantissa into place and scaling by 2^112 rebiases the
    // exponent from 15 to 127. The product is exact for normal and subnormal halves.
    let finite = f32x4_mul(magnitude, f32x4_splat(f32::from_bits(0x7780_0000)));
    let special = u32x4_eq(v128_and(halves, u32x4_splat(0x7c00)), u32x4_splat(0x7c00));
    if !v128_any_true(special) {
        return v128_or(finite, sign);
    }
    // Exponent 31 is infinity (mantissa 0) or NaN.
    let infinite_or_nan = v128_or(magnitude, u32x4_splat(0x7f80_0000));
    v128_or(v128_bitselect(infinite_or_nan, finite, special), sign)
}

/// Reads the little-endian `u32` at `at`.
unsafe fn read_u32(at: *const u8) -> u32 {
    (at as *const u32).read_unaligned()
}

/// Computes `Σ q·a` over one Q4_1 block as four `i32` partial sums. `widened` points
/// at the block's activations in the module's order.
unsafe fn q4_1_partial_sums(block: *const u8, widened: *const v128) -> v128 {
    // Lane k contains byte 2k in its low half and byte 2k + 1 in its high half.
    let pairs = v128_load(block.add(4) as *const v128);
    let nibble = u16x8_splat(0x0f);
    let even_low = v128_and(pairs, nibble);
    let odd_low = v128_and(u16x8_shr(pairs, 8), nibble);
    let even_high = v128_and(u16x8_shr(pairs, 4), nibble);
    let odd_high = u16x8_shr(pairs, 12);
    i32x4_add(
        i32x4_add(
            i32x4_dot_i16x8(even_low, v128_load(widened)),
            i32x4_dot_i16x8(odd_low, v128_load(widened.add(1))),
        ),
        i32x4_add(
            i32x4_dot_i16x8(even_high, v128_load(widened.add(2))),
            i32x4_dot_i16x8(odd_high, v128_load(widened.add(3))),
        ),
    )
}

/// Computes `Σ q·a` over one Q8_0 block as four `i32` partial sums, exact for every
/// byte value.
unsafe fn q8_0_partial_sums(block: *const u8, widened: *const v128) -> v128 {
    let low = v128_load(block.add(2) as *const v128);
    let high = v128_load(block.add(18) as *const v128);
    let even = |pairs: v128| i16x8_shr(i16x8_shl(pairs, 8), 8);
    let odd = |pairs: v128| i16x8_shr(pairs, 8);
    i32x4_add(
        i32x4_add(
            i32x4_dot_i16x8(even(low), v128_load(widened)),
            i32x4_dot_i16x8(odd(low), v128_load(widened.add(1))),
        ),
        i32x4_add(
            i32x4_dot_i16x8(even(high), v128_load(widened.add(2))),
            i32x4_dot_i16x8(odd(high), v128_load(widened.add(3))),
        ),
    )
}

/// Computes the terms `d·d_a·Σq·q_a + m·s_a` of the four Q4_1 blocks at `first`,
/// which start at block `index` of `activations`.
unsafe fn q4_1_terms(first: *const u8, activations: ActivationRow, index: usize) -> v128 {
    let bytes = BlockFormat::Q4_1.block_bytes();
    let widened = activations.widened.as_ptr().add(index * BLOCK) as *const v128;
    let partial: [v128; GROUP] = core::array::from_fn(|offset| {
        q4_1_partial_sums(first.add(offset * bytes), widened.add(4 * offset))
    });
    let sums = f32x4_convert_i32x4(sum_each(partial));
    let words = u32x4(
        read_u32(first),
        read_u32(first.add(bytes)),
        read_u32(first.add(2 * bytes)),
        read_u32(first.add(3 * bytes)),
    );
    let d = f16_to_f32(v128_and(words, u32x4_splat(0xffff)));
    let m = f16_to_f32(u32x4_shr(words, 16));
    let activation_d = v128_load(activations.scales.as_ptr().add(index) as *const v128);
    let activation_s = v128_load(activations.sums.as_ptr().add(index) as *const v128);
    // Left to right, as in the scalar `d * activation.d * sum + m * activation.s`.
    f32x4_add(
        f32x4_mul(f32x4_mul(d, activation_d), sums),
        f32x4_mul(m, activation_s),
    )
}

/// Computes the terms `Σq·q_a·(d·d_a)` of the four Q8_0 blocks at `first`, which start
/// at block `index` of `activations`.
unsafe fn q8_0_terms(first: *const u8, activations: ActivationRow, index: usize) -> v128 {
    let bytes = BlockFormat::Q8_0.block_bytes();
    let widened = activations.widened.as_ptr().add(index * BLOCK) as *const v128;
    let partial: [v128; GROUP] = core::array::from_fn(|offset| {
        q8_0_partial_sums(first.add(offset * bytes), widened.add(4 * offset))
    });
    let sums = f32x4_convert_i32x4(sum_each(partial));
    let read = |offset: usize| (first.add(offset * bytes) as *const u16).read_unaligned() as u32;
    let d = f16_to_f32(u32x4(read(0), read(1), read(2), read(3)));
    let activation_d = v128_load(activations.scales.as_ptr().add(index) as *const v128);
    f32x4_mul(sums, f32x4_mul(d, activation_d))
}

unsafe fn terms<const Q8_0: bool>(
    first: *const u8,
    activations: ActivationRow,
    index: usize,
) -> v128 {
    if Q8_0 {
        q8_0_terms(first, activations, index)
    } else {
        q4_1_terms(first, activations, index)
    }
}

fn block_bytes<const Q8_0: bool>() -> usize {
    if Q8_0 {
        BlockFormat::Q8_0.block_bytes()
    } else {
        BlockFormat::Q4_1.block_bytes()
    }
}

/// Computes the terms of the group of blocks that starts at block `index` of the row
/// that starts at byte `start` of `weights`. A row's last group may be partial. It then
/// loads whole blocks from the bytes that follow the row, and the caller ignores the
/// terms of those blocks. The activation row is padded for the same reason. Only where
/// fewer than a group's bytes follow is the partial group copied into a zeroed buffer.
#[inline]
unsafe fn group_terms<const Q8_0: bool>(
    weights: &[u8],
    start: usize,
    row_bytes: usize,
    activations: ActivationRow,
    index: usize,
) -> v128 {
    let offset = start + index * block_bytes::<Q8_0>();
    if offset + GROUP * block_bytes::<Q8_0>() <= weights.len() {
        terms::<Q8_0>(weights.as_ptr().add(offset), activations, index)
    } else {
        copied_group_terms::<Q8_0>(&weights[offset..start + row_bytes], activations, index)
    }
}

/// Computes `group_terms` for a partial group of blocks at the end of `weights`.
#[cold]
#[inline(never)]
unsafe fn copied_group_terms<const Q8_0: bool>(
    blocks: &[u8],
    activations: ActivationRow,
    index: usize,
) -> v128 {
    let mut group = [0u8; GROUP * MAX_BLOCK_BYTES];
    group[..blocks.len()].copy_from_slice(blocks);
    terms::<Q8_0>(group.as_ptr(), activations, index)
}

/// Transposes four vectors: lane `r` of output `j` is lane `j` of input `r`.
fn transpose(rows: [v128; ROWS_TOGETHER]) -> [v128; ROWS_TOGETHER] {
    let low = [
        i32x4_shuffle::<0, 4, 1, 5>(rows[0], rows[1]),
        i32x4_shuffle::<0, 4, 1, 5>(rows[2], rows[3]),
    ];
    let high = [
        i32x4_shuffle::<2, 6, 3, 7>(rows[0], rows[1]),
        i32x4_shuffle::<2, 6, 3, 7>(rows[2], rows[3]),
    ];
    [
        i32x4_shuffle::<0, 1, 4, 5>(low[0], low[1]),
        i32x4_shuffle::<2, 3, 6, 7>(low[0], low[1]),
        i32x4_shuffle::<0, 1, 4, 5>(high[0], high[1]),
        i32x4_shuffle::<2, 3, 6, 7>(high[0], high[1]),
    ]
}

/// Computes the dot products of `super::dot_q8_0` if `Q8_0`, else of `super::dot_q4_1`.
///
/// Rows go `ROWS_TOGETHER` at a time: their terms for a group of blocks are transposed
/// so that one vector add advances every row's total by one block, in block order. The
/// remaining rows go one at a time.
unsafe fn dot<const Q8_0: bool>(
    weights: &[u8],
    rows: usize,
    activations: ActivationRow,
    out: &mut [f32],
    stride: usize,
) {
    let row_bytes = activations.check(weights, rows, block_bytes::<Q8_0>(), out, stride);
    assert_eq!(
        activations.widened.len(),
        activations.values.len(),
        "SIMD128 kernels need widened activations"
    );
    let blocks = activations.blocks;
    let groups = blocks.div_ceil(GROUP);
    let mut row = 0;
    while row + ROWS_TOGETHER <= rows {
        let mut totals = f32x4_splat(0.0);
        // Each row's terms are computed in turn, so the weights are read in order.
        for first_group in (0..groups).step_by(BUFFERED_GROUPS) {
            let buffered = BUFFERED_GROUPS.min(groups - first_group);
            let mut terms = [[totals; ROWS_TOGETHER]; BUFFERED_GROUPS];
            for offset in 0..ROWS_TOGETHER {
                let start = (row + offset) * row_bytes;
                for (group, terms) in terms[..buffered].iter_mut().enumerate() {
                    let index = (first_group + group) * GROUP;
                    terms[offset] =
                        group_terms::<Q8_0>(weights, start, row_bytes, activations, index);
                }
            }
            for (group, terms) in terms[..buffered].iter().enumerate() {
                let count = GROUP.min(blocks - (first_group + group) * GROUP);
                for column in &transpose(*terms)[..count] {
                    totals = f32x4_add(totals, *column);
                }
            }
        }
        *out.get_unchecked_mut(row * stride) = f32x4_extract_lane::<0>(totals);
        *out.get_unchecked_mut((row + 1) * stride) = f32x4_extract_lane::<1>(totals);
        *out.get_unchecked_mut((row + 2) * stride) = f32x4_extract_lane::<2>(totals);
        *out.get_unchecked_mut((row + 3) * stride) = f32x4_extract_lane::<3>(totals);
        row += ROWS_TOGETHER;
    }
    for row in row..rows {
        let mut total = 0f32;
        for index in (0..blocks).step_by(GROUP) {
            let terms =
                group_terms::<Q8_0>(weights, row * row_bytes, row_bytes, activations, index);
            total = add_in_order(total, terms, GROUP.min(blocks - index));
        }
        *out.get_unchecked_mut(row * stride) = total;
    }
}

/// Quantizes an activation row as `super::quantize_row` does.
unsafe fn quantize_row(x: &[f32], out: ActivationRowMut) {
    out.check(x);
    let blocks = out.scales.len();
    for block in 0..blocks {
        let start = x.as_ptr().add(block * BLOCK) as *const v128;
        let chunk: [v128; 8] = core::array::from_fn(|index| v128_load(start.add(index)));

        // `pmax(a, b)` returns `a` unless `a < b`, so a NaN in `b` is skipped like
        // `f32::max` skips it in the scalar fold.
        let mut maximum = f32x4_splat(0.0);
        for values in chunk {
            maximum = f32x4_pmax(maximum, f32x4_abs(values));
        }
        let amax = [
            f32x4_extract_lane::<0>(maximum),
            f32x4_extract_lane::<1>(maximum),
            f32x4_extract_lane::<2>(maximum),
            f32x4_extract_lane::<3>(maximum),
        ]
        .iter()
        .fold(0f32, |max, &value| max.max(value));
        let d = amax / 127.0;
        let inverse = f32x4_splat(if d != 0.0 { 1.0 / d } else { 0.0 });

        // `nearest` rounds half to even. The saturating conversion maps NaN to 0, and the
        // clamp saturates to the i8 range before the sum, as `as i8` does.
        let quantized: [v128; 8] = core::array::from_fn(|index| {
            let rounded = i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(chunk[index], inverse)));
            i32x4_min(i32x4_max(rounded, i32x4_splat(-128)), i32x4_splat(127))
        });
        let mut total = u32x4_splat(0);
        for q in quantized {
            total = i32x4_add(total, q);
        }
        let sum = i32x4_extract_lane::<0>(total)
            + i32x4_extract_lane::<1>(total)
            + i32x4_extract_lane::<2>(total)
            + i32x4_extract_lane::<3>(total);

        let out_values = out.values.as_mut_ptr().add(block * BLOCK) as *mut v128;
        for half in 0..2 {
            let q = &quantized[half * 4..];
            let bytes = i8x16_narrow_i16x8(
                i16x8_narrow_i32x4(q[0], q[1]),
                i16x8_narrow_i32x4(q[2], q[3]),
            );
            v128_store(out_values.add(half), bytes);
        }
        out.scales[block] = super::round_to_f16(d);
        out.sums[block] = super::round_to_f16(sum as f32 * d);
    }
}
