//! The JavaScript-facing API for web pages (load a model, generate with streamed tokens, metrics).
//! `Engine` loads a GGUF from bytes, a URL (through a persistent model cache) or a `File` onto
//! WebGPU (the web-sys driver) or the CPU, generates with streamed tokens and can be stopped; the
//! browser clock gives the engine its timings.

#[cfg(target_family = "wasm")]
mod cache;
#[cfg(target_family = "wasm")]
mod check;
#[cfg(target_family = "wasm")]
mod engine;
#[cfg(target_family = "wasm")]
mod error;
#[cfg(target_family = "wasm")]
mod fetch;
#[cfg(target_family = "wasm")]
mod gpu;
#[cfg(target_family = "wasm")]
mod load;
#[cfg(target_family = "wasm")]
mod options;
#[cfg(target_family = "wasm")]
mod origin;
#[cfg(target_family = "wasm")]
mod progress;
#[cfg(target_family = "wasm")]
mod run;
#[cfg(target_family = "wasm")]
mod stream;
#[cfg(target_family = "wasm")]
mod vec_stream;

#[cfg(target_family = "wasm")]
pub use engine::Engine;
#[cfg(target_family = "wasm")]
pub use gpu::{adapter_name, webgpu};
#[cfg(target_family = "wasm")]
pub use run::yield_to_event_loop;

pub use backend_webgpu;
pub use engine_core;

use wasm_bindgen::prelude::wasm_bindgen;

#[cfg(target_family = "wasm")]
#[wasm_bindgen]
extern "C" {
    /// `performance.now()`: milliseconds, monotonic, in pages and workers alike.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    pub(crate) fn performance_now() -> f64;
}

/// Gives the engine the browser's clock (`std::time::Instant` panics on wasm). Idempotent; every
/// entry point calls it, and pages may call it first.
#[wasm_bindgen]
pub fn install_clock() {
    #[cfg(target_family = "wasm")]
    engine_core::clock::set_wasm_millis(performance_now);
}

/// The build's address width, `"wasm32"` or `"wasm64"` (a page shows it; a wasm64 build lifts the
/// 4 GiB limit on models).
#[wasm_bindgen(js_name = wasmArch)]
pub fn wasm_arch() -> String {
    if cfg!(target_arch = "wasm64") {
        "wasm64".to_string()
    } else if cfg!(target_arch = "wasm32") {
        "wasm32".to_string()
    } else {
        std::env::consts::ARCH.to_string()
    }
}
