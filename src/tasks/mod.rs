//! Evaluation tasks: prompt templates, answer parsers and metrics.

pub mod code_summary;
pub mod gsm8k;
pub mod humaneval;
pub mod metrics;
pub mod sentiment;
pub mod story;
