// Weight access for GGUF block-quantized matrices: the blocks stay as loaded, as bytes
// packed little-endian into u32 words, and each value is dequantized where it is read.
// Block layouts follow ggml's (ggml-common.h). Scales are f16, read with unpack2x16float,
// so no shader-f16 feature is needed and every sum is f32.
@group(0) @binding(0) var<storage, read> w: array<u32>;

fn byte_at(at: u32) -> u32 {
    return (w[at >> 2u] >> ((at & 3u) * 8u)) & 0xffu;
}

fn signed_byte_at(at: u32) -> i32 {
    return (i32(byte_at(at)) << 24u) >> 24u;
}

// The f16 at an even byte offset.
fn f16_at(at: u32) -> f32 {
    let word = w[at >> 2u];
    let half = select(word & 0xffffu, word >> 16u, (at & 2u) != 0u);
    return unpack2x16float(half).x;
}
