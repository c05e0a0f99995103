// scores[b, hq, tq, tk] = (q . k) / sqrt(d) + mask, for grouped-query attention: query
// head hh reads key head hh / group. Masked keys get MASKED, far below any score: WGSL lets
// an implementation assume no infinities, so -inf cannot be written.
// mode 0: causal, query j sees keys 0..=offset + j; mode 1: padding, row b sees keys
// 0..lengths[b].
const MASKED: f32 = -3.0e38;
struct Params { n: u32, heads: u32, group: u32, tq: u32, tk: u32, d: u32, mode: u32,
                offset: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> lengths: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let key = i % p.tk;
    let r = i / p.tk;
    let j = r % p.tq;
    let r2 = r / p.tq;
    let head = r2 % p.heads;
    let b = r2 / p.heads;
    var visible = key <= p.offset + j;
    if (p.mode == 1u) {
        visible = key < lengths[b];
    }
    if (!visible) {
        out[i] = MASKED;
        return;
    }
    let kv_heads = p.heads / p.group;
    let kv_head = head / p.group;
    let q_at = r * p.d;
    let k_at = ((b * kv_heads + kv_head) * p.tk + key) * p.d;
    var dot = 0.0;
    for (var e = 0u; e < p.d; e++) {
        dot += q[q_at + e] * k[k_at + e];
    }
    out[i] = dot * p.scale;
}
