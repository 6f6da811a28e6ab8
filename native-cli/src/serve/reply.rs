//! Answers in OpenAI's wire shapes: a whole `chat.completion` / `text_completion`, or the SSE
//! stream of chunks (`data: {chunk}` events, a last chunk with `finish_reason`, the usage chunk
//! when asked, then `data: [DONE]`).

use super::error::ApiError;
use super::worker::{Event, Shared};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use engine_core::engine::{StopReason, TurnStats};
use engine_core::sample::TokenLogprob;
use engine_core::tokenizer::Tokenizer;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::{channel, UnboundedReceiver};

/// Which endpoint is answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Completion,
}

/// OpenAI's `finish_reason`: `stop` for a natural end or a stop string, `length` for a reply cut
/// short by its token limit, the context, or a shutdown.
pub fn finish_reason(reason: Option<StopReason>) -> &'static str {
    match reason {
        Some(StopReason::EndOfGeneration | StopReason::StopString) => "stop",
        _ => "length",
    }
}

/// A reply being put together for one request.
pub struct Answer {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    prompt_tokens: usize,
    text: String,
    /// Chat: the `logprobs.content` entries. Completions: one per token, split into the legacy
    /// columns when the answer is written.
    logprobs: Vec<Value>,
    wants_logprobs: bool,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Answer {
    pub fn new(kind: Kind, model: &str, prompt_tokens: usize, wants_logprobs: bool) -> Self {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let prefix = match kind {
            Kind::Chat => "chatcmpl",
            Kind::Completion => "cmpl",
        };
        Self {
            kind,
            id: format!("{prefix}-{created:x}{n:06x}"),
            created,
            model: model.to_string(),
            prompt_tokens,
            text: String::new(),
            logprobs: Vec::new(),
            wants_logprobs,
        }
    }

    /// Adds emitted text.
    pub fn push_text(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// Adds a token's log-probabilities (when asked for), returning its entry.
    pub fn push_logprob(&mut self, lp: Option<&TokenLogprob>, tok: &Tokenizer) -> Option<Value> {
        let lp = lp.filter(|_| self.wants_logprobs)?;
        let entry = logprob_entry(lp, tok);
        self.logprobs.push(entry.clone());
        Some(entry)
    }

    fn object(&self, chunk: bool) -> &'static str {
        match (self.kind, chunk) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Completion, _) => "text_completion",
        }
    }

    fn usage(&self, stats: &TurnStats) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": stats.generated_tokens,
            "total_tokens": self.prompt_tokens + stats.generated_tokens,
            "prompt_tokens_details": { "cached_tokens": stats.tokens_reused },
        })
    }

    /// The `logprobs` of a choice over `entries`, in the endpoint's shape.
    fn logprobs_value(&self, entries: &[Value], text_offset: usize) -> Value {
        if !self.wants_logprobs {
            return Value::Null;
        }
        match self.kind {
            Kind::Chat => json!({ "content": entries }),
            Kind::Completion => {
                let mut offset = text_offset;
                let mut offsets = Vec::new();
                for e in entries {
                    offsets.push(offset);
                    offset += e["token"].as_str().map_or(0, str::len);
                }
                let top: Vec<Value> = entries
                    .iter()
                    .map(|e| {
                        let map: serde_json::Map<String, Value> = e["top_logprobs"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|t| {
                                let token = t["token"].as_str().unwrap_or_default().to_string();
                                (token, t["logprob"].clone())
                            })
                            .collect();
                        Value::Object(map)
                    })
                    .collect();
                json!({
                    "tokens": entries.iter().map(|e| e["token"].clone()).collect::<Vec<_>>(),
                    "token_logprobs": entries.iter().map(|e| e["logprob"].clone()).collect::<Vec<_>>(),
                    "top_logprobs": top,
                    "text_offset": offsets,
                })
            }
        }
    }

    /// The whole answer, once the reply has ended.
    pub fn whole(&self, stats: &TurnStats) -> Value {
        let finish = finish_reason(stats.stop_reason);
        let logprobs = self.logprobs_value(&self.logprobs, 0);
        let choice = match self.kind {
            Kind::Chat => json!({
                "index": 0,
                "message": { "role": "assistant", "content": self.text },
                "logprobs": logprobs,
                "finish_reason": finish,
            }),
            Kind::Completion => json!({
                "index": 0,
                "text": self.text,
                "logprobs": logprobs,
                "finish_reason": finish,
            }),
        };
        json!({
            "id": self.id,
            "object": self.object(false),
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": self.usage(stats),
        })
    }

    /// A streamed chunk: `text` (chat: as `delta.content`, or the assistant role first when
    /// `role`), one token's log-probabilities, and the `finish_reason` on the last one.
    fn chunk(
        &self,
        text: Option<&str>,
        lp: Option<Value>,
        finish: Option<&str>,
        usage: bool,
    ) -> Value {
        let logprobs = match lp {
            Some(e) => self.logprobs_value(&[e], self.text.len()),
            None => Value::Null,
        };
        let choice = match self.kind {
            Kind::Chat => {
                let delta = match (text, finish) {
                    (_, Some(_)) => json!({}),
                    (None, None) => json!({ "role": "assistant", "content": "" }),
                    (Some(t), None) => json!({ "content": t }),
                };
                json!({ "index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish })
            }
            Kind::Completion => json!({
                "index": 0,
                "text": text.unwrap_or_default(),
                "logprobs": logprobs,
                "finish_reason": finish,
            }),
        };
        let mut chunk = json!({
            "id": self.id,
            "object": self.object(true),
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        });
        if usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    /// The usage chunk that closes a stream when `stream_options.include_usage` is set.
    fn usage_chunk(&self, stats: &TurnStats) -> Value {
        json!({
            "id": self.id,
            "object": self.object(true),
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": self.usage(stats),
        })
    }
}

/// One `logprobs.content` entry (the completions shape is derived from it).
fn logprob_entry(lp: &TokenLogprob, tok: &Tokenizer) -> Value {
    let piece = |id: u32| {
        let bytes = tok
            .token_to_piece(id)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        (String::from_utf8_lossy(&bytes).into_owned(), bytes)
    };
    let (token, bytes) = piece(lp.token);
    let top: Vec<Value> = lp
        .top
        .iter()
        .map(|&(id, logprob)| {
            let (token, bytes) = piece(id);
            json!({ "token": token, "logprob": logprob, "bytes": bytes })
        })
        .collect();
    json!({ "token": token, "logprob": lp.logprob, "bytes": bytes, "top_logprobs": top })
}

/// Streams the reply's events to the client as SSE. If the client goes away the events'
/// receiver is dropped at once, which the engine thread takes as a cancel before its next step.
pub fn stream(
    mut answer: Answer,
    mut events: UnboundedReceiver<Event>,
    include_usage: bool,
    shared: Arc<Shared>,
) -> Response {
    let (tx, rx) = channel::<SseEvent>(64);
    tokio::spawn(async move {
        let Some(info) = shared.info.get() else {
            return;
        };
        let tok = &info.tokenizer;
        let data = |v: Value| SseEvent::default().data(v.to_string());
        let mut out = vec![];
        if answer.kind == Kind::Chat {
            out.push(data(answer.chunk(None, None, None, include_usage)));
        }
        loop {
            for event in out.drain(..) {
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            let event = tokio::select! {
                _ = tx.closed() => return,
                event = events.recv() => event,
            };
            match event {
                Some(Event::Token { text, logprob, .. }) => {
                    let lp = answer.push_logprob(logprob.as_ref(), tok);
                    if !text.is_empty() || lp.is_some() {
                        out.push(data(answer.chunk(Some(&text), lp, None, include_usage)));
                    }
                    answer.push_text(&text);
                }
                Some(Event::Done { text, stats }) => {
                    if !text.is_empty() {
                        out.push(data(answer.chunk(Some(&text), None, None, include_usage)));
                        answer.push_text(&text);
                    }
                    let finish = finish_reason(stats.stop_reason);
                    let last = answer.chunk(None, None, Some(finish), include_usage);
                    out.push(data(last));
                    if include_usage {
                        out.push(data(answer.usage_chunk(&stats)));
                    }
                    out.push(SseEvent::default().data("[DONE]"));
                    for event in out.drain(..) {
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                    return;
                }
                Some(Event::Failed { message, .. }) => {
                    let _ = tx.send(data(ApiError::internal(message).body())).await;
                    return;
                }
                None => {
                    let e = ApiError::internal("the engine dropped the request");
                    let _ = tx.send(data(e.body())).await;
                    return;
                }
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(body).into_response()
}
