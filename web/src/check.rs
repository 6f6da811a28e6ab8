//! Checking a downloaded model before it goes into the model cache: its GGUF header must parse and
//! every tensor must lie inside the bytes (what `WeightStore::open` checks again when loading), so
//! the cache never keeps a file that cannot load.

use engine_core::gguf::GgufFile;
use engine_core::source::{check_range, ByteSource};
use engine_core::Result;

/// Bytes the caller keeps owning, read in place.
struct Borrowed<'a>(&'a [u8]);

impl ByteSource for Borrowed<'_> {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(offset, buf.len() as u64, self.len())?;
        // In range, so both ends fit in usize.
        let start = offset as usize;
        buf.copy_from_slice(&self.0[start..start + buf.len()]);
        Ok(())
    }

    fn slice(&self, offset: u64, len: u64) -> Option<&[u8]> {
        check_range(offset, len, self.len()).ok()?;
        self.0.get(offset as usize..(offset + len) as usize)
    }

    fn is_mapped(&self) -> bool {
        true
    }
}

/// `Ok` when `bytes` hold a GGUF file whose header parses and whose tensors all fit.
pub fn gguf(bytes: &[u8]) -> Result<()> {
    GgufFile::read(&Borrowed(bytes)).map(drop)
}
