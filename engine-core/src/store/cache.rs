//! The host page cache for sources that are not memory-resident, held to a byte budget.
//!
//! Bytes are counted while a page is alive anywhere — in the cache or held by a caller — so the
//! budget bounds real host memory, not just what the cache owns. Eviction takes the least recently
//! used page nobody else holds.

use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A page of bytes held in host memory; cloning shares it.
#[derive(Debug, Clone)]
pub struct Page(Arc<PageBuf>);

impl Page {
    pub fn bytes(&self) -> &[u8] {
        &self.0.bytes
    }
}

#[derive(Debug)]
struct PageBuf {
    bytes: Box<[u8]>,
    live_bytes: Arc<AtomicU64>,
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        self.live_bytes
            .fetch_sub(self.bytes.len() as u64, Ordering::SeqCst);
    }
}

/// Counters of the host cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HostCacheStats {
    pub hits: u64,
    pub misses: u64,
    pub bytes_read: u64,
    pub evictions: u64,
    /// Bytes of pages alive now (cached or held by callers).
    pub live_bytes: u64,
    pub peak_live_bytes: u64,
    pub budget: u64,
}

#[derive(Debug, Default)]
struct CacheState {
    pages: HashMap<u64, (Page, u64)>,
    clock: u64,
    stats: HostCacheStats,
}

#[derive(Debug)]
pub(super) struct PageCache {
    budget: u64,
    live_bytes: Arc<AtomicU64>,
    state: Mutex<CacheState>,
}

impl PageCache {
    pub(super) fn new(budget: u64) -> Self {
        Self {
            budget,
            live_bytes: Arc::new(AtomicU64::new(0)),
            state: Mutex::new(CacheState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // A panic elsewhere while holding the lock leaves counters, not broken invariants.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns page `k`, loading `len` bytes with `load` on a miss.
    pub(super) fn get_or_load(
        &self,
        k: u64,
        len: u64,
        load: impl FnOnce(&mut [u8]) -> Result<()>,
    ) -> Result<Page> {
        {
            let mut st = self.lock();
            st.clock += 1;
            let now = st.clock;
            if let Some((page, used)) = st.pages.get_mut(&k) {
                *used = now;
                let page = page.clone();
                st.stats.hits += 1;
                return Ok(page);
            }
            self.reserve(&mut st, len)?;
        }
        // Read outside the lock so other pages can be served meanwhile; the bytes are already counted.
        let mut bytes = vec![0u8; len as usize].into_boxed_slice();
        let loaded = load(&mut bytes);
        let mut st = self.lock();
        if let Err(e) = loaded {
            self.live_bytes.fetch_sub(len, Ordering::SeqCst);
            return Err(e);
        }
        st.stats.misses += 1;
        st.stats.bytes_read += len;
        let page = Page(Arc::new(PageBuf {
            bytes,
            live_bytes: self.live_bytes.clone(),
        }));
        let now = st.clock;
        // Another thread may have loaded the same page meanwhile; keep one copy.
        let kept = st.pages.entry(k).or_insert((page, now)).0.clone();
        Ok(kept)
    }

    /// Counts `len` more live bytes, evicting unreferenced pages as needed.
    fn reserve(&self, st: &mut CacheState, len: u64) -> Result<()> {
        loop {
            let live = self.live_bytes.load(Ordering::SeqCst);
            if live + len <= self.budget {
                self.live_bytes.fetch_add(len, Ordering::SeqCst);
                let now = self.live_bytes.load(Ordering::SeqCst);
                st.stats.peak_live_bytes = st.stats.peak_live_bytes.max(now);
                return Ok(());
            }
            let victim = st
                .pages
                .iter()
                .filter(|(_, (p, _))| Arc::strong_count(&p.0) == 1)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(&k, _)| k);
            match victim {
                Some(k) => {
                    st.pages.remove(&k);
                    st.stats.evictions += 1;
                }
                None => {
                    return Err(Error::HostBudgetExceeded {
                        requested: len,
                        in_use: live,
                        budget: self.budget,
                    })
                }
            }
        }
    }

    pub(super) fn budget(&self) -> u64 {
        self.budget
    }

    pub(super) fn stats(&self) -> HostCacheStats {
        let st = self.lock();
        HostCacheStats {
            live_bytes: self.live_bytes.load(Ordering::SeqCst),
            budget: self.budget,
            ..st.stats
        }
    }
}
