// y[m, n] = x[m, k] . w[n, k]^T + bias for Q4_1 and Q8_0 weights against activations
// rounded to 8-bit blocks (quantize_activations.wgsl): integer dot products per block,
// scaled as ggml's CPU kernels scale them. A workgroup of 64 invocations covers 8 weight
// rows with 8 lanes each, for up to 8 activation rows, so short rows (576 values, 18
// blocks) still keep every lane busy.
struct Params { m: u32, n: u32, k: u32, has_bias: u32 }
@group(0) @binding(1) var<storage, read> qs: array<i32>;
@group(0) @binding(2) var<storage, read> scales: array<f32>;
@group(0) @binding(3) var<storage, read> sums: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

const LANES: u32 = 8u;
const WEIGHT_ROWS: u32 = 8u;
const ROWS: u32 = 8u;
var<workgroup> partials: array<f32, 512>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let group = wid.y * nwg.x + wid.x;
    let row_groups = (p.n + WEIGHT_ROWS - 1u) / WEIGHT_ROWS;
    let tiles = (p.m + ROWS - 1u) / ROWS;
    if (group >= row_groups * tiles) { return; }
    let column = (group % row_groups) * WEIGHT_ROWS + lid / LANES;
    let lane = lid % LANES;
    let first = (group / row_groups) * ROWS;
    let rows = min(ROWS, p.m - first);
    let blocks = p.k / 32u;
    var acc: array<f32, 8>;
    if (column < p.n) {
        for (var b = lane; b < blocks; b += LANES) {
            for (var r = 0u; r < rows; r++) {
                acc[r] += block_dot(column * blocks + b, (first + r) * blocks + b);
            }
        }
    }
    for (var r = 0u; r < ROWS; r++) {
        partials[r * 64u + lid] = acc[r];
    }
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
        if (lane < stride) {
            for (var r = 0u; r < ROWS; r++) {
                partials[r * 64u + lid] += partials[r * 64u + lid + stride];
            }
        }
        workgroupBarrier();
    }
    if (lane == 0u && column < p.n) {
        for (var r = 0u; r < rows; r++) {
            var value = partials[r * 64u + lid];
            if (p.has_bias != 0u) {
                value += bias[column];
            }
            y[(first + r) * p.n + column] = value;
        }
    }
}
