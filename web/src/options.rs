//! The plain JavaScript objects the API takes and returns, converted with serde-wasm-bindgen so
//! that a misspelt value is a clear error rather than a silent default.

use crate::origin::Origin;
use engine_core::prefetch::PrefetchStats;
use engine_core::sample::SamplerConfig;
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

/// `{ max_tokens?, temperature?, top_k?, top_p?, min_p?, seed?, chat?, system?, stop?,
/// context_shift? }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateOptions {
    pub max_tokens: usize,
    /// 0 means greedy.
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    /// The sampler's seed; random when absent.
    pub seed: Option<u64>,
    /// `generate` only: wrap the prompt in the model's chat template as a user message.
    pub chat: bool,
    /// A system message (`generate` with `chat`; `chat` sets the conversation's).
    pub system: Option<String>,
    /// The reply ends before the first of these texts.
    pub stop: Vec<String>,
    /// When the conversation outgrows the context, drop its oldest turns (keeping the system
    /// message) instead of failing.
    pub context_shift: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        let sampler = SamplerConfig::default();
        Self {
            max_tokens: 256,
            temperature: sampler.temperature,
            top_k: sampler.top_k,
            top_p: sampler.top_p,
            min_p: sampler.min_p,
            seed: None,
            chat: false,
            system: None,
            stop: Vec::new(),
            context_shift: false,
        }
    }
}

impl GenerateOptions {
    /// engine-core's options for these, with `seed` when the page gave none.
    pub fn engine_options(&self, seed: u64) -> engine_core::engine::GenerateOptions {
        engine_core::engine::GenerateOptions {
            sampler: SamplerConfig {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                min_p: self.min_p,
                seed,
                ..SamplerConfig::default()
            },
            max_tokens: self.max_tokens,
            stop: self.stop.clone(),
            context_shift: self.context_shift,
            ..engine_core::engine::GenerateOptions::default()
        }
    }
}

/// What `generate` and `chat` resolve to.
#[derive(Debug, Clone, Serialize)]
pub struct GenerateResult {
    pub text: String,
    pub tokens: Vec<u32>,
    /// Tokens of the whole prompt (for `chat`: the history, rendered).
    pub prompt_tokens: usize,
    /// Of those, tokens already in the KV cache from earlier calls.
    pub tokens_reused: usize,
    /// Tokens computed to prefill (`prompt_tokens - tokens_reused`).
    pub tokens_prefilled: usize,
    /// Messages a context shift dropped to make room.
    pub dropped_messages: usize,
    pub generated_tokens: usize,
    pub ttft_s: f64,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    /// `"eog"`, `"max_tokens"`, `"stop_string"`, `"context_full"` or `"stopped"`.
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
    /// The last call's tokens taken from the KV cache, and computed.
    pub last_tokens_reused: Option<usize>,
    pub last_tokens_prefilled: Option<usize>,
    /// Messages in the kept conversation (`chat`).
    pub conversation_messages: usize,
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
