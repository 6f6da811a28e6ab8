//! A `ReadableStream` over bytes held in wasm memory, for writing a downloaded model to the cache:
//! each pull copies one chunk out, so the JavaScript heap never holds the whole model.

use js_sys::{Object, Reflect, Uint8Array};
use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsValue;
use web_sys::{ReadableStream, ReadableStreamDefaultController};

/// Bytes handed out per pull: large enough that calls cost nothing next to the copy.
const CHUNK: usize = 4 << 20;

/// The stream and the callback it pulls through; the stream fails once this is dropped, so keep
/// it until whoever reads the stream is done.
pub struct VecStream {
    pub stream: ReadableStream,
    _pull: Closure<dyn FnMut(ReadableStreamDefaultController)>,
}

impl VecStream {
    /// A stream of `bytes` in `CHUNK`-sized pieces, closed after the last. `on_chunk(sent)` is
    /// told the bytes handed out so far.
    pub fn new(
        bytes: Rc<Vec<u8>>,
        mut on_chunk: impl FnMut(u64) + 'static,
    ) -> Result<Self, JsValue> {
        let offset = Cell::new(0usize);
        let pull = Closure::new(move |controller: ReadableStreamDefaultController| {
            let start = offset.get();
            let end = bytes.len().min(start + CHUNK);
            if start < end {
                let chunk = Uint8Array::from(&bytes[start..end]);
                offset.set(end);
                if let Err(e) = controller.enqueue_with_chunk(&chunk) {
                    controller.error_with_e(&e);
                    return;
                }
                on_chunk(end as u64);
            }
            if end == bytes.len() {
                let _ = controller.close();
            }
        });
        let source = Object::new();
        Reflect::set(&source, &JsValue::from_str("pull"), pull.as_ref())?;
        let stream = ReadableStream::new_with_underlying_source(&source)?;
        Ok(Self {
            stream,
            _pull: pull,
        })
    }
}
