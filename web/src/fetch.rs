//! Downloading a model over HTTP: the request (bypassing the browser's HTTP cache, since the
//! model cache keeps the one stored copy), the status check and the announced length.

use crate::error::{describe, LoadError};
use js_sys::{Promise, Reflect};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStream, RequestCache, RequestInit, Response, Url};

#[wasm_bindgen]
extern "C" {
    /// The global `fetch` (pages and workers alike).
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(input: &str, init: &RequestInit) -> Promise;
}

/// A successful response whose body is still to be read.
pub struct Download {
    pub body: ReadableStream,
    /// `Content-Length`, when it counts the bytes the body yields (not with a `Content-Encoding`).
    pub total: Option<u64>,
}

/// `url` made absolute against the page's (or worker's) location: the cache key, and what
/// messages show.
pub fn absolute_url(url: &str) -> Result<String, LoadError> {
    let base = Reflect::get(&js_sys::global(), &JsValue::from_str("location"))
        .ok()
        .and_then(|location| Reflect::get(&location, &JsValue::from_str("href")).ok())
        .and_then(|href| href.as_string());
    let parsed = match &base {
        Some(base) => Url::new_with_base(url, base),
        None => Url::new(url),
    };
    parsed.map(|u| u.href()).map_err(|e| LoadError::Js {
        what: format!("model URL {url:?}"),
        detail: describe(&e),
    })
}

/// Starts the download of `url` (absolute) and checks its status.
pub async fn start(url: &str) -> Result<Download, LoadError> {
    let init = RequestInit::new();
    // The model cache is the one stored copy; a second one in the HTTP cache would double the
    // disk use, and a cached partial response must never stand in for the file.
    init.set_cache(RequestCache::NoStore);
    let response = JsFuture::from(global_fetch(url, &init))
        .await
        .map_err(|e| LoadError::Network {
            url: url.to_string(),
            detail: describe(&e),
        })?;
    let response: Response = response.unchecked_into();
    if !response.ok() {
        return Err(LoadError::Http {
            url: url.to_string(),
            status: response.status(),
            status_text: response.status_text(),
        });
    }
    let total = announced_length(&response);
    let body = response.body().ok_or_else(|| LoadError::NoBody {
        what: url.to_string(),
    })?;
    Ok(Download { body, total })
}

/// The body's length from `Content-Length`, unless a `Content-Encoding` makes that the length of
/// the compressed bytes rather than of what the stream yields.
pub fn announced_length(response: &Response) -> Option<u64> {
    let headers = response.headers();
    let encoded = headers
        .get("content-encoding")
        .ok()
        .flatten()
        .is_some_and(|e| !e.eq_ignore_ascii_case("identity"));
    if encoded {
        return None;
    }
    headers
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse().ok())
}
