//! The persistent model cache: the Cache API's `sluice-models-v1`, keyed by the model's absolute
//! URL. Only a complete, verified download is ever written (from wasm memory, after the length
//! check), each entry records its length, and a reader checks that length again, so an
//! interrupted download can never be served later.

use crate::error::{describe, error_name};
use crate::progress::{Phase, Progress};
use crate::vec_stream::VecStream;
use js_sys::{Array, Reflect};
use serde::Serialize;
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, CacheStorage, Headers, ReadableStream, Request, Response, ResponseInit};

/// The cache's name; a new layout of entries gets a new version.
pub const CACHE_NAME: &str = "sluice-models-v1";

/// The header each entry carries with its length in bytes (ours, so that no server or
/// compression header can change it).
const LENGTH_HEADER: &str = "x-sluice-bytes";

/// Why the cache could not be used; the model still loads from the network (or memory).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("the model cache is unavailable: {0}")]
    Unavailable(String),
    #[error(
        "the browser refused to store the model in its cache ({detail}): the model runs from \
         memory and will be downloaded again next time"
    )]
    Quota { detail: String },
    #[error("the model cache could not {op}: {detail}")]
    Failed { op: &'static str, detail: String },
}

/// A model found in the cache, still to be read.
pub struct Entry {
    pub body: ReadableStream,
    /// The length recorded when it was stored.
    pub total: Option<u64>,
}

/// One cached model, for `Engine.cachedModels()`.
#[derive(Debug, Serialize)]
pub struct CachedModel {
    pub url: String,
    pub bytes: Option<u64>,
}

/// The opened cache.
pub struct ModelCache {
    cache: Cache,
}

impl ModelCache {
    pub async fn open() -> Result<Self, CacheError> {
        let cache = call("open", storage()?.open(CACHE_NAME)).await?;
        Ok(Self {
            cache: cache.unchecked_into(),
        })
    }

    /// The entry for `url`, if there is one.
    pub async fn lookup(&self, url: &str) -> Result<Option<Entry>, CacheError> {
        let found = call("look the model up", self.cache.match_with_str(url)).await?;
        if found.is_undefined() {
            return Ok(None);
        }
        let response: Response = found.unchecked_into();
        let total = recorded_length(&response);
        match response.body() {
            Some(body) => Ok(Some(Entry { body, total })),
            None => Err(CacheError::Failed {
                op: "read the cached model",
                detail: "the entry has no body".to_string(),
            }),
        }
    }

    /// Writes `bytes` (a complete model) as the entry for `url`, reporting phase `store`.
    pub async fn store(
        &self,
        url: &str,
        bytes: Rc<Vec<u8>>,
        progress: &Progress,
    ) -> Result<(), CacheError> {
        let total = bytes.len() as u64;
        let mut progress = progress.clone();
        progress.report(Phase::Store, 0, Some(total));
        let body = VecStream::new(bytes, move |sent| {
            progress.report(Phase::Store, sent, Some(total))
        })
        .map_err(|e| failed("stream the model into the cache", &e))?;
        let response = entry_response(&body.stream, total)?;
        let put = self.cache.put_with_str(url, &response);
        let stored = JsFuture::from(put).await;
        // The stream is read to its end (or abandoned) once the put settles.
        drop(body);
        stored.map(drop).map_err(|e| {
            if error_name(&e).as_deref() == Some("QuotaExceededError") {
                CacheError::Quota {
                    detail: describe(&e),
                }
            } else {
                failed("store the model", &e)
            }
        })
    }

    /// Deletes the entry for `url`; `true` if there was one.
    pub async fn remove(&self, url: &str) -> Result<bool, CacheError> {
        let removed = call("delete an entry", self.cache.delete_with_str(url)).await?;
        Ok(removed.as_bool() == Some(true))
    }

    /// Every cached model with its recorded length.
    pub async fn list(&self) -> Result<Vec<CachedModel>, CacheError> {
        let keys = call("list its entries", self.cache.keys()).await?;
        let mut models = Vec::new();
        for request in Array::from(&keys).iter() {
            let request: Request = request.unchecked_into();
            let url = request.url();
            let found = call("look the model up", self.cache.match_with_str(&url)).await?;
            let bytes = found.dyn_ref::<Response>().and_then(recorded_length);
            models.push(CachedModel { url, bytes });
        }
        Ok(models)
    }
}

/// Deletes the whole model cache; `true` if it existed.
pub async fn clear() -> Result<bool, CacheError> {
    let deleted = call("be deleted", storage()?.delete(CACHE_NAME)).await?;
    Ok(deleted.as_bool() == Some(true))
}

/// The global `caches`, missing outside secure contexts (plain http other than localhost).
fn storage() -> Result<CacheStorage, CacheError> {
    let caches =
        Reflect::get(&js_sys::global(), &JsValue::from_str("caches")).unwrap_or(JsValue::UNDEFINED);
    caches.dyn_into().map_err(|_| {
        CacheError::Unavailable(
            "this page has no Cache API (it needs a secure context: https or localhost)"
                .to_string(),
        )
    })
}

/// The response stored for a model: its bytes and their count.
fn entry_response(body: &ReadableStream, total: u64) -> Result<Response, CacheError> {
    let headers = Headers::new().map_err(|e| failed("build an entry", &e))?;
    for (name, value) in [
        ("content-type", "application/octet-stream".to_string()),
        ("content-length", total.to_string()),
        (LENGTH_HEADER, total.to_string()),
    ] {
        headers
            .set(name, &value)
            .map_err(|e| failed("build an entry", &e))?;
    }
    let init = ResponseInit::new();
    init.set_headers(&headers);
    Response::new_with_opt_readable_stream_and_init(Some(body), &init)
        .map_err(|e| failed("build an entry", &e))
}

fn recorded_length(response: &Response) -> Option<u64> {
    let value = response.headers().get(LENGTH_HEADER).ok().flatten()?;
    value.trim().parse().ok()
}

async fn call(op: &'static str, promise: js_sys::Promise) -> Result<JsValue, CacheError> {
    JsFuture::from(promise).await.map_err(|e| failed(op, &e))
}

fn failed(op: &'static str, e: &JsValue) -> CacheError {
    CacheError::Failed {
        op,
        detail: describe(e),
    }
}
