//! Where a loaded model's bytes came from and what the model cache did, as `metrics()` reports
//! it: `source`, `url`, `model_bytes`, `fetch_s`, `cache_status`, `cache_error`.

use crate::cache::CacheError;
use serde::Serialize;

/// How the bytes reached wasm memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Downloaded (`loadUrl`, not in the cache).
    Network,
    /// Read back from the model cache (`loadUrl`).
    Cache,
    /// A `File`/`Blob` (`loadFile`).
    File,
    /// A `Uint8Array` the page already held (`load`).
    Bytes,
}

/// What the model cache did for this load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheStatus {
    /// Served from the cache.
    Hit,
    /// Downloaded and then stored.
    Stored,
    /// `cache: false` in the options.
    Disabled,
    /// The cache could not be used; `cache_error` says why.
    Failed,
    /// Not a URL load: nothing to cache.
    Unused,
}

/// The origin part of `metrics()` (flattened into it).
#[derive(Debug, Clone, Serialize)]
pub struct Origin {
    pub source: Source,
    /// The absolute URL, for `loadUrl`; the file's name, for `loadFile`.
    pub url: Option<String>,
    pub model_bytes: u64,
    /// Seconds spent getting the bytes (download, cache read or file read), storing excluded.
    pub fetch_s: Option<f64>,
    pub cache_status: CacheStatus,
    pub cache_error: Option<String>,
}

impl Origin {
    pub fn new(source: Source, url: Option<String>) -> Self {
        Self {
            source,
            url,
            model_bytes: 0,
            fetch_s: None,
            cache_status: CacheStatus::Unused,
            cache_error: None,
        }
    }

    /// Records a cache failure (the load goes on without it) and logs it to the console.
    pub fn cache_failed(&mut self, error: &CacheError) {
        let message = error.to_string();
        web_sys::console::warn_1(&format!("sluice: {message}").into());
        self.cache_status = CacheStatus::Failed;
        self.cache_error = Some(message);
    }
}
