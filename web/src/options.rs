//! The plain JavaScript objects the API takes and returns, converted with serde-wasm-bindgen so
//! that a misspelt value is a clear error rather than a silent default.

use crate::origin::Origin;
use engine_core::prefetch::PrefetchStats;
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsError, JsValue};

/// Where `Engine.load` runs the kernels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// WebGPU when the page has an adapter, else the CPU (the engine says why).
    #[default]
    Auto,
    Webgpu,
    Cpu,
}

/// The CPU backend's matrix product path (see the CLI's `--matmul`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatmulChoice {
    #[default]
    Precise,
    Exact,
}

/// `{ backend?, ctx?, matmul?, device_mem?, cache? }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadOptions {
    pub backend: BackendChoice,
    /// Positions the KV cache holds (capped at the model's context length).
    pub ctx: usize,
    pub matmul: MatmulChoice,
    /// Most bytes of weights the backend holds at once: layers beyond it stream from wasm
    /// memory on every pass. Absent: every weight is loaded once.
    pub device_mem: Option<u64>,
    /// `loadUrl` only: look the model up in (and store it into) the page's model cache.
    pub cache: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Auto,
            ctx: 4096,
            matmul: MatmulChoice::Precise,
            device_mem: None,
            cache: true,
        }
    }
}

/// `{ max_tokens?, temperature?, seed?, chat?, system? }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    /// 0 means greedy.
    pub temperature: f32,
    /// The sampler's seed; random when absent.
    pub seed: Option<u64>,
    /// Wrap the prompt in the model's chat template as a user message.
    pub chat: bool,
    /// A system message (with `chat`).
    pub system: Option<String>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            temperature: 0.8,
            seed: None,
            chat: false,
            system: None,
        }
    }
}

/// What `generate` resolves to.
#[derive(Debug, Clone, Serialize)]
pub struct GenerateResult {
    pub text: String,
    pub tokens: Vec<u32>,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    /// `"eog"`, `"max_tokens"`, `"context_full"` or `"stopped"`.
    pub stop_reason: &'static str,
}

/// What `metrics()` returns.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub backend: String,
    pub fallback_reason: Option<String>,
    pub model_name: Option<String>,
    pub architecture: String,
    pub parameters: u64,
    pub layers: u32,
    pub context: usize,
    pub load_s: f64,
    pub last_prompt_tokens: Option<usize>,
    pub last_generated_tokens: Option<usize>,
    pub last_prefill_tok_s: Option<f64>,
    pub last_decode_tok_s: Option<f64>,
    /// `wasm32` or `wasm64` (Memory64: models over 4 GiB).
    pub wasm: &'static str,
    /// The wasm linear memory's size now (the model's bytes live there).
    pub memory_bytes: u64,
    /// Bytes of weights on the backend now.
    pub device_bytes: u64,
    /// The layer scheduler's statistics: `mode` is `resident` or `streaming`.
    pub prefetch: PrefetchStats,
    /// Where the bytes came from and what the model cache did.
    #[serde(flatten)]
    pub origin: Origin,
}

/// `undefined` and `null` mean every default; anything else must match `T`.
pub fn parse<T: Default + for<'de> Deserialize<'de>>(
    what: &str,
    value: JsValue,
) -> Result<T, JsError> {
    if value.is_undefined() || value.is_null() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(value).map_err(|e| JsError::new(&format!("{what}: {e}")))
}

/// A plain object (not a `Map`) for JavaScript.
pub fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&e.to_string()))
}
