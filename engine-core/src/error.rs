//! The one error type of the engine core. Variants carry enough structure to tell a user what is wrong.

use crate::quant::GgmlType;

/// Result alias used across the engine core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way the engine core can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    #[error(
        "read of {len} bytes at offset {offset} is past the end of the source ({source_len} bytes)"
    )]
    ReadPastEnd {
        offset: u64,
        len: u64,
        source_len: u64,
    },

    #[error("malformed GGUF: {0}")]
    Gguf(#[from] crate::gguf::GgufError),

    #[error("unsupported tensor type {ty} for {op}")]
    UnsupportedType { ty: GgmlType, op: &'static str },

    #[error("{what}: {len} elements is not a multiple of the block size {block} of {ty}")]
    BlockMisaligned {
        what: String,
        len: usize,
        block: usize,
        ty: GgmlType,
    },

    #[error("buffer size mismatch in {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },

    #[error("tensor '{0}' not found")]
    TensorNotFound(String),

    #[error("metadata key '{key}' {problem}")]
    Metadata { key: String, problem: String },

    #[error(
        "host memory budget exceeded: need {requested} more bytes, {in_use} of {budget} in use"
    )]
    HostBudgetExceeded {
        requested: u64,
        in_use: u64,
        budget: u64,
    },

    #[error("shape error in {op}: {detail}")]
    Shape { op: &'static str, detail: String },

    #[error("context full: {needed} positions needed, the context holds {limit}")]
    ContextFull { needed: usize, limit: usize },

    #[error("the conversation is {tokens} tokens; the context holds {limit}")]
    ContextOverflow { tokens: usize, limit: usize },

    #[error(transparent)]
    Prompt(#[from] crate::engine::PromptError),

    #[error(transparent)]
    ConversationFile(#[from] crate::engine::ConversationFileError),

    #[error("unsupported architecture '{0}' (supported: llama, qwen2)")]
    UnsupportedArchitecture(String),

    #[error("loading {tensor} for layer {layer} failed: {source}")]
    LayerLoad {
        layer: String,
        tensor: String,
        #[source]
        source: std::sync::Arc<Error>,
    },

    #[error("device budget of {budget} bytes is too small: {what} needs {needed} bytes")]
    DeviceBudget {
        budget: u64,
        needed: u64,
        what: String,
    },

    #[error("the prefetcher has shut down")]
    ShutDown,

    #[error("invalid configuration: {0}")]
    Config(String),

    /// A device backend's own error (a driver call, kernel compilation, device memory), kept
    /// whole so that callers can still reach its structure through `source()`.
    #[error("{backend}: {source}")]
    Device {
        backend: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}
