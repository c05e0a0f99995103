//! Training a linear head on frozen sentence embeddings with candle's autograd:
//! softmax cross-entropy plus L2 weight decay, full-batch gradient descent.

use candle_core::{DType, Device, Tensor, Var, D};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::models::head::LinearHead;

/// Settings of one training run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainOptions {
    pub epochs: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 300,
            learning_rate: 2.0,
            weight_decay: 1e-4,
        }
    }
}

/// Trains `classes`-way logistic regression on `features` (one row per item) and
/// returns the head with the loss after each epoch.
pub fn train_linear_head(
    features: &[Vec<f32>],
    labels: &[u8],
    classes: usize,
    options: &TrainOptions,
) -> Result<(LinearHead, Vec<f32>)> {
    let rows = features.len();
    if rows == 0 || rows != labels.len() {
        return Err(Error::InvalidOption {
            option: "training data",
            value: format!("{rows} feature rows and {} labels", labels.len()),
            expected: "the same non-zero number of rows and labels".into(),
        });
    }
    let dim = features[0].len();
    let device = Device::Cpu;
    let x = Tensor::from_vec(features.concat(), (rows, dim), &device)?;
    let mut one_hot = vec![0f32; rows * classes];
    for (row, &label) in labels.iter().enumerate() {
        one_hot[row * classes + label as usize] = 1.0;
    }
    let targets = Tensor::from_vec(one_hot, (rows, classes), &device)?;

    let weight = Var::zeros((classes, dim), DType::F32, &device)?;
    let bias = Var::zeros(classes, DType::F32, &device)?;
    let mut losses = Vec::with_capacity(options.epochs);
    for _ in 0..options.epochs {
        let logits = x
            .matmul(&weight.as_tensor().t()?)?
            .broadcast_add(bias.as_tensor())?;
        let log_probabilities =
            logits.broadcast_sub(&logits.log_sum_exp(D::Minus1)?.unsqueeze(1)?)?;
        let cross_entropy = ((&targets * &log_probabilities)?.sum_all()? * (-1.0 / rows as f64))?;
        let loss =
            (cross_entropy + (weight.as_tensor().sqr()?.sum_all()? * options.weight_decay)?)?;
        losses.push(loss.to_scalar::<f32>()?);

        let gradients = loss.backward()?;
        for variable in [&weight, &bias] {
            if let Some(gradient) = gradients.get(variable.as_tensor()) {
                variable.set(&(variable.as_tensor() - (gradient * options.learning_rate)?)?)?;
            }
        }
    }
    let head = LinearHead {
        weight: weight.as_tensor().flatten_all()?.to_vec1::<f32>()?,
        bias: bias.as_tensor().to_vec1::<f32>()?,
        classes,
        dim,
    };
    Ok((head, losses))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_separable_toy_problem() {
        // Two clusters made for this test: class 1 has a positive first coordinate.
        let features: Vec<Vec<f32>> = (0..40)
            .map(|i| {
                vec![
                    if i % 2 == 1 { 0.8 } else { -0.8 },
                    (i as f32 * 0.37).sin() * 0.5,
                ]
            })
            .collect();
        let labels: Vec<u8> = (0..40).map(|i| (i % 2) as u8).collect();
        let (head, losses) = train_linear_head(
            &features,
            &labels,
            2,
            &TrainOptions {
                epochs: 100,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            losses.last().unwrap() < &(losses[0] * 0.5),
            "loss did not fall: {losses:?}"
        );
        for (feature, label) in features.iter().zip(&labels) {
            let probabilities = head.probabilities(feature).unwrap();
            assert_eq!((probabilities[1] > 0.5) as u8, *label);
        }
    }

    #[test]
    fn head_round_trips_through_safetensors() {
        let head = LinearHead {
            weight: vec![0.5, -1.0, 2.0, 0.25],
            bias: vec![0.1, -0.1],
            classes: 2,
            dim: 2,
        };
        let loaded = LinearHead::load(&head.to_safetensors().unwrap(), "head.safetensors").unwrap();
        assert_eq!(loaded.weight, head.weight);
        assert_eq!(loaded.bias, head.bias);
    }

    #[test]
    fn mismatched_rows_rejected() {
        let message = train_linear_head(&[vec![0.0]], &[0, 1], 2, &TrainOptions::default())
            .unwrap_err()
            .to_string();
        assert!(message.contains("1 feature rows and 2 labels"), "{message}");
    }
}
