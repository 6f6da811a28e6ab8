//! Layer streaming end to end on the real SmolLM2: under a device budget of a quarter of the model,
//! generation gives exactly the tokens of the fully resident model, device bytes stay within the
//! budget after every step, and a read failure in a prefetch worker fails one generation with a
//! typed error while the next one succeeds. Every test runs under a timeout, so a hang fails.

use engine_core::backend::cpu::{CpuBackend, CpuConfig, MatmulPath};
use engine_core::model::{Generator, Model};
use engine_core::prefetch::PrefetchConfig;
use engine_core::sample::{Sampler, SamplerConfig};
use engine_core::schedule::{PrefetchProfile, SchedulerConfig};
use engine_core::source::{FaultPlan, FileSource, MmapSource, ThrottleConfig, ThrottledSource};
use engine_core::store::{StoreConfig, WeightStore};
use engine_core::tokenizer::Tokenizer;
use engine_core::Error;
use sluice_tests::models::model_or_skip;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

const PROMPTS: [&str; 3] = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
];
const NEW_TOKENS: usize = 24;

/// Runs `f` on its own thread and fails the test if it does not finish within `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("timed out after {limit:?} (a hang?)"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the test body panicked"),
    }
}

fn backend() -> CpuBackend {
    CpuBackend::new(CpuConfig {
        threads: 2,
        path: MatmulPath::Precise,
    })
    .unwrap()
}

fn prompts(store: &WeightStore<impl engine_core::source::ByteSource>) -> Vec<Vec<u32>> {
    let tok = Tokenizer::from_metadata(&store.gguf().metadata).unwrap();
    PROMPTS
        .iter()
        .map(|p| tok.encode(p, true, false).unwrap())
        .collect()
}

/// Greedy tokens for `prompt`; after every pass, `check` sees the model (budget assertions).
fn generate(
    backend: &CpuBackend,
    model: &Model<CpuBackend>,
    prompt: &[u32],
    check: &dyn Fn(&Model<CpuBackend>),
) -> Result<Vec<u32>, Error> {
    let mut session = model.session(backend, prompt.len() + NEW_TOKENS + 1)?;
    let sampler = Sampler::new(SamplerConfig::greedy())?;
    let mut g = Generator::new(model, backend, &mut session, sampler);
    let mut out = vec![pollster::block_on(g.prefill(prompt, 512))?];
    check(model);
    for _ in 1..NEW_TOKENS {
        out.push(pollster::block_on(g.step())?);
        check(model);
    }
    Ok(out)
}

fn streaming_config(budget: u64, profile: PrefetchProfile) -> SchedulerConfig {
    SchedulerConfig {
        budget,
        profile,
        prefetch: PrefetchConfig::default(),
    }
}

#[test]
fn a_quarter_budget_gives_the_resident_tokens() {
    let Some(file) = model_or_skip("smollm2-135m-instruct-q4_1") else {
        return;
    };
    within(Duration::from_secs(600), move || {
        let store = Arc::new(
            WeightStore::open(MmapSource::open(&file).unwrap(), StoreConfig::default()).unwrap(),
        );
        let backend = backend();
        let resident = Model::load(&backend, store.clone()).unwrap();
        let total = resident.residency().pinned_bytes;
        let prompts = prompts(&store);
        let expected: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| generate(&backend, &resident, p, &|_| {}).unwrap())
            .collect();
        drop(resident);

        let budget = total / 4;
        for profile in [
            PrefetchProfile::Debug,
            PrefetchProfile::Default,
            PrefetchProfile::Auto,
        ] {
            let model =
                Model::load_streaming(&backend, store.clone(), streaming_config(budget, profile))
                    .unwrap();
            let check = |m: &Model<CpuBackend>| {
                let s = m.prefetch_stats();
                assert!(s.device_bytes <= budget, "{} > {budget}", s.device_bytes);
                assert!(
                    s.peak_device_bytes <= budget,
                    "peak {}",
                    s.peak_device_bytes
                );
            };
            for (p, want) in prompts.iter().zip(&expected) {
                let got = generate(&backend, &model, p, &check).unwrap();
                assert_eq!(&got, want, "profile {profile}: streamed tokens differ");
            }
            let s = model.prefetch_stats();
            assert_eq!(s.mode, "streaming");
            assert!(
                s.bytes_moved > 3 * total,
                "layers were streamed: {}",
                s.bytes_moved
            );
            for l in s.layers.iter().filter(|l| l.sync_loads + l.stalls > 0) {
                println!("  {}: sync {} stalls {}", l.layer, l.sync_loads, l.stalls);
            }
            println!(
                "profile {profile}: budget {budget} of {total} bytes, pinned {}, peak {}, \
                 hits {} stalls {} sync {} (after first pass {}), distance {}",
                s.pinned_bytes,
                s.peak_device_bytes,
                s.hits,
                s.stalls,
                s.sync_loads,
                s.sync_loads_after_first_pass,
                s.distance
            );
        }
    });
}

#[test]
fn a_failed_read_fails_one_generation_and_the_next_succeeds() {
    let Some(file) = model_or_skip("smollm2-135m-instruct-q4_1") else {
        return;
    };
    within(Duration::from_secs(600), move || {
        let source =
            ThrottledSource::new(FileSource::open(&file).unwrap(), ThrottleConfig::default())
                .unwrap();
        // A small host tier, so streamed layers are read from the source again each pass.
        let config = StoreConfig {
            host_budget: 16 << 20,
            ..StoreConfig::default()
        };
        let store = Arc::new(WeightStore::open(source, config).unwrap());
        let backend = backend();
        let total = engine_core::model::layer_plan(&*store)
            .unwrap()
            .total_bytes();
        let budget = total / 4;
        let prompt = prompts(&store).swap_remove(0);
        let mut sched = streaming_config(budget, PrefetchProfile::Default);
        sched.prefetch.retries = 0;
        let model = Model::load_streaming(&backend, store.clone(), sched).unwrap();
        let expected = generate(&backend, &model, &prompt, &|_| {}).unwrap();

        // Every read of blk.20's first tensor fails from now on, in whichever thread reads it.
        let t = store
            .tensor("blk.20.attn_norm.weight")
            .unwrap()
            .range
            .clone();
        store.source().set_faults(FaultPlan::InRange {
            range: t,
            times: u32::MAX,
        });
        let err = generate(&backend, &model, &prompt, &|_| {}).unwrap_err();
        match &err {
            Error::LayerLoad { layer, tensor, .. } => {
                assert_eq!(layer, "blk.20");
                assert_eq!(tensor, "blk.20.attn_norm.weight");
            }
            other => panic!("expected a LayerLoad error, got {other}"),
        }
        assert!(model.device_bytes() <= budget);

        store.source().set_faults(FaultPlan::None);
        let again = generate(&backend, &model, &prompt, &|_| {}).unwrap();
        assert_eq!(
            again, expected,
            "the engine stays usable after a failed read"
        );
        model.shutdown();
        assert_eq!(
            model.device_bytes(),
            model.residency().pinned_bytes,
            "nothing but the pinned set stays after shutdown"
        );
    });
}
