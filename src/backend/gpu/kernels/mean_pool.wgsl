// out[b, c] = mean of x[b, 0..lengths[b], c], each term weighted by 1 / length as the
// CPU path does.
struct Params { n: u32, seq: u32, channels: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> lengths: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let c = i % p.channels;
    let b = i / p.channels;
    let length = min(lengths[b], p.seq);
    let weight = 1.0 / f32(lengths[b]);
    var acc = 0.0;
    for (var t = 0u; t < length; t++) {
        acc += x[(b * p.seq + t) * p.channels + c] * weight;
    }
    out[i] = acc;
}
