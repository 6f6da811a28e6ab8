//! Sluice engine core: everything that does not depend on a GPU API or a CLI.
//!
//! Data flows `ByteSource` → `gguf::GgufFile` → `store::WeightStore`; `quant` knows every GGML block
//! layout; `synth` writes random-weight llama-family models for tests and benchmarks; `tokenizer`
//! turns text into token ids and back as llama.cpp does, and `chat` renders a model's chat template;
//! `engine` loads a model onto a backend and runs conversations over it for every caller.

#![cfg_attr(target_arch = "wasm64", feature(simd_wasm64))]

pub mod backend;
pub mod chat;
pub mod clock;
pub mod engine;
pub mod error;
pub mod gguf;
pub mod model;
pub mod prefetch;
pub mod quant;
pub mod rng;
pub mod sample;
pub mod schedule;
pub mod source;
pub mod store;
pub mod synth;
pub mod tokenizer;

#[cfg(test)]
pub(crate) mod testing_support;

pub use error::{Error, Result};
