//! `WeightStore`: a model's tensor data as fixed-size pages addressed by u64 over any `ByteSource`,
//! with the index the layer scheduler needs (tensor → pages, layer → tensors and bytes).
//!
//! Over a memory-resident source (a map, wasm linear memory) pages are borrowed, never copied. Over
//! other sources, pages read are kept in a host cache held to a byte budget.

mod cache;
mod host_bytes;
mod index;

pub use cache::{HostCacheStats, Page};
pub use host_bytes::HostBytes;
pub use index::{LayerEntry, LayerId, TensorEntry};

use crate::gguf::GgufFile;
use crate::source::ByteSource;
use crate::{Error, Result};
use cache::PageCache;
use host_bytes::MappedBytes;
use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

/// Default page size: large enough that per-page bookkeeping is noise, small enough to stream.
pub const DEFAULT_PAGE_SIZE: u64 = 1 << 20;
/// Default host budget for sources that are not memory-resident.
pub const DEFAULT_HOST_BUDGET: u64 = 1 << 30;

/// How a store pages its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// Page size in bytes: a power of two from 4 KiB to 1 GiB.
    pub page_size: u64,
    /// Most bytes of pages held in host memory at once, for sources that are not memory-resident.
    pub host_budget: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            page_size: DEFAULT_PAGE_SIZE,
            host_budget: DEFAULT_HOST_BUDGET,
        }
    }
}

/// A page: borrowed from a memory-resident source, or held in the host cache.
#[derive(Debug, Clone)]
pub enum PageRef<'a> {
    Borrowed(&'a [u8]),
    Cached(Page),
}

impl std::ops::Deref for PageRef<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            PageRef::Borrowed(b) => b,
            PageRef::Cached(p) => p.bytes(),
        }
    }
}

/// A GGUF model's weights, paged.
pub struct WeightStore<S: ByteSource> {
    source: S,
    file: GgufFile,
    page_size: u64,
    tensors: Vec<TensorEntry>,
    by_name: HashMap<String, usize>,
    layers: Vec<LayerEntry>,
    cache: PageCache,
}

impl<S: ByteSource> WeightStore<S> {
    /// Parses the GGUF header of `source` and indexes its tensors.
    pub fn open(source: S, config: StoreConfig) -> Result<Self> {
        let file = GgufFile::read(&source)?;
        Self::from_parts(source, file, config)
    }

    /// Builds a store over an already parsed file.
    pub fn from_parts(source: S, file: GgufFile, config: StoreConfig) -> Result<Self> {
        let page_size = config.page_size;
        if !page_size.is_power_of_two() || !(4096..=1 << 30).contains(&page_size) {
            return Err(Error::Config(format!(
                "page size {page_size} must be a power of two from 4 KiB to 1 GiB"
            )));
        }
        if source.len() != file.file_len {
            return Err(Error::Config(format!(
                "source holds {} bytes but the GGUF header was read from {} bytes",
                source.len(),
                file.file_len
            )));
        }
        let tensors = index::tensor_entries(&file, page_size);
        let by_name = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        let layers = index::layer_entries(&tensors);
        let cache = PageCache::new(config.host_budget);
        Ok(Self {
            source,
            file,
            page_size,
            tensors,
            by_name,
            layers,
            cache,
        })
    }

    pub fn gguf(&self) -> &GgufFile {
        &self.file
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// Pages covering the data section.
    pub fn page_count(&self) -> u64 {
        (self.file.file_len - self.file.data_offset.min(self.file.file_len))
            .div_ceil(self.page_size)
    }

    /// Whether pages are borrowed from the source rather than copied into the host cache.
    pub fn is_zero_copy(&self) -> bool {
        self.source.is_mapped()
    }

    /// Absolute byte range of page `k` in the source.
    pub fn page_range(&self, k: u64) -> Result<Range<u64>> {
        if k >= self.page_count() {
            return Err(Error::Config(format!(
                "page {k} out of range ({} pages)",
                self.page_count()
            )));
        }
        let start = self.file.data_offset + k * self.page_size;
        Ok(start..(start + self.page_size).min(self.file.file_len))
    }

    /// Page `k` of the data section.
    pub fn page(&self, k: u64) -> Result<PageRef<'_>> {
        let range = self.page_range(k)?;
        let len = range.end - range.start;
        if let Some(bytes) = self.source.slice(range.start, len) {
            return Ok(PageRef::Borrowed(bytes));
        }
        let page = self
            .cache
            .get_or_load(k, len, |buf| self.source.read_at(range.start, buf))?;
        Ok(PageRef::Cached(page))
    }

    /// All tensors, in file order.
    pub fn tensors(&self) -> &[TensorEntry] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Result<&TensorEntry> {
        self.by_name
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| Error::TensorNotFound(name.to_string()))
    }

    /// Layers in execution order: embeddings, blocks by index, output head, then anything else.
    pub fn layers(&self) -> &[LayerEntry] {
        &self.layers
    }

    pub fn layer(&self, id: LayerId) -> Option<&LayerEntry> {
        self.layers.iter().find(|l| l.id == id)
    }

    /// Number of transformer blocks (`blk.N`) in the file.
    pub fn block_count(&self) -> usize {
        self.layers
            .iter()
            .filter(|l| matches!(l.id, LayerId::Block(_)))
            .count()
    }

    /// A tensor's raw bytes: borrowed when the source is memory-resident, else gathered from pages.
    pub fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>> {
        let t = self.tensor(name)?;
        let len = t.range.end - t.range.start;
        if let Some(bytes) = self.source.slice(t.range.start, len) {
            return Ok(Cow::Borrowed(bytes));
        }
        let len = usize::try_from(len).map_err(|_| {
            Error::Config(format!("tensor '{name}' is too large for this platform"))
        })?;
        let mut out = vec![0u8; len];
        self.read_range(t.range.clone(), &mut out)?;
        Ok(Cow::Owned(out))
    }

    /// Whether the host cache can hold every page of the data section. When it cannot, pages are
    /// not cached: every pass reads all layers in order, so an LRU cache smaller than the model
    /// would evict each page just before it is needed again and only add copies.
    pub fn caches_pages(&self) -> bool {
        self.page_count().saturating_mul(self.page_size) <= self.cache.budget()
    }

    /// Copies the absolute byte range `range` (inside the data section) through the pages.
    pub fn read_range(&self, range: Range<u64>, out: &mut [u8]) -> Result<()> {
        let data_start = self.file.data_offset;
        if range.start < data_start || range.end > self.file.file_len || range.end < range.start {
            return Err(Error::ReadPastEnd {
                offset: range.start,
                len: range.end.saturating_sub(range.start),
                source_len: self.file.file_len,
            });
        }
        if out.len() as u64 != range.end - range.start {
            return Err(Error::SizeMismatch {
                what: "read_range output buffer".into(),
                expected: range.end - range.start,
                actual: out.len() as u64,
            });
        }
        if !self.source.is_mapped() && !self.caches_pages() {
            return self.source.read_at(range.start, out);
        }
        let mut pos = range.start;
        while pos < range.end {
            let k = (pos - data_start) / self.page_size;
            let page = self.page(k)?;
            let page_start = data_start + k * self.page_size;
            let from = (pos - page_start) as usize;
            let n = ((range.end - pos) as usize).min(page.len() - from);
            let at = (pos - range.start) as usize;
            out[at..at + n].copy_from_slice(&page[from..from + n]);
            pos += n as u64;
        }
        Ok(())
    }

    /// Host cache accounting (all zeros for zero-copy sources).
    pub fn host_cache_stats(&self) -> HostCacheStats {
        self.cache.stats()
    }
}

impl<S: ByteSource + 'static> WeightStore<S> {
    /// A tensor's bytes, held past this borrow: a view keeping the store alive when the source is
    /// memory-resident, else an owned copy gathered from pages.
    pub fn tensor_host_bytes(self: &Arc<Self>, name: &str) -> Result<HostBytes> {
        let t = self.tensor(name)?;
        let (offset, len) = (t.range.start, t.range.end - t.range.start);
        if self.source.slice(offset, len).is_some() {
            let owner: Arc<dyn MappedBytes> = self.clone();
            if let Some(bytes) = HostBytes::mapped(owner, offset, len) {
                return Ok(bytes);
            }
        }
        Ok(self.tensor_bytes(name)?.into_owned().into())
    }
}

impl<S: ByteSource> MappedBytes for WeightStore<S> {
    fn slice(&self, offset: u64, len: u64) -> Option<&[u8]> {
        self.source.slice(offset, len)
    }
}

#[cfg(test)]
mod tests;
