// Q4_K: super-blocks of 256 values in 144 bytes: f16 d, f16 dmin, 12 bytes packing
// eight 6-bit scales and minimums, then 128 bytes of nibbles. Sub-block s (32 values)
// uses the low nibbles of bytes 32 (s / 2) .. for even s and the high ones for odd s;
// x = d * scale[s] * q - dmin * min[s].
fn weight(row: u32, column: u32, k: u32) -> f32 {
    let at = (row * (k / 256u) + column / 256u) * 144u;
    let j = column % 256u;
    let sub = j / 32u;
    let scales = at + 4u;
    var scale: u32;
    var minimum: u32;
    if (sub < 4u) {
        scale = byte_at(scales + sub) & 63u;
        minimum = byte_at(scales + sub + 4u) & 63u;
    } else {
        scale = (byte_at(scales + sub + 4u) & 0xfu) | ((byte_at(scales + sub - 4u) >> 6u) << 4u);
        minimum = (byte_at(scales + sub + 4u) >> 4u) | ((byte_at(scales + sub) >> 6u) << 4u);
    }
    let packed = byte_at(at + 16u + (sub / 2u) * 32u + j % 32u);
    let q = (packed >> (4u * (sub % 2u))) & 0xfu;
    return f16_at(at) * f32(scale) * f32(q) - f16_at(at + 2u) * f32(minimum);
}
