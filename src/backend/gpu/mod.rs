//! The GPU backend: WGSL compute kernels launched through wgpu, on WebGPU in the browser
//! and on Vulkan, Metal or DX12 natively.
//!
//! Every operation records one or a few compute passes into a pending command encoder.
//! Nothing reaches the queue until a tensor is read back or many passes have piled up,
//! so a decoding step costs one submission. Output buffers come from a pool keyed by size
//! and return to it when their tensor is dropped; the encoder's order keeps a reused
//! buffer from being overwritten before earlier passes have read it. Readback maps a
//! staging buffer and awaits it, so neither the browser's main thread nor a worker blocks.
//!
//! Weights keep their GGUF blocks on the device (see `kernels/weights_*.wgsl`); every
//! sum is accumulated in f32 and no kernel needs `shader-f16`.

mod kernels;

pub use kernels::{BlockFormat, Kernel, WeightFormat};

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::DType;

use super::{AttentionMask, Backend};
use crate::error::{Error, Result};

/// Passes recorded before the pending encoder is submitted without waiting for a read.
const PASSES_PER_SUBMISSION: usize = 256;
/// Buffer sizes are rounded up to this many bytes, which also satisfies wgpu's copy
/// alignment and keeps every binding non-empty.
const BUFFER_ALIGNMENT: u64 = 16;
/// Rows of activations up to which the matrix-vector kernel beats the tiled one.
const MATVEC_ROWS: usize = 8;

/// Options for opening a GPU device.
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// Accept a software adapter (SwiftShader, llvmpipe/lavapipe). Such an adapter is
    /// slower than the CPU path, so an automatic choice refuses it.
    pub allow_software: bool,
    /// Request a smaller storage-buffer binding limit than the adapter offers, to
    /// check how a model that does not fit is refused.
    pub max_storage_binding: Option<u64>,
    /// Multiply Q4_1 and Q8_0 weights by f32 activations, dequantizing the weights where
    /// read, instead of rounding the activations to 8-bit blocks as the CPU path and
    /// ggml do. Matches [`CpuBackend::with_f32_activations`](crate::backend::cpu::CpuBackend::with_f32_activations).
    pub f32_activations: bool,
}

/// The adapter a backend runs on, as the report records it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub driver: String,
    /// A CPU implementation of the GPU API: timings are not a GPU's.
    pub software: bool,
    pub max_storage_binding: u64,
}

impl AdapterSummary {
    pub fn describe(&self) -> String {
        let mut text = format!("{} ({})", self.name, self.backend);
        if !self.driver.is_empty() {
            text.push_str(&format!(", {}", self.driver));
        }
        if self.software {
            text.push_str(", software rendering");
        }
        text
    }
}

/// A device buffer that returns to its backend's pool when the last tensor using it drops.
struct Storage {
    buffer: wgpu::Buffer,
    size: u64,
    pool: Weak<Inner>,
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Some(inner) = self.pool.upgrade() {
            if let Ok(mut pool) = inner.pool.try_borrow_mut() {
                pool.entry(self.size).or_default().push(self.buffer.clone());
            }
        }
    }
}

/// An f32 tensor on the device.
#[derive(Clone)]
pub struct GpuTensor {
    storage: Rc<Storage>,
    dims: Vec<usize>,
}

impl GpuTensor {
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    fn len(&self) -> usize {
        self.dims.iter().product()
    }

    fn buffer(&self) -> &wgpu::Buffer {
        &self.storage.buffer
    }
}

/// A weight matrix `[rows, columns]` on the device, dense f32 or GGUF blocks.
pub struct GpuWeight {
    buffer: wgpu::Buffer,
    format: WeightFormat,
    rows: usize,
    columns: usize,
}

impl GpuWeight {
    pub fn format(&self) -> WeightFormat {
        self.format
    }
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: AdapterSummary,
    max_binding: u64,
    max_groups: u32,
    f32_activations: bool,
    pipelines: RefCell<HashMap<Kernel, wgpu::ComputePipeline>>,
    pool: RefCell<HashMap<u64, Vec<wgpu::Buffer>>>,
    encoder: RefCell<Option<wgpu::CommandEncoder>>,
    passes: Cell<usize>,
    /// Set by the device-lost callback, or by `lose_device`.
    lost: Arc<Mutex<Option<String>>>,
    /// The first error the device reported outside any error scope.
    error: Arc<Mutex<Option<String>>>,
    /// Bound where a kernel declares an optional input the call does not have.
    placeholder: wgpu::Buffer,
}

/// The GPU backend; clones share one device.
#[derive(Clone)]
pub struct GpuBackend {
    inner: Rc<Inner>,
}

fn locked(slot: &Mutex<Option<String>>) -> Option<String> {
    slot.lock().map(|s| s.clone()).unwrap_or(None)
}

fn round_up(bytes: u64) -> u64 {
    bytes.div_ceil(BUFFER_ALIGNMENT).max(1) * BUFFER_ALIGNMENT
}

fn host_f32(host: &candle_core::Tensor) -> Result<Vec<f32>> {
    Ok(host.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

fn words(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl GpuBackend {
    /// Opens the first adapter the platform offers and a device with the largest storage
    /// buffers it allows. Fails with [`Error::GpuUnavailable`] when there is none, or when
    /// it is a software adapter and `options.allow_software` is off.
    pub async fn new(options: &GpuOptions) -> Result<Self> {
        let unavailable = |reason: String| Error::GpuUnavailable { reason };
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::all(),
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(format!("no GPU adapter: {e}")))?;
        let info = adapter.get_info();
        let software = info.device_type == wgpu::DeviceType::Cpu
            || info.name.to_lowercase().contains("swiftshader")
            || info.name.to_lowercase().contains("llvmpipe");
        let offered = adapter.limits();
        let summary = AdapterSummary {
            // Browsers hide the adapter's name unless the page requests it.
            name: match (info.name.is_empty(), software) {
                (false, _) => info.name.clone(),
                (true, true) => "software adapter".into(),
                (true, false) => "unnamed adapter".into(),
            },
            backend: format!("{:?}", info.backend),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            software,
            max_storage_binding: 0,
        };
        if software && !options.allow_software {
            return Err(unavailable(format!(
                "the only adapter, {}, is a software renderer and slower than the CPU path; \
                 choose the GPU back end explicitly to use it anyway",
                summary.describe()
            )));
        }

        let mut required = wgpu::Limits::default();
        required.max_storage_buffer_binding_size = offered.max_storage_buffer_binding_size;
        required.max_buffer_size = offered.max_buffer_size;
        required.max_storage_buffers_per_shader_stage = offered
            .max_storage_buffers_per_shader_stage
            .min(required.max_storage_buffers_per_shader_stage.max(4));
        if let Some(cap) = options.max_storage_binding {
            required.max_storage_buffer_binding_size =
                required.max_storage_buffer_binding_size.min(cap);
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("seedling"),
                required_features: wgpu::Features::empty(),
                required_limits: required.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable(format!("{} refused a device: {e}", summary.describe())))?;

        let lost = Arc::new(Mutex::new(None));
        let lost_slot = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = lost_slot.lock() {
                slot.get_or_insert_with(|| format!("{reason:?}: {message}"));
            }
        });
        let error = Arc::new(Mutex::new(None));
        let error_slot = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut slot) = error_slot.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        }));
        let placeholder = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("placeholder"),
            size: BUFFER_ALIGNMENT,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let max_binding = required.max_storage_buffer_binding_size;
        let adapter = AdapterSummary {
            max_storage_binding: max_binding,
            ..summary
        };
        tracing::info!(adapter = %adapter.describe(), max_binding, "GPU device ready");
        Ok(GpuBackend {
            inner: Rc::new(Inner {
                device,
                queue,
                adapter,
                max_binding,
                max_groups: required.max_compute_workgroups_per_dimension,
                f32_activations: options.f32_activations,
                pipelines: RefCell::new(HashMap::new()),
                pool: RefCell::new(HashMap::new()),
                encoder: RefCell::new(None),
                passes: Cell::new(0),
                lost,
                error,
                placeholder,
            }),
        })
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.inner.adapter
    }

    /// Destroys the device, as a driver reset or a lost GPU would; later operations fail
    /// with [`Error::GpuDeviceLost`]. Used to check the fall-back to the CPU.
    pub fn lose_device(&self) {
        if let Ok(mut slot) = self.inner.lost.lock() {
            slot.get_or_insert_with(|| "the device was destroyed on request".into());
        }
        self.inner.device.destroy();
    }

    /// Returns why the device was lost, or `None` while it works.
    pub fn lost_reason(&self) -> Option<String> {
        locked(&self.inner.lost)
    }

    fn check(&self) -> Result<()> {
        if let Some(reason) = locked(&self.inner.lost) {
            return Err(Error::GpuDeviceLost { reason });
        }
        if let Some(message) = locked(&self.inner.error) {
            return Err(Error::Gpu { message });
        }
        Ok(())
    }

    /// Refuses a buffer larger than the device's binding limit, naming both sizes.
    fn check_size(&self, what: &str, bytes: u64) -> Result<()> {
        if bytes > self.inner.max_binding {
            return Err(Error::GpuLimit {
                what: what.to_string(),
                needed: bytes,
                available: self.inner.max_binding,
                adapter: self.inner.adapter.describe(),
            });
        }
        Ok(())
    }

    fn storage(&self, buffer: wgpu::Buffer, size: u64, pooled: bool) -> Rc<Storage> {
        Rc::new(Storage {
            buffer,
            size,
            pool: if pooled {
                Rc::downgrade(&self.inner)
            } else {
                Weak::new()
            },
        })
    }

    /// Allocates an output tensor, reusing a pooled buffer of the same size when one is free.
    fn output(&self, dims: Vec<usize>) -> Result<GpuTensor> {
        let elements: usize = dims.iter().product();
        let size = round_up(4 * elements as u64);
        self.check_size("an intermediate tensor", size)?;
        let reused = self
            .inner
            .pool
            .borrow_mut()
            .get_mut(&size)
            .and_then(Vec::pop);
        let buffer = match reused {
            Some(buffer) => buffer,
            None => self.inner.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        };
        Ok(GpuTensor {
            storage: self.storage(buffer, size, true),
            dims,
        })
    }

    /// Creates a buffer holding `bytes`, padded to the alignment. The queue writes it
    /// before the next submission's passes, which is safe because no earlier pass can
    /// refer to a buffer created now.
    fn upload_bytes(&self, what: &str, mut bytes: Vec<u8>) -> Result<(wgpu::Buffer, u64)> {
        self.check()?;
        let size = round_up(bytes.len() as u64);
        self.check_size(what, size)?;
        bytes.resize(size as usize, 0);
        let buffer = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.inner.queue.write_buffer(&buffer, 0, &bytes);
        Ok((buffer, size))
    }

    fn upload_f32(&self, values: &[f32], dims: Vec<usize>) -> Result<GpuTensor> {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let (buffer, size) = self.upload_bytes("a tensor", bytes)?;
        Ok(GpuTensor {
            storage: self.storage(buffer, size, true),
            dims,
        })
    }

    fn upload_u32(&self, values: &[u32]) -> Result<wgpu::Buffer> {
        Ok(self.upload_bytes("an index list", words(values))?.0)
    }

    fn pipeline(&self, kernel: Kernel) -> wgpu::ComputePipeline {
        if let Some(pipeline) = self.inner.pipelines.borrow().get(&kernel) {
            return pipeline.clone();
        }
        let label = kernel.label();
        let device = &self.inner.device;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&label),
            source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        self.inner
            .pipelines
            .borrow_mut()
            .insert(kernel, pipeline.clone());
        pipeline
    }

    /// Splits `groups` workgroups over x and y within the per-dimension limit; kernels
    /// rebuild the flat index as `y * x_count + x`.
    fn fold(&self, groups: usize) -> Result<[u32; 3]> {
        let max = self.inner.max_groups as usize;
        let x = groups.min(max);
        let y = groups.div_ceil(x.max(1));
        if y > max {
            return Err(Error::GpuLimit {
                what: "a dispatch".into(),
                needed: groups as u64,
                available: (max * max) as u64,
                adapter: self.inner.adapter.describe(),
            });
        }
        Ok([x as u32, y as u32, 1])
    }

    /// Records one compute pass: `buffers` bound at 0.., then `params` as a uniform.
    fn dispatch(
        &self,
        kernel: Kernel,
        buffers: &[&wgpu::Buffer],
        params: &[u32],
        groups: [u32; 3],
    ) -> Result<()> {
        self.check()?;
        if groups.contains(&0) {
            return Ok(());
        }
        let device = &self.inner.device;
        let pipeline = self.pipeline(kernel);
        let mut param_bytes = words(params);
        param_bytes.resize(round_up(param_bytes.len() as u64) as usize, 0);
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: param_bytes.len() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.inner.queue.write_buffer(&uniform, 0, &param_bytes);
        let mut entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(binding, buffer)| wgpu::BindGroupEntry {
                binding: binding as u32,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: buffers.len() as u32,
            resource: uniform.as_entire_binding(),
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        {
            let mut slot = self.inner.encoder.borrow_mut();
            let encoder = slot.get_or_insert_with(|| {
                device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
            });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        self.inner.passes.set(self.inner.passes.get() + 1);
        if self.inner.passes.get() >= PASSES_PER_SUBMISSION {
            self.submit();
        }
        Ok(())
    }

    /// Submits the pending encoder, if any.
    fn submit(&self) -> Option<wgpu::SubmissionIndex> {
        let encoder = self.inner.encoder.borrow_mut().take()?;
        self.inner.passes.set(0);
        Some(self.inner.queue.submit([encoder.finish()]))
    }

    /// Submits what is pending and waits for the device to finish it: for timing.
    pub async fn finish(&self) -> Result<()> {
        self.submit();
        let (sender, receiver) = futures_channel::oneshot::channel();
        self.inner.queue.on_submitted_work_done(move || {
            let _ = sender.send(());
        });
        self.wait_device()?;
        receiver
            .await
            .map_err(|_| self.lost_or("the device stopped"))?;
        self.check()
    }

    /// Natively, drives the device until pending callbacks have run; in the browser the
    /// event loop does this on its own.
    fn wait_device(&self) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        if let Err(e) = self.inner.device.poll(wgpu::PollType::wait_indefinitely()) {
            return Err(self.lost_or(&e.to_string()));
        }
        Ok(())
    }

    fn lost_or(&self, message: &str) -> Error {
        match locked(&self.inner.lost) {
            Some(reason) => Error::GpuDeviceLost { reason },
            None => Error::Gpu {
                message: locked(&self.inner.error).unwrap_or_else(|| message.to_string()),
            },
        }
    }

    /// Places GGUF blocks on the device as they are; formats without a kernel are
    /// expanded to f32 once.
    pub fn upload_blocks(&self, host: &QTensor) -> Result<GpuWeight> {
        let format = match host.dtype() {
            GgmlDType::Q4_1 => Some(BlockFormat::Q4_1),
            GgmlDType::Q8_0 => Some(BlockFormat::Q8_0),
            GgmlDType::Q4K => Some(BlockFormat::Q4K),
            GgmlDType::Q6K => Some(BlockFormat::Q6K),
            _ => None,
        };
        let Some(format) = format else {
            // Other block formats are expanded once; the kernels read them as f32.
            let dense = host.dequantize(&candle_core::Device::Cpu)?;
            return self.upload_weight(&dense);
        };
        let (rows, columns) = host.shape().dims2()?;
        let bytes = host.data()?.into_owned();
        let (buffer, _) = self.upload_bytes(
            &format!("a {rows}x{columns} {:?} matrix", host.dtype()),
            bytes,
        )?;
        Ok(GpuWeight {
            buffer,
            format: WeightFormat::Blocks(format),
            rows,
            columns,
        })
    }

    fn elementwise(
        &self,
        kernel: Kernel,
        buffers: &[&wgpu::Buffer],
        params: &[u32],
        n: usize,
    ) -> Result<()> {
        let groups = self.fold(n.div_ceil(256))?;
        self.dispatch(kernel, buffers, params, groups)
    }

    fn rows(
        &self,
        kernel: Kernel,
        buffers: &[&wgpu::Buffer],
        params: &[u32],
        rows: usize,
    ) -> Result<()> {
        let groups = self.fold(rows)?;
        self.dispatch(kernel, buffers, params, groups)
    }

    /// Reads `x` as `[b, d1, d2, d]` and writes `[b, d2, d1, d]`, shaped as `dims`.
    fn swap_middle_axes(
        &self,
        x: &GpuTensor,
        [_, d1, d2, d]: [usize; 4],
        dims: Vec<usize>,
    ) -> Result<GpuTensor> {
        let out = self.output(dims)?;
        let n = x.len();
        self.elementwise(
            Kernel::Permute,
            &[x.buffer(), out.buffer()],
            &[n32(n), n32(d1), n32(d2), n32(d)],
            n,
        )?;
        Ok(out)
    }

    fn row_shape(x: &GpuTensor) -> (usize, usize) {
        let columns = *x.dims.last().unwrap_or(&1);
        (x.len() / columns.max(1), columns)
    }

    fn expect_len(what: &str, tensor: &GpuTensor, len: usize) -> Result<()> {
        if tensor.len() != len {
            return Err(Error::Gpu {
                message: format!(
                    "{what} has {} values where {len} were expected",
                    tensor.len()
                ),
            });
        }
        Ok(())
    }
}

fn n32(value: usize) -> u32 {
    value as u32
}

impl Backend for GpuBackend {
    type Tensor = GpuTensor;
    type Weight = GpuWeight;
    type Sequence = GpuTensor;

    fn name(&self) -> &'static str {
        "webgpu"
    }

    fn upload(&self, host: &candle_core::Tensor) -> Result<GpuTensor> {
        self.upload_f32(&host_f32(host)?, host.dims().to_vec())
    }

    fn upload_weight(&self, host: &candle_core::Tensor) -> Result<GpuWeight> {
        let (rows, columns) = host.dims2()?;
        let bytes = host_f32(host)?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let (buffer, _) = self.upload_bytes(&format!("a {rows}x{columns} f32 matrix"), bytes)?;
        Ok(GpuWeight {
            buffer,
            format: WeightFormat::Dense,
            rows,
            columns,
        })
    }

    fn upload_quantized(&self, host: QTensor) -> Result<GpuWeight> {
        self.upload_blocks(&host)
    }

    fn embedding(&self, table: &GpuWeight, ids: &[u32], batch: usize) -> Result<GpuTensor> {
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= table.rows) {
            return Err(Error::InvalidOption {
                option: "token id",
                value: id.to_string(),
                expected: format!("below the table's {} rows", table.rows),
            });
        }
        let columns = table.columns;
        let out = self.output(vec![batch, ids.len() / batch.max(1), columns])?;
        let ids_buffer = self.upload_u32(ids)?;
        let n = ids.len() * columns;
        self.elementwise(
            Kernel::Lookup(table.format),
            &[&table.buffer, &ids_buffer, out.buffer()],
            &[n32(n), n32(columns)],
            n,
        )?;
        Ok(out)
    }

    fn linear(&self, x: &GpuTensor, w: &GpuWeight, bias: Option<&GpuTensor>) -> Result<GpuTensor> {
        let (m, k) = Self::row_shape(x);
        if k != w.columns {
            return Err(Error::Gpu {
                message: format!(
                    "cannot multiply activations with {k} columns by a {}x{} weight",
                    w.rows, w.columns
                ),
            });
        }
        let n = w.rows;
        let mut dims = x.dims.clone();
        if let Some(last) = dims.last_mut() {
            *last = n;
        }
        let out = self.output(dims)?;
        let bias_buffer = match bias {
            Some(bias) => {
                Self::expect_len("the bias", bias, n)?;
                bias.buffer()
            }
            None => &self.inner.placeholder,
        };
        let params = [n32(m), n32(n), n32(k), bias.is_some() as u32];
        if let (WeightFormat::Blocks(format @ (BlockFormat::Q4_1 | BlockFormat::Q8_0)), false) =
            (w.format, self.inner.f32_activations)
        {
            // The CPU path's arithmetic: activations rounded to 8-bit blocks first.
            let blocks = m * k / 32;
            let qs = self.output(vec![m * k])?;
            let scales = self.output(vec![blocks])?;
            let sums = self.output(vec![blocks])?;
            self.elementwise(
                Kernel::QuantizeActivations,
                &[x.buffer(), qs.buffer(), scales.buffer(), sums.buffer()],
                &[n32(blocks)],
                blocks,
            )?;
            // Eight weight rows per workgroup, for up to eight activation rows.
            let groups = self.fold(n.div_ceil(8) * m.div_ceil(MATVEC_ROWS))?;
            self.dispatch(
                Kernel::BlockDot(format),
                &[
                    &w.buffer,
                    qs.buffer(),
                    scales.buffer(),
                    sums.buffer(),
                    bias_buffer,
                    out.buffer(),
                ],
                &params,
                groups,
            )?;
            return Ok(out);
        }
        let buffers = [&w.buffer, x.buffer(), bias_buffer, out.buffer()];
        if m <= MATVEC_ROWS {
            let groups = self.fold(n * m.div_ceil(MATVEC_ROWS))?;
            self.dispatch(Kernel::Matvec(w.format), &buffers, &params, groups)?;
        } else {
            let (x_groups, y_groups) = (n.div_ceil(16), m.div_ceil(16));
            let max = self.inner.max_groups as usize;
            if x_groups > max || y_groups > max {
                return Err(Error::GpuLimit {
                    what: format!("a {m}x{n} matrix product"),
                    needed: x_groups.max(y_groups) as u64,
                    available: max as u64,
                    adapter: self.inner.adapter.describe(),
                });
            }
            self.dispatch(
                Kernel::Matmul(w.format),
                &buffers,
                &params,
                [n32(x_groups), n32(y_groups), 1],
            )?;
        }
        Ok(out)
    }

    fn add(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
        let (n, nb) = (a.len(), b.len());
        if nb == 0 || n % nb != 0 {
            return Err(Error::Gpu {
                message: format!("cannot broadcast {:?} onto {:?}", b.dims, a.dims),
            });
        }
        let out = self.output(a.dims.clone())?;
        self.elementwise(
            Kernel::Add,
            &[a.buffer(), b.buffer(), out.buffer()],
            &[n32(n), n32(nb)],
            n,
        )?;
        Ok(out)
    }

    fn layer_norm(
        &self,
        x: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        eps: f64,
    ) -> Result<GpuTensor> {
        let (rows, columns) = Self::row_shape(x);
        Self::expect_len("gamma", gamma, columns)?;
        Self::expect_len("beta", beta, columns)?;
        let out = self.output(x.dims.clone())?;
        self.rows(
            Kernel::LayerNorm,
            &[x.buffer(), gamma.buffer(), beta.buffer(), out.buffer()],
            &[n32(rows), n32(columns), (eps as f32).to_bits()],
            rows,
        )?;
        Ok(out)
    }

    fn rms_norm(&self, x: &GpuTensor, gamma: &GpuTensor, eps: f64) -> Result<GpuTensor> {
        let (rows, columns) = Self::row_shape(x);
        Self::expect_len("gamma", gamma, columns)?;
        let out = self.output(x.dims.clone())?;
        self.rows(
            Kernel::RmsNorm,
            &[x.buffer(), gamma.buffer(), out.buffer()],
            &[n32(rows), n32(columns), (eps as f32).to_bits()],
            rows,
        )?;
        Ok(out)
    }

    fn gelu(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let out = self.output(x.dims.clone())?;
        let n = x.len();
        self.elementwise(Kernel::Gelu, &[x.buffer(), out.buffer()], &[n32(n)], n)?;
        Ok(out)
    }

    fn silu_mul(&self, gate: &GpuTensor, up: &GpuTensor) -> Result<GpuTensor> {
        Self::expect_len("up", up, gate.len())?;
        let out = self.output(gate.dims.clone())?;
        let n = gate.len();
        self.elementwise(
            Kernel::SiluMul,
            &[gate.buffer(), up.buffer(), out.buffer()],
            &[n32(n)],
            n,
        )?;
        Ok(out)
    }

    fn split_heads(&self, x: &GpuTensor, heads: usize) -> Result<GpuTensor> {
        let [batch, seq, channels] = x.dims[..] else {
            return Err(Error::Gpu {
                message: format!("split_heads needs [b, t, c], got {:?}", x.dims),
            });
        };
        let head_dim = channels / heads.max(1);
        self.swap_middle_axes(
            x,
            [batch, seq, heads, head_dim],
            vec![batch, heads, seq, head_dim],
        )
    }

    fn merge_heads(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let [batch, heads, seq, head_dim] = x.dims[..] else {
            return Err(Error::Gpu {
                message: format!("merge_heads needs [b, h, t, d], got {:?}", x.dims),
            });
        };
        self.swap_middle_axes(
            x,
            [batch, heads, seq, head_dim],
            vec![batch, seq, heads * head_dim],
        )
    }

    fn rope(&self, x: &GpuTensor, offset: usize, base: f32) -> Result<GpuTensor> {
        let [_, _, seq, head_dim] = x.dims[..] else {
            return Err(Error::Gpu {
                message: format!("rope needs [b, h, t, d], got {:?}", x.dims),
            });
        };
        let half = head_dim / 2;
        let (cos, sin) = super::rope_tables(seq, head_dim, offset, base);
        let cos = self.upload_f32(&cos, vec![seq, half])?;
        let sin = self.upload_f32(&sin, vec![seq, half])?;
        let out = self.output(x.dims.clone())?;
        let n = x.len() / 2;
        self.elementwise(
            Kernel::Rope,
            &[x.buffer(), cos.buffer(), sin.buffer(), out.buffer()],
            &[n32(n), n32(seq), n32(half)],
            n,
        )?;
        Ok(out)
    }

    fn append_sequence(&self, cache: Option<GpuTensor>, new: &GpuTensor) -> Result<GpuTensor> {
        let Some(cache) = cache else {
            return Ok(new.clone());
        };
        let (&[b, h, t1, d], &[_, _, t2, _]) = (&cache.dims[..], &new.dims[..]) else {
            return Err(Error::Gpu {
                message: format!("cannot append {:?} to {:?}", new.dims, cache.dims),
            });
        };
        let out = self.output(vec![b, h, t1 + t2, d])?;
        let n = out.len();
        self.elementwise(
            Kernel::Concat,
            &[cache.buffer(), new.buffer(), out.buffer()],
            &[n32(n), n32(t1), n32(t2), n32(d)],
            n,
        )?;
        Ok(out)
    }

    fn sequence_tensor(&self, sequence: &GpuTensor) -> Result<GpuTensor> {
        Ok(sequence.clone())
    }

    fn attention(
        &self,
        q: &GpuTensor,
        k: &GpuTensor,
        v: &GpuTensor,
        mask: &AttentionMask,
    ) -> Result<GpuTensor> {
        let (&[batch, heads, tq, d], &[_, kv_heads, tk, _]) = (&q.dims[..], &k.dims[..]) else {
            return Err(Error::Gpu {
                message: format!(
                    "attention needs [b, h, t, d], got {:?} and {:?}",
                    q.dims, k.dims
                ),
            });
        };
        let group = heads / kv_heads.max(1);
        let (mode, offset, lengths) = match mask {
            AttentionMask::Causal { offset } => (0u32, *offset, self.inner.placeholder.clone()),
            AttentionMask::Padding { lengths } => {
                let lengths: Vec<u32> = lengths.iter().map(|&l| n32(l)).collect();
                (1, 0, self.upload_u32(&lengths)?)
            }
        };
        let scores = self.output(vec![batch, heads, tq, tk])?;
        let n = scores.len();
        let scale = (1.0 / (d as f64).sqrt()) as f32;
        self.elementwise(
            Kernel::AttentionScores,
            &[q.buffer(), k.buffer(), &lengths, scores.buffer()],
            &[
                n32(n),
                n32(heads),
                n32(group),
                n32(tq),
                n32(tk),
                n32(d),
                mode,
                n32(offset),
                scale.to_bits(),
            ],
            n,
        )?;
        let probabilities = self.output(scores.dims.clone())?;
        let rows = batch * heads * tq;
        self.rows(
            Kernel::Softmax,
            &[scores.buffer(), probabilities.buffer()],
            &[n32(rows), n32(tk)],
            rows,
        )?;
        let out = self.output(q.dims.clone())?;
        let n = out.len();
        self.elementwise(
            Kernel::AttentionValues,
            &[probabilities.buffer(), v.buffer(), out.buffer()],
            &[n32(n), n32(heads), n32(group), n32(tq), n32(tk), n32(d)],
            n,
        )?;
        Ok(out)
    }

    fn mean_pool(&self, x: &GpuTensor, lengths: &[usize]) -> Result<GpuTensor> {
        let [batch, seq, channels] = x.dims[..] else {
            return Err(Error::Gpu {
                message: format!("mean_pool needs [b, t, c], got {:?}", x.dims),
            });
        };
        let lengths: Vec<u32> = lengths.iter().map(|&l| n32(l)).collect();
        let lengths = self.upload_u32(&lengths)?;
        let out = self.output(vec![batch, channels])?;
        let n = out.len();
        self.elementwise(
            Kernel::MeanPool,
            &[x.buffer(), &lengths, out.buffer()],
            &[n32(n), n32(seq), n32(channels)],
            n,
        )?;
        Ok(out)
    }

    fn l2_normalize(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let (rows, columns) = Self::row_shape(x);
        let out = self.output(x.dims.clone())?;
        self.rows(
            Kernel::L2Normalize,
            &[x.buffer(), out.buffer()],
            &[n32(rows), n32(columns)],
            rows,
        )?;
        Ok(out)
    }

    fn last_position(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let [batch, seq, channels] = x.dims[..] else {
            return Err(Error::Gpu {
                message: format!("last_position needs [b, t, c], got {:?}", x.dims),
            });
        };
        let out = self.output(vec![batch, 1, channels])?;
        if seq == 0 || channels == 0 {
            return Ok(out);
        }
        self.check()?;
        let row_bytes = 4 * channels as u64;
        let mut slot = self.inner.encoder.borrow_mut();
        let encoder = slot.get_or_insert_with(|| {
            self.inner
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        for b in 0..batch as u64 {
            let from = (b * seq as u64 + seq as u64 - 1) * row_bytes;
            encoder.copy_buffer_to_buffer(x.buffer(), from, out.buffer(), b * row_bytes, row_bytes);
        }
        Ok(out)
    }

    fn dims(&self, x: &GpuTensor) -> Vec<usize> {
        x.dims.clone()
    }

    async fn read(&self, x: &GpuTensor) -> Result<Vec<f32>> {
        self.check()?;
        let bytes = 4 * x.len() as u64;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let device = &self.inner.device;
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: round_up(bytes),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        {
            let mut slot = self.inner.encoder.borrow_mut();
            let encoder = slot.get_or_insert_with(|| {
                device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
            });
            encoder.copy_buffer_to_buffer(x.buffer(), 0, &staging, 0, bytes);
        }
        self.submit();
        let (sender, receiver) = futures_channel::oneshot::channel();
        staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |result| drop(sender.send(result)));
        self.wait_device()?;
        let mapped = receiver.await;
        match mapped {
            Ok(Ok(())) => {}
            _ => return Err(self.lost_or("reading a result back from the GPU failed")),
        }
        self.check()?;
        let values = {
            let view = staging
                .slice(..bytes)
                .get_mapped_range()
                .map_err(|e| self.lost_or(&e.to_string()))?;
            view.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        staging.unmap();
        Ok(values)
    }
}
