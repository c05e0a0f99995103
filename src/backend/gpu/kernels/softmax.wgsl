// Softmax over each row, shifted by the row's maximum. A row whose every value is the
// attention mask's value (no visible key) gives zeros.
struct Params { rows: u32, columns: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = row_index(wid, nwg);
    if (row >= p.rows) { return; }
    let at = row * p.columns;
    let lowest = -3.0e38;
    var largest = lowest;
    for (var c = lid; c < p.columns; c += ROW_THREADS) {
        largest = max(largest, x[at + c]);
    }
    largest = workgroup_max(lid, largest);
    if (largest <= lowest) {
        for (var c = lid; c < p.columns; c += ROW_THREADS) {
            out[at + c] = 0.0;
        }
        return;
    }
    var sum = 0.0;
    for (var c = lid; c < p.columns; c += ROW_THREADS) {
        sum += exp(x[at + c] - largest);
    }
    let total = workgroup_sum(lid, sum);
    for (var c = lid; c < p.columns; c += ROW_THREADS) {
        out[at + c] = exp(x[at + c] - largest) / total;
    }
}
