// Rounds activations to 8-bit blocks of 32 the way ggml's quantize_row_q8_1 does, so
// that Q4_1 and Q8_0 products match the CPU path's integer arithmetic: per block,
// d = max |x| / 127 (kept as f16), q = round-half-even(x / d), s = f16(d * sum q).
// One invocation per block.
struct Params { blocks: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> qs: array<i32>;
@group(0) @binding(2) var<storage, read_write> scales: array<f32>;
@group(0) @binding(3) var<storage, read_write> sums: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn to_f16(v: f32) -> f32 {
    return unpack2x16float(pack2x16float(vec2<f32>(v, 0.0))).x;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let block = flat_index(wid, nwg, lid);
    if (block >= p.blocks) { return; }
    let at = block * 32u;
    var largest = 0.0;
    for (var j = 0u; j < 32u; j++) {
        largest = max(largest, abs(x[at + j]));
    }
    let d = largest / 127.0;
    let inverse = select(0.0, 1.0 / d, d != 0.0);
    var total = 0;
    for (var j = 0u; j < 32u; j++) {
        let q = i32(round(x[at + j] * inverse));
        qs[at + j] = q;
        total += q;
    }
    scales[block] = to_f16(d);
    sums[block] = to_f16(f32(total) * d);
}
