//! The CPU backend against the oracles on the real SmolLM2 model (and on Gemma 3 270M for the
//! reference checks):
//! - the exact path (f32 dequantized weights, f32 accumulation) within 0.02 of the float64
//!   reference at every stored position, and greedy-equal up to the first step where the
//!   reference's top-2 margin is below 0.02;
//! - the precise path (the default: 8-bit activations plus an 8-bit residual pass) the same way
//!   within `PRECISE_BOUND`;
//! - llama.cpp as an anchor at the first step of every prompt (see `VS_REFERENCE_SLACK`).

use engine_core::backend::cpu::{CpuBackend, CpuConfig, MatmulPath};
use engine_core::model::{Generator, Logits, Model};
use engine_core::sample::{argmax, Sampler, SamplerConfig};
use engine_core::source::MmapSource;
use engine_core::store::{StoreConfig, WeightStore};
use sluice_tests::fixtures::{LlamaCppFixture, ReferenceFixture, ReferencePrompt, SYNTH_FIXTURES};
use sluice_tests::models::model_or_skip;
use std::sync::Arc;

/// The exact path's bound, from the issue.
const EXACT_BOUND: f32 = 0.02;
/// A single 8-bit pass over the activations (as llama.cpp does) measured 0.97-2.55 here, above the
/// 1.5 the issue allows a faster path, so the engine has no such path. The precise path adds an
/// 8-bit pass over the activations' residual (about 16-bit precision):
/// measured at most 0.0078 on these prompts, so it is held to the exact path's own bound.
const PRECISE_BOUND: f32 = 0.02;
/// llama.cpp anchor, first step. The issue asks for correlation >= 0.999 and max |diff| <= 1.5,
/// but the float64 reference itself misses both on some prompts (correlation down to 0.99851,
/// max |diff| 1.769 on chat-capital, where llama.cpp's own top-2 margin is 0.089): llama.cpp rounds
/// activations to 8 bits (with dequantized F32 weights it matches the reference to 6e-5). So each
/// prompt is held to the limits or to the reference's own distance from llama.cpp
/// (recorded in the fixture) plus this slack, whichever is looser; the top-1 rule is the issue's.
const VS_REFERENCE_SLACK: f64 = 0.02;

fn load(path: MatmulPath) -> Option<(CpuBackend, Model<CpuBackend>)> {
    load_model("smollm2-135m-instruct-q4_1", path)
}

fn load_model(name: &str, path: MatmulPath) -> Option<(CpuBackend, Model<CpuBackend>)> {
    let file = model_or_skip(name)?;
    let store =
        WeightStore::open(MmapSource::open(&file).unwrap(), StoreConfig::default()).unwrap();
    let backend = CpuBackend::new(CpuConfig { threads: 2, path }).unwrap();
    let model = Model::load(&backend, Arc::new(store)).unwrap();
    Some((backend, model))
}

/// Teacher-forced logits of every position of prompt + continuation, row after row.
fn teacher_forced(
    backend: &CpuBackend,
    model: &Model<CpuBackend>,
    p: &ReferencePrompt,
) -> Vec<f32> {
    let tokens = p.tokens();
    let mut session = model.session(backend, tokens.len()).unwrap();
    pollster::block_on(model.forward(backend, &mut session, &tokens, Logits::All)).unwrap()
}

/// Checks one prompt against the reference within `bound`; returns (max |diff|, steps checked).
fn check_prompt(
    fx: &ReferenceFixture,
    p: &ReferencePrompt,
    logits: &[f32],
    vocab: usize,
    bound: f32,
) -> (f32, usize) {
    let mut worst = 0f32;
    for (pos, want) in p.positions.iter().enumerate() {
        let row = &logits[pos * vocab..(pos + 1) * vocab];
        let pairs = want
            .top_ids
            .iter()
            .zip(&want.top_logits)
            .chain(fx.sampled_ids.iter().zip(&want.sampled_logits));
        for (&id, &l) in pairs {
            let d = (row[id as usize] - l).abs();
            worst = worst.max(d);
            assert!(
                d <= bound,
                "{}: position {pos}, token {id}: {} vs reference {l} (bound {bound})",
                p.name,
                row[id as usize]
            );
        }
    }
    let first = p.first_step_position();
    let row = &logits[first * vocab..(first + 1) * vocab];
    for (id, (&got, &want)) in row.iter().zip(&p.first_step_logits).enumerate() {
        let d = (got - want).abs();
        worst = worst.max(d);
        assert!(
            d <= bound,
            "{}: first step, token {id}: {got} vs reference {want} (bound {bound})",
            p.name
        );
    }
    // Greedy: same input prefix, so the free-running greedy tokens are these argmaxes.
    let steps = p.decisive_steps(f64::from(bound));
    for i in 0..steps {
        let pos = first + i;
        let got = argmax(&logits[pos * vocab..(pos + 1) * vocab]);
        assert_eq!(
            got, p.continuation[i],
            "{}: greedy step {i} (reference margin {:.4})",
            p.name, p.margins[i]
        );
    }
    (worst, steps)
}

fn against_reference(path: MatmulPath, bound: f32) {
    against_reference_of("smollm2-135m-instruct-q4_1", "smollm2", path, bound);
}

fn against_reference_of(model_name: &str, fixture: &str, path: MatmulPath, bound: f32) {
    let Some((backend, model)) = load_model(model_name, path) else {
        return;
    };
    let fx = ReferenceFixture::load(fixture);
    let vocab = model.vocab_size();
    assert!(fx.prompts.len() >= 5);
    for p in &fx.prompts {
        let logits = teacher_forced(&backend, &model, p);
        let (worst, steps) = check_prompt(&fx, p, &logits, vocab, bound);
        println!(
            "{:?} {:<24} max |diff| {worst:.5} over {} positions; greedy equal for {steps}/{} steps",
            path,
            p.name,
            p.positions.len(),
            p.continuation.len()
        );
    }
}

#[test]
fn exact_path_matches_the_float64_reference() {
    against_reference(MatmulPath::Exact, EXACT_BOUND);
}

#[test]
fn precise_path_stays_within_its_bound_of_the_reference() {
    against_reference(MatmulPath::Precise, PRECISE_BOUND);
}

/// Gemma 3 (gelu-gated MLP, per-head q/k norms, post-norms, √dim embedding scale, sliding-window
/// layers with their own RoPE base) on the real 270M file.
#[test]
fn gemma3_exact_path_matches_the_float64_reference() {
    against_reference_of(
        "gemma3-270m-q4_k_m",
        "gemma3",
        MatmulPath::Exact,
        EXACT_BOUND,
    );
}

#[test]
fn gemma3_precise_path_stays_within_its_bound_of_the_reference() {
    against_reference_of(
        "gemma3-270m-q4_k_m",
        "gemma3",
        MatmulPath::Precise,
        PRECISE_BOUND,
    );
}

#[test]
fn free_running_generation_equals_teacher_forcing() {
    let Some((backend, model)) = load(MatmulPath::Exact) else {
        return;
    };
    let fx = ReferenceFixture::load("smollm2");
    let p = &fx.prompts[0];
    let steps = p.decisive_steps(f64::from(EXACT_BOUND)).min(16);
    let mut session = model.session(&backend, 256).unwrap();
    let mut g = Generator::new(
        &model,
        &backend,
        &mut session,
        Sampler::new(SamplerConfig::greedy()).unwrap(),
    );
    let mut got = vec![pollster::block_on(g.prefill(&p.ids, 7)).unwrap()];
    while got.len() < steps {
        got.push(pollster::block_on(g.step()).unwrap());
    }
    assert_eq!(got[..steps], p.continuation[..steps], "{}", p.name);
}

#[test]
fn llama_cpp_anchor_at_the_first_step() {
    let Some((backend, model)) = load(MatmulPath::Precise) else {
        return;
    };
    let fx = LlamaCppFixture::load("smollm2");
    let vocab = model.vocab_size();
    let mut failures = Vec::new();
    for p in &fx.prompts {
        let mut session = model
            .session(&backend, p.ids.len() + p.continuation.len() + 1)
            .unwrap();
        let mut g = Generator::new(
            &model,
            &backend,
            &mut session,
            Sampler::new(SamplerConfig::greedy()).unwrap(),
        );
        let first = pollster::block_on(g.prefill(&p.ids, 512)).unwrap();
        let mut ours = vec![first];
        while ours.len() < p.continuation.len() && ours.last() == p.continuation.get(ours.len() - 1)
        {
            ours.push(pollster::block_on(g.step()).unwrap());
        }
        let agree = ours
            .iter()
            .zip(&p.continuation)
            .take_while(|(a, b)| a == b)
            .count();

        let mut session = model.session(&backend, p.ids.len()).unwrap();
        let logits =
            pollster::block_on(model.forward(&backend, &mut session, &p.ids, Logits::Last))
                .unwrap();
        assert_eq!(logits.len(), vocab);
        let (corr, max_diff) = correlation_and_max_diff(&logits, &p.first_step_logits);
        println!(
            "{:<24} vs llama.cpp: correlation {corr:.5}, max |diff| {max_diff:.3}, greedy agreement {agree}/{} tokens",
            p.name,
            p.continuation.len()
        );
        let reference = &p.vs_reference;
        let min_corr = 0.999f64.min(reference.first_step_correlation - VS_REFERENCE_SLACK / 10.0);
        let max_allowed = 1.5f64.max(reference.first_step_max_abs_diff + VS_REFERENCE_SLACK);
        if corr < min_corr {
            failures.push(format!("{}: correlation {corr:.5} < {min_corr:.5}", p.name));
        }
        if f64::from(max_diff) > max_allowed {
            failures.push(format!(
                "{}: max |diff| {max_diff:.3} > {max_allowed:.3}",
                p.name
            ));
        }
        if p.margins[0] > 1.5 && argmax(&logits) != p.continuation[0] {
            failures.push(format!(
                "{}: top-1 differs (llama.cpp margin {:.3})",
                p.name, p.margins[0]
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

fn correlation_and_max_diff(a: &[f32], b: &[f32]) -> (f64, f32) {
    let n = a.len() as f64;
    let (ma, mb) = (
        a.iter().map(|&x| f64::from(x)).sum::<f64>() / n,
        b.iter().map(|&x| f64::from(x)).sum::<f64>() / n,
    );
    let (mut sab, mut saa, mut sbb, mut max) = (0.0, 0.0, 0.0, 0f32);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
        max = max.max((x - y).abs());
    }
    (sab / (saa * sbb).sqrt(), max)
}

/// Synthesized models of every architecture, on the exact and the precise (default) path, each
/// within its bound (qwen2: q/k/v biases and NeoX RoPE; qwen3: per-head
/// q/k norms; gemma3: those, post-norms, GeGLU, the embedding scale and a sliding window of 8 on
/// five of its six layers, which the prompts outgrow; phi3: fused tensors, and with long-context
/// RoPE factors; llama with Llama 3's rope_freqs and with YaRN), rebuilt from the fixture's
/// recorded synth command: no download needed.
#[test]
fn both_paths_match_the_reference_on_synth_models_of_every_architecture() {
    for (name, (path, bound)) in SYNTH_FIXTURES.into_iter().flat_map(|n| {
        [
            (n, (MatmulPath::Exact, EXACT_BOUND)),
            (n, (MatmulPath::Precise, PRECISE_BOUND)),
        ]
    }) {
        let fx = ReferenceFixture::load(name);
        let bytes = fx.synth_model_bytes();
        let store = WeightStore::open(
            engine_core::source::MemorySource::new(bytes),
            StoreConfig::default(),
        )
        .unwrap();
        let backend = CpuBackend::new(CpuConfig { threads: 2, path }).unwrap();
        let model = Model::load(&backend, Arc::new(store)).unwrap();
        let vocab = model.vocab_size();
        for p in &fx.prompts {
            // Sessions of the model's whole context, as the reference assumes (it picks Phi-3's
            // long RoPE factors by it).
            let tokens = p.tokens();
            let mut session = model.session(&backend, usize::MAX).unwrap();
            let logits =
                pollster::block_on(model.forward(&backend, &mut session, &tokens, Logits::All))
                    .unwrap();
            let (worst, steps) = check_prompt(&fx, p, &logits, vocab, bound);
            println!(
                "{name} {path:?} {:<10} max |diff| {worst:.6}; greedy equal for {steps}/{} steps",
                p.name,
                p.continuation.len()
            );
        }
    }
}
