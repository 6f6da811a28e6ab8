//! GGUF v2/v3: the metadata value model, a validating reader, a streaming writer, and typed
//! accessors for the llama-family hyperparameters.

mod error;
mod hparams;
mod reader;
#[doc(hidden)]
pub mod testing;
mod value;
mod writer;

pub use error::{GgufError, Section};
pub use hparams::{LlamaHparams, TokenizerSummary};
pub use reader::{GgufFile, TensorInfo, MAX_DIMS};
pub use value::{Array, Metadata, Value, ValueType};
pub use writer::{encode_array, GgufWriter, TensorSpec};

/// `GGUF` in file order.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment used when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Key that overrides the data alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";
