//! Progress reports to the page's `onProgress({ phase, loaded, total })` callback, throttled so
//! that a download of thousands of small chunks does not flood the page with repaints.

use js_sys::{Function, Object, Reflect};
use wasm_bindgen::JsValue;

/// Milliseconds between two reports of one phase (the first and the last always go out).
const INTERVAL_MS: f64 = 100.0;

/// What the bytes are doing while `loaded` grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Arriving from the network.
    Download,
    /// Read back from the page's model cache.
    Cache,
    /// Being written to the model cache after a complete download.
    Store,
    /// Read from a `File`/`Blob` the user picked.
    File,
    /// Parsed and uploaded to the backend.
    Load,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Download => "download",
            Phase::Cache => "cache",
            Phase::Store => "store",
            Phase::File => "file",
            Phase::Load => "load",
        }
    }
}

/// The callback (if the page gave one) and when it was last called. A clone reports on its own
/// clock (the cache writer runs in a stream callback of its own).
#[derive(Clone)]
pub struct Progress {
    callback: Option<Function>,
    last: Option<(Phase, f64)>,
}

impl Progress {
    pub fn new(callback: Option<Function>) -> Self {
        Self {
            callback,
            last: None,
        }
    }

    /// Reports `loaded` of `total` bytes unless the last report of this phase was under
    /// `INTERVAL_MS` ago; a phase's first report and a finished one (`loaded == total`) always go.
    pub fn report(&mut self, phase: Phase, loaded: u64, total: Option<u64>) {
        let Some(callback) = &self.callback else {
            return;
        };
        let now = crate::performance_now();
        let due = match self.last {
            Some((p, at)) if p == phase => now - at >= INTERVAL_MS || Some(loaded) == total,
            _ => true,
        };
        if !due {
            return;
        }
        self.last = Some((phase, now));
        let event = Object::new();
        let set = |key: &str, value: JsValue| {
            let _ = Reflect::set(&event, &JsValue::from_str(key), &value);
        };
        set("phase", JsValue::from_str(phase.name()));
        set("loaded", JsValue::from_f64(loaded as f64));
        set(
            "total",
            total.map_or(JsValue::NULL, |t| JsValue::from_f64(t as f64)),
        );
        // A throwing callback is the page's bug; it must not abort the load.
        if let Err(e) = callback.call1(&JsValue::NULL, &event) {
            web_sys::console::warn_2(&JsValue::from_str("sluice: onProgress threw"), &e);
        }
    }
}
