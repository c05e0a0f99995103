// Weight block `wb` (Q8_0) against activation block `ab`: sum(q_w q_a) (d_w d_a).
fn block_dot(wb: u32, ab: u32) -> f32 {
    let at = wb * 34u;
    let a = ab * 32u;
    var total = 0;
    for (var j = 0u; j < 32u; j++) {
        total += signed_byte_at(at + 2u + j) * qs[a + j];
    }
    // Q8_0 has no minimum; the read keeps the shared binding layout of both formats.
    _ = sums[ab];
    return f32(total) * (f16_at(at) * scales[ab]);
}
