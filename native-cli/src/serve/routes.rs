//! The HTTP endpoints: OpenAI's chat completions, completions and models, plus health, metrics,
//! tokenize and detokenize. Handlers check and tokenize requests themselves, queue them for the
//! engine thread, and answer with one JSON body or an SSE stream of chunks.

use super::error::ApiError;
use super::reply::{self, Answer, Kind};
use super::wire::{self, ChatRequest, CompletionRequest, DetokenizeRequest, PromptInput, Sampling};
use super::worker::{Event, Job, ModelInfo, Shared};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine_core::engine::Prompt;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::unbounded_channel;

/// What every handler shares.
pub struct AppState {
    pub shared: Arc<Shared>,
    pub jobs: SyncSender<Job>,
    pub model_id: String,
    pub api_key: Option<String>,
}

pub type AppRef = Arc<AppState>;

impl AppState {
    /// The loaded model, or a 503 while it loads.
    fn info(&self) -> Result<&ModelInfo, ApiError> {
        self.shared
            .info
            .get()
            .ok_or_else(|| ApiError::unavailable("the model is still loading", 2))
    }

    /// Queues `job`, or a 503 when the queue is full or the server is shutting down.
    fn submit(&self, job: Job) -> Result<(), ApiError> {
        if self.shared.closing.load(Ordering::SeqCst) {
            return Err(ApiError::unavailable("the server is shutting down", 5));
        }
        // Count first: the engine thread may take the job before try_send returns.
        let depth = self.shared.queued.fetch_add(1, Ordering::SeqCst) + 1;
        match self.jobs.try_send(job) {
            Ok(()) => {
                self.shared.metrics.queue_depth.set(depth as i64);
                Ok(())
            }
            Err(e) => {
                self.shared.queued.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    TrySendError::Full(_) => ApiError::unavailable(
                        "every slot is busy and the queue is full; retry shortly",
                        1,
                    ),
                    TrySendError::Disconnected(_) => {
                        ApiError::unavailable("the engine has stopped", 5)
                    }
                })
            }
        }
    }
}

pub async fn health(State(app): State<AppRef>) -> Response {
    if app.shared.closing.load(Ordering::SeqCst) {
        let body = serde_json::json!({"status": "shutting down"});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    match app.shared.info.get() {
        Some(info) => Json(serde_json::json!({
            "status": "ok",
            "slots": info.slots,
            "slots_active": app.shared.metrics.slots_active.get(),
            "queue_depth": app.shared.queued.load(Ordering::SeqCst),
        }))
        .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "loading"})),
        )
            .into_response(),
    }
}

pub async fn metrics(State(app): State<AppRef>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.shared.metrics.render(),
    )
        .into_response()
}

pub async fn models(State(app): State<AppRef>) -> Result<Response, ApiError> {
    let info = app.info()?;
    Ok(Json(serde_json::json!({
        "object": "list",
        "data": [{
            "id": app.model_id,
            "object": "model",
            "created": info.created,
            "owned_by": "sluice",
            "context_length": info.context,
        }],
    }))
    .into_response())
}

pub async fn tokenize(State(app): State<AppRef>, body: Bytes) -> Result<Response, ApiError> {
    let info = app.info()?;
    let req: wire::TokenizeRequest = wire::parse(&body)?;
    let tokens = info
        .tokenizer
        .encode(&req.content, req.add_special, true)
        .map_err(|e| ApiError::invalid(Some("content".into()), e.to_string()))?;
    Ok(Json(serde_json::json!({ "tokens": tokens })).into_response())
}

pub async fn detokenize(State(app): State<AppRef>, body: Bytes) -> Result<Response, ApiError> {
    let info = app.info()?;
    let req: DetokenizeRequest = wire::parse(&body)?;
    let content = info
        .tokenizer
        .decode(&req.tokens)
        .map_err(|e| ApiError::invalid(Some("tokens".into()), e.to_string()))?;
    Ok(Json(serde_json::json!({ "content": content })).into_response())
}

pub async fn chat_completions(
    State(app): State<AppRef>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let info = app.info()?;
    let req: ChatRequest = wire::parse(&body)?;
    let sampling: Sampling = wire::parse(&body)?;
    let messages = req.messages()?;
    let logprobs = req.logprobs()?;
    let template = info.template.as_ref().ok_or_else(|| {
        ApiError::invalid(
            Some("messages".into()),
            format!(
                "this model has no usable chat template ({}); use /v1/completions",
                info.template_error.as_deref().unwrap_or("none")
            ),
        )
    })?;
    let prompt = Prompt::Chat(&messages)
        .tokens(&info.tokenizer, Some(template))
        .map_err(|e| ApiError::invalid(Some("messages".into()), e.to_string()))?;
    let checked = sampling.check(prompt.len(), info.context)?;
    generate(&app, Kind::Chat, prompt, checked, logprobs, arrived).await
}

pub async fn completions(State(app): State<AppRef>, body: Bytes) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let info = app.info()?;
    let req: CompletionRequest = wire::parse(&body)?;
    let sampling: Sampling = wire::parse(&body)?;
    let logprobs = req.logprobs()?;
    let input = req.prompt()?;
    let prompt = match &input {
        PromptInput::Text(t) => Prompt::Text(t),
        PromptInput::Tokens(ids) => Prompt::Tokens(ids),
    };
    let prompt = prompt
        .tokens(&info.tokenizer, None)
        .map_err(|e| ApiError::invalid(Some("prompt".into()), e.to_string()))?;
    let mut checked = sampling.check(prompt.len(), info.context)?;
    if sampling.max_tokens.is_none() && sampling.max_completion_tokens.is_none() {
        // OpenAI's completions default to 16 tokens.
        checked.options.max_tokens = checked.options.max_tokens.min(16);
    }
    generate(&app, Kind::Completion, prompt, checked, logprobs, arrived).await
}

/// Queues a checked request and answers it, streamed or whole.
async fn generate(
    app: &AppRef,
    kind: Kind,
    prompt: Vec<u32>,
    checked: wire::Checked,
    logprobs: Option<usize>,
    arrived: Instant,
) -> Result<Response, ApiError> {
    let info = app.info()?;
    let (tx, mut rx) = unbounded_channel();
    let prompt_tokens = prompt.len();
    app.submit(Job {
        prompt,
        options: checked.options,
        logprobs,
        arrived,
        events: tx,
    })?;
    let mut answer = Answer::new(kind, &app.model_id, prompt_tokens, logprobs.is_some());
    if checked.stream {
        let shared = app.shared.clone();
        return Ok(reply::stream(answer, rx, checked.include_usage, shared));
    }
    while let Some(event) = rx.recv().await {
        match event {
            Event::Token { text, logprob, .. } => {
                answer.push_logprob(logprob.as_ref(), &info.tokenizer);
                answer.push_text(&text);
            }
            Event::Done { text, stats } => {
                answer.push_text(&text);
                return Ok(Json(answer.whole(&stats)).into_response());
            }
            Event::Failed {
                message,
                unavailable,
            } => {
                return Err(if unavailable {
                    ApiError::unavailable(message, 5)
                } else {
                    ApiError::internal(message)
                })
            }
        }
    }
    Err(ApiError::internal("the engine dropped the request"))
}
