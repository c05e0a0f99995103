//! Seedling: runs small language models on the user's own device, scores them on real
//! tasks, and estimates the energy and carbon of each run against a hosted LLM.

pub mod backend;
pub mod clock;
pub mod data;
pub mod energy;
pub mod error;
pub mod eval;
pub mod feasibility;
pub mod hosted;
pub mod inputs;
pub mod integrity;
pub mod manifest;
pub mod models;
pub mod report;
pub mod tasks;
pub mod tokenize;
pub mod train;
pub mod verdict;

#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use error::{Error, Result};

#[cfg(not(target_arch = "wasm32"))]
pub mod native;

#[cfg(not(target_arch = "wasm32"))]
pub mod finetune;

#[cfg(not(target_arch = "wasm32"))]
pub mod rapl;

#[cfg(not(target_arch = "wasm32"))]
pub mod sandbox;
