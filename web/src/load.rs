//! Loading a model by URL (through the page's model cache) or from a `File`/`Blob`: bytes stream
//! chunk by chunk into one `Vec` in wasm memory, which `Engine::from_vec` hands to the weight
//! store without a copy. Also the cache helpers pages call (`Engine.cachedModels`,
//! `Engine.clearCache`).

use crate::cache::{self, ModelCache};
use crate::check;
use crate::engine::Engine;
use crate::error::LoadError;
use crate::fetch;
use crate::options::{self, LoadOptions};
use crate::origin::{CacheStatus, Origin, Source};
use crate::progress::{Phase, Progress};
use crate::stream::{self, Body};
use engine_core::clock::Instant;
use js_sys::Function;
use std::rc::Rc;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsError, JsValue};
use web_sys::Blob;

#[wasm_bindgen]
impl Engine {
    /// Loads the GGUF at `url` (relative to the page): from the model cache when it holds a
    /// complete copy, else downloaded, checked to parse, and then stored. `options`: `load`'s, plus `cache?: boolean`
    /// (default `true`). `onProgress({ phase, loaded, total })` follows the bytes: phase
    /// `"download"`, `"cache"` (read from the cache), `"store"` (written to it), `"load"`.
    /// A cache that cannot be used (no quota…) is reported in `metrics()`; the model still loads.
    #[wasm_bindgen(js_name = loadUrl)]
    pub async fn load_url(
        url: String,
        options: JsValue,
        on_progress: Option<Function>,
    ) -> Result<Engine, JsError> {
        crate::install_clock();
        let opts: LoadOptions = options::parse("load options", options)?;
        let url = fetch::absolute_url(&url)?;
        let mut progress = Progress::new(on_progress);
        let mut origin = Origin::new(Source::Network, Some(url.clone()));
        let cache = if opts.cache {
            match ModelCache::open().await {
                Ok(cache) => Some(cache),
                Err(e) => {
                    origin.cache_failed(&e);
                    None
                }
            }
        } else {
            origin.cache_status = CacheStatus::Disabled;
            None
        };
        if let Some(cache) = &cache {
            if let Some(bytes) = from_cache(cache, &url, &mut origin, &mut progress).await {
                return Engine::from_vec(bytes, &opts, origin, &mut progress).await;
            }
        }
        let start = Instant::now();
        let download = fetch::start(&url).await?;
        let body = Body {
            what: &url,
            total: download.total,
            phase: Phase::Download,
        };
        let bytes = stream::read_all(download.body, &body, &mut progress).await?;
        origin.fetch_s = Some(start.elapsed().as_secs_f64());
        // A file that cannot load must not be cached (it would fail again on every visit).
        check::gguf(&bytes).map_err(|e| LoadError::Invalid {
            what: url.clone(),
            detail: e.to_string(),
        })?;
        let bytes = match &cache {
            Some(cache) => store(cache, &url, bytes, &mut origin, &progress).await?,
            None => bytes,
        };
        Engine::from_vec(bytes, &opts, origin, &mut progress).await
    }

    /// Loads the GGUF in `file` (a `File` from an `<input type=file>`, or any `Blob`), streamed
    /// into wasm memory. `options` and `onProgress` as for `loadUrl` (phases `"file"`, `"load"`).
    #[wasm_bindgen(js_name = loadFile)]
    pub async fn load_file(
        file: Blob,
        options: JsValue,
        on_progress: Option<Function>,
    ) -> Result<Engine, JsError> {
        crate::install_clock();
        let opts: LoadOptions = options::parse("load options", options)?;
        let name = js_sys::Reflect::get(&file, &JsValue::from_str("name"))
            .ok()
            .and_then(|n| n.as_string());
        let what = match &name {
            Some(name) => format!("file {name:?}"),
            None => "the blob".to_string(),
        };
        let mut progress = Progress::new(on_progress);
        let start = Instant::now();
        let body = Body {
            what: &what,
            total: Some(file.size() as u64),
            phase: Phase::File,
        };
        let bytes = stream::read_all(file.stream(), &body, &mut progress).await?;
        let mut origin = Origin::new(Source::File, name);
        origin.fetch_s = Some(start.elapsed().as_secs_f64());
        Engine::from_vec(bytes, &opts, origin, &mut progress).await
    }

    /// The models in the page's cache: `[{ url, bytes }]`.
    #[wasm_bindgen(js_name = cachedModels)]
    pub async fn cached_models() -> Result<JsValue, JsError> {
        let cache = ModelCache::open().await.map_err(js)?;
        options::to_js(&cache.list().await.map_err(js)?)
    }

    /// Deletes the page's model cache; resolves to whether there was one.
    #[wasm_bindgen(js_name = clearCache)]
    pub async fn clear_cache() -> Result<bool, JsError> {
        cache::clear().await.map_err(js)
    }
}

/// The cached copy of `url`, verified complete, or `None` (a miss, or a damaged entry, which is
/// deleted and reported in `origin` so that the caller downloads it again).
async fn from_cache(
    cache: &ModelCache,
    url: &str,
    origin: &mut Origin,
    progress: &mut Progress,
) -> Option<Vec<u8>> {
    let entry = match cache.lookup(url).await {
        Ok(Some(entry)) => entry,
        Ok(None) => return None,
        Err(e) => {
            origin.cache_failed(&e);
            return None;
        }
    };
    let start = Instant::now();
    let what = format!("the cached copy of {url}");
    let body = Body {
        what: &what,
        total: entry.total,
        phase: Phase::Cache,
    };
    // An entry without its recorded length was not written by this code: treat it as damaged.
    let read = match entry.total {
        Some(_) => stream::read_all(entry.body, &body, progress).await,
        None => Err(LoadError::Js {
            what,
            detail: "no recorded length".to_string(),
        }),
    };
    match read {
        Ok(bytes) => {
            origin.source = Source::Cache;
            origin.cache_status = CacheStatus::Hit;
            origin.fetch_s = Some(start.elapsed().as_secs_f64());
            Some(bytes)
        }
        Err(e) => {
            let removed = cache.remove(url).await;
            let message = format!(
                "{e}; {} it and downloading again",
                if removed.is_ok() {
                    "deleted"
                } else {
                    "could not delete"
                }
            );
            web_sys::console::warn_1(&format!("sluice: {message}").into());
            origin.cache_error = Some(message);
            None
        }
    }
}

/// Stores the complete download in the cache (a failure is reported in `origin`, not returned)
/// and gives the bytes back for loading.
async fn store(
    cache: &ModelCache,
    url: &str,
    bytes: Vec<u8>,
    origin: &mut Origin,
    progress: &Progress,
) -> Result<Vec<u8>, JsError> {
    let shared = Rc::new(bytes);
    match cache.store(url, shared.clone(), progress).await {
        Ok(()) => origin.cache_status = CacheStatus::Stored,
        Err(e) => {
            origin.cache_failed(&e);
            // A failed put leaves no entry; make sure of it, so no partial copy is ever served.
            let _ = cache.remove(url).await;
        }
    }
    Rc::try_unwrap(shared)
        .map_err(|_| JsError::new("the model buffer is still shared after storing it"))
}

fn js(e: cache::CacheError) -> JsError {
    e.into()
}
