//! `ByteSource`: random access to a model's bytes by u64 offset, whatever holds them — a memory map,
//! a file read positionally, or bytes already in memory (the browser's wasm linear memory) — and
//! `ThrottledSource`, which makes any of them a slow, flaky disk for tests and benchmarks.

mod file;
mod memory;
#[cfg(not(target_family = "wasm"))]
mod mmap;
// Sleeps to pace reads, which wasm's main thread cannot do.
#[cfg(not(target_family = "wasm"))]
mod throttled;

pub use file::FileSource;
pub use memory::MemorySource;
#[cfg(not(target_family = "wasm"))]
pub use mmap::MmapSource;
#[cfg(not(target_family = "wasm"))]
pub use throttled::{FaultPlan, ThrottleConfig, ThrottleStats, ThrottledSource};

use crate::{Error, Result};
use std::sync::Arc;

/// Random-access bytes addressed by `u64` (also on wasm32, where `usize` is 32 bits).
///
/// ## Design
/// Reads are positional and take `&self`, so one source serves many prefetch workers at once.
/// Sources whose bytes already sit in this address space expose them through `slice`, which lets the
/// weight store hand out pages without copying.
pub trait ByteSource: Send + Sync {
    /// Total length in bytes.
    fn len(&self) -> u64;

    /// Whether the source holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` from `offset`; a range past the end is `Error::ReadPastEnd`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// The bytes `offset..offset+len` without copying, where the source is memory-resident.
    fn slice(&self, _offset: u64, _len: u64) -> Option<&[u8]> {
        None
    }

    /// Whether `slice` succeeds for every in-bounds range.
    fn is_mapped(&self) -> bool {
        false
    }
}

/// Checks that `offset..offset+len` lies inside a source of `source_len` bytes.
pub fn check_range(offset: u64, len: u64, source_len: u64) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= source_len => Ok(()),
        _ => Err(Error::ReadPastEnd {
            offset,
            len,
            source_len,
        }),
    }
}

/// Copies `offset..offset+buf.len()` of an in-memory slice into `buf`, with the bounds check.
pub(crate) fn read_from_slice(bytes: &[u8], offset: u64, buf: &mut [u8]) -> Result<()> {
    check_range(offset, buf.len() as u64, bytes.len() as u64)?;
    let start = offset as usize;
    buf.copy_from_slice(&bytes[start..start + buf.len()]);
    Ok(())
}

/// Borrows `offset..offset+len` of an in-memory slice, `None` when out of bounds.
pub(crate) fn sub_slice(bytes: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    check_range(offset, len, bytes.len() as u64).ok()?;
    let start = usize::try_from(offset).ok()?;
    let len = usize::try_from(len).ok()?;
    bytes.get(start..start + len)
}

impl<S: ByteSource + ?Sized> ByteSource for &S {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_at(offset, buf)
    }
    fn slice(&self, offset: u64, len: u64) -> Option<&[u8]> {
        (**self).slice(offset, len)
    }
    fn is_mapped(&self) -> bool {
        (**self).is_mapped()
    }
}

impl<S: ByteSource + ?Sized> ByteSource for Arc<S> {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_at(offset, buf)
    }
    fn slice(&self, offset: u64, len: u64) -> Option<&[u8]> {
        (**self).slice(offset, len)
    }
    fn is_mapped(&self) -> bool {
        (**self).is_mapped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(src: &dyn ByteSource, expected: &[u8]) {
        assert_eq!(src.len(), expected.len() as u64);
        let mut buf = [0u8; 5];
        src.read_at(3, &mut buf).unwrap();
        assert_eq!(&buf, &expected[3..8]);
        let err = src
            .read_at(expected.len() as u64 - 2, &mut buf)
            .unwrap_err();
        assert!(matches!(err, Error::ReadPastEnd { len: 5, .. }), "{err}");
        let err = src.read_at(u64::MAX - 1, &mut buf).unwrap_err();
        assert!(matches!(err, Error::ReadPastEnd { .. }), "{err}");
        let mut empty = [0u8; 0];
        src.read_at(expected.len() as u64, &mut empty).unwrap();
        if src.is_mapped() {
            assert_eq!(src.slice(10, 4).unwrap(), &expected[10..14]);
            assert!(src.slice(expected.len() as u64, 1).is_none());
        }
    }

    #[test]
    fn every_source_reads_the_same_bytes_and_rejects_reads_past_the_end() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes.bin");
        std::fs::write(&path, &bytes).unwrap();

        exercise(&MemorySource::new(bytes.clone()), &bytes);
        exercise(&FileSource::open(&path).unwrap(), &bytes);
        #[cfg(not(target_family = "wasm"))]
        exercise(&MmapSource::open(&path).unwrap(), &bytes);
    }

    #[test]
    fn opening_a_missing_file_is_an_io_error() {
        let err = FileSource::open("/nonexistent/model.gguf").unwrap_err();
        assert!(matches!(err, Error::Io(_)), "{err}");
    }
}
