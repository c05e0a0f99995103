//! The small models, each written once against [`crate::backend::Backend`].

pub mod bert;
pub mod chat;
pub mod head;
pub mod llama;
pub mod sampling;
