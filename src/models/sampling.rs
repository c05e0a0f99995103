//! Choosing the next token from logits: greedy, or seeded sampling with temperature and top-p.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sampling {
    /// The most likely token; ties go to the lowest id, as llama.cpp's greedy sampler does.
    Greedy,
    /// Sampling from the softmax of `logits / temperature`, restricted to the smallest
    /// set of tokens whose probabilities sum to at least `top_p`. The same seed gives
    /// the same tokens on every platform.
    Random {
        temperature: f32,
        top_p: f32,
        seed: u64,
    },
}

pub struct Sampler {
    sampling: Sampling,
    rng: Option<ChaCha8Rng>,
}

/// Index of the largest value, the first one on ties.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (index, &value) in values.iter().enumerate() {
        if value > values[best] {
            best = index;
        }
    }
    best
}

impl Sampler {
    pub fn new(sampling: &Sampling) -> Result<Self> {
        let rng = match *sampling {
            Sampling::Greedy => None,
            Sampling::Random {
                temperature,
                top_p,
                seed,
            } => {
                if !(temperature > 0.0 && temperature.is_finite()) {
                    return Err(Error::InvalidOption {
                        option: "temperature",
                        value: temperature.to_string(),
                        expected: "a positive number; use greedy sampling for temperature 0".into(),
                    });
                }
                if !(top_p > 0.0 && top_p <= 1.0) {
                    return Err(Error::InvalidOption {
                        option: "top_p",
                        value: top_p.to_string(),
                        expected: "a number in (0, 1]".into(),
                    });
                }
                Some(ChaCha8Rng::seed_from_u64(seed))
            }
        };
        Ok(Self {
            sampling: sampling.clone(),
            rng,
        })
    }

    pub fn sample(&mut self, logits: &[f32]) -> Result<u32> {
        if logits.iter().any(|value| value.is_nan()) {
            return Err(Error::InvalidOption {
                option: "logits",
                value: "NaN".into(),
                expected:
                    "finite values; the model produced NaN, so its weights or input are corrupt"
                        .into(),
            });
        }
        match (&self.sampling, self.rng.as_mut()) {
            (
                Sampling::Random {
                    temperature, top_p, ..
                },
                Some(rng),
            ) => Ok(sample_top_p(logits, *temperature, *top_p, rng)),
            _ => Ok(argmax(logits) as u32),
        }
    }
}

fn sample_top_p(logits: &[f32], temperature: f32, top_p: f32, rng: &mut ChaCha8Rng) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut candidates: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(id, &logit)| (id as u32, (((logit - max) / temperature) as f64).exp()))
        .collect();
    let total: f64 = candidates.iter().map(|(_, weight)| weight).sum();
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

    let mut kept = 0.0;
    let mut cutoff = candidates.len();
    for (index, (_, weight)) in candidates.iter().enumerate() {
        kept += weight / total;
        if kept >= top_p as f64 {
            cutoff = index + 1;
            break;
        }
    }
    candidates.truncate(cutoff);

    let kept_total: f64 = candidates.iter().map(|(_, weight)| weight).sum();
    // 53 random bits give a uniform float in [0, 1).
    let draw = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * kept_total;
    let mut cumulative = 0.0;
    for (id, weight) in &candidates {
        cumulative += weight;
        if draw < cumulative {
            return *id;
        }
    }
    candidates.last().map(|(id, _)| *id).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_first_maximum() {
        let mut sampler = Sampler::new(&Sampling::Greedy).unwrap();
        assert_eq!(sampler.sample(&[0.1, 3.0, 3.0, -1.0]).unwrap(), 1);
    }

    #[test]
    fn seeded_sampling_repeats() {
        let sampling = Sampling::Random {
            temperature: 1.0,
            top_p: 0.95,
            seed: 7,
        };
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let draw = |sampling: &Sampling| {
            let mut sampler = Sampler::new(sampling).unwrap();
            (0..20)
                .map(|_| sampler.sample(&logits).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(&sampling), draw(&sampling));
        let other = Sampling::Random {
            temperature: 1.0,
            top_p: 0.95,
            seed: 8,
        };
        assert_ne!(draw(&sampling), draw(&other));
    }

    #[test]
    fn top_p_keeps_only_dominant_token() {
        let sampling = Sampling::Random {
            temperature: 1.0,
            top_p: 0.5,
            seed: 1,
        };
        let mut sampler = Sampler::new(&sampling).unwrap();
        for _ in 0..50 {
            assert_eq!(sampler.sample(&[0.0, 10.0, 0.0]).unwrap(), 1);
        }
    }

    #[test]
    fn invalid_temperature_rejected() {
        let sampling = Sampling::Random {
            temperature: 0.0,
            top_p: 1.0,
            seed: 1,
        };
        let message = Sampler::new(&sampling).err().unwrap().to_string();
        assert!(message.contains("temperature"), "{message}");
    }

    #[test]
    fn nan_logits_rejected() {
        let mut sampler = Sampler::new(&Sampling::Greedy).unwrap();
        assert!(sampler.sample(&[0.0, f32::NAN]).is_err());
    }
}
