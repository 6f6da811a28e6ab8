//! Bytes already in memory: tests, downloads held in RAM, and the browser's wasm linear memory.

use super::{read_from_slice, sub_slice, ByteSource};
use crate::Result;
use std::fmt;
use std::sync::Arc;

/// What holds the bytes: a shared slice, or a vector taken over as it is (a multi-GiB download
/// must not be copied into a new allocation just to change its container).
type Bytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// An in-memory byte source; cloning shares the bytes.
#[derive(Clone)]
pub struct MemorySource {
    bytes: Bytes,
}

impl MemorySource {
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Self {
        let shared: Arc<[u8]> = bytes.into();
        Self {
            bytes: Arc::new(shared),
        }
    }

    /// Takes `bytes` without copying them (`new` copies a `Vec` into an `Arc<[u8]>`).
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Self {
            bytes: Arc::new(bytes),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        (*self.bytes).as_ref()
    }
}

impl fmt::Debug for MemorySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySource")
            .field("len", &self.bytes().len())
            .finish()
    }
}

impl ByteSource for MemorySource {
    fn len(&self) -> u64 {
        self.bytes().len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        read_from_slice(self.bytes(), offset, buf)
    }
    fn slice(&self, offset: u64, len: u64) -> Option<&[u8]> {
        sub_slice(self.bytes(), offset, len)
    }
    fn is_mapped(&self) -> bool {
        true
    }
}

/// A borrowed slice read in place (checking bytes the caller keeps owning, e.g. a download's
/// header before it is cached).
impl ByteSource for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        read_from_slice(self, offset, buf)
    }
    fn slice(&self, offset: u64, len: u64) -> Option<&[u8]> {
        sub_slice(self, offset, len)
    }
    fn is_mapped(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vec_keeps_the_allocation() {
        let bytes: Vec<u8> = (0..=255).collect();
        let ptr = bytes.as_ptr();
        let source = MemorySource::from_vec(bytes);
        assert_eq!(source.bytes().as_ptr(), ptr);
        assert_eq!(source.slice(10, 3), Some(&[10u8, 11, 12][..]));
        let mut buf = [0u8; 2];
        source.read_at(254, &mut buf).unwrap();
        assert_eq!(buf, [254, 255]);
        assert!(source.read_at(255, &mut buf).is_err());
    }

    #[test]
    fn a_slice_reads_in_place() {
        let bytes: Vec<u8> = (0..=255).collect();
        let slice: &[u8] = &bytes;
        assert_eq!(ByteSource::len(slice), 256);
        assert_eq!(slice.slice(10, 3), Some(&[10u8, 11, 12][..]));
        assert_eq!(slice.slice(255, 2), None);
        let mut buf = [0u8; 2];
        slice.read_at(254, &mut buf).unwrap();
        assert_eq!(buf, [254, 255]);
        assert!(slice.read_at(255, &mut buf).is_err());
    }
}
