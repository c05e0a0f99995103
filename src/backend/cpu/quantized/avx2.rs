//! AVX2 + F16C kernels for x86_64, selected at run time by `is_supported`.
//!
//! Each function returns bit for bit what its scalar counterpart in the parent module
//! returns. The integer block sums are exact, and the per-block float terms are computed
//! with the same operations in the same order (Rust never contracts `a * b + c` into a
//! fused multiply-add), then added to the row total one block at a time.

use core::arch::x86_64::*;

use super::{ActivationRow, BlockFormat, Kernels, QuantizedActivations, BLOCK, PAD_BLOCKS};

/// Blocks reduced together, as many as a 256-bit register has `i32` lanes.
const GROUP: usize = 8;

/// The largest block handled here, Q8_0's 34 bytes.
const MAX_BLOCK_BYTES: usize = 34;

/// Rows whose totals advance together, one per lane of a 256-bit register.
const ROWS_TOGETHER: usize = 8;

/// How far ahead of the rows being computed their successors are prefetched into L1:
/// the next `ROWS_TOGETHER`. A decode step reads each weight once, from memory rather
/// than cache. On a 2-core Xeon VM, SmolLM2 decoded at 60 tokens/s on one thread and 87
/// on two without the prefetch, and at 64 and 101 with it. Prefetching 16 or 32 rows
/// ahead gave 60–61 and 97–99.
const PREFETCH_ROWS: usize = ROWS_TOGETHER;

// Whole groups of activation blocks are loaded, so padding must cover a group.
const _: () = assert!(PAD_BLOCKS % GROUP == 0);

/// Reports whether this CPU runs the kernels in this module.
pub(super) fn is_supported() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c")
}

/// The kernels in this module. Callers must check `is_supported` first.
pub(super) const KERNELS: Kernels = Kernels {
    q4_1: dot::<false>,
    q8_0: dot::<true>,
    quantize: quantize_row,
    prepare: Some(pair_values),
};

/// Sums each of eight `i32x8` vectors into lane `i` of the result for `v[i]`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn sum_each(v: [__m256i; GROUP]) -> __m256i {
    // After two rounds of lane-local pairwise sums, 128-bit lane 0 contains the partial
    // sums of elements 0..4 of four inputs and lane 1 those of elements 4..8.
    let ab = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    let cd = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    let low = _mm256_permute2x128_si256(ab, cd, 0x20);
    let high = _mm256_permute2x128_si256(ab, cd, 0x31);
    _mm256_add_epi32(low, high)
}

/// Adds the first `count` lanes of `terms` to `total` in lane order, as the scalar loop
/// adds block terms.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn add_in_order(total: f32, terms: __m256, count: usize) -> f32 {
    let mut lanes = [0f32; GROUP];
    _mm256_storeu_ps(lanes.as_mut_ptr(), terms);
    let mut total = total;
    for term in &lanes[..count] {
        total += term;
    }
    total
}

/// Computes `Σ q·a` over two consecutive Q4_1 blocks at `first` as `i32` partial
/// sums: four of the first block in the low 128-bit lane, four of the second in the
/// high lane. `paired` points at the pair's values in the order that `pair_values`
/// writes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q4_1_pair_partial_sums(first: *const u8, paired: *const i8) -> __m256i {
    let bytes = BlockFormat::Q4_1.block_bytes();
    let packed = _mm256_loadu2_m128i(
        first.add(bytes + 4) as *const __m128i,
        first.add(4) as *const __m128i,
    );
    let mask = _mm256_set1_epi8(0x0f);
    // Elements 0..16 of each block, then elements 16..32 of each block.
    let low = _mm256_and_si256(packed, mask);
    let high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), mask);
    // Unsigned nibbles (at most 15) times signed bytes: each 16-bit pair sum is at most
    // 2·15·128 = 3840 in magnitude, so neither the saturating pair sums nor the sum of
    // two of them (7680) overflow.
    let pairs = _mm256_add_epi16(
        _mm256_maddubs_epi16(low, _mm256_loadu_si256(paired as *const __m256i)),
        _mm256_maddubs_epi16(high, _mm256_loadu_si256(paired.add(32) as *const __m256i)),
    );
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
}

/// Sums the partial sums of four block pairs from `q4_1_pair_partial_sums` into lane
/// `i` of the result for block `i`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn sum_pairs(v: [__m256i; GROUP / 2]) -> __m256i {
    // 128-bit lane 0 ends up with blocks 0, 2, 4, 6 and lane 1 with blocks 1, 3, 5, 7.
    let sums = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    _mm256_permutevar8x32_epi32(sums, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// Fills `activations.paired`: the values of each pair of blocks regrouped as elements
/// 0..16 of both blocks, then elements 16..32 of both, to match the nibbles that
/// `q4_1_pair_partial_sums` unpacks.
#[target_feature(enable = "avx2")]
unsafe fn pair_values(activations: &mut QuantizedActivations) {
    let values = &activations.values;
    let out = &mut activations.paired;
    out.resize(values.len(), 0);
    assert!(values.len() % (2 * BLOCK) == 0);
    for pair in 0..values.len() / (2 * BLOCK) {
        let source = values.as_ptr().add(pair * 2 * BLOCK) as *const __m256i;
        let target = out.as_mut_ptr().add(pair * 2 * BLOCK) as *mut __m256i;
        let first = _mm256_loadu_si256(source);
        let second = _mm256_loadu_si256(source.add(1));
        _mm256_storeu_si256(target, _mm256_permute2x128_si256(first, second, 0x20));
        _mm256_storeu_si256(
            target.add(1),
            _mm256_permute2x128_si256(first, second, 0x31),
        );
    }
}

/// Computes `Σ q·a` over one Q8_0 block as eight `i32` partial sums, exact for every
/// byte value.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q8_0_partial_sums(block: *const u8, values: *const i8) -> __m256i {
    let weights = block.add(2) as *const __m128i;
    let activations = values as *const __m128i;
    let weights_low = _mm256_cvtepi8_epi16(_mm_loadu_si128(weights));
    let weights_high = _mm256_cvtepi8_epi16(_mm_loadu_si128(weights.add(1)));
    let activations_low = _mm256_cvtepi8_epi16(_mm_loadu_si128(activations));
    let activations_high = _mm256_cvtepi8_epi16(_mm_loadu_si128(activations.add(1)));
    _mm256_add_epi32(
        _mm256_madd_epi16(weights_low, activations_low),
        _mm256_madd_epi16(weights_high, activations_high),
    )
}

/// Reads the little-endian `u32` at `at`.
unsafe fn read_u32(at: *const u8) -> i32 {
    (at as *const u32).read_unaligned() as i32
}

/// Converts the f16 scale `d` and minimum `m` at the start of eight Q4_1 blocks.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn q4_1_scales(first: *const u8) -> (__m256, __m256) {
    let bytes = BlockFormat::Q4_1.block_bytes();
    let words = _mm256_setr_epi32(
        read_u32(first),
        read_u32(first.add(bytes)),
        read_u32(first.add(2 * bytes)),
        read_u32(first.add(3 * bytes)),
        read_u32(first.add(4 * bytes)),
        read_u32(first.add(5 * bytes)),
        read_u32(first.add(6 * bytes)),
        read_u32(first.add(7 * bytes)),
    );
    let d = _mm256_and_si256(words, _mm256_set1_epi32(0xffff));
    let m = _mm256_srli_epi32(words, 16);
    // Each 128-bit lane gets four `d` and then four `m` as u16. The permute puts all
    // eight `d` in the low half and all eight `m` in the high half.
    let packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(d, m), 0b11_01_10_00);
    (
        _mm256_cvtph_ps(_mm256_castsi256_si128(packed)),
        _mm256_cvtph_ps(_mm256_extracti128_si256(packed, 1)),
    )
}

/// Converts the f16 scale `d` at the start of eight Q8_0 blocks.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn q8_0_scales(first: *const u8) -> __m256 {
    let bytes = BlockFormat::Q8_0.block_bytes();
    let read = |index: usize| (first.add(index * bytes) as *const u16).read_unaligned() as i16;
    let halves = _mm_setr_epi16(
        read(0),
        read(1),
        read(2),
        read(3),
        read(4),
        read(5),
        read(6),
        read(7),
    );
    _mm256_cvtph_ps(halves)
}

/// Computes the terms `d·d_a·Σq·q_a + m·s_a` of the eight Q4_1 blocks at `first`,
/// which start at block `index` of `activations`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn q4_1_terms(first: *const u8, activations: ActivationRow, index: usize) -> __m256 {
    let bytes = BlockFormat::Q4_1.block_bytes();
    let paired = activations.paired.as_ptr().add(index * BLOCK);
    let mut partial = [_mm256_setzero_si256(); GROUP / 2];
    for (pair, sums) in partial.iter_mut().enumerate() {
        *sums = q4_1_pair_partial_sums(first.add(2 * pair * bytes), paired.add(2 * pair * BLOCK));
    }
    let sums = _mm256_cvtepi32_ps(sum_pairs(partial));
    let (d, m) = q4_1_scales(first);
    let activation_d = _mm256_loadu_ps(activations.scales.as_ptr().add(index));
    let activation_s = _mm256_loadu_ps(activations.sums.as_ptr().add(index));
    // Left to right, as in the scalar `d * activation.d * sum + m * activation.s`.
    _mm256_add_ps(
        _mm256_mul_ps(_mm256_mul_ps(d, activation_d), sums),
        _mm256_mul_ps(m, activation_s),
    )
}

/// Computes the terms `Σq·q_a·(d·d_a)` of the eight Q8_0 blocks at `first`, which start
/// at block `index` of `activations`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn q8_0_terms(first: *const u8, activations: ActivationRow, index: usize) -> __m256 {
    let bytes = BlockFormat::Q8_0.block_bytes();
    let values = activations.values.as_ptr().add(index * BLOCK);
    let mut partial = [_mm256_setzero_si256(); GROUP];
    for (offset, sums) in partial.iter_mut().enumerate() {
        *sums = q8_0_partial_sums(first.add(offset * bytes), values.add(offset * BLOCK));
    }
    let sums = _mm256_cvtepi32_ps(sum_each(partial));
    let d = q8_0_scales(first);
    let activation_d = _mm256_loadu_ps(activations.scales.as_ptr().add(index));
    _mm256_mul_ps(sums, _mm256_mul_ps(d, activation_d))
}

#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn terms<const Q8_0: bool>(
    first: *const u8,
    activations: ActivationRow,
    index: usize,
) -> __m256 {
    if Q8_0 {
        q8_0_terms(first, activations, index)
    } else {
        q4_1_terms(first, activations, index)
    }
}

/// Computes the terms of the group of blocks that starts at block `index` of the row
/// that starts at byte `start` of `weights`. A row's last group may be partial. It then
/// loads whole blocks from the bytes that follow the row, and the caller ignores the
/// terms of those blocks. The activation row is padded for the same reason. Only where
/// fewer than a group's bytes follow is the partial group copied into a zeroed buffer.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn group_terms<const Q8_0: bool>(
    weights: &[u8],
    start: usize,
    row_bytes: usize,
    activations: ActivationRow,
    index: usize,
) -> __m256 {
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
#[target_feature(enable = "avx2,f16c")]
unsafe fn copied_group_terms<const Q8_0: bool>(
    blocks: &[u8],
    activations: ActivationRow,
    index: usize,
) -> __m256 {
    let mut group = [0u8; GROUP * MAX_BLOCK_BYTES];
    group[..blocks.len()].copy_from_slice(blocks);
    terms::<Q8_0>(group.as_ptr(), activations, index)
}

/// Transposes eight vectors: lane `r` of output `j` is lane `j` of input `r`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn transpose(rows: [__m256; ROWS_TOGETHER]) -> [__m256; ROWS_TOGETHER] {
    let pairs: [__m256; 8] = [
        _mm256_unpacklo_ps(rows[0], rows[1]),
        _mm256_unpackhi_ps(rows[0], rows[1]),
        _mm256_unpacklo_ps(rows[2], rows[3]),
        _mm256_unpackhi_ps(rows[2], rows[3]),
        _mm256_unpacklo_ps(rows[4], rows[5]),
        _mm256_unpackhi_ps(rows[4], rows[5]),
        _mm256_unpacklo_ps(rows[6], rows[7]),
        _mm256_unpackhi_ps(rows[6], rows[7]),
    ];
    let quads: [__m256; 8] = [
        _mm256_shuffle_ps(pairs[0], pairs[2], 0x44),
        _mm256_shuffle_ps(pairs[0], pairs[2], 0xee),
        _mm256_shuffle_ps(pairs[1], pairs[3], 0x44),
        _mm256_shuffle_ps(pairs[1], pairs[3], 0xee),
        _mm256_shuffle_ps(pairs[4], pairs[6], 0x44),
        _mm256_shuffle_ps(pairs[4], pairs[6], 0xee),
        _mm256_shuffle_ps(pairs[5], pairs[7], 0x44),
        _mm256_shuffle_ps(pairs[5], pairs[7], 0xee),
    ];
    [
        _mm256_permute2f128_ps(quads[0], quads[4], 0x20),
        _mm256_permute2f128_ps(quads[1], quads[5], 0x20),
        _mm256_permute2f128_ps(quads[2], quads[6], 0x20),
        _mm256_permute2f128_ps(quads[3], quads[7], 0x20),
        _mm256_permute2f128_ps(quads[0], quads[4], 0x31),
        _mm256_permute2f128_ps(quads[1], quads[5], 0x31),
        _mm256_permute2f128_ps(quads[2], quads[6], 0x31),
        _mm256_permute2f128_ps(quads[3], quads[7], 0x31),
    ]
}

fn block_bytes<const Q8_0: bool>() -> usize {
    if Q8_0 {
        BlockFormat::Q8_0.block_bytes()
    } else {
        BlockFormat::Q4_1.block_bytes()
    }
}

/// Computes the dot products of `super::dot_q8_0` if `Q8_0`, else of `super::dot_q4_1`.
///
/// Rows go `ROWS_TOGETHER` at a time: their terms for a group of blocks are transposed
/// so that one vector add advances every row's total by one block, in block order. The
/// remaining rows go one at a time.
#[target_feature(enable = "avx2,f16c")]
unsafe fn dot<const Q8_0: bool>(
    weights: &[u8],
    rows: usize,
    activations: ActivationRow,
    out: &mut [f32],
    stride: usize,
) {
    let row_bytes = activations.check(weights, rows, block_bytes::<Q8_0>(), out, stride);
    assert!(
        Q8_0 || activations.paired.len() == activations.values.len(),
        "the AVX2 Q4_1 kernel needs paired activations"
    );
    let blocks = activations.blocks;
    let mut row = 0;
    while row + ROWS_TOGETHER <= rows {
        // Rows past this call's belong to another call, so prefetching them is
        // harmless. Nothing past the end of `weights` is prefetched.
        let ahead = (row + PREFETCH_ROWS) * row_bytes;
        if ahead + ROWS_TOGETHER * row_bytes <= weights.len() {
            for line in (0..ROWS_TOGETHER * row_bytes).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(weights.as_ptr().add(ahead + line) as *const i8);
            }
        }
        let mut totals = _mm256_setzero_ps();
        for index in (0..blocks).step_by(GROUP) {
            let mut terms = [_mm256_setzero_ps(); ROWS_TOGETHER];
            for (offset, terms) in terms.iter_mut().enumerate() {
                let start = (row + offset) * row_bytes;
                *terms = group_terms::<Q8_0>(weights, start, row_bytes, activations, index);
            }
            let count = GROUP.min(blocks - index);
            for column in &transpose(terms)[..count] {
                totals = _mm256_add_ps(totals, *column);
            }
        }
        let mut lanes = [0f32; ROWS_TOGETHER];
        _mm256_storeu_ps(lanes.as_mut_ptr(), totals);
        for (offset, total) in lanes.into_iter().enumerate() {
            *out.get_unchecked_mut((row + offset) * stride) = total;
        }
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
#[target_feature(enable = "avx2,f16c")]
unsafe fn quantize_row(x: &[f32], out: super::ActivationRowMut) {
    out.check(x);
    let blocks = out.scales.len();
    let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let lowest = _mm256_set1_ps(-128.0);
    let highest = _mm256_set1_ps(127.0);
    for block in 0..blocks {
        let start = x.as_ptr().add(block * BLOCK);
        let chunk = [
            _mm256_loadu_ps(start),
            _mm256_loadu_ps(start.add(8)),
            _mm256_loadu_ps(start.add(16)),
            _mm256_loadu_ps(start.add(24)),
        ];

        // `max_ps(a, b)` returns `b` when either is NaN, so NaN inputs are skipped like
        // `f32::max` skips them in the scalar fold.
        let mut maximum = _mm256_setzero_ps();
        for values in chunk {
            maximum = _mm256_max_ps(_mm256_and_ps(values, magnitude), maximum);
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), maximum);
        let amax = lanes.iter().fold(0f32, |max, &value| max.max(value));
        let d = amax / 127.0;
        let inverse = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });

        let mut quantized = [_mm256_setzero_si256(); 4];
        for (q, values) in quantized.iter_mut().zip(chunk) {
            let rounded = _mm256_round_ps(
                _mm256_mul_ps(values, inverse),
                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
            );
            // `as i8` maps NaN to 0 and saturates, but the conversion below would map
            // both to i32::MIN, so NaN lanes are cleared and the rest clamped first.
            let ordered = _mm256_and_ps(rounded, _mm256_cmp_ps(rounded, rounded, _CMP_ORD_Q));
            let clamped = _mm256_min_ps(_mm256_max_ps(ordered, lowest), highest);
            *q = _mm256_cvtps_epi32(clamped);
        }

        let total = _mm256_add_epi32(
            _mm256_add_epi32(quantized[0], quantized[1]),
            _mm256_add_epi32(quantized[2], quantized[3]),
        );
        let mut sums = [0i32; 8];
        _mm256_storeu_si256(sums.as_mut_ptr() as *mut __m256i, total);
        let sum: i32 = sums.iter().sum();

        // The packs interleave 128-bit lanes, and the permute restores element order.
        let bytes = _mm256_packs_epi16(
            _mm256_packs_epi32(quantized[0], quantized[1]),
            _mm256_packs_epi32(quantized[2], quantized[3]),
        );
        let ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(
            out.values.as_mut_ptr().add(block * BLOCK) as *mut __m256i,
            ordered,
        );
        out.scales[block] = super::round_to_f16(d);
        out.sums[block] = super::round_to_f16(sum as f32 * d);
    }
}
