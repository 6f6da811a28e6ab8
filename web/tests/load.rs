//! `Engine.loadFile` and `Engine.loadUrl` in the page: a small synthetic GGUF streamed from a
//! `Blob` and from a `blob:` URL loads and generates exactly what `Engine.load` of the same bytes
//! does, reports its source and progress, and bad input rejects with a message that says what
//! is wrong (not a GGUF, truncated, HTTP status). The model cache with real HTTP is covered by
//! the chat page's test (www/tests/chat.test.mjs).
#![cfg(target_family = "wasm")]

mod common;

use common::{message, metrics};

use js_sys::{Array, Function, Uint8Array};
use serde::Deserialize;
use sluice_web::Engine;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::{Blob, Url};

wasm_bindgen_test_configure!(run_in_browser);

/// The fields of `metrics()` these tests look at.
#[derive(Debug, Deserialize)]
struct Origin {
    source: String,
    url: Option<String>,
    model_bytes: u64,
    cache_status: String,
    cache_error: Option<String>,
}

fn model_bytes() -> Vec<u8> {
    common::tiny_llama(5)
}

fn blob(bytes: &[u8]) -> Blob {
    let parts = Array::of1(&Uint8Array::from(bytes));
    Blob::new_with_u8_array_sequence(&parts).expect("blob")
}

fn options(json: &str) -> JsValue {
    js_sys::JSON::parse(json).expect("options JSON")
}

fn origin(engine: &Engine) -> Origin {
    metrics(engine)
}

/// The phases a progress callback saw.
type Seen = Rc<RefCell<Vec<String>>>;

/// A progress callback and the phases it saw (in order, repeats collapsed).
fn phases() -> (Closure<dyn FnMut(JsValue)>, Seen) {
    let seen = Rc::new(RefCell::new(Vec::<String>::new()));
    let sink = seen.clone();
    let callback = Closure::new(move |event: JsValue| {
        let phase = js_sys::Reflect::get(&event, &"phase".into())
            .ok()
            .and_then(|p| p.as_string())
            .unwrap_or_default();
        let mut seen = sink.borrow_mut();
        if seen.last() != Some(&phase) {
            seen.push(phase);
        }
    });
    (callback, seen)
}

/// Greedy tokens for a fixed prompt.
async fn tokens(engine: &Engine) -> Vec<u32> {
    let opts = options(r#"{"max_tokens":8,"temperature":0,"seed":1}"#);
    let noop = Function::new_no_args("");
    let result = JsFuture::from(engine.generate("the river".into(), opts, noop))
        .await
        .unwrap_or_else(|e| panic!("generate rejected: {}", message(e)));
    let tokens = js_sys::Reflect::get(&result, &"tokens".into()).expect("tokens");
    serde_wasm_bindgen::from_value(tokens).expect("token list")
}

const CPU: &str = r#"{"backend":"cpu","matmul":"exact","cache":false}"#;

#[wasm_bindgen_test]
async fn a_file_and_a_url_load_what_bytes_load() {
    let bytes = model_bytes();
    let from_bytes = Engine::load(Uint8Array::from(&bytes[..]), options(CPU))
        .await
        .map_err(|e| message(e.into()))
        .expect("load");
    assert_eq!(origin(&from_bytes).source, "bytes");
    let want = tokens(&from_bytes).await;

    let (callback, seen) = phases();
    let progress = Some(callback.as_ref().unchecked_ref::<Function>().clone());
    let from_file = Engine::load_file(blob(&bytes), options(CPU), progress)
        .await
        .map_err(|e| message(e.into()))
        .expect("loadFile");
    let o = origin(&from_file);
    assert_eq!(
        (o.source.as_str(), o.model_bytes),
        ("file", bytes.len() as u64)
    );
    assert_eq!(o.cache_status, "unused");
    assert_eq!(*seen.borrow(), ["file", "load"]);
    assert_eq!(tokens(&from_file).await, want, "loadFile vs load");

    let url = Url::create_object_url_with_blob(&blob(&bytes)).expect("blob URL");
    let (callback, seen) = phases();
    let progress = Some(callback.as_ref().unchecked_ref::<Function>().clone());
    let from_url = Engine::load_url(url.clone(), options(CPU), progress)
        .await
        .map_err(|e| message(e.into()))
        .expect("loadUrl");
    let o = origin(&from_url);
    assert_eq!(o.source, "network");
    assert_eq!(o.url.as_deref(), Some(url.as_str()));
    assert_eq!(o.cache_status, "disabled");
    assert_eq!(*seen.borrow(), ["download", "load"]);
    assert_eq!(tokens(&from_url).await, want, "loadUrl vs load");

    // The Cache API stores http(s) URLs only: the cache fails, says so, and the model loads.
    let opts = options(r#"{"backend":"cpu","matmul":"exact"}"#);
    let uncached = Engine::load_url(url, opts, None)
        .await
        .map_err(|e| message(e.into()))
        .expect("loadUrl with the cache");
    let o = origin(&uncached);
    console_log!("blob URL with the cache: {:?}", o.cache_error);
    assert_eq!(
        (o.source.as_str(), o.cache_status.as_str()),
        ("network", "failed")
    );
    assert!(o.cache_error.is_some_and(|e| e.contains("model cache")));
}

#[wasm_bindgen_test]
async fn bad_input_rejects_with_what_is_wrong() {
    let bytes = model_bytes();
    let reject = |e: wasm_bindgen::JsError| message(e.into());

    let html = b"<!doctype html><p>not found</p>";
    let err = Engine::load_file(blob(html), options(CPU), None)
        .await
        .err()
        .map(reject);
    let err = err.expect("an HTML file loaded");
    assert!(
        err.contains("not a GGUF file") && err.contains("<!do"),
        "{err}"
    );

    let err = Engine::load_file(blob(&bytes[..bytes.len() / 2]), options(CPU), None)
        .await
        .err()
        .map(reject)
        .expect("half a model loaded");
    console_log!("half a file: {err}");
    assert!(!err.is_empty() && !err.contains("unreachable"), "{err}");

    // The test runner's server answers 404 for a file it does not have.
    let err = Engine::load_url("no-such-model.gguf".into(), options(CPU), None)
        .await
        .err()
        .map(reject)
        .expect("a missing URL loaded");
    assert!(
        err.contains("HTTP 404") && err.contains("no-such-model.gguf"),
        "{err}"
    );

    let err = Engine::load_url("x.gguf".into(), options(r#"{"cache":"yes"}"#), None)
        .await
        .err()
        .map(reject)
        .expect("bad options loaded");
    assert!(err.contains("load options"), "{err}");
}
