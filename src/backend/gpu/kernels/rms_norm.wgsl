// RMS norm over each row: x / sqrt(mean(x^2) + eps) * gamma.
struct Params { rows: u32, columns: u32, eps: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = row_index(wid, nwg);
    if (row >= p.rows) { return; }
    let at = row * p.columns;
    var squares = 0.0;
    for (var c = lid; c < p.columns; c += ROW_THREADS) {
        squares += x[at + c] * x[at + c];
    }
    let scale = sqrt(workgroup_sum(lid, squares) / f32(p.columns) + p.eps);
    for (var c = lid; c < p.columns; c += ROW_THREADS) {
        out[at + c] = x[at + c] / scale * gamma[c];
    }
}
