// Weight block `wb` (Q4_1) against activation block `ab`: d_w d_a sum(q_w q_a) + m s_a.
fn block_dot(wb: u32, ab: u32) -> f32 {
    let at = wb * 20u;
    let a = ab * 32u;
    var total = 0;
    for (var j = 0u; j < 16u; j++) {
        let packed = i32(byte_at(at + 4u + j));
        total += (packed & 15) * qs[a + j] + (packed >> 4u) * qs[a + j + 16u];
    }
    return f16_at(at) * scales[ab] * f32(total) + f16_at(at + 2u) * sums[ab];
}
