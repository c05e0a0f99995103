//! Text-similarity metrics, each compatible with the reference Python implementation
//! named in its file and tested against that implementation's output.

pub mod bertscore;
pub mod bleu;
pub mod classification;
pub mod interval;
pub mod rouge;
