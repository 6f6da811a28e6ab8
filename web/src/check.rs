//! Checking a downloaded model before it goes into the model cache: its GGUF header must parse and
//! every tensor must lie inside the bytes (what `WeightStore::open` checks again when loading), so
//! the cache never keeps a file that cannot load.

use engine_core::gguf::GgufFile;
use engine_core::Result;

/// `Ok` when `bytes` hold a GGUF file whose header parses and whose tensors all fit.
pub fn gguf(bytes: &[u8]) -> Result<()> {
    GgufFile::read(bytes).map(drop)
}
