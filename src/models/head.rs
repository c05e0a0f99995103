//! A linear classification head on sentence embeddings: `logits = W e + b`.
//!
//! Stored as a small safetensors file with tensors `weight` `[classes, dim]` and
//! `bias` `[classes]`; the forward pass runs on the host because it is one tiny
//! matrix-vector product per item.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct LinearHead {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub classes: usize,
    pub dim: usize,
}

impl LinearHead {
    /// Reads a head from safetensors bytes; `file` names it in errors.
    pub fn load(bytes: &[u8], file: &str) -> Result<Self> {
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| {
            Error::InvalidModelFile {
                file: file.into(),
                format: "safetensors",
                reason: crate::error::first_line(&e),
            }
        })?;
        let get = |name: &str| {
            tensors.get(name).ok_or_else(|| Error::MissingTensor {
                file: file.into(),
                name: name.into(),
                architecture: "linear head",
            })
        };
        let weight = get("weight")?;
        let (classes, dim) = weight.dims2()?;
        let bias = get("bias")?.to_vec1::<f32>()?;
        if bias.len() != classes {
            return Err(Error::InvalidModelFile {
                file: file.into(),
                format: "safetensors",
                reason: format!("bias has {} values for {classes} classes", bias.len()),
            });
        }
        Ok(Self {
            weight: weight.flatten_all()?.to_vec1::<f32>()?,
            bias,
            classes,
            dim,
        })
    }

    /// Serializes the head to safetensors bytes.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let mut tensors = HashMap::new();
        tensors.insert(
            "weight".to_string(),
            Tensor::from_vec(self.weight.clone(), (self.classes, self.dim), &Device::Cpu)?,
        );
        tensors.insert(
            "bias".to_string(),
            Tensor::from_vec(self.bias.clone(), self.classes, &Device::Cpu)?,
        );
        let views: Vec<(String, Tensor)> = tensors.into_iter().collect();
        safetensors::serialize(
            views.iter().map(|(name, tensor)| (name.as_str(), tensor)),
            None,
        )
        .map_err(|e| Error::InvalidModelFile {
            file: "head".into(),
            format: "safetensors",
            reason: crate::error::first_line(&e),
        })
    }

    /// Class probabilities (softmax of the logits) for one embedding.
    pub fn probabilities(&self, embedding: &[f32]) -> Result<Vec<f32>> {
        if embedding.len() != self.dim {
            return Err(Error::InvalidOption {
                option: "embedding",
                value: format!("{} values", embedding.len()),
                expected: format!("{} values, the head's input size", self.dim),
            });
        }
        let logits: Vec<f32> = (0..self.classes)
            .map(|class| {
                let row = &self.weight[class * self.dim..(class + 1) * self.dim];
                row.iter().zip(embedding).map(|(w, x)| w * x).sum::<f32>() + self.bias[class]
            })
            .collect();
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        Ok(exp.into_iter().map(|e| e / sum).collect())
    }
}

/// What went into a trained head and how well it did, stored beside its weights
/// (`models/heads/<task>.json`) so a run can be reproduced and checked.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HeadRecord {
    pub task: String,
    /// The weights file, next to this record, and its SHA-256.
    pub file: String,
    pub sha256: String,
    /// The command that produced the head.
    pub command: String,
    pub encoder: crate::report::FileRecord,
    pub data: Vec<crate::report::FileRecord>,
    pub split_seed: u64,
    pub test_fraction: f64,
    pub train_examples: usize,
    pub test_examples: usize,
    pub epochs: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub final_loss: f32,
    pub held_out_accuracy: f64,
    pub held_out_interval: (f64, f64),
    pub held_out_macro_f1: f64,
    pub training_seconds: f64,
    /// Estimated energy of embedding the training set and training, in Wh.
    pub training_wh: crate::energy::Band,
    pub training_profile: String,
}
