//! `HostBytes`: bytes in host memory that outlive the borrow they came from — a range of a
//! memory-resident source kept alive by a shared handle on its store, or an owned vector.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// What lends out ranges of memory it holds for as long as it lives (a `WeightStore` over a
/// memory-resident source). A range it lent once it lends again, unchanged.
pub(crate) trait MappedBytes: Send + Sync {
    /// The bytes `offset..offset+len`, `None` where they are not held in memory.
    fn slice(&self, offset: u64, len: u64) -> Option<&[u8]>;
}

#[derive(Clone)]
enum Repr {
    /// `Arc<Vec>` rather than `Arc<[u8]>`: taking a vector over must not copy it.
    Owned(Arc<Vec<u8>>),
    Mapped {
        owner: Arc<dyn MappedBytes>,
        offset: u64,
        len: u64,
    },
}

/// Read-only bytes in host memory: a view into a memory map (or the browser's wasm memory) that
/// keeps its source alive, or an owned buffer. Cloning shares the bytes; it never copies them.
#[derive(Clone)]
pub struct HostBytes(Repr);

impl HostBytes {
    /// A view of `offset..offset+len` of `owner`, `None` when `owner` does not hold those bytes.
    pub(crate) fn mapped(owner: Arc<dyn MappedBytes>, offset: u64, len: u64) -> Option<Self> {
        owner.slice(offset, len)?;
        Some(Self(Repr::Mapped { owner, offset, len }))
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Owned(v) => v,
            // `mapped` checked the range, and an owner lends the same range again while it lives.
            Repr::Mapped { owner, offset, len } => owner
                .slice(*offset, *len)
                .expect("a memory-resident source lends a range it lent before"),
        }
    }

    /// Whether the bytes are borrowed from a memory-resident source rather than owned.
    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, Repr::Mapped { .. })
    }
}

impl From<Vec<u8>> for HostBytes {
    /// Takes the vector over without copying it.
    fn from(v: Vec<u8>) -> Self {
        Self(Repr::Owned(Arc::new(v)))
    }
}

impl Deref for HostBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for HostBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for HostBytes {
    /// Equal bytes, wherever they are held.
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for HostBytes {}

impl fmt::Debug for HostBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostBytes")
            .field("len", &self.len())
            .field("borrowed", &self.is_borrowed())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::model_bytes;
    use super::*;
    use crate::source::{ByteSource, FileSource, MemorySource};
    use crate::store::{StoreConfig, WeightStore};
    use crate::Error;

    fn config() -> StoreConfig {
        StoreConfig {
            page_size: 4096,
            host_budget: 1 << 20,
        }
    }

    #[test]
    fn an_owned_vector_is_taken_over_without_a_copy() {
        let v: Vec<u8> = (0..=255).collect();
        let ptr = v.as_ptr();
        let bytes = HostBytes::from(v);
        assert!(!bytes.is_borrowed());
        assert_eq!(bytes.as_ptr(), ptr);
        let clone = bytes.clone();
        assert_eq!(clone.as_ptr(), ptr);
        assert_eq!(clone, bytes);
        assert_eq!(&bytes[10..13], &[10, 11, 12]);
    }

    #[test]
    fn a_memory_resident_store_lends_tensors_that_outlive_its_handle() {
        let store =
            Arc::new(WeightStore::open(MemorySource::from_vec(model_bytes()), config()).unwrap());
        let t = store.tensor("blk.0.attn_q.weight").unwrap().range.clone();
        let source = store.source().bytes();
        let inside = source.as_ptr_range();
        let expected = source[t.start as usize..t.end as usize].to_vec();
        let bytes = store.tensor_host_bytes("blk.0.attn_q.weight").unwrap();
        assert!(bytes.is_borrowed());
        assert_eq!(bytes.as_ptr(), source[t.start as usize..].as_ptr());
        assert!(inside.contains(&bytes.as_ptr()));
        // The view holds the store: dropping the caller's handle leaves the bytes in place.
        drop(store);
        assert_eq!(bytes.as_slice(), expected.as_slice());
        assert_eq!(bytes, HostBytes::from(expected));
    }

    #[test]
    fn a_file_store_reads_an_owned_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, model_bytes()).unwrap();
        let store =
            Arc::new(WeightStore::open(FileSource::open(&path).unwrap(), config()).unwrap());
        assert!(!store.source().is_mapped());
        for name in ["token_embd.weight", "blk.0.attn_q.weight"] {
            let bytes = store.tensor_host_bytes(name).unwrap();
            assert!(!bytes.is_borrowed());
            assert_eq!(bytes.as_slice(), &*store.tensor_bytes(name).unwrap());
        }
        let err = store.tensor_host_bytes("missing.weight").unwrap_err();
        assert!(matches!(err, Error::TensorNotFound(_)), "{err}");
    }
}
