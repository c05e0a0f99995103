// Weight access for a dense f32 matrix [n, k].
@group(0) @binding(0) var<storage, read> w: array<f32>;

fn weight(row: u32, column: u32, k: u32) -> f32 {
    return w[row * k + column];
}
