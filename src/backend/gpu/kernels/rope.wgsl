// Rotary position embedding on [b, h, t, d], rotating adjacent pairs (2i, 2i + 1). The
// host computes the cos and sin tables ([t, d / 2]) exactly as the CPU path does.
struct Params { n: u32, seq: u32, half: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> cos_table: array<f32>;
@group(0) @binding(2) var<storage, read> sin_table: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = flat_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let pair = i % p.half;
    let row = i / p.half;
    let t = row % p.seq;
    let c = cos_table[t * p.half + pair];
    let s = sin_table[t * p.half + pair];
    let at = row * 2u * p.half + 2u * pair;
    let x0 = x[at];
    let x1 = x[at + 1u];
    out[at] = x0 * c - x1 * s;
    out[at + 1u] = x0 * s + x1 * c;
}
