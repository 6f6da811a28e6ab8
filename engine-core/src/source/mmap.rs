//! A read-only memory map: zero-copy pages, the OS page cache as the host tier.

use super::{read_from_slice, sub_slice, ByteSource};
use crate::Result;
use std::path::Path;

/// A file mapped read-only into memory.
#[derive(Debug)]
pub struct MmapSource {
    map: memmap2::Mmap,
}

impl MmapSource {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let file = std::fs::File::open(path)?;
        // SAFETY: the map is read-only. Another process truncating or rewriting the file while it is
        // mapped is outside what we can guard against; memmap2 documents the same caveat.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Self { map })
    }
}

impl ByteSource for MmapSource {
    fn len(&self) -> u64 {
        self.map.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        read_from_slice(&self.map, offset, buf)
    }
    fn slice(&self, offset: u64, len: u64) -> Option<&[u8]> {
        sub_slice(&self.map, offset, len)
    }
    fn is_mapped(&self) -> bool {
        true
    }
}
