//! `sluice serve`: an OpenAI-compatible HTTP server (axum on tokio). The engine runs on its own
//! thread (backend futures are not `Send`) with `--parallel` slots stepped as one batch; handlers
//! reach it through a bounded queue and hear back on a channel per request.
//!
//! Shutdown (SIGINT/SIGTERM): stop accepting, let replies in flight finish for up to
//! `--shutdown-timeout`, cancel what is left, join the engine thread, exit 0.

mod error;
mod metrics;
mod reply;
mod routes;
mod wire;
mod worker;

pub use error::ApiError;

use crate::commands::engine::{with_engine, EngineArgs};
use anyhow::{Context, Result};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Args;
use routes::{AppRef, AppState};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use worker::{Shared, SlotWorker};

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Address to listen on (loopback only unless you say otherwise, e.g. `0.0.0.0`).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the URL printed at start says which).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Replies generated at once, each in its own KV slot of --ctx positions; their decode
    /// steps run as one batched forward pass.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub parallel: u64,
    /// Requests that may wait for a slot; past that a request gets 503 with Retry-After.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub queue: u64,
    /// Require `Authorization: Bearer KEY` on the API endpoints (/health and /metrics stay
    /// open for probes and scrapers).
    #[arg(long, env = "SLUICE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Largest request body accepted (413 beyond).
    #[arg(long, value_parser = crate::size::parse_size, default_value = "2MiB")]
    pub max_body: u64,
    /// Seconds a request may take before its first byte of answer (408 beyond); a streamed
    /// reply answers at once and is not cut.
    #[arg(long, default_value_t = 600.0)]
    pub request_timeout: f64,
    /// Seconds in-flight replies get to finish at SIGINT/SIGTERM before they are cancelled.
    #[arg(long, default_value_t = 30.0)]
    pub shutdown_timeout: f64,
    /// The model id the API reports (default: the file name without `.gguf`).
    #[arg(long)]
    pub model_name: Option<String>,
}

pub fn run(args: &ServeArgs) -> Result<()> {
    let path = crate::models::resolve(args.engine.model.as_deref())?;
    let model_id = args.model_name.clone().unwrap_or_else(|| {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_else(|| "model".into());
        name.trim_end_matches(".gguf").to_string()
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // The engine thread opens the file resolved here (a fetch prints its progress before the
    // server starts listening).
    let mut engine_args = args.engine.clone();
    engine_args.model = Some(path.display().to_string());
    runtime.block_on(serve(args, engine_args, model_id))
}

async fn serve(args: &ServeArgs, engine_args: EngineArgs, model_id: String) -> Result<()> {
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new());
    let (jobs, queue) = std::sync::mpsc::sync_channel(args.queue as usize);
    let task = SlotWorker {
        jobs: queue,
        shared: shared.clone(),
        parallel: args.parallel as usize,
        context: args.engine.ctx,
    };
    let done = shared.clone();
    let engine = std::thread::Builder::new()
        .name("sluice-engine".into())
        .spawn(move || {
            let result = with_engine(&engine_args, task);
            done.engine_done.notify_one();
            result
        })
        .context("starting the engine thread")?;

    let app = Arc::new(AppState {
        shared: shared.clone(),
        jobs,
        model_id: model_id.clone(),
        api_key: args.api_key.clone().filter(|k| !k.is_empty()),
    });
    let router = router(app, args);
    let url = format!("http://{addr}");
    println!(
        "sluice serve: listening on {url} (model {model_id}; loading, /health is 503 until ready)"
    );
    println!(
        "  curl {url}/v1/chat/completions -H 'Content-Type: application/json'{} \\\n    -d '{{\"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'",
        if args.api_key.is_some() { " -H \"Authorization: Bearer $SLUICE_API_KEY\"" } else { "" }
    );
    let timeout = Duration::from_secs_f64(args.shutdown_timeout.max(0.0));
    let signalled = shared.clone();
    let shutdown = async move {
        let engine_ended = tokio::select! {
            _ = shutdown_signal() => false,
            _ = signalled.engine_done.notified() => true,
        };
        signalled.closing.store(true, Ordering::SeqCst);
        signalled.metrics.ready.set(0);
        if !engine_ended {
            eprintln!(
                "sluice serve: shutting down: finishing replies in flight (up to {:.0} s)",
                timeout.as_secs_f64()
            );
        }
        let late = signalled.clone();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            late.cancel_all.store(true, Ordering::SeqCst);
        });
    };
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    // The router (and with it the queue's sender) is gone: the engine thread drains and ends.
    shared.cancel_all.store(true, Ordering::SeqCst);
    let engine = tokio::task::spawn_blocking(move || engine.join())
        .await
        .context("joining the engine thread")?;
    let engine = engine.map_err(|_| anyhow::anyhow!("the engine thread panicked"))?;
    served.context("serving HTTP")?;
    engine.context("the engine thread failed")?;
    eprintln!("sluice serve: stopped");
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn router(app: AppRef, args: &ServeArgs) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(routes::chat_completions))
        .route("/v1/completions", post(routes::completions))
        .route("/v1/models", get(routes::models))
        .route("/tokenize", post(routes::tokenize))
        .route("/detokenize", post(routes::detokenize))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_key));
    let timeout = Duration::from_secs_f64(args.request_timeout.max(0.001));
    Router::new()
        .route("/health", get(routes::health))
        .route("/metrics", get(routes::metrics))
        .merge(api)
        .fallback(not_found)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(RequestBodyLimitLayer::new(args.max_body as usize))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(app.clone(), count_requests))
        .with_state(app)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::status(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("no endpoint {} {}", request.method(), request.uri().path()),
    )
}

/// 401 unless the request carries the server's key.
async fn require_key(State(app): State<AppRef>, request: Request, next: Next) -> Response {
    let Some(key) = app.api_key.as_deref() else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if same_secret(g.as_bytes(), key.as_bytes()) => next.run(request).await,
        Some(_) => unauthorized("the API key is wrong"),
        None => unauthorized("an API key is required: send 'Authorization: Bearer KEY'"),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut e = ApiError::status(StatusCode::UNAUTHORIZED, "invalid_request_error", message);
    e.code = Some("invalid_api_key");
    e.into_response()
}

/// Compares in time that depends only on the lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Counts answered requests by endpoint and status.
async fn count_requests(State(app): State<AppRef>, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |p| p.as_str())
        .to_string();
    let response = next.run(request).await;
    app.shared
        .metrics
        .requests
        .with_label_values(&[endpoint.as_str(), response.status().as_str()])
        .inc();
    response
}

/// Gives the errors that layers and extractors answer in plain text (413, 408, 405, ...)
/// OpenAI's JSON shape.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than --max-body".to_string(),
        _ if text.is_empty() => reason,
        _ => format!("{reason}: {text}"),
    };
    let kind = if status.is_client_error() {
        "invalid_request_error"
    } else {
        "server_error"
    };
    let mut response = ApiError::status(status, kind, message).into_response();
    *response.status_mut() = status;
    response
}
