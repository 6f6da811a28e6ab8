//! Tests of `LayerScheduler` with a fake loader (each tensor's "weight" is its index): streaming
//! within the budget, a model that fits, injected failures and recovery, a budget too small, and a
//! seeded stress run over random plans, budgets, distances, step orders and failures. Every test
//! runs under a timeout.

use super::*;
use crate::prefetch::{Loader, PrefetchConfig};
use crate::rng::SplitMix64;
use crate::store::LayerId;
use crate::testing_support::within;
use crate::Error;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

/// A loader that returns the tensor's index, counts calls per tensor, notices two loads of one
/// tensor at once, and fails when told to (for given tensors, or at random once armed).
struct Fake {
    delay: Duration,
    calls: Vec<AtomicUsize>,
    /// Tensors that fail this many more times.
    fail: Mutex<HashMap<usize, u32>>,
    /// Fails one call in `n` at random while armed.
    random: Mutex<Option<(SplitMix64, u64)>>,
    armed: AtomicBool,
    busy: Mutex<HashSet<usize>>,
    overlaps: AtomicUsize,
}

impl Fake {
    fn new(tensors: usize, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            delay,
            calls: (0..tensors).map(|_| AtomicUsize::new(0)).collect(),
            fail: Mutex::default(),
            random: Mutex::default(),
            armed: AtomicBool::new(false),
            busy: Mutex::default(),
            overlaps: AtomicUsize::new(0),
        })
    }

    fn loader(self: &Arc<Self>) -> Loader<usize, u64> {
        let me = self.clone();
        Arc::new(move |t| me.load(t))
    }

    fn load(&self, t: usize) -> crate::Result<u64> {
        self.calls[t].fetch_add(1, Ordering::SeqCst);
        if !self.busy.lock().unwrap().insert(t) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        std::thread::sleep(self.delay);
        let fail = self.should_fail(t);
        self.busy.lock().unwrap().remove(&t);
        match fail {
            true => Err(Error::Config(format!(
                "injected failure loading tensor {t}"
            ))),
            false => Ok(t as u64),
        }
    }

    fn should_fail(&self, t: usize) -> bool {
        if let Some(left) = self.fail.lock().unwrap().get_mut(&t) {
            if *left > 0 {
                *left -= 1;
                return true;
            }
        }
        if !self.armed.load(Ordering::SeqCst) {
            return false;
        }
        let mut random = self.random.lock().unwrap();
        random
            .as_mut()
            .is_some_and(|(rng, n)| rng.next_u64() % *n == 0)
    }

    fn calls(&self, t: usize) -> usize {
        self.calls[t].load(Ordering::SeqCst)
    }
}

/// An embedding of `embd` bytes, `blocks` blocks of tensors sized `block`, and an output head
/// (norm plus the embedding table when `tied`, else its own matrix of `embd` bytes).
fn model(embd: u64, blocks: u32, block: &[u64], tied: bool) -> LayerPlan {
    let mut tensors = vec![PlannedTensor {
        name: "token_embd.weight".into(),
        bytes: embd,
    }];
    let mut steps = vec![PlanStep {
        layer: LayerId::Embedding,
        tensors: vec![0],
    }];
    for i in 0..blocks {
        let first = tensors.len();
        for (j, &bytes) in block.iter().enumerate() {
            tensors.push(PlannedTensor {
                name: format!("blk.{i}.t{j}"),
                bytes,
            });
        }
        steps.push(PlanStep {
            layer: LayerId::Block(i),
            tensors: (first..tensors.len()).collect(),
        });
    }
    tensors.push(PlannedTensor {
        name: "output_norm.weight".into(),
        bytes: 1,
    });
    let mut head = vec![tensors.len() - 1];
    if tied {
        head.push(0);
    } else {
        tensors.push(PlannedTensor {
            name: "output.weight".into(),
            bytes: embd,
        });
        head.push(tensors.len() - 1);
    }
    steps.push(PlanStep {
        layer: LayerId::Output,
        tensors: head,
    });
    LayerPlan::new(tensors, steps).unwrap()
}

fn config(budget: u64, profile: PrefetchProfile, workers: usize) -> SchedulerConfig {
    SchedulerConfig {
        budget,
        profile,
        prefetch: PrefetchConfig {
            workers,
            queue_bound: 8,
            retries: 0,
        },
    }
}

/// Checks that `w` holds exactly the tensors of `step`, in the plan's order.
fn check_step(w: &StepWeights<u64>, plan: &LayerPlan, step: usize) {
    let want = &plan.steps[step].tensors;
    for (i, &t) in want.iter().enumerate() {
        assert_eq!(*w.get(i).unwrap(), t as u64, "step {step} tensor {i}");
    }
    assert!(w.get(want.len()).is_err());
}

fn check_budget(s: &LayerScheduler<u64>, budget: u64) {
    let st = s.stats();
    assert!(st.device_bytes <= budget, "{} on device", st.device_bytes);
    assert!(
        st.peak_device_bytes <= budget,
        "peak {}",
        st.peak_device_bytes
    );
}

/// The index of tensor `name` in `plan`.
fn tensor(plan: &LayerPlan, name: &str) -> usize {
    plan.tensors.iter().position(|t| t.name == name).unwrap()
}

#[test]
fn streaming_stays_in_budget_and_prefetches_in_time() {
    within(LIMIT, || {
        for profile in [
            PrefetchProfile::Debug,
            PrefetchProfile::Default,
            PrefetchProfile::Fast,
        ] {
            let plan = model(30, 12, &[12, 8], true);
            let budget = plan.total_bytes() / 4;
            let fake = Fake::new(plan.tensors.len(), Duration::from_micros(200));
            let mut s =
                LayerScheduler::new(plan.clone(), config(budget, profile, 2), fake.loader())
                    .unwrap();
            assert!(s.is_streaming());
            let n = plan.steps.len();
            for _pass in 0..4 {
                for step in 0..n {
                    let w = s.acquire(step).unwrap();
                    check_step(&w, &plan, step);
                    check_budget(&s, budget);
                    drop(w);
                    // The consumer is slower than the loader, so prefetches land in time.
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            let st = s.stats();
            assert_eq!(st.mode, "streaming");
            assert_eq!(st.passes, 4);
            assert_eq!(st.hits + st.stalls + st.sync_loads, 4 * n as u64);
            assert_eq!(st.sync_loads_after_first_pass, 0, "{profile}: {st:?}");
            assert!(st.queue_high_water <= st.queue_bound);
            assert!(st.peak_in_flight <= 2);
            assert_eq!(st.failed_fetches, 0);
            // Streaming moves more than the model: streamed tensors come back every pass.
            assert!(st.bytes_moved > plan.total_bytes());
            s.shutdown();
            assert_eq!(s.device_bytes(), s.residency().pinned_bytes);
            assert_eq!(fake.overlaps.load(Ordering::SeqCst), 0);
        }
    });
}

#[test]
fn a_model_that_fits_is_loaded_once() {
    within(LIMIT, || {
        let plan = model(30, 6, &[12, 8], false);
        let total = plan.total_bytes();
        let fake = Fake::new(plan.tensors.len(), Duration::ZERO);
        let profile = PrefetchProfile::Default;
        let mut s =
            LayerScheduler::new(plan.clone(), config(total, profile, 2), fake.loader()).unwrap();
        assert!(!s.is_streaming());
        let n = plan.steps.len();
        for _pass in 0..5 {
            for step in 0..n {
                let w = s.acquire(step).unwrap();
                check_step(&w, &plan, step);
            }
        }
        for t in 0..plan.tensors.len() {
            assert_eq!(fake.calls(t), 1, "tensor {t}");
        }
        let st = s.stats();
        assert_eq!(st.mode, "resident");
        assert_eq!((st.passes, st.hits), (5, 5 * n as u64));
        assert_eq!((st.stalls, st.sync_loads), (0, 0));
        assert_eq!(st.bytes_moved, total);
        assert_eq!((st.device_bytes, st.peak_device_bytes), (total, total));
        assert!(st.timeline.is_empty(), "nothing streams");
        s.shutdown();
        assert_eq!(s.device_bytes(), total);
    });
}

/// How a failure test goes on after the failing step.
#[derive(Debug, Clone, Copy)]
enum After {
    /// Asks for the failing step again.
    Retry,
    /// Starts a new pass from step 0.
    Restart,
}

/// Walks to the step of `blk.5.t1` (straight there when `jump`, so it is a synchronous load; else
/// in order, so it was prefetched), which fails once; then the scheduler must carry on.
fn fail_once_and_recover(jump: bool, after: After) {
    let plan = model(30, 8, &[12, 8], true);
    let budget = plan.total_bytes() / 3;
    let fake = Fake::new(plan.tensors.len(), Duration::from_micros(200));
    let bad = tensor(&plan, "blk.5.t1");
    fake.fail.lock().unwrap().insert(bad, 1);
    let profile = PrefetchProfile::Default;
    let mut s =
        LayerScheduler::new(plan.clone(), config(budget, profile, 2), fake.loader()).unwrap();
    let n = plan.steps.len();
    let bad_step = 6; // embedding, blk.0 .. blk.5
    let first = if jump { bad_step } else { 0 };
    for step in first..bad_step {
        let w = s.acquire(step).unwrap();
        check_step(&w, &plan, step);
        std::thread::sleep(Duration::from_millis(1));
    }
    match s.acquire(bad_step) {
        Err(Error::LayerLoad {
            layer,
            tensor,
            source,
        }) => {
            assert_eq!(layer, "blk.5");
            assert_eq!(tensor, "blk.5.t1");
            assert!(source.to_string().contains("injected"), "{source}");
        }
        Err(e) => panic!("expected LayerLoad, got {e}"),
        Ok(_) => panic!("step {bad_step} should fail"),
    }
    check_budget(&s, budget);
    let resume = match after {
        After::Retry => bad_step,
        After::Restart => 0,
    };
    let steps = (resume..n).chain(0..n);
    for step in steps {
        let w = s
            .acquire(step)
            .unwrap_or_else(|e| panic!("step {step} after the failure: {e}"));
        check_step(&w, &plan, step);
        check_budget(&s, budget);
    }
    // Failed once, then streamed in again by each of the two passes that followed.
    assert_eq!(fake.calls(bad), 3);
    assert_eq!(s.stats().failed_fetches, 1);
    s.shutdown();
    assert_eq!(
        s.device_bytes(),
        s.residency().pinned_bytes,
        "no reservation leaked"
    );
    assert_eq!(fake.overlaps.load(Ordering::SeqCst), 0);
}

#[test]
fn a_failed_prefetch_names_its_tensor_and_a_retry_succeeds() {
    within(LIMIT, || fail_once_and_recover(false, After::Retry));
}

#[test]
fn a_failed_prefetch_leaves_the_next_pass_usable() {
    within(LIMIT, || fail_once_and_recover(false, After::Restart));
}

#[test]
fn a_failed_synchronous_load_names_its_tensor_and_a_retry_succeeds() {
    within(LIMIT, || fail_once_and_recover(true, After::Retry));
}

#[test]
fn a_failed_synchronous_load_leaves_the_next_pass_usable() {
    within(LIMIT, || fail_once_and_recover(true, After::Restart));
}

#[test]
fn a_jump_to_a_tied_head_then_full_passes_succeed() {
    within(LIMIT, || {
        // Starting at the head loads the embedding table now; the window then reaches step 0, which
        // reads the same table, and must not fetch it a second time.
        let plan = model(30, 8, &[12, 8], true);
        let budget = plan.total_bytes() / 3;
        let fake = Fake::new(plan.tensors.len(), Duration::from_micros(200));
        let cfg = config(budget, PrefetchProfile::Default, 1);
        let mut s = LayerScheduler::new(plan.clone(), cfg, fake.loader()).unwrap();
        assert!(!s.residency().pinned[0], "the table streams");
        let n = plan.steps.len();
        for step in std::iter::once(n - 1).chain(0..n).chain(0..n) {
            let w = s
                .acquire(step)
                .unwrap_or_else(|e| panic!("step {step}: {e}"));
            check_step(&w, &plan, step);
            check_budget(&s, budget);
        }
        s.shutdown();
        assert_eq!(s.device_bytes(), s.residency().pinned_bytes);
    });
}

#[test]
fn a_pinned_tensor_that_fails_fails_new() {
    within(LIMIT, || {
        let plan = model(30, 6, &[12, 8], true);
        let fake = Fake::new(plan.tensors.len(), Duration::ZERO);
        fake.fail.lock().unwrap().insert(0, 1);
        let budget = plan.total_bytes();
        let cfg = config(budget, PrefetchProfile::Default, 2);
        match LayerScheduler::new(plan, cfg, fake.loader()) {
            Err(Error::LayerLoad { layer, tensor, .. }) => {
                assert_eq!(
                    (layer.as_str(), tensor.as_str()),
                    ("embedding", "token_embd.weight")
                );
            }
            Err(e) => panic!("expected LayerLoad, got {e}"),
            Ok(_) => panic!("new should fail"),
        }
    });
}

#[test]
fn a_budget_smaller_than_one_step_is_refused() {
    within(LIMIT, || {
        let plan = model(30, 4, &[12, 8], false);
        let fake = Fake::new(plan.tensors.len(), Duration::ZERO);
        let cfg = config(25, PrefetchProfile::Default, 2);
        match LayerScheduler::new(plan.clone(), cfg, fake.loader()) {
            Err(Error::DeviceBudget {
                budget,
                needed,
                what,
            }) => {
                assert_eq!((budget, needed), (25, 30));
                assert_eq!(what, "layer embedding");
            }
            Err(e) => panic!("expected DeviceBudget, got {e}"),
            Ok(_) => panic!("a 30-byte step cannot fit 25 bytes"),
        }
        assert!((0..plan.tensors.len()).all(|t| fake.calls(t) == 0));
    });
}

#[test]
fn acquire_after_shutdown_says_shut_down() {
    within(LIMIT, || {
        let plan = model(30, 6, &[12, 8], true);
        let budget = plan.total_bytes() / 3;
        let fake = Fake::new(plan.tensors.len(), Duration::ZERO);
        let cfg = config(budget, PrefetchProfile::Default, 2);
        let mut s = LayerScheduler::new(plan, cfg, fake.loader()).unwrap();
        drop(s.acquire(0).unwrap());
        s.shutdown();
        match s.acquire(3) {
            Err(Error::ShutDown) => {}
            Err(e) => panic!("expected ShutDown, got {e}"),
            Ok(_) => panic!("a streamed step after shutdown"),
        }
    });
}

/// A random llama-shaped plan: embedding, 2 to 9 blocks of 1 to 3 tensors, a tied or own head.
fn random_plan(rng: &mut SplitMix64) -> LayerPlan {
    let embd = 1 + rng.next_u64() % 40;
    let blocks = 2 + (rng.next_u64() % 8) as u32;
    let per_block = 1 + (rng.next_u64() % 3) as usize;
    let sizes: Vec<u64> = (0..per_block).map(|_| 1 + rng.next_u64() % 20).collect();
    model(embd, blocks, &sizes, rng.next_u64().is_multiple_of(2))
}

/// One seeded scheduler stress run.
fn scheduler_run(seed: u64) {
    let mut rng = SplitMix64::new(seed);
    let plan = random_plan(&mut rng);
    let n = plan.steps.len();
    let none = vec![false; plan.tensors.len()];
    let largest = (0..n)
        .map(|i| plan.window_bytes(i, 1, &none))
        .max()
        .unwrap();
    let total = plan.total_bytes();
    // From the largest step to a bit more than the whole model (which then is resident).
    let budget = largest + rng.next_u64() % (total + total / 4 - largest + 1);
    let profile = match rng.next_u64() % 5 {
        0 => PrefetchProfile::Debug,
        1 => PrefetchProfile::Default,
        2 => PrefetchProfile::Fast,
        3 => PrefetchProfile::Auto,
        _ => PrefetchProfile::Distance(1 + (rng.next_u64() % 6) as usize),
    };
    let workers = (rng.next_u64() % 4) as usize;
    let cfg = SchedulerConfig {
        budget,
        profile,
        prefetch: PrefetchConfig {
            workers,
            queue_bound: 1 + (rng.next_u64() % 4) as usize,
            retries: (rng.next_u64() % 2) as u32,
        },
    };
    let what = format!("seed {seed}: {n} steps, budget {budget} of {total}, {profile}, {cfg:?}");
    let fake = Fake::new(
        plan.tensors.len(),
        Duration::from_micros(rng.next_u64() % 150),
    );
    *fake.random.lock().unwrap() = Some((SplitMix64::derive(seed, 2, 0), 6 + rng.next_u64() % 20));
    let mut s = LayerScheduler::new(plan.clone(), cfg, fake.loader())
        .unwrap_or_else(|e| panic!("{what}: new: {e}"));
    // Failures start after the pinned set is in, so that `new` succeeds.
    fake.armed.store(true, Ordering::SeqCst);
    let mut step = 0;
    for _ in 0..20 + rng.next_u64() % 60 {
        match s.acquire(step) {
            Ok(w) => check_step(&w, &plan, step),
            Err(Error::LayerLoad { tensor, source, .. }) => {
                let names: Vec<&str> = plan.steps[step]
                    .tensors
                    .iter()
                    .map(|&t| plan.tensors[t].name.as_str())
                    .collect();
                assert!(
                    names.contains(&tensor.as_str()),
                    "{what}: {tensor} at step {step}"
                );
                assert!(source.to_string().contains("injected"), "{what}: {source}");
            }
            Err(e) => panic!("{what}: step {step}: {e}"),
        }
        let st = s.stats();
        assert!(
            st.device_bytes <= budget,
            "{what}: {} on device",
            st.device_bytes
        );
        assert!(
            st.peak_device_bytes <= budget,
            "{what}: peak {}",
            st.peak_device_bytes
        );
        step = match rng.next_u64() % 20 {
            0 => 0,
            1 => (step + 2 + (rng.next_u64() % 3) as usize) % n,
            2 => (rng.next_u64() % n as u64) as usize,
            _ => (step + 1) % n,
        };
    }
    s.shutdown();
    assert_eq!(
        s.device_bytes(),
        s.residency().pinned_bytes,
        "{what}: reservations left after shutdown"
    );
    assert_eq!(fake.overlaps.load(Ordering::SeqCst), 0, "{what}");
    let meter = s.meter.clone();
    drop(s);
    assert_eq!(
        meter.used(),
        0,
        "{what}: bytes counted after the scheduler dropped"
    );
}

/// Reservations are guards: a step's weights still held keep their bytes counted after the
/// scheduler is gone, and the count is zero once they are dropped too.
#[test]
fn held_step_weights_keep_their_bytes_until_dropped() {
    within(LIMIT, || {
        let plan = model(30, 8, &[12, 8], true);
        let budget = plan.total_bytes() / 3;
        let fake = Fake::new(plan.tensors.len(), Duration::from_micros(100));
        let cfg = config(budget, PrefetchProfile::Default, 2);
        let mut s = LayerScheduler::new(plan.clone(), cfg, fake.loader()).unwrap();
        for step in 0..3 {
            drop(s.acquire(step).unwrap());
        }
        let held = s.acquire(3).unwrap();
        check_step(&held, &plan, 3);
        let step = &plan.steps[3].tensors;
        assert!(
            step.iter().any(|&t| !s.residency().pinned[t]),
            "step 3 streams"
        );
        let step_bytes: u64 = step.iter().map(|&t| plan.tensors[t].bytes).sum();
        let meter = s.meter.clone();
        drop(s);
        assert_eq!(meter.used(), step_bytes, "only the held step is counted");
        drop(held);
        assert_eq!(meter.used(), 0);
    });
}

#[test]
fn random_walks_stay_in_budget_and_release_everything() {
    within(Duration::from_secs(120), || {
        for seed in 0..150 {
            let run = std::panic::catch_unwind(|| {
                within(Duration::from_secs(10), move || scheduler_run(seed))
            });
            // The timeout (or assertion) message is above; name the seed that caused it.
            assert!(run.is_ok(), "scheduler stress seed {seed} hung or failed");
        }
    });
}
