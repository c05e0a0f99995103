//! Evaluation tasks: prompt templates, answer parsers and metrics.

pub mod gsm8k;
pub mod metrics;
pub mod sentiment;
