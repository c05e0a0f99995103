// Layer norm over each row: (x - mean) / sqrt(variance + eps) * gamma + beta, with the
// variance of the centred values, as the CPU path computes it.
struct Params { rows: u32, columns: u32, eps: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = row_index(wid, nwg);
    if (row >= p.rows) { return; }
    let at = row * p.columns;
    var sum = 0.0;
    for (var c = lid; c < p.columns; c += ROW_THREADS) {
        sum += x[at + c];
    }
    let mean = workgroup_sum(lid, sum) / f32(p.columns);
    var squares = 0.0;
    for (var c = lid; c < p.columns; c += ROW_THREADS) {
        let centred = x[at + c] - mean;
        squares += centred * centred;
    }
    let variance = workgroup_sum(lid, squares) / f32(p.columns);
    let scale = sqrt(variance + p.eps);
    for (var c = lid; c < p.columns; c += ROW_THREADS) {
        out[at + c] = (x[at + c] - mean) / scale * gamma[c] + beta[c];
    }
}
