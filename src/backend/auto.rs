//! The backend a run uses: the GPU when one was opened, the CPU otherwise, and the CPU
//! from the moment the GPU device is lost.
//!
//! On the GPU, each weight keeps its host copy (as loaded, still block-quantized) so
//! that the CPU can take over without reading the model file again. After a loss the
//! weights move to the CPU one by one as the forward pass first needs them, and
//! [`Backend::recover`] makes the model run the interrupted pass again. Every item
//! finished before stays as it was.

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use candle_core::quantized::QTensor;
use candle_core::Tensor;

use super::cpu::{CpuBackend, CpuSequence, CpuWeight};
use super::gpu::{AdapterSummary, GpuBackend, GpuTensor, GpuWeight};
use super::{AttentionMask, Backend};
use crate::error::{Error, Result};

#[derive(Default)]
struct State {
    /// Reason the GPU was given up, once it was.
    fell_back: Option<String>,
}

/// Runs on the GPU while it works, then on the CPU. Clones share the device and the state,
/// so every model of a run moves to the CPU together.
#[derive(Clone)]
pub struct AutoBackend {
    gpu: Option<GpuBackend>,
    cpu: CpuBackend,
    state: Rc<RefCell<State>>,
}

/// A tensor on the device that made it; parameters uploaded while on the GPU keep a
/// host copy for the CPU.
#[derive(Clone)]
pub enum AutoTensor {
    Gpu(GpuTensor, Option<Tensor>),
    Cpu(Tensor),
}

/// A KV cache on the device that made it.
pub enum AutoSequence {
    Gpu(GpuTensor),
    Cpu(CpuSequence),
}

enum HostWeight {
    Dense(Tensor),
    Quantized(QTensor),
}

/// A weight on the GPU with its host copy, or on the CPU.
pub struct AutoWeight {
    gpu: Option<GpuWeight>,
    host: RefCell<Option<HostWeight>>,
    cpu: OnceCell<CpuWeight>,
}

fn lost(reason: &str) -> Error {
    Error::GpuDeviceLost {
        reason: reason.to_string(),
    }
}

impl AutoBackend {
    /// Creates a backend that runs on the CPU only.
    pub fn cpu() -> Self {
        AutoBackend {
            gpu: None,
            cpu: CpuBackend::new(),
            state: Rc::default(),
        }
    }

    /// Creates a backend that runs on `gpu`, with the CPU as the fall-back.
    pub fn gpu(gpu: GpuBackend) -> Self {
        AutoBackend {
            gpu: Some(gpu),
            cpu: CpuBackend::new(),
            state: Rc::default(),
        }
    }

    /// Returns the GPU while it is usable.
    fn active_gpu(&self) -> Option<&GpuBackend> {
        if self.state.borrow().fell_back.is_some() {
            return None;
        }
        self.gpu.as_ref()
    }

    pub fn on_gpu(&self) -> bool {
        self.active_gpu().is_some()
    }

    /// Returns the adapter, when the run started on a GPU.
    pub fn adapter(&self) -> Option<&AdapterSummary> {
        self.gpu.as_ref().map(GpuBackend::adapter)
    }

    /// Returns the GPU backend itself, for fault injection and timing.
    pub fn gpu_backend(&self) -> Option<&GpuBackend> {
        self.gpu.as_ref()
    }

    /// Returns the reason the run left the GPU, if it did.
    pub fn fell_back(&self) -> Option<String> {
        self.state.borrow().fell_back.clone()
    }

    fn gpu_tensor<'t>(&self, t: &'t AutoTensor) -> Result<&'t GpuTensor> {
        match t {
            AutoTensor::Gpu(tensor, _) => Ok(tensor),
            AutoTensor::Cpu(_) => Err(Error::Gpu {
                message: "a CPU tensor reached a GPU operation".into(),
            }),
        }
    }

    /// Returns the CPU form of a tensor. An intermediate result left on a lost GPU cannot
    /// be read, so the pass that made it has to run again.
    fn cpu_tensor<'t>(&self, t: &'t AutoTensor) -> Result<&'t Tensor> {
        match t {
            AutoTensor::Cpu(tensor) | AutoTensor::Gpu(_, Some(tensor)) => Ok(tensor),
            AutoTensor::Gpu(_, None) => Err(lost(
                &self
                    .fell_back()
                    .unwrap_or_else(|| "the GPU was given up".into()),
            )),
        }
    }

    fn cpu_weight<'w>(&self, w: &'w AutoWeight) -> Result<&'w CpuWeight> {
        if let Some(weight) = w.cpu.get() {
            return Ok(weight);
        }
        let host = w.host.borrow_mut().take().ok_or_else(|| Error::Gpu {
            message: "a weight has no host copy to move to the CPU".into(),
        })?;
        let weight = match host {
            HostWeight::Dense(tensor) => self.cpu.upload_weight(&tensor)?,
            HostWeight::Quantized(tensor) => self.cpu.upload_quantized(tensor)?,
        };
        Ok(w.cpu.get_or_init(|| weight))
    }

    /// Runs `on_gpu` while the GPU is usable, else `on_cpu`.
    fn unary(
        &self,
        x: &AutoTensor,
        on_gpu: impl FnOnce(&GpuBackend, &GpuTensor) -> Result<GpuTensor>,
        on_cpu: impl FnOnce(&CpuBackend, &Tensor) -> Result<Tensor>,
    ) -> Result<AutoTensor> {
        match self.active_gpu() {
            Some(gpu) => Ok(AutoTensor::Gpu(on_gpu(gpu, self.gpu_tensor(x)?)?, None)),
            None => Ok(AutoTensor::Cpu(on_cpu(&self.cpu, self.cpu_tensor(x)?)?)),
        }
    }

    fn binary(
        &self,
        a: &AutoTensor,
        b: &AutoTensor,
        on_gpu: impl FnOnce(&GpuBackend, &GpuTensor, &GpuTensor) -> Result<GpuTensor>,
        on_cpu: impl FnOnce(&CpuBackend, &Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<AutoTensor> {
        match self.active_gpu() {
            Some(gpu) => Ok(AutoTensor::Gpu(
                on_gpu(gpu, self.gpu_tensor(a)?, self.gpu_tensor(b)?)?,
                None,
            )),
            None => Ok(AutoTensor::Cpu(on_cpu(
                &self.cpu,
                self.cpu_tensor(a)?,
                self.cpu_tensor(b)?,
            )?)),
        }
    }
}

impl Backend for AutoBackend {
    type Tensor = AutoTensor;
    type Weight = AutoWeight;
    type Sequence = AutoSequence;

    fn name(&self) -> &'static str {
        match self.active_gpu() {
            Some(gpu) => gpu.name(),
            None => self.cpu.name(),
        }
    }

    fn upload(&self, host: &Tensor) -> Result<AutoTensor> {
        let cpu = self.cpu.upload(host)?;
        match self.active_gpu() {
            Some(gpu) => Ok(AutoTensor::Gpu(gpu.upload(host)?, Some(cpu))),
            None => Ok(AutoTensor::Cpu(cpu)),
        }
    }

    fn upload_weight(&self, host: &Tensor) -> Result<AutoWeight> {
        match self.active_gpu() {
            Some(gpu) => Ok(AutoWeight {
                gpu: Some(gpu.upload_weight(host)?),
                host: RefCell::new(Some(HostWeight::Dense(host.clone()))),
                cpu: OnceCell::new(),
            }),
            None => Ok(AutoWeight {
                gpu: None,
                host: RefCell::new(None),
                cpu: OnceCell::from(self.cpu.upload_weight(host)?),
            }),
        }
    }

    fn upload_quantized(&self, host: QTensor) -> Result<AutoWeight> {
        match self.active_gpu() {
            Some(gpu) => Ok(AutoWeight {
                gpu: Some(gpu.upload_blocks(&host)?),
                host: RefCell::new(Some(HostWeight::Quantized(host))),
                cpu: OnceCell::new(),
            }),
            None => Ok(AutoWeight {
                gpu: None,
                host: RefCell::new(None),
                cpu: OnceCell::from(self.cpu.upload_quantized(host)?),
            }),
        }
    }

    fn embedding(&self, table: &AutoWeight, ids: &[u32], batch: usize) -> Result<AutoTensor> {
        match (self.active_gpu(), &table.gpu) {
            (Some(gpu), Some(weight)) => {
                Ok(AutoTensor::Gpu(gpu.embedding(weight, ids, batch)?, None))
            }
            _ => Ok(AutoTensor::Cpu(self.cpu.embedding(
                self.cpu_weight(table)?,
                ids,
                batch,
            )?)),
        }
    }

    fn linear(
        &self,
        x: &AutoTensor,
        w: &AutoWeight,
        bias: Option<&AutoTensor>,
    ) -> Result<AutoTensor> {
        match (self.active_gpu(), &w.gpu) {
            (Some(gpu), Some(weight)) => {
                let bias = bias.map(|b| self.gpu_tensor(b)).transpose()?;
                Ok(AutoTensor::Gpu(
                    gpu.linear(self.gpu_tensor(x)?, weight, bias)?,
                    None,
                ))
            }
            _ => {
                let bias = bias.map(|b| self.cpu_tensor(b)).transpose()?;
                Ok(AutoTensor::Cpu(self.cpu.linear(
                    self.cpu_tensor(x)?,
                    self.cpu_weight(w)?,
                    bias,
                )?))
            }
        }
    }

    fn add(&self, a: &AutoTensor, b: &AutoTensor) -> Result<AutoTensor> {
        self.binary(a, b, |g, a, b| g.add(a, b), |c, a, b| c.add(a, b))
    }

    fn layer_norm(
        &self,
        x: &AutoTensor,
        gamma: &AutoTensor,
        beta: &AutoTensor,
        eps: f64,
    ) -> Result<AutoTensor> {
        match self.active_gpu() {
            Some(gpu) => Ok(AutoTensor::Gpu(
                gpu.layer_norm(
                    self.gpu_tensor(x)?,
                    self.gpu_tensor(gamma)?,
                    self.gpu_tensor(beta)?,
                    eps,
                )?,
                None,
            )),
            None => Ok(AutoTensor::Cpu(self.cpu.layer_norm(
                self.cpu_tensor(x)?,
                self.cpu_tensor(gamma)?,
                self.cpu_tensor(beta)?,
                eps,
            )?)),
        }
    }

    fn rms_norm(&self, x: &AutoTensor, gamma: &AutoTensor, eps: f64) -> Result<AutoTensor> {
        self.binary(
            x,
            gamma,
            |g, x, gamma| g.rms_norm(x, gamma, eps),
            |c, x, gamma| c.rms_norm(x, gamma, eps),
        )
    }

    fn gelu(&self, x: &AutoTensor) -> Result<AutoTensor> {
        self.unary(x, |g, x| g.gelu(x), |c, x| c.gelu(x))
    }

    fn silu_mul(&self, gate: &AutoTensor, up: &AutoTensor) -> Result<AutoTensor> {
        self.binary(
            gate,
            up,
            |g, a, b| g.silu_mul(a, b),
            |c, a, b| c.silu_mul(a, b),
        )
    }

    fn split_heads(&self, x: &AutoTensor, heads: usize) -> Result<AutoTensor> {
        self.unary(
            x,
            |g, x| g.split_heads(x, heads),
            |c, x| c.split_heads(x, heads),
        )
    }

    fn merge_heads(&self, x: &AutoTensor) -> Result<AutoTensor> {
        self.unary(x, |g, x| g.merge_heads(x), |c, x| c.merge_heads(x))
    }

    fn rope(&self, x: &AutoTensor, offset: usize, base: f32) -> Result<AutoTensor> {
        self.unary(
            x,
            |g, x| g.rope(x, offset, base),
            |c, x| c.rope(x, offset, base),
        )
    }

    fn append_sequence(
        &self,
        cache: Option<AutoSequence>,
        new: &AutoTensor,
    ) -> Result<AutoSequence> {
        match self.active_gpu() {
            Some(gpu) => {
                let cache = match cache {
                    None => None,
                    Some(AutoSequence::Gpu(cache)) => Some(cache),
                    Some(AutoSequence::Cpu(_)) => {
                        return Err(Error::Gpu {
                            message: "a CPU cache reached a GPU operation".into(),
                        })
                    }
                };
                Ok(AutoSequence::Gpu(
                    gpu.append_sequence(cache, self.gpu_tensor(new)?)?,
                ))
            }
            None => {
                let cache = match cache {
                    None => None,
                    Some(AutoSequence::Cpu(cache)) => Some(cache),
                    // A cache left on a lost GPU cannot be read, so the pass has to
                    // rebuild it from the tokens.
                    Some(AutoSequence::Gpu(_)) => {
                        return Err(lost(
                            &self
                                .fell_back()
                                .unwrap_or_else(|| "the GPU was given up".into()),
                        ))
                    }
                };
                Ok(AutoSequence::Cpu(
                    self.cpu.append_sequence(cache, self.cpu_tensor(new)?)?,
                ))
            }
        }
    }

    fn sequence_tensor(&self, sequence: &AutoSequence) -> Result<AutoTensor> {
        Ok(match sequence {
            AutoSequence::Gpu(tensor) => AutoTensor::Gpu(tensor.clone(), None),
            AutoSequence::Cpu(sequence) => AutoTensor::Cpu(self.cpu.sequence_tensor(sequence)?),
        })
    }

    fn attention(
        &self,
        q: &AutoTensor,
        k: &AutoTensor,
        v: &AutoTensor,
        mask: &AttentionMask,
    ) -> Result<AutoTensor> {
        match self.active_gpu() {
            Some(gpu) => Ok(AutoTensor::Gpu(
                gpu.attention(
                    self.gpu_tensor(q)?,
                    self.gpu_tensor(k)?,
                    self.gpu_tensor(v)?,
                    mask,
                )?,
                None,
            )),
            None => Ok(AutoTensor::Cpu(self.cpu.attention(
                self.cpu_tensor(q)?,
                self.cpu_tensor(k)?,
                self.cpu_tensor(v)?,
                mask,
            )?)),
        }
    }

    fn mean_pool(&self, x: &AutoTensor, lengths: &[usize]) -> Result<AutoTensor> {
        self.unary(
            x,
            |g, x| g.mean_pool(x, lengths),
            |c, x| c.mean_pool(x, lengths),
        )
    }

    fn l2_normalize(&self, x: &AutoTensor) -> Result<AutoTensor> {
        self.unary(x, |g, x| g.l2_normalize(x), |c, x| c.l2_normalize(x))
    }

    fn last_position(&self, x: &AutoTensor) -> Result<AutoTensor> {
        self.unary(x, |g, x| g.last_position(x), |c, x| c.last_position(x))
    }

    fn dims(&self, x: &AutoTensor) -> Vec<usize> {
        match x {
            AutoTensor::Gpu(tensor, _) => tensor.dims().to_vec(),
            AutoTensor::Cpu(tensor) => tensor.dims().to_vec(),
        }
    }

    async fn read(&self, x: &AutoTensor) -> Result<Vec<f32>> {
        match (self.active_gpu(), x) {
            (Some(gpu), AutoTensor::Gpu(tensor, _)) => gpu.read(tensor).await,
            _ => self.cpu.read(self.cpu_tensor(x)?).await,
        }
    }

    fn recover(&self, error: &Error) -> bool {
        let Error::GpuDeviceLost { reason } = error else {
            return false;
        };
        if self.gpu.is_none() {
            return false;
        }
        let mut state = self.state.borrow_mut();
        if state.fell_back.is_none() {
            tracing::warn!(%reason, "GPU device lost; the run continues on the CPU");
            state.fell_back = Some(reason.clone());
        }
        true
    }
}
