//! Why getting a model's bytes failed (`Engine.loadUrl` / `loadFile`): one typed error whose
//! message names the model and says what went wrong, for the `Error` the promise rejects with.

use wasm_bindgen::{JsCast, JsValue};

/// A failure between asking for a model and holding all of its bytes in wasm memory.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("fetching {url} failed: HTTP {status} {status_text}")]
    Http {
        url: String,
        status: u16,
        status_text: String,
    },
    #[error("fetching {url} failed: {detail}")]
    Network { url: String, detail: String },
    #[error("{what} has no body to read")]
    NoBody { what: String },
    #[error("reading {what} was interrupted after {got} of {} bytes: {detail}", or_unknown(*.total))]
    Interrupted {
        what: String,
        got: u64,
        total: Option<u64>,
        detail: String,
    },
    #[error("{what} is truncated: got {got} of {expected} bytes")]
    Truncated {
        what: String,
        got: u64,
        expected: u64,
    },
    #[error("{what} is longer than announced: more than {expected} bytes")]
    Overlong { what: String, expected: u64 },
    #[error("{what} is not a GGUF file (it starts with {head:?}, not \"GGUF\")")]
    NotGguf { what: String, head: String },
    #[error("{what} is not a loadable GGUF file: {detail}")]
    Invalid { what: String, detail: String },
    #[error(
        "{what} needs {bytes} bytes of memory, which this page cannot get{}",
        wasm32_hint()
    )]
    OutOfMemory { what: String, bytes: u64 },
    #[error("{what}: {detail}")]
    Js { what: String, detail: String },
}

fn or_unknown(total: Option<u64>) -> String {
    total.map_or_else(|| "?".to_string(), |t| t.to_string())
}

/// wasm32 addresses 4 GiB at most; a larger model needs the wasm64 build.
fn wasm32_hint() -> &'static str {
    if cfg!(target_arch = "wasm32") {
        " (a wasm32 page holds at most 4 GiB; larger models need the wasm64 build)"
    } else {
        ""
    }
}

/// The readable text of a thrown JavaScript value: `Name: message` for errors and
/// `DOMException`s, the string itself for strings.
pub fn describe(value: &JsValue) -> String {
    if let Some(e) = value.dyn_ref::<js_sys::Error>() {
        return format!("{}: {}", String::from(e.name()), String::from(e.message()));
    }
    // DOMException is not a js_sys::Error in every engine: read its fields by name.
    let field = |name: &str| {
        js_sys::Reflect::get(value, &JsValue::from_str(name))
            .ok()
            .and_then(|v| v.as_string())
    };
    match (field("name"), field("message")) {
        (Some(name), Some(message)) => format!("{name}: {message}"),
        _ => value.as_string().unwrap_or_else(|| format!("{value:?}")),
    }
}

/// The `name` of a thrown `DOMException` or `Error` (`QuotaExceededError`…), if it has one.
pub fn error_name(value: &JsValue) -> Option<String> {
    js_sys::Reflect::get(value, &JsValue::from_str("name"))
        .ok()
        .and_then(|v| v.as_string())
}
