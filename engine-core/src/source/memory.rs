//! Bytes already in memory: tests, downloads held in RAM, and the browser's wasm linear memory.

use super::{read_from_slice, sub_slice, ByteSource};
use crate::Result;
use std::sync::Arc;

/// An in-memory byte source; cloning shares the bytes.
#[derive(Clone, Debug)]
pub struct MemorySource {
    bytes: Arc<[u8]>,
}

impl MemorySource {
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Self {
        Self {
            bytes: bytes.into(),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl ByteSource for MemorySource {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        read_from_slice(&self.bytes, offset, buf)
    }
    fn slice(&self, offset: u64, len: u64) -> Option<&[u8]> {
        sub_slice(&self.bytes, offset, len)
    }
    fn is_mapped(&self) -> bool {
        true
    }
}
