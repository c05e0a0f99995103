// y[m, n] = x[m, k] . w[n, k]^T + bias, in 16 x 16 output tiles with 16-wide slices of
// k staged in workgroup memory. `weight` comes from the weight-access snippet, so dense
// and block-quantized matrices share this body.
struct Params { m: u32, n: u32, k: u32, has_bias: u32 }
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> x_tile: array<f32, 256>;
var<workgroup> w_tile: array<f32, 256>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.y * 16u + lid.y;
    let column = wid.x * 16u + lid.x;
    let weight_row = wid.x * 16u + lid.y;
    var acc = 0.0;
    let tiles = (p.k + 15u) / 16u;
    for (var t = 0u; t < tiles; t++) {
        let kk = t * 16u + lid.x;
        var xv = 0.0;
        if (row < p.m && kk < p.k) {
            xv = x[row * p.k + kk];
        }
        x_tile[lid.y * 16u + lid.x] = xv;
        var wv = 0.0;
        if (weight_row < p.n && kk < p.k) {
            wv = weight(weight_row, kk, p.k);
        }
        w_tile[lid.y * 16u + lid.x] = wv;
        workgroupBarrier();
        for (var i = 0u; i < 16u; i++) {
            acc += x_tile[lid.y * 16u + i] * w_tile[lid.x * 16u + i];
        }
        workgroupBarrier();
    }
    if (row < p.m && column < p.n) {
        if (p.has_bias != 0u) {
            acc += bias[column];
        }
        y[row * p.n + column] = acc;
    }
}
