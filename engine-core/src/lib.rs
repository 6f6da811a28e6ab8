//! Sluice engine core: everything that does not depend on a GPU API or a CLI.
//!
//! Data flows `ByteSource` → `gguf::GgufFile` → `store::WeightStore`; `quant` knows every GGML block
//! layout; `synth` writes random-weight llama-family models for tests and benchmarks.

pub mod backend;
pub mod error;
pub mod gguf;
pub mod model;
pub mod quant;
pub mod rng;
pub mod sample;
pub mod source;
pub mod store;
pub mod synth;

pub use error::{Error, Result};
