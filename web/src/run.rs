//! One model on one backend with its conversation, and the reply loop the web API drives:
//! engine-core's `Conversation` and `Reply`, streaming each piece to a JavaScript callback and
//! yielding to the event loop between tokens so that `Engine.stop()` (or anything else on the
//! page) can run.

use crate::options::{GenerateOptions, GenerateResult};
use engine_core::backend::Backend;
use engine_core::chat::ChatMessage;
use engine_core::engine::{Conversation, Engine as CoreEngine, Prompt, Reply, StopReason};
use js_sys::{Function, Promise};
use std::cell::RefCell;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsError, JsValue};
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// The global `setTimeout` (pages and workers alike).
    #[wasm_bindgen(catch, js_name = setTimeout)]
    fn set_timeout(handler: &Function, ms: i32) -> Result<JsValue, JsValue>;
}

/// A loaded model and the one conversation the `Engine` keeps on it.
pub struct Loaded<B: Backend> {
    pub engine: CoreEngine<B>,
    pub conversation: RefCell<Conversation<B>>,
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

/// What a call asks the conversation for.
pub enum Request {
    /// `generate`: this prompt alone (the history is not used), reusing the cached prefix.
    Once(String),
    /// `chat`: the next user message of the kept conversation.
    Turn(String),
}

impl<B: Backend> Loaded<B> {
    /// Replies to `request`, calling `on_token(piece)` once per emitted token with the text it
    /// completes (possibly empty while a character spans tokens), plus once more at the end only
    /// when held-back text remains. `stop()` ends it after the current token.
    // The reply borrows the conversation across its awaits, by design: `Engine` runs one call
    // at a time (its busy flag), and what else reads the conversation uses `try_borrow`.
    #[allow(clippy::await_holding_refcell_ref)]
    pub async fn reply(
        &self,
        request: &Request,
        options: &GenerateOptions,
        on_token: &Function,
    ) -> Result<GenerateResult, JsValue> {
        let opts = options.engine_options(seed(options));
        let mut conversation = self.conversation.borrow_mut();
        let system: Vec<ChatMessage> = options
            .system
            .iter()
            .map(|s| ChatMessage::system(s.as_str()))
            .collect();
        let reply = match request {
            Request::Once(text) if options.chat => {
                let messages: Vec<ChatMessage> = system
                    .into_iter()
                    .chain([ChatMessage::user(text)])
                    .collect();
                conversation.complete(&self.engine, Prompt::Chat(&messages), &opts)
            }
            Request::Once(text) => conversation.complete(&self.engine, Prompt::Text(text), &opts),
            Request::Turn(text) => {
                if let Some(system) = &options.system {
                    conversation.set_system(Some(system));
                }
                conversation.say(&self.engine, text, &opts)
            }
        }
        .map_err(js)?;
        stream(reply, on_token).await
    }

    /// The kept conversation's messages; `None` while a reply holds the conversation.
    pub fn messages(&self) -> Option<Vec<ChatMessage>> {
        let conversation = self.conversation.try_borrow().ok()?;
        Some(conversation.messages().to_vec())
    }
}

/// Runs `reply` to its end, handing each piece to `on_token` and yielding between tokens.
async fn stream<B: Backend>(
    mut reply: Reply<'_, B>,
    on_token: &Function,
) -> Result<GenerateResult, JsValue> {
    while let Some(piece) = reply.next().await.map_err(js)? {
        on_token.call1(&JsValue::NULL, &JsValue::from_str(&piece))?;
        yield_to_event_loop().await;
    }
    let out = reply.into_outcome();
    let s = out.stats;
    Ok(GenerateResult {
        text: out.text,
        prompt_tokens: s.prompt_tokens,
        tokens_reused: s.tokens_reused,
        tokens_prefilled: s.tokens_prefilled,
        dropped_messages: s.dropped_messages,
        generated_tokens: s.generated_tokens,
        ttft_s: s.ttft_s,
        prefill_tok_s: s.prefill_tok_s,
        decode_tok_s: s.decode_tok_s,
        tokens: out.tokens,
        stop_reason: s.stop_reason.map_or("error", reason_name),
    })
}

/// A seed from `Math.random` when the caller gave none (no getrandom on wasm).
fn seed(options: &GenerateOptions) -> u64 {
    options
        .seed
        .unwrap_or_else(|| (js_sys::Math::random() * 9_007_199_254_740_992.0) as u64)
}

/// The page API's names for stop reasons (a cancelled reply is `stopped`, after `Engine.stop`).
fn reason_name(stop: StopReason) -> &'static str {
    match stop {
        StopReason::Cancelled => "stopped",
        other => other.name(),
    }
}

/// An engine error as the JavaScript `Error` the promise rejects with.
pub fn js(e: impl std::error::Error) -> JsValue {
    JsError::new(&e.to_string()).into()
}
