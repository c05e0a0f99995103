// Q4_1: blocks of 32 values in 20 bytes, f16 scale d, f16 minimum m, 16 bytes of
// nibbles (values 0..15 low nibbles, 16..31 high nibbles); x = d * q + m.
fn weight(row: u32, column: u32, k: u32) -> f32 {
    let at = (row * (k / 32u) + column / 32u) * 20u;
    let j = column % 32u;
    let q = (byte_at(at + 4u + j % 16u) >> (4u * (j / 16u))) & 0xfu;
    return f16_at(at) * f32(q) + f16_at(at + 2u);
}
