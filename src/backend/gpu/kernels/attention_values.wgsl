// out[b, hq, tq, d] = sum over keys of probabilities[b, hq, tq, key] * v[b, hq / group, key, d].
struct Params { n: u32, heads: u32, group: u32, tq: u32, tk: u32, d: u32 }
@group(0) @binding(0) var<storage, read> probabilities: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let e = i % p.d;
    let r = i / p.d;
    let head = (r / p.tq) % p.heads;
    let b = r / (p.tq * p.heads);
    let kv_heads = p.heads / p.group;
    let v_at = (b * kv_heads + head / p.group) * p.tk * p.d + e;
    let p_at = r * p.tk;
    var acc = 0.0;
    for (var key = 0u; key < p.tk; key++) {
        acc += probabilities[p_at + key] * v[v_at + key * p.d];
    }
    out[i] = acc;
}
