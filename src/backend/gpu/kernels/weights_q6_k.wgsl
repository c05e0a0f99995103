// Q6_K: super-blocks of 256 values in 210 bytes: 128 bytes of low nibbles, 64 bytes of
// high 2-bit pairs, 16 signed 8-bit scales, then f16 d; x = d * scale * (q - 32).
// Each half of 128 values splits into four quarters of 32 that share the same bytes.
fn weight(row: u32, column: u32, k: u32) -> f32 {
    let at = (row * (k / 256u) + column / 256u) * 210u;
    let j = column % 256u;
    let half = j / 128u;
    let quarter = (j % 128u) / 32u;
    let l = j % 32u;
    let low_byte = byte_at(at + 64u * half + l + (quarter & 1u) * 32u);
    let low = select(low_byte & 0xfu, low_byte >> 4u, quarter >= 2u);
    let high = (byte_at(at + 128u + 32u * half + l) >> (2u * quarter)) & 3u;
    let q = i32(low | (high << 4u)) - 32;
    let scale = signed_byte_at(at + 192u + 8u * half + l / 16u + 2u * quarter);
    return f16_at(at + 208u) * f32(scale) * f32(q);
}
