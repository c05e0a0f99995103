// Swaps axes 1 and 2 of a [b, d1, d2, d] tensor, giving [b, d2, d1, d]: split_heads
// ([b, t, h, d] to [b, h, t, d]) and merge_heads (the reverse) both use it.
struct Params { n: u32, d1: u32, d2: u32, d: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let e = i % p.d;
    let r = i / p.d;
    let a1 = r % p.d1;
    let r2 = r / p.d1;
    let a2 = r2 % p.d2;
    let b = r2 / p.d2;
    out[i] = x[((b * p.d1 + a1) * p.d2 + a2) * p.d + e];
}
