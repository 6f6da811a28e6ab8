//! One model on one backend, and the generation loop the web API drives: the CLI's loop (prompt
//! through `model::Prompt`, stopping through `Generator::stop_before`/`stop_after`, incremental
//! detokenization), streaming each piece to a JavaScript callback and yielding to the event loop
//! between tokens so that `Engine.stop()` (or anything else on the page) can run.

use crate::options::{GenerateOptions, GenerateResult};
use engine_core::backend::Backend;
use engine_core::chat::ChatTemplate;
use engine_core::clock::Instant;
use engine_core::model::{Generator, Model, Prompt, Stop};
use engine_core::sample::{Sampler, SamplerConfig};
use engine_core::tokenizer::{Decoder, Tokenizer};
use js_sys::{Function, Promise};
use std::cell::Cell;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsError, JsValue};
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// The global `setTimeout` (pages and workers alike).
    #[wasm_bindgen(catch, js_name = setTimeout)]
    fn set_timeout(handler: &Function, ms: i32) -> Result<JsValue, JsValue>;
}

/// Tokens fed per forward pass while prefilling (the CLI's batch).
const PREFILL_BATCH: usize = 512;

/// A loaded model with what generation needs beside it.
pub struct Loaded<B: Backend> {
    pub backend: B,
    pub model: Model<B>,
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
}

/// Lets the browser run a macrotask (a click handler calling `stop()`, a repaint): a resolved
/// promise would only let microtasks run.
pub async fn yield_to_event_loop() {
    let promise = Promise::new(&mut |resolve, _reject| {
        // Without a setTimeout there is nothing to wait for: resolve at once.
        if set_timeout(&resolve, 0).is_err() {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// A seed from `Math.random` when the caller gave none (no getrandom on wasm).
fn seed(options: &GenerateOptions) -> u64 {
    options
        .seed
        .unwrap_or_else(|| (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64)
}

impl<B: Backend> Loaded<B> {
    /// Generates from `prompt`, calling `on_token(piece)` once per emitted token with the text it
    /// completes (possibly empty while a character spans tokens), plus once more at the end only
    /// when bytes of an unfinished character remain (as U+FFFD). `stop` set ends the generation
    /// after the current token.
    pub async fn generate(
        &self,
        prompt: &str,
        options: &GenerateOptions,
        ctx: usize,
        stop: &Cell<bool>,
        on_token: &Function,
    ) -> Result<GenerateResult, JsValue> {
        let request = Prompt {
            text: prompt,
            chat: options.chat,
            system: options.system.as_deref(),
        };
        let prompt = request
            .tokens(&self.tokenizer, self.template.as_ref())
            .map_err(js)?;
        let sampler = Sampler::new(SamplerConfig {
            temperature: options.temperature,
            seed: seed(options),
            ..SamplerConfig::default()
        })
        .map_err(js)?;
        let mut session = self.model.session(&self.backend, ctx).map_err(js)?;
        let mut generator = Generator::new(&self.model, &self.backend, &mut session, sampler);
        let mut decoder = Decoder::new(&self.tokenizer);
        let emit = |piece: &str| on_token.call1(&JsValue::NULL, &JsValue::from_str(piece));

        let start = Instant::now();
        let mut token = generator
            .prefill(&prompt, PREFILL_BATCH)
            .await
            .map_err(js)?;
        let ttft = start.elapsed();
        let (mut text, mut tokens) = (String::new(), Vec::new());
        let reason = loop {
            if let Some(reason) =
                generator.stop_before(&self.tokenizer, token, tokens.len(), options.max_tokens)
            {
                break reason_name(reason);
            }
            let piece = decoder.push(token).map_err(js)?;
            tokens.push(token);
            text.push_str(&piece);
            emit(&piece)?;
            if let Some(reason) = generator.stop_after(tokens.len(), options.max_tokens) {
                break reason_name(reason);
            }
            yield_to_event_loop().await;
            if stop.get() {
                break "stopped";
            }
            token = generator.step().await.map_err(js)?;
        };
        let rest = decoder.finish();
        if !rest.is_empty() {
            text.push_str(&rest);
            emit(&rest)?;
        }
        let total = start.elapsed();
        let decode = total.saturating_sub(ttft).as_secs_f64();
        Ok(GenerateResult {
            text,
            prompt_tokens: prompt.len(),
            generated_tokens: tokens.len(),
            prefill_tok_s: prompt.len() as f64 / ttft.as_secs_f64().max(1e-9),
            // The first token came with the prefill: decoding made the others.
            decode_tok_s: tokens.len().saturating_sub(1) as f64 / decode.max(1e-9),
            tokens,
            stop_reason: reason,
        })
    }
}

fn reason_name(stop: Stop) -> &'static str {
    match stop {
        Stop::EndOfGeneration => "eog",
        Stop::MaxTokens => "max_tokens",
        Stop::ContextFull => "context_full",
    }
}

/// An engine error as the JavaScript `Error` the promise rejects with.
pub fn js(e: impl std::error::Error) -> JsValue {
    JsError::new(&e.to_string()).into()
}
