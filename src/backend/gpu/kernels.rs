//! The WGSL sources of every compute kernel, assembled from the files beside this one.
//!
//! Matrix products and embedding lookups are written once against a `weight(row, column, k)`
//! function. Each weight format (dense f32 or a GGUF block format) supplies its own, so a
//! quantized matrix is dequantized where it is read and never copied to f32.

/// A GGUF block format the kernels read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockFormat {
    Q4_1,
    Q8_0,
    Q4K,
    Q6K,
}

impl BlockFormat {
    /// Values per block and bytes per block.
    pub fn block(self) -> (usize, usize) {
        match self {
            BlockFormat::Q4_1 => (32, 20),
            BlockFormat::Q8_0 => (32, 34),
            BlockFormat::Q4K => (256, 144),
            BlockFormat::Q6K => (256, 210),
        }
    }

    fn source(self) -> &'static str {
        match self {
            BlockFormat::Q4_1 => include_str!("kernels/weights_q4_1.wgsl"),
            BlockFormat::Q8_0 => include_str!("kernels/weights_q8_0.wgsl"),
            BlockFormat::Q4K => include_str!("kernels/weights_q4_k.wgsl"),
            BlockFormat::Q6K => include_str!("kernels/weights_q6_k.wgsl"),
        }
    }
}

/// Weight layout a kernel reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightFormat {
    Dense,
    Blocks(BlockFormat),
}

impl WeightFormat {
    fn source(self) -> String {
        match self {
            WeightFormat::Dense => include_str!("kernels/weights_dense.wgsl").to_string(),
            WeightFormat::Blocks(format) => format!(
                "{}\n{}",
                include_str!("kernels/weights_bytes.wgsl"),
                format.source()
            ),
        }
    }
}

/// One compute pipeline: its name in timings and labels, and its WGSL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    Add,
    Gelu,
    SiluMul,
    Permute,
    Rope,
    Concat,
    AttentionScores,
    AttentionValues,
    MeanPool,
    LayerNorm,
    RmsNorm,
    Softmax,
    L2Normalize,
    /// Tiled matrix product, for more than a few rows of activations.
    Matmul(WeightFormat),
    /// Matrix-vector product, for up to 8 rows of activations at a time (decoding).
    Matvec(WeightFormat),
    /// Embedding rows gathered from a weight table.
    Lookup(WeightFormat),
    /// Activations rounded to 8-bit blocks, as ggml's CPU kernels round them.
    QuantizeActivations,
    /// Q4_1 or Q8_0 weights times 8-bit activation blocks, in integers per block.
    BlockDot(BlockFormat),
}

const ELEMENTWISE: &str = include_str!("kernels/elementwise.wgsl");
const ROWS: &str = include_str!("kernels/rows.wgsl");

impl Kernel {
    pub fn label(self) -> String {
        let format = |f: WeightFormat| match f {
            WeightFormat::Dense => "f32".to_string(),
            WeightFormat::Blocks(b) => format!("{b:?}").to_lowercase(),
        };
        match self {
            Kernel::Matmul(f) => format!("matmul_{}", format(f)),
            Kernel::Matvec(f) => format!("matvec_{}", format(f)),
            Kernel::Lookup(f) => format!("lookup_{}", format(f)),
            Kernel::BlockDot(b) => format!("block_dot_{}", format(WeightFormat::Blocks(b))),
            other => format!("{other:?}").to_lowercase(),
        }
    }

    /// Assembles the module's WGSL: shared helpers, then the weight access, then the body.
    pub fn source(self) -> String {
        let elementwise = |body: &str| format!("{ELEMENTWISE}\n{body}");
        let rows = |body: &str| format!("{ROWS}\n{body}");
        match self {
            Kernel::Add => elementwise(include_str!("kernels/add.wgsl")),
            Kernel::Gelu => elementwise(include_str!("kernels/gelu.wgsl")),
            Kernel::SiluMul => elementwise(include_str!("kernels/silu_mul.wgsl")),
            Kernel::Permute => elementwise(include_str!("kernels/permute.wgsl")),
            Kernel::Rope => elementwise(include_str!("kernels/rope.wgsl")),
            Kernel::Concat => elementwise(include_str!("kernels/concat.wgsl")),
            Kernel::AttentionScores => elementwise(include_str!("kernels/attention_scores.wgsl")),
            Kernel::AttentionValues => elementwise(include_str!("kernels/attention_values.wgsl")),
            Kernel::MeanPool => elementwise(include_str!("kernels/mean_pool.wgsl")),
            Kernel::LayerNorm => rows(include_str!("kernels/layer_norm.wgsl")),
            Kernel::RmsNorm => rows(include_str!("kernels/rms_norm.wgsl")),
            Kernel::Softmax => rows(include_str!("kernels/softmax.wgsl")),
            Kernel::L2Normalize => rows(include_str!("kernels/l2_normalize.wgsl")),
            Kernel::Matmul(f) => format!("{}\n{}", f.source(), include_str!("kernels/matmul.wgsl")),
            Kernel::Matvec(f) => format!("{}\n{}", f.source(), include_str!("kernels/matvec.wgsl")),
            Kernel::Lookup(f) => format!(
                "{ELEMENTWISE}\n{}\n{}",
                f.source(),
                include_str!("kernels/lookup.wgsl")
            ),
            Kernel::QuantizeActivations => {
                elementwise(include_str!("kernels/quantize_activations.wgsl"))
            }
            Kernel::BlockDot(format) => format!(
                "{}\n{}\n{}",
                include_str!("kernels/weights_bytes.wgsl"),
                include_str!("kernels/block_dot.wgsl"),
                match format {
                    BlockFormat::Q8_0 => include_str!("kernels/block_dot_q8_0.wgsl"),
                    _ => include_str!("kernels/block_dot_q4_1.wgsl"),
                }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kernel() -> Vec<Kernel> {
        let mut kernels = vec![
            Kernel::Add,
            Kernel::Gelu,
            Kernel::SiluMul,
            Kernel::Permute,
            Kernel::Rope,
            Kernel::Concat,
            Kernel::AttentionScores,
            Kernel::AttentionValues,
            Kernel::MeanPool,
            Kernel::LayerNorm,
            Kernel::RmsNorm,
            Kernel::Softmax,
            Kernel::L2Normalize,
            Kernel::QuantizeActivations,
            Kernel::BlockDot(BlockFormat::Q4_1),
            Kernel::BlockDot(BlockFormat::Q8_0),
        ];
        let formats = [
            WeightFormat::Dense,
            WeightFormat::Blocks(BlockFormat::Q4_1),
            WeightFormat::Blocks(BlockFormat::Q8_0),
            WeightFormat::Blocks(BlockFormat::Q4K),
            WeightFormat::Blocks(BlockFormat::Q6K),
        ];
        for format in formats {
            kernels.extend([
                Kernel::Matmul(format),
                Kernel::Matvec(format),
                Kernel::Lookup(format),
            ]);
        }
        kernels
    }

    /// Every module parses and validates with naga, the WGSL front end wgpu uses, so a
    /// shader error shows up without a GPU.
    #[test]
    fn every_kernel_validates_without_a_device() {
        for kernel in every_kernel() {
            let source = kernel.source();
            let module = naga::front::wgsl::parse_str(&source)
                .unwrap_or_else(|e| panic!("{}: {}", kernel.label(), e.emit_to_string(&source)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                // pack2x16float and unpack2x16float: core WGSL, a capability to naga.
                naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32,
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {e:?}", kernel.label()));
        }
    }
}
