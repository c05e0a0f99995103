// Concatenates [b, h, t1, d] and [b, h, t2, d] along the sequence axis: the KV cache.
struct Params { n: u32, t1: u32, t2: u32, d: u32 }
@group(0) @binding(0) var<storage, read> first: array<f32>;
@group(0) @binding(1) var<storage, read> second: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let e = i % p.d;
    let r = i / p.d;
    let total = p.t1 + p.t2;
    let s = r % total;
    let head = r / total;
    if (s < p.t1) {
        out[i] = first[(head * p.t1 + s) * p.d + e];
    } else {
        out[i] = second[(head * p.t2 + s - p.t1) * p.d + e];
    }
}
