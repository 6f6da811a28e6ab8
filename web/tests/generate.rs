//! The JavaScript API end to end in the page: a small synthetic llama GGUF (engine-core's synth) is
//! loaded into an `Engine` on the CPU and on WebGPU; greedy generation must pick the same tokens
//! on both and stream one piece per token; truncated bytes reject with the engine's message; and
//! `stop()` from the token callback ends the generation; `chat` keeps a conversation whose later
//! turns prefill only what the KV cache lacks.
//!
//! Runs in headless Chromium (`scripts/test-web.sh`); without an adapter the WebGPU half skips
//! unless the build had `SLUICE_REQUIRE_WEBGPU=1`.
#![cfg(target_family = "wasm")]

mod common;

use common::{message, metrics, webgpu_or_skip};
use js_sys::{Function, Uint8Array};
use serde::Deserialize;
use sluice_web::Engine;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// The fields of `generate`'s result the tests look at.
#[derive(Debug, Deserialize)]
struct Generated {
    text: String,
    tokens: Vec<u32>,
    prompt_tokens: usize,
    generated_tokens: usize,
    stop_reason: String,
    #[serde(default)]
    tokens_reused: usize,
    #[serde(default)]
    tokens_prefilled: usize,
}

const PROMPT: &str = "hello world, the quick brown fox";

fn model_bytes() -> Vec<u8> {
    common::tiny_llama(11)
}

fn options(json: &str) -> JsValue {
    js_sys::JSON::parse(json).expect("options JSON")
}

async fn load(bytes: &[u8], backend: &str) -> Result<Engine, String> {
    load_with(bytes, backend, "").await
}

/// `extra`: more load options, as JSON members with a leading comma.
async fn load_with(bytes: &[u8], backend: &str, extra: &str) -> Result<Engine, String> {
    let opts = options(&format!(
        r#"{{"backend":"{backend}","matmul":"exact"{extra}}}"#
    ));
    Engine::load(Uint8Array::from(bytes), opts)
        .await
        .map_err(|e| message(e.into()))
}

/// Generates greedily, collecting the pieces the callback receives; `stop_at` calls `stop()`
/// from the callback once that many pieces arrived.
async fn generate(
    engine: Rc<Engine>,
    max_tokens: usize,
    stop_at: Option<usize>,
) -> (Generated, Vec<String>) {
    let pieces = Rc::new(RefCell::new(Vec::new()));
    let (seen, stopper) = (pieces.clone(), engine.clone());
    let on_token = Closure::<dyn FnMut(String)>::new(move |piece: String| {
        seen.borrow_mut().push(piece);
        if seen.borrow().len() == 1 {
            // While a reply streams, metrics answer and messages say they wait (no panic).
            assert!(stopper.metrics().is_ok(), "metrics() during a reply");
            assert!(stopper.messages().is_err(), "messages() during a reply");
        }
        if Some(seen.borrow().len()) == stop_at {
            stopper.stop();
        }
    });
    let opts = options(&format!(
        r#"{{"max_tokens":{max_tokens},"temperature":0,"seed":1}}"#
    ));
    let promise = engine.generate(
        PROMPT.to_string(),
        opts,
        on_token.as_ref().unchecked_ref::<Function>().clone(),
    );
    let result = JsFuture::from(promise)
        .await
        .unwrap_or_else(|e| panic!("generate rejected: {}", message(e)));
    let result: Generated = serde_wasm_bindgen::from_value(result).expect("result shape");
    let pieces = pieces.borrow().clone();
    (result, pieces)
}

#[derive(Debug, Deserialize)]
struct Kept {
    role: String,
    content: String,
}

#[derive(Debug, Deserialize)]
struct ChatMetrics {
    last_tokens_reused: Option<usize>,
    last_tokens_prefilled: Option<usize>,
    conversation_messages: usize,
}

/// Greedy `chat` turns, returning each turn's result.
async fn chat_turns(engine: &Engine, turns: &[&str]) -> Vec<Generated> {
    let mut out = Vec::new();
    for turn in turns {
        let on_token = Closure::<dyn FnMut(String)>::new(|_: String| {});
        let promise = engine.chat(
            turn.to_string(),
            options(r#"{"max_tokens":6,"temperature":0,"seed":1}"#),
            on_token.as_ref().unchecked_ref::<Function>().clone(),
        );
        let result = JsFuture::from(promise)
            .await
            .unwrap_or_else(|e| panic!("chat rejected: {}", message(e)));
        out.push(serde_wasm_bindgen::from_value(result).expect("result shape"));
    }
    out
}

/// Turn k reuses what the cache holds from turn k-1 and prefills only the rest.
fn assert_reused(what: &str, turns: &[Generated]) {
    for (k, t) in turns.iter().enumerate() {
        console_log!(
            "{what} turn {}: {} prompt tokens, {} reused, {} prefilled",
            k + 1,
            t.prompt_tokens,
            t.tokens_reused,
            t.tokens_prefilled
        );
        assert_eq!(
            t.tokens_reused + t.tokens_prefilled,
            t.prompt_tokens,
            "{what} turn {k}"
        );
        if k == 0 {
            assert_eq!(
                t.tokens_reused, 0,
                "{what}: the first turn has nothing cached"
            );
        } else {
            let before = &turns[k - 1];
            // At least the previous prompt; the reply too, up to where its text tokenizes
            // differently from the sampled tokens.
            assert!(
                t.tokens_reused >= before.prompt_tokens
                    && t.tokens_reused < before.prompt_tokens + before.generated_tokens,
                "{what} turn {}: reused {} of the {} + {} cached",
                k + 1,
                t.tokens_reused,
                before.prompt_tokens,
                before.generated_tokens
            );
        }
    }
}

#[wasm_bindgen_test]
async fn chat_keeps_the_conversation_and_reuses_its_prefix() {
    const TURNS: [&str; 3] = ["hello there", "the quick brown fox", "and then?"];
    let bytes = model_bytes();
    let cpu = load(&bytes, "cpu").await.expect("cpu engine");
    let want = chat_turns(&cpu, &TURNS).await;
    assert_reused("cpu", &want);
    let kept: Vec<Kept> =
        serde_wasm_bindgen::from_value(cpu.messages().map_err(|e| message(e.into())).unwrap())
            .expect("messages");
    assert_eq!(kept.len(), 6, "{kept:?}");
    assert_eq!(kept[4].content, "and then?");
    assert_eq!(kept[5].role, "assistant");
    let m: ChatMetrics = metrics(&cpu);
    assert_eq!(m.last_tokens_reused, Some(want[2].tokens_reused));
    assert_eq!(m.last_tokens_prefilled, Some(want[2].tokens_prefilled));
    assert_eq!(m.conversation_messages, 6);
    // After resetChat the next turn is a first turn again, with the same reply.
    cpu.reset_chat().map_err(|e| message(e.into())).unwrap();
    let again = chat_turns(&cpu, &TURNS[..1]).await;
    assert_eq!(again[0].tokens, want[0].tokens, "after resetChat");
    assert_eq!(again[0].prompt_tokens, want[0].prompt_tokens);

    if webgpu_or_skip().await.is_none() {
        return;
    }
    let gpu = load(&bytes, "webgpu").await.expect("webgpu engine");
    let got = chat_turns(&gpu, &TURNS).await;
    assert_reused("webgpu", &got);
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.tokens, w.tokens, "turn {}: webgpu vs cpu", k + 1);
    }
}

/// One piece per token, plus at most one final flush of an unfinished character; together they
/// are the text.
fn assert_streamed(what: &str, r: &Generated, pieces: &[String]) {
    assert_eq!(
        r.generated_tokens,
        r.tokens.len(),
        "{what}: generated_tokens"
    );
    let extra = pieces.len().checked_sub(r.tokens.len());
    assert!(
        extra == Some(0)
            || (extra == Some(1) && pieces.last().is_some_and(|p| p.contains('\u{FFFD}'))),
        "{what}: {} pieces for {} tokens",
        pieces.len(),
        r.tokens.len()
    );
    assert_eq!(pieces.concat(), r.text, "{what}: pieces vs text");
}

#[wasm_bindgen_test]
async fn greedy_tokens_match_between_cpu_and_webgpu() {
    let bytes = model_bytes();
    let cpu = Rc::new(load(&bytes, "cpu").await.expect("cpu engine"));
    assert_eq!(cpu.backend(), "cpu");
    assert_eq!(cpu.fallback_reason(), None);
    let (want, pieces) = generate(cpu.clone(), 16, None).await;
    console_log!("cpu: {:?} ({})", want.tokens, want.stop_reason);
    assert!(!want.tokens.is_empty(), "no tokens on the cpu");
    assert!(want.prompt_tokens > 0);
    assert_streamed("cpu", &want, &pieces);

    if webgpu_or_skip().await.is_none() {
        return;
    }
    let gpu = Rc::new(load(&bytes, "webgpu").await.expect("webgpu engine"));
    assert!(gpu.backend().starts_with("webgpu"), "{}", gpu.backend());
    let (got, pieces) = generate(gpu.clone(), 16, None).await;
    assert_streamed("webgpu", &got, &pieces);
    assert_eq!(got.tokens, want.tokens, "greedy tokens: webgpu vs cpu");
    assert_eq!(got.text, want.text);
    // With an adapter, "auto" picks it and has nothing to explain.
    let auto = load(&bytes, "auto").await.expect("auto engine");
    assert_eq!(auto.backend(), gpu.backend());
    assert_eq!(auto.fallback_reason(), None);
    let metrics = gpu
        .metrics()
        .map_err(|e| message(e.into()))
        .expect("metrics");
    console_log!("metrics: {metrics:?}");
}

/// The parts of `metrics()` the streaming test reads.
#[derive(Debug, Deserialize)]
struct StreamMetrics {
    wasm: String,
    memory_bytes: u64,
    device_bytes: u64,
    prefetch: PrefetchMetrics,
}

#[derive(Debug, Deserialize)]
struct PrefetchMetrics {
    mode: String,
    passes: u64,
    budget_bytes: u64,
    peak_device_bytes: u64,
    bytes_moved: u64,
}

/// `device_mem` below the model's size streams layers on every pass, and changes no token.
#[wasm_bindgen_test]
async fn device_mem_streams_layers_without_changing_tokens() {
    let bytes = model_bytes();
    let backend = if webgpu_or_skip().await.is_some() {
        "webgpu"
    } else {
        "cpu"
    };
    let resident = Rc::new(load(&bytes, backend).await.expect("resident engine"));
    let (want, _) = generate(resident.clone(), 12, None).await;
    let m: StreamMetrics = metrics(&resident);
    assert_eq!(m.prefetch.mode, "resident");
    let wasm = if cfg!(target_pointer_width = "64") {
        "wasm64"
    } else {
        "wasm32"
    };
    assert_eq!(m.wasm, wasm);
    assert!(m.memory_bytes >= bytes.len() as u64, "{m:?}");

    // About a layer and a half of this model's 2 layers (the largest window must fit).
    let budget = 100_000u64;
    let streamed = Rc::new(
        load_with(&bytes, backend, &format!(r#","device_mem":{budget}"#))
            .await
            .expect("streamed engine"),
    );
    let (got, pieces) = generate(streamed.clone(), 12, None).await;
    assert_streamed("streamed", &got, &pieces);
    assert_eq!(
        got.tokens, want.tokens,
        "{backend}: streamed vs resident tokens"
    );
    let m: StreamMetrics = metrics(&streamed);
    console_log!("{backend} streamed: {m:?}");
    assert_eq!(m.prefetch.mode, "streaming");
    assert_eq!(m.prefetch.budget_bytes, budget);
    assert!(m.prefetch.peak_device_bytes <= budget, "{m:?}");
    assert!(m.device_bytes <= budget, "{m:?}");
    // One pass for the prompt and one per later token (one more when the last was end-of-text).
    let n = got.tokens.len() as u64;
    assert!((n..=n + 1).contains(&m.prefetch.passes), "{m:?}");
    assert!(m.prefetch.bytes_moved > bytes.len() as u64, "{m:?}");

    // A budget below one layer is refused with the engine's reason.
    let err = match load_with(&bytes, backend, r#","device_mem":1000"#).await {
        Ok(_) => panic!("a 1000-byte budget loaded"),
        Err(e) => e,
    };
    console_log!("1000-byte budget: {err}");
    assert!(err.contains("budget"), "{err}");
}

#[wasm_bindgen_test]
async fn truncated_bytes_reject_with_the_engines_message() {
    let bytes = model_bytes();
    for cut in [10, bytes.len() / 2, bytes.len() - 1] {
        let err = match load(&bytes[..cut], "cpu").await {
            Ok(_) => panic!("{cut} of {} bytes loaded", bytes.len()),
            Err(e) => e,
        };
        console_log!("{cut} bytes: {err}");
        assert!(!err.is_empty() && !err.contains("unreachable"), "{err}");
    }
    let err = match Engine::load(
        Uint8Array::from(&bytes[..]),
        options(r#"{"backend":"tpu"}"#),
    )
    .await
    {
        Ok(_) => panic!("an unknown backend loaded"),
        Err(e) => message(e.into()),
    };
    assert!(err.contains("load options"), "{err}");
}

#[wasm_bindgen_test]
async fn stop_from_the_callback_ends_generation() {
    let engine = Rc::new(load(&model_bytes(), "cpu").await.expect("cpu engine"));
    let (r, pieces) = generate(engine.clone(), 16, Some(3)).await;
    assert!(
        (3..=4).contains(&r.tokens.len()),
        "stopped after {} tokens ({})",
        r.tokens.len(),
        r.stop_reason
    );
    assert_eq!(r.stop_reason, "stopped");
    assert_streamed("stopped", &r, &pieces);
    // The flag is cleared for the next generation.
    let (again, _) = generate(engine, 6, None).await;
    assert_ne!(again.stop_reason, "stopped");
}
