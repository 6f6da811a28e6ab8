//! End-to-end parity of a GPU backend with the CPU backend's exact path on the real SmolLM2:
//! teacher-forced on the float64 reference's continuations, every logit of every position within
//! `BOUND`, and greedy tokens equal up to the first step where the CPU's top-2 margin is below it —
//! with every layer resident, and streamed under a device budget of a quarter of the model. Shared
//! by the WebGPU and CUDA tests, which differ only in how they get their backend.
//!
//! Teacher forcing runs the whole sequence in one pass (the prefill kernels, GEMM), and on some
//! prompts again as a prompt pass then one token per pass (the decode kernels, GEMV). A backend
//! may add variants of itself (other kernel paths) that run the decode way on some prompts.

use crate::fixtures::{ReferenceFixture, ReferencePrompt, SYNTH_FIXTURES};
use engine_core::backend::cpu::{CpuBackend, CpuConfig, MatmulPath};
use engine_core::backend::Backend;
use engine_core::model::{Logits, Model};
use engine_core::prefetch::PrefetchConfig;
use engine_core::sample::argmax;
use engine_core::schedule::{PrefetchProfile, SchedulerConfig};
use engine_core::source::MmapSource;
use engine_core::store::{StoreConfig, WeightStore};
use std::path::Path;
use std::sync::Arc;

/// GPU kernels dequantize to f32 and accumulate in f32, like the CPU exact path; only the
/// summation order differs (tree reductions), which moves logits by ~1e-4: the 0.05.
pub const BOUND: f32 = 0.05;

fn teacher_forced<B: Backend>(backend: &B, model: &Model<B>, p: &ReferencePrompt) -> Vec<f32> {
    let tokens = p.tokens();
    let mut session = model.session(backend, tokens.len()).unwrap();
    pollster::block_on(model.forward(backend, &mut session, &tokens, Logits::All)).unwrap()
}

/// The same logits as [`teacher_forced`], from a pass over the prompt then one pass per
/// continuation token, as generation runs.
fn stepwise<B: Backend>(backend: &B, model: &Model<B>, p: &ReferencePrompt) -> Vec<f32> {
    let tokens = p.tokens();
    let mut session = model.session(backend, tokens.len()).unwrap();
    let prompt = &tokens[..p.ids.len()];
    let mut logits =
        pollster::block_on(model.forward(backend, &mut session, prompt, Logits::All)).unwrap();
    for &t in &tokens[p.ids.len()..] {
        let step = pollster::block_on(model.forward(backend, &mut session, &[t], Logits::Last));
        logits.extend(step.unwrap());
    }
    logits
}

/// Top-1 minus top-2 of a row.
fn margin(row: &[f32]) -> f32 {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &v in row {
        if v > a {
            b = a;
            a = v;
        } else if v > b {
            b = v;
        }
    }
    a - b
}

/// Runs SmolLM2 (the GGUF at `file`) on `gpu` resident and streamed, against the CPU exact path,
/// over every prompt of the `smollm2` fixture; decoding one token per pass on every third prompt,
/// and each of `variants` (a name and a differently configured backend), resident and decoding,
/// on every third prompt of another third (software adapters are slow).
pub fn matches_cpu_exact_resident_and_streamed<B>(gpu: &B, file: &Path, variants: &[(&str, B)])
where
    B: Backend + Clone + Send + Sync + 'static,
{
    println!("device: {}", gpu.name());
    let store = Arc::new(
        WeightStore::open(MmapSource::open(file).unwrap(), StoreConfig::default()).unwrap(),
    );
    let cpu = CpuBackend::new(CpuConfig {
        threads: 2,
        path: MatmulPath::Exact,
    })
    .unwrap();
    let cpu_model = Model::load(&cpu, store.clone()).unwrap();
    let resident = Model::load(gpu, store.clone()).unwrap();
    let budget = resident.residency().pinned_bytes / 4;
    let streamed = Model::load_streaming(
        gpu,
        store.clone(),
        SchedulerConfig {
            budget,
            profile: PrefetchProfile::Default,
            prefetch: PrefetchConfig::default(),
        },
    )
    .unwrap();
    let variants: Vec<(&str, &B, Model<B>)> = variants
        .iter()
        .map(|(name, b)| (*name, b, Model::load(b, store.clone()).unwrap()))
        .collect();
    for (name, b, _) in &variants {
        println!("variant {name}: {}", b.name());
    }
    let fx = ReferenceFixture::load("smollm2");
    let vocab = cpu_model.vocab_size();
    assert!(fx.prompts.len() >= 10);
    for (n, p) in fx.prompts.iter().enumerate() {
        let name = &p.name;
        let want = teacher_forced(&cpu, &cpu_model, p);
        let mut runs = vec![
            ("resident", teacher_forced(gpu, &resident, p)),
            ("streamed", teacher_forced(gpu, &streamed, p)),
        ];
        if n % 3 == 0 {
            runs.push(("decode", stepwise(gpu, &resident, p)));
        }
        if n % 3 == 1 {
            for (variant, b, model) in &variants {
                runs.push((variant, stepwise(*b, model, p)));
            }
        }
        for (how, got) in runs {
            compare(name, how, &got, &want, p, vocab);
        }
        assert!(streamed.device_bytes() <= budget);
    }
}

/// Checks a GPU run's logits against the CPU exact path's: every logit within `BOUND`, greedy
/// tokens equal up to the first step where the CPU's own margin is below it.
fn compare(name: &str, how: &str, got: &[f32], want: &[f32], p: &ReferencePrompt, vocab: usize) {
    assert_eq!(got.len(), want.len());
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= BOUND,
        "{name} ({how}): max |diff| {worst} > {BOUND}"
    );
    let first = p.first_step_position();
    let mut steps = 0;
    for i in 0..p.continuation.len() {
        let row = |l: &[f32]| l[(first + i) * vocab..(first + i + 1) * vocab].to_vec();
        if margin(&row(want)) < BOUND {
            break;
        }
        assert_eq!(
            argmax(&row(got)),
            argmax(&row(want)),
            "{name} ({how}) step {i}"
        );
        steps += 1;
    }
    println!(
        "{name:<14} {how:<8} max |diff| vs CPU exact {worst:.5}; greedy equal for {steps}/{} steps",
        p.continuation.len()
    );
}

/// The synthesized model of every architecture's reference fixture (`synth-llama`, `-qwen2`,
/// `-qwen3`, `-gemma3`: biases, per-head norms, post-norms, GeGLU, the embedding scale, a sliding
/// window the prompts outgrow) on `gpu`, teacher-forced and decoding one token per pass, against
/// the CPU exact path.
pub fn synth_architectures_match_cpu_exact<B: Backend>(gpu: &B) {
    let cpu = CpuBackend::new(CpuConfig {
        threads: 2,
        path: MatmulPath::Exact,
    })
    .unwrap();
    for fixture in SYNTH_FIXTURES {
        let fx = ReferenceFixture::load(fixture);
        let store = Arc::new(
            WeightStore::open(
                engine_core::source::MemorySource::new(fx.synth_model_bytes()),
                StoreConfig::default(),
            )
            .unwrap(),
        );
        let cpu_model = Model::load(&cpu, store.clone()).unwrap();
        let gpu_model = Model::load(gpu, store).unwrap();
        let vocab = cpu_model.vocab_size();
        for p in &fx.prompts {
            let want = teacher_forced(&cpu, &cpu_model, p);
            let name = format!("{fixture}/{}", p.name);
            compare(
                &name,
                "prefill",
                &teacher_forced(gpu, &gpu_model, p),
                &want,
                p,
                vocab,
            );
            compare(
                &name,
                "decode",
                &stepwise(gpu, &gpu_model, p),
                &want,
                p,
                vocab,
            );
        }
    }
}

/// The real file at `file` (fixture `fixture`) on `gpu`, resident, teacher-forced on the first
/// `prompts` prompts, against the CPU exact path.
pub fn real_model_matches_cpu_exact<B: Backend>(
    gpu: &B,
    file: &Path,
    fixture: &str,
    prompts: usize,
) {
    let store = Arc::new(
        WeightStore::open(MmapSource::open(file).unwrap(), StoreConfig::default()).unwrap(),
    );
    let cpu = CpuBackend::new(CpuConfig {
        threads: 2,
        path: MatmulPath::Exact,
    })
    .unwrap();
    let cpu_model = Model::load(&cpu, store.clone()).unwrap();
    let gpu_model = Model::load(gpu, store).unwrap();
    let fx = ReferenceFixture::load(fixture);
    let vocab = cpu_model.vocab_size();
    for p in fx.prompts.iter().take(prompts) {
        let want = teacher_forced(&cpu, &cpu_model, p);
        let got = teacher_forced(gpu, &gpu_model, p);
        compare(
            &format!("{fixture}/{}", p.name),
            "prefill",
            &got,
            &want,
            p,
            vocab,
        );
    }
}
