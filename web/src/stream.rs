//! Reading a `ReadableStream` of bytes (a fetch body, a cached response, `blob.stream()`) chunk by
//! chunk straight into one `Vec<u8>` in wasm memory: the JavaScript heap only ever holds the chunk
//! in flight, never a second copy of the whole model.

use crate::error::{describe, LoadError};
use crate::progress::{Phase, Progress};
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStream, ReadableStreamDefaultReader};

/// A GGUF file's first four bytes.
const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// What is being read, for messages and progress.
pub struct Body<'a> {
    /// Names the model in errors: `https://…/model.gguf`, `the cached copy of …`, `file x.gguf`.
    pub what: &'a str,
    /// The announced length, when there is one; reading checks it.
    pub total: Option<u64>,
    pub phase: Phase,
}

/// Reads `stream` to its end into one allocation (reserved up front when the length is known),
/// stopping early when the first bytes are not a GGUF header or more bytes arrive than announced.
pub async fn read_all(
    stream: ReadableStream,
    body: &Body<'_>,
    progress: &mut Progress,
) -> Result<Vec<u8>, LoadError> {
    let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let result = read_chunks(&reader, body, progress).await;
    if result.is_err() {
        // Stop the transfer we no longer want (a no-op on a stream that already failed).
        let _ = reader.cancel();
    }
    result
}

async fn read_chunks(
    reader: &ReadableStreamDefaultReader,
    body: &Body<'_>,
    progress: &mut Progress,
) -> Result<Vec<u8>, LoadError> {
    let mut bytes = Vec::new();
    if let Some(total) = body.total {
        reserve(&mut bytes, total, body.what)?;
    }
    progress.report(body.phase, 0, body.total);
    loop {
        let step = JsFuture::from(reader.read())
            .await
            .map_err(|e| LoadError::Interrupted {
                what: body.what.to_string(),
                got: bytes.len() as u64,
                total: body.total,
                detail: describe(&e),
            })?;
        if field(&step, "done").as_bool() == Some(true) {
            break;
        }
        let chunk: Uint8Array = field(&step, "value")
            .dyn_into()
            .map_err(|v| LoadError::Js {
                what: body.what.to_string(),
                detail: format!("the stream gave {v:?}, not bytes"),
            })?;
        let (start, len) = (bytes.len(), chunk.length() as usize);
        let end = start as u64 + len as u64;
        if body.total.is_some_and(|total| end > total) {
            return Err(LoadError::Overlong {
                what: body.what.to_string(),
                expected: body.total.unwrap_or_default(),
            });
        }
        if bytes.capacity() < start + len {
            // Unknown length: grow as chunks come (amortised doubling).
            reserve(&mut bytes, end.max(2 * start as u64), body.what)?;
        }
        bytes.resize(start + len, 0);
        chunk.copy_to(&mut bytes[start..]);
        check_magic(&bytes, start, body.what)?;
        progress.report(body.phase, end, body.total);
    }
    let got = bytes.len() as u64;
    match body.total {
        Some(expected) if got != expected => Err(LoadError::Truncated {
            what: body.what.to_string(),
            got,
            expected,
        }),
        _ if got < GGUF_MAGIC.len() as u64 => Err(not_gguf(&bytes, body.what)),
        _ => Ok(bytes),
    }
}

/// Makes room for `total` bytes in all, or says the page cannot hold them.
pub fn reserve(bytes: &mut Vec<u8>, total: u64, what: &str) -> Result<(), LoadError> {
    let out_of_memory = || LoadError::OutOfMemory {
        what: what.to_string(),
        bytes: total,
    };
    let total = usize::try_from(total).map_err(|_| out_of_memory())?;
    bytes
        .try_reserve_exact(total.saturating_sub(bytes.len()))
        .map_err(|_| out_of_memory())
}

/// Once the first four bytes are in (the chunk that started at `start` completed them), they
/// must say GGUF: an HTML error page or a wrong file stops here, not after the whole download.
fn check_magic(bytes: &[u8], start: usize, what: &str) -> Result<(), LoadError> {
    let n = GGUF_MAGIC.len();
    if start < n && bytes.len() >= n && &bytes[..n] != GGUF_MAGIC {
        return Err(not_gguf(bytes, what));
    }
    Ok(())
}

fn not_gguf(bytes: &[u8], what: &str) -> LoadError {
    let head = &bytes[..bytes.len().min(GGUF_MAGIC.len())];
    LoadError::NotGguf {
        what: what.to_string(),
        head: String::from_utf8_lossy(head).into_owned(),
    }
}

fn field(object: &JsValue, name: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}
