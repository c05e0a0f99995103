// Q8_0: blocks of 32 values in 34 bytes, f16 scale d then 32 signed bytes; x = d * q.
fn weight(row: u32, column: u32, k: u32) -> f32 {
    let at = (row * (k / 32u) + column / 32u) * 34u;
    return f16_at(at) * f32(signed_byte_at(at + 2u + column % 32u));
}
