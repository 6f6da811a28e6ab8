//! A three-turn chat on the real SmolLM2, on the CPU (exact and precise paths) and on WebGPU:
//! each greedy reply equals the one a fresh session fed the whole history gives, and turn k
//! prefills exactly the prompt tokens past the prefix the cache already held. WebGPU skips with a
//! printed reason where there is no adapter, unless `SLUICE_REQUIRE_WEBGPU=1`.

use engine_core::backend::cpu::{CpuBackend, CpuConfig, MatmulPath};
use engine_core::backend::Backend;
use engine_core::engine::{Engine, GenerateOptions, LoadConfig, Prompt};
use engine_core::source::MmapSource;
use engine_core::store::{StoreConfig, WeightStore};
use pollster::block_on;
use sluice_tests::models::{model_or_skip, webgpu_or_skip};
use std::path::Path;
use std::sync::Arc;

const SYSTEM: &str = "You are a helpful assistant. Answer briefly.";
const TURNS: [&str; 3] = [
    "What is the capital of France?",
    "And of Italy?",
    "Name one river in each of them.",
];
const CONTEXT: usize = 1024;

fn engine<B: Backend + Clone + Send + Sync + 'static>(backend: B, file: &Path) -> Engine<B> {
    let store = WeightStore::open(MmapSource::open(file).unwrap(), StoreConfig::default()).unwrap();
    Engine::load(backend, Arc::new(store), &LoadConfig::default()).unwrap()
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Runs the three turns on `e`, checking each against a fresh conversation; returns the replies.
fn three_turns<B: Backend + Clone + Send + Sync + 'static>(
    what: &str,
    e: &Engine<B>,
) -> Vec<Vec<u32>> {
    let opts = GenerateOptions::greedy(24);
    let mut conv = e.conversation(CONTEXT).unwrap();
    conv.set_system(Some(SYSTEM));
    let mut replies = Vec::new();
    for (k, text) in TURNS.iter().enumerate() {
        let history = conv.history_with(text);
        let prompt = e.tokenize(Prompt::Chat(&history)).unwrap();
        let reusable = common_prefix(conv.cached_tokens(), &prompt);
        let kept = block_on(conv.say(e, text, &opts).unwrap().run(|_| {})).unwrap();
        let s = &kept.stats;
        println!(
            "{what} turn {}: {} prompt tokens, {} reused, {} prefilled, {} generated: {:?}",
            k + 1,
            s.prompt_tokens,
            s.tokens_reused,
            s.tokens_prefilled,
            kept.tokens.len(),
            kept.text
        );
        assert_eq!(s.prompt_tokens, prompt.len(), "{what} turn {}", k + 1);
        assert_eq!(s.tokens_reused, reusable, "{what} turn {}", k + 1);
        assert_eq!(
            s.tokens_prefilled,
            prompt.len() - reusable,
            "{what} turn {}",
            k + 1
        );
        if k > 0 {
            // The earlier turns are cached: only this turn's message (and its template) is new.
            let new_text = e.tokenize(Prompt::Text(text)).unwrap().len();
            assert!(
                s.tokens_prefilled <= new_text + 16,
                "{what} turn {}: prefilled {} for a {new_text}-token message",
                k + 1,
                s.tokens_prefilled
            );
        }
        let mut fresh = e.conversation(CONTEXT).unwrap();
        let alone = block_on(
            fresh
                .complete(e, Prompt::Chat(&history), &opts)
                .unwrap()
                .run(|_| {}),
        )
        .unwrap();
        assert_eq!(alone.stats.tokens_reused, 0);
        assert_eq!(
            kept.tokens,
            alone.tokens,
            "{what} turn {}: kept conversation vs fresh session",
            k + 1
        );
        assert!(
            !kept.tokens.is_empty(),
            "{what} turn {}: empty reply",
            k + 1
        );
        replies.push(kept.tokens);
    }
    assert_eq!(conv.messages().len(), 1 + 2 * TURNS.len());
    replies
}

fn cpu(path: MatmulPath) -> CpuBackend {
    CpuBackend::new(CpuConfig { threads: 2, path }).unwrap()
}

#[test]
fn kept_conversation_matches_fresh_sessions_on_the_cpu() {
    let Some(file) = model_or_skip("smollm2-135m-instruct-q4_1") else {
        return;
    };
    let exact = three_turns("cpu exact", &engine(cpu(MatmulPath::Exact), &file));
    let precise = three_turns("cpu precise", &engine(cpu(MatmulPath::Precise), &file));
    // The paths differ by rounding, not by meaning: the first answer is the same.
    assert_eq!(
        exact[0][..4],
        precise[0][..4],
        "first reply: exact vs precise"
    );
}

#[test]
fn kept_conversation_matches_fresh_sessions_on_webgpu() {
    let Some(file) = model_or_skip("smollm2-135m-instruct-q4_1") else {
        return;
    };
    let Some(gpu) = webgpu_or_skip() else {
        return;
    };
    println!("device: {}", gpu.name());
    three_turns("webgpu", &engine(gpu, &file));
}
