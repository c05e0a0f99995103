//! Checks every GPU kernel against the CPU path, on seeded random inputs, and times both.
//!
//! The same cases run natively (`cargo test`, on whatever adapter wgpu finds: Mesa's
//! lavapipe in CI) and in the browser (`checkGpuKernels` in the page's wasm, on
//! Chromium's SwiftShader), so the two checks cannot drift apart.
//!
//! Shapes include sizes that are not multiples of the 16-wide tiles, a zero-sized
//! dimension, attention rows longer than a workgroup, and weight matrices of 2,048 rows
//! and more. Errors are measured as `max |gpu - cpu| / (1 + max |cpu|)`.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;

use super::cpu::CpuBackend;
use super::gpu::GpuBackend;
use super::{AttentionMask, Backend};
use crate::error::Result;

/// Tolerance for kernels that compute the same arithmetic in another order.
pub const F32_TOLERANCE: f64 = 1e-4;
/// Tolerance between a product with activations rounded to 8-bit blocks (Q4_1 and
/// Q8_0 on both backends, as ggml computes them) and one with f32 activations.
pub const QUANTIZED_ACTIVATION_TOLERANCE: f64 = 3e-2;

/// One kernel case: what ran, on which shape, and how far the GPU was from the CPU.
#[derive(Debug, Clone, Serialize)]
pub struct KernelCheck {
    pub kernel: String,
    pub shape: String,
    pub error: f64,
    pub tolerance: f64,
    pub passed: bool,
    /// Milliseconds per call on each backend, when timing was asked for.
    pub cpu_ms: Option<f64>,
    pub gpu_ms: Option<f64>,
}

/// Reference form of a quantized weight on the CPU side of a matrix product.
#[derive(Debug, Clone, Copy)]
enum Reference {
    /// The same blocks expanded to f32: the same arithmetic as the GPU's.
    Dequantized,
    /// The CPU backend's own quantized kernel.
    Native,
}

#[derive(Debug, Clone)]
enum Case {
    Linear {
        m: usize,
        k: usize,
        n: usize,
        bias: bool,
        format: Option<GgmlDType>,
        reference: Reference,
    },
    Embedding {
        rows: usize,
        columns: usize,
        ids: usize,
        format: Option<GgmlDType>,
    },
    Add {
        dims: Vec<usize>,
        broadcast: usize,
    },
    LayerNorm {
        rows: usize,
        columns: usize,
    },
    RmsNorm {
        rows: usize,
        columns: usize,
    },
    Gelu {
        n: usize,
    },
    SiluMul {
        n: usize,
    },
    SplitMerge {
        b: usize,
        t: usize,
        h: usize,
        d: usize,
    },
    Rope {
        b: usize,
        h: usize,
        t: usize,
        d: usize,
        offset: usize,
    },
    Append {
        b: usize,
        h: usize,
        t1: usize,
        t2: usize,
        d: usize,
    },
    Attention {
        b: usize,
        hq: usize,
        hkv: usize,
        tq: usize,
        tk: usize,
        d: usize,
        causal: bool,
    },
    MeanPool {
        b: usize,
        t: usize,
        c: usize,
    },
    L2Normalize {
        rows: usize,
        columns: usize,
    },
    LastPosition {
        b: usize,
        t: usize,
        c: usize,
    },
}

impl Case {
    fn name(&self) -> String {
        let format = |f: &Option<GgmlDType>| match f {
            None => "f32".to_string(),
            Some(dtype) => format!("{dtype:?}"),
        };
        match self {
            Case::Linear {
                format, reference, ..
            } => match (format, reference) {
                (None, _) => "linear f32".into(),
                (Some(_), Reference::Dequantized) => format!("linear {}", self::format(format)),
                (Some(_), Reference::Native) => {
                    format!("linear {} vs CPU kernel", self::format(format))
                }
            },
            Case::Embedding { format: f, .. } => format!("embedding {}", format(f)),
            Case::Add { .. } => "add".into(),
            Case::LayerNorm { .. } => "layer_norm".into(),
            Case::RmsNorm { .. } => "rms_norm".into(),
            Case::Gelu { .. } => "gelu".into(),
            Case::SiluMul { .. } => "silu_mul".into(),
            Case::SplitMerge { .. } => "split_heads + merge_heads".into(),
            Case::Rope { .. } => "rope".into(),
            Case::Append { .. } => "append_sequence (KV cache)".into(),
            Case::Attention { causal: true, .. } => "attention causal + softmax".into(),
            Case::Attention { causal: false, .. } => "attention padded + softmax".into(),
            Case::MeanPool { .. } => "mean_pool".into(),
            Case::L2Normalize { .. } => "l2_normalize".into(),
            Case::LastPosition { .. } => "last_position".into(),
        }
    }

    fn shape(&self) -> String {
        match self {
            Case::Linear { m, k, n, bias, .. } => {
                format!("x {m}x{k}, w {n}x{k}{}", if *bias { " + bias" } else { "" })
            }
            Case::Embedding {
                rows, columns, ids, ..
            } => format!("{ids} ids of {rows}x{columns}"),
            Case::Add { dims, broadcast } => format!("{dims:?} + [{broadcast}]"),
            Case::LayerNorm { rows, columns }
            | Case::RmsNorm { rows, columns }
            | Case::L2Normalize { rows, columns } => format!("{rows}x{columns}"),
            Case::Gelu { n } | Case::SiluMul { n } => format!("{n}"),
            Case::SplitMerge { b, t, h, d } => format!("b {b}, t {t}, h {h}, d {d}"),
            Case::Rope { b, h, t, d, offset } => format!("[{b}, {h}, {t}, {d}] at {offset}"),
            Case::Append { b, h, t1, t2, d } => format!("[{b}, {h}, {t1} + {t2}, {d}]"),
            Case::Attention {
                b,
                hq,
                hkv,
                tq,
                tk,
                d,
                ..
            } => format!("b {b}, heads {hq}/{hkv}, q {tq}, k {tk}, d {d}"),
            Case::MeanPool { b, t, c } | Case::LastPosition { b, t, c } => {
                format!("[{b}, {t}, {c}]")
            }
        }
    }

    fn tolerance(&self) -> f64 {
        match self {
            // Against the CPU's own Q4_1 and Q8_0 kernel both sides round activations to
            // 8 bits. Against f32 weights on the CPU, only the GPU side rounds.
            Case::Linear {
                reference: Reference::Dequantized,
                format: Some(GgmlDType::Q4_1 | GgmlDType::Q8_0),
                ..
            } => QUANTIZED_ACTIVATION_TOLERANCE,
            _ => F32_TOLERANCE,
        }
    }
}

fn format(f: &Option<GgmlDType>) -> String {
    match f {
        None => "f32".into(),
        Some(dtype) => format!("{dtype:?}"),
    }
}

/// Seeded values in [-1, 1).
fn random(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (rng.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0)
        .collect()
}

fn host(seed: u64, dims: &[usize]) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        random(seed, dims.iter().product()),
        dims,
        &Device::Cpu,
    )?)
}

/// Lists every case the checks run; `quick` keeps the shapes small for the browser.
fn cases(quick: bool) -> Vec<Case> {
    let tall = if quick { 2048 } else { 2304 };
    let mut cases = vec![
        Case::Linear {
            m: 1,
            k: 384,
            n: 1536,
            bias: true,
            format: None,
            reference: Reference::Dequantized,
        },
        Case::Linear {
            m: 37,
            k: 100,
            n: 33,
            bias: true,
            format: None,
            reference: Reference::Dequantized,
        },
        Case::Linear {
            m: 5,
            k: 17,
            n: 3,
            bias: false,
            format: None,
            reference: Reference::Dequantized,
        },
        Case::Linear {
            m: 20,
            k: 64,
            n: tall,
            bias: false,
            format: None,
            reference: Reference::Dequantized,
        },
        Case::Linear {
            m: 0,
            k: 64,
            n: 48,
            bias: true,
            format: None,
            reference: Reference::Dequantized,
        },
        Case::Embedding {
            rows: 300,
            columns: 40,
            ids: 7,
            format: None,
        },
        Case::Add {
            dims: vec![2, 5, 24],
            broadcast: 24,
        },
        Case::Add {
            dims: vec![3, 1000],
            broadcast: 3000,
        },
        Case::LayerNorm {
            rows: 13,
            columns: 384,
        },
        Case::LayerNorm {
            rows: 3,
            columns: 1000,
        },
        Case::RmsNorm {
            rows: 9,
            columns: 576,
        },
        Case::RmsNorm {
            rows: 1,
            columns: 70,
        },
        Case::Gelu { n: 1000 },
        Case::SiluMul { n: 1537 },
        Case::SplitMerge {
            b: 2,
            t: 7,
            h: 9,
            d: 64,
        },
        Case::Rope {
            b: 1,
            h: 3,
            t: 5,
            d: 64,
            offset: 0,
        },
        Case::Rope {
            b: 1,
            h: 9,
            t: 1,
            d: 64,
            offset: 131,
        },
        Case::Append {
            b: 1,
            h: 3,
            t1: 17,
            t2: 1,
            d: 64,
        },
        Case::Append {
            b: 2,
            h: 2,
            t1: 0,
            t2: 5,
            d: 8,
        },
        Case::Attention {
            b: 1,
            hq: 9,
            hkv: 3,
            tq: 6,
            tk: 6,
            d: 64,
            causal: true,
        },
        Case::Attention {
            b: 1,
            hq: 9,
            hkv: 3,
            tq: 1,
            tk: 300,
            d: 64,
            causal: true,
        },
        Case::Attention {
            b: 3,
            hq: 12,
            hkv: 12,
            tq: 11,
            tk: 11,
            d: 32,
            causal: false,
        },
        Case::MeanPool {
            b: 3,
            t: 11,
            c: 384,
        },
        Case::L2Normalize {
            rows: 4,
            columns: 384,
        },
        Case::LastPosition { b: 2, t: 9, c: 576 },
    ];
    for format in [
        GgmlDType::Q4_1,
        GgmlDType::Q8_0,
        GgmlDType::Q4K,
        GgmlDType::Q6K,
    ] {
        let block = if matches!(format, GgmlDType::Q4K | GgmlDType::Q6K) {
            256
        } else {
            32
        };
        cases.extend([
            Case::Linear {
                m: 1,
                k: 2 * block,
                n: 33,
                bias: false,
                format: Some(format),
                reference: Reference::Dequantized,
            },
            Case::Linear {
                m: 19,
                k: 3 * block,
                n: tall,
                bias: false,
                format: Some(format),
                reference: Reference::Dequantized,
            },
            Case::Embedding {
                rows: 50,
                columns: block,
                ids: 5,
                format: Some(format),
            },
        ]);
        if matches!(format, GgmlDType::Q4_1 | GgmlDType::Q8_0) {
            cases.extend([
                Case::Linear {
                    m: 3,
                    k: 576,
                    n: 96,
                    bias: false,
                    format: Some(format),
                    reference: Reference::Native,
                },
                Case::Linear {
                    m: 21,
                    k: 1536,
                    n: 576,
                    bias: true,
                    format: Some(format),
                    reference: Reference::Native,
                },
            ]);
        }
    }
    cases
}

/// Uploads a weight to `backend`: dense, or quantized from the same seeded values.
fn weight<B: Backend>(
    backend: &B,
    seed: u64,
    rows: usize,
    columns: usize,
    format: Option<GgmlDType>,
    dequantized: bool,
) -> Result<B::Weight> {
    let dense = host(seed, &[rows, columns])?;
    match format {
        None => backend.upload_weight(&dense),
        Some(dtype) => {
            let blocks = QTensor::quantize(&dense, dtype)?;
            if dequantized {
                backend.upload_weight(&blocks.dequantize(&Device::Cpu)?)
            } else {
                backend.upload_quantized(blocks)
            }
        }
    }
}

/// Runs `case` on `backend` and reads its result back. `is_reference` marks the CPU
/// side, which reads quantized weights as f32 unless the case compares with its native
/// kernel. With `iterations` above zero the operation then runs that many times more on
/// the same inputs, and the median milliseconds per call come back. Each call counts
/// until its result is read back; generating, quantizing and uploading the inputs do not.
async fn run<B: Backend>(
    backend: &B,
    case: &Case,
    is_reference: bool,
    iterations: usize,
) -> Result<(Vec<f32>, Option<f64>)> {
    let up = |seed: u64, dims: &[usize]| backend.upload(&host(seed, dims)?);
    type Call<'a, T> = Box<dyn Fn() -> Result<T> + 'a>;
    let call: Call<'_, B::Tensor> = match case {
        Case::Linear {
            m,
            k,
            n,
            bias,
            format,
            reference,
        } => {
            let dequantized = is_reference && matches!(reference, Reference::Dequantized);
            let w = weight(backend, 2, *n, *k, *format, dequantized)?;
            let x = up(1, &[*m, *k])?;
            let b = if *bias { Some(up(3, &[*n])?) } else { None };
            Box::new(move || backend.linear(&x, &w, b.as_ref()))
        }
        Case::Embedding {
            rows,
            columns,
            ids,
            format,
        } => {
            let table = weight(backend, 4, *rows, *columns, *format, is_reference)?;
            let ids: Vec<u32> = (0..*ids).map(|i| ((i * 37 + 11) % rows) as u32).collect();
            Box::new(move || backend.embedding(&table, &ids, 1))
        }
        Case::Add { dims, broadcast } => {
            let tail = dims.len() - 1;
            let b_dims: Vec<usize> = if *broadcast == dims[tail] {
                vec![*broadcast]
            } else {
                dims.clone()
            };
            let (a, b) = (up(5, dims)?, up(6, &b_dims)?);
            Box::new(move || backend.add(&a, &b))
        }
        Case::LayerNorm { rows, columns } => {
            let x = up(7, &[*rows, *columns])?;
            let (gamma, beta) = (up(8, &[*columns])?, up(9, &[*columns])?);
            Box::new(move || backend.layer_norm(&x, &gamma, &beta, 1e-12))
        }
        Case::RmsNorm { rows, columns } => {
            let (x, w) = (up(10, &[*rows, *columns])?, up(11, &[*columns])?);
            Box::new(move || backend.rms_norm(&x, &w, 1e-5))
        }
        Case::Gelu { n } => {
            let x = backend.upload(&host(12, &[*n])?.affine(8.0, 0.0)?)?;
            Box::new(move || backend.gelu(&x))
        }
        Case::SiluMul { n } => {
            let gate = backend.upload(&host(13, &[*n])?.affine(12.0, 0.0)?)?;
            let up_projection = up(14, &[*n])?;
            Box::new(move || backend.silu_mul(&gate, &up_projection))
        }
        Case::SplitMerge { b, t, h, d } => {
            let x = up(15, &[*b, *t, h * d])?;
            let heads = *h;
            Box::new(move || {
                let split = backend.split_heads(&x, heads)?;
                backend.merge_heads(&backend.rope(&split, 3, 10000.0)?)
            })
        }
        Case::Rope { b, h, t, d, offset } => {
            let x = up(16, &[*b, *h, *t, *d])?;
            let offset = *offset;
            Box::new(move || backend.rope(&x, offset, 100000.0))
        }
        Case::Append { b, h, t1, t2, d } => {
            let cache = up(17, &[*b, *h, *t1, *d])?;
            let new = up(18, &[*b, *h, *t2, *d])?;
            Box::new(move || {
                let sequence = backend.append_sequence(None, &cache)?;
                let sequence = backend.append_sequence(Some(sequence), &new)?;
                backend.sequence_tensor(&sequence)
            })
        }
        Case::Attention {
            b,
            hq,
            hkv,
            tq,
            tk,
            d,
            causal,
        } => {
            let q = up(19, &[*b, *hq, *tq, *d])?;
            let k = up(20, &[*b, *hkv, *tk, *d])?;
            let v = up(21, &[*b, *hkv, *tk, *d])?;
            let mask = if *causal {
                AttentionMask::Causal { offset: tk - tq }
            } else {
                AttentionMask::Padding {
                    lengths: (0..*b).map(|i| tk - 3 * i).collect(),
                }
            };
            Box::new(move || backend.attention(&q, &k, &v, &mask))
        }
        Case::MeanPool { b, t, c } => {
            let lengths: Vec<usize> = (0..*b).map(|i| t - 2 * i).collect();
            let x = up(22, &[*b, *t, *c])?;
            Box::new(move || backend.mean_pool(&x, &lengths))
        }
        Case::L2Normalize { rows, columns } => {
            let x = up(23, &[*rows, *columns])?;
            Box::new(move || backend.l2_normalize(&x))
        }
        Case::LastPosition { b, t, c } => {
            let x = up(24, &[*b, *t, *c])?;
            Box::new(move || backend.last_position(&x))
        }
    };
    // The first call is also the warm-up.
    let values = backend.read(&call()?).await?;
    if iterations == 0 {
        return Ok((values, None));
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = web_time::Instant::now();
        backend.read(&call()?).await?;
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    Ok((values, Some(samples[samples.len() / 2])))
}

fn relative_error(gpu: &[f32], cpu: &[f32]) -> f64 {
    if gpu.len() != cpu.len() {
        return f64::INFINITY;
    }
    let scale = 1.0 + cpu.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    let worst = gpu
        .iter()
        .zip(cpu)
        .map(|(&g, &c)| {
            if g.is_nan() != c.is_nan() {
                f64::INFINITY
            } else {
                ((g - c) as f64).abs()
            }
        })
        .fold(0f64, f64::max);
    worst / scale
}

/// Runs every case on the GPU and the CPU and compares them; with `timing_iterations`
/// above zero, also times each side.
pub async fn check_kernels(
    gpu: &GpuBackend,
    quick: bool,
    timing_iterations: usize,
) -> Result<Vec<KernelCheck>> {
    let cpu = CpuBackend::new();
    let mut checks = Vec::new();
    for case in cases(quick) {
        let (on_gpu, gpu_ms) = run(gpu, &case, false, timing_iterations).await?;
        let (on_cpu, _) = run(&cpu, &case, true, 0).await?;
        // Timed with the CPU backend's own weights, not the f32 reference's.
        let cpu_ms = match timing_iterations {
            0 => None,
            n => run(&cpu, &case, false, n).await?.1,
        };
        let error = relative_error(&on_gpu, &on_cpu);
        let tolerance = case.tolerance();
        checks.push(KernelCheck {
            kernel: case.name(),
            shape: case.shape(),
            error,
            tolerance,
            passed: error <= tolerance,
            cpu_ms,
            gpu_ms,
        });
    }
    Ok(checks)
}
