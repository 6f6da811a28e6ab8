//! What every browser test file shares: whether a missing WebGPU adapter is a failure, opening
//! the page's adapter or saying why the test skips, and a tiny synthetic model.
// Each test binary uses its own subset.
#![allow(dead_code)]

use backend_webgpu::{WebGpuBackend, WebSysDriver};
use engine_core::backend::Backend;
use engine_core::quant::GgmlType;
use engine_core::synth::{self, SynthConfig};
use serde::de::DeserializeOwned;
use sluice_web::Engine;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::console_log;

pub type Gpu = WebGpuBackend<WebSysDriver>;

/// Read at compile time: a page cannot see the environment the tests were started from.
pub fn require_webgpu() -> bool {
    option_env!("SLUICE_REQUIRE_WEBGPU") == Some("1")
}

/// The page's WebGPU backend, or `None` with the reason printed (a panic when required).
pub async fn webgpu_or_skip() -> Option<Gpu> {
    match sluice_web::webgpu().await {
        Ok(g) => {
            console_log!("adapter: {}", g.name());
            Some(g)
        }
        Err(e) if require_webgpu() => {
            panic!("SLUICE_REQUIRE_WEBGPU=1 but the page has no WebGPU adapter: {e}")
        }
        Err(e) => {
            console_log!("skipped: {e}");
            None
        }
    }
}

/// A tiny llama (2 layers, dim 64, GQA) in Q8_0: milliseconds per token on a software adapter.
pub fn tiny_llama(seed: u64) -> Vec<u8> {
    let cfg = SynthConfig {
        layers: 2,
        dim: 64,
        ffn: 128,
        heads: 4,
        kv_heads: 2,
        vocab: 512,
        context: 128,
        weight_type: GgmlType::Q8_0,
        seed,
        ..SynthConfig::default()
    };
    // One thread: synth encodes inline instead of spawning (wasm has no threads).
    synth::write(&cfg, Vec::new(), 1, |_, _| {}).expect("synth model")
}

/// The text of a rejected promise or returned `JsError`.
pub fn message(e: JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .unwrap_or_else(|| format!("{e:?}"))
}

/// The fields of `engine.metrics()` that `T` names.
pub fn metrics<T: DeserializeOwned>(engine: &Engine) -> T {
    let m = engine
        .metrics()
        .map_err(|e| message(e.into()))
        .expect("metrics");
    serde_wasm_bindgen::from_value(m).expect("metrics shape")
}
