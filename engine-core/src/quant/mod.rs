//! GGML quantization formats: the type table, CPU dequantization, and quantization for the writer.

mod types;

pub use types::{GgmlType, QK_K};
