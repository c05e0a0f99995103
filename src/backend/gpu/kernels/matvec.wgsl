// y[m, n] = x[m, k] . w[n, k]^T + bias for a few rows of x (decoding): each workgroup
// reads one weight row once for up to 8 rows of x, and 64 invocations split k.
struct Params { m: u32, n: u32, k: u32, has_bias: u32 }
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const LANES: u32 = 64u;
const ROWS: u32 = 8u;
var<workgroup> sums: array<f32, 512>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let group = wid.y * nwg.x + wid.x;
    let tiles = (p.m + ROWS - 1u) / ROWS;
    if (group >= p.n * tiles) { return; }
    let column = group % p.n;
    let first = (group / p.n) * ROWS;
    let rows = min(ROWS, p.m - first);
    var acc: array<f32, 8>;
    for (var kk = lid; kk < p.k; kk += LANES) {
        let wv = weight(column, kk, p.k);
        for (var r = 0u; r < rows; r++) {
            acc[r] += x[(first + r) * p.k + kk] * wv;
        }
    }
    for (var r = 0u; r < ROWS; r++) {
        sums[r * LANES + lid] = acc[r];
    }
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            for (var r = 0u; r < ROWS; r++) {
                sums[r * LANES + lid] += sums[r * LANES + lid + stride];
            }
        }
        workgroupBarrier();
    }
    if (lid < rows) {
        var value = sums[lid * LANES];
        if (p.has_bias != 0u) {
            value += bias[column];
        }
        y[(first + lid) * p.n + column] = value;
    }
}
