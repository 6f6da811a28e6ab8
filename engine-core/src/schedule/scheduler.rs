//! `LayerScheduler`: hands the forward pass each step's tensors, keeping the pinned set on the device
//! and streaming the rest through a window of the next `distance` steps fetched in the background.

use super::meter::{DeviceMeter, Resident};
use super::plan::{LayerPlan, Residency};
use super::profile::{PrefetchProfile, AUTO_MAX_DISTANCE};
use crate::clock::Instant;
use crate::prefetch::{
    Acquire, Fetched, LayerStats, Loader, PrefetchConfig, PrefetchStats, Prefetcher, TimelineEvent,
};
use crate::{Error, Result};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

type Handle<W> = Arc<Resident<W>>;

/// How a scheduler streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Most bytes of weights on the device at once.
    pub budget: u64,
    pub profile: PrefetchProfile,
    pub prefetch: PrefetchConfig,
}

/// The tensors of one step, in the plan's order, held on the device while this lives.
pub struct StepWeights<W> {
    tensors: Vec<Handle<W>>,
}

impl<W> StepWeights<W> {
    /// The `i`-th tensor of the step.
    pub fn get(&self, i: usize) -> Result<&W> {
        self.tensors
            .get(i)
            .map(|h| h.weight())
            .ok_or_else(|| Error::Config(format!("step has no tensor {i}")))
    }
}

#[derive(Debug, Default)]
struct Counters {
    passes: u64,
    hits: u64,
    stalls: u64,
    sync_loads: u64,
    sync_after_first: u64,
    stall_time: Duration,
    bytes_moved: u64,
}

/// What `auto` watches during a pass.
#[derive(Debug)]
struct PassWatch {
    start: Instant,
    waited: Duration,
    /// The window had to stop short of the distance for lack of budget.
    squeezed: bool,
}

/// Decides which tensors are on the device at each step and fetches ahead of use.
pub struct LayerScheduler<W: Send + Sync + 'static> {
    plan: LayerPlan,
    residency: Residency,
    profile: PrefetchProfile,
    distance: usize,
    meter: Arc<DeviceMeter>,
    resident: HashMap<usize, Handle<W>>,
    pending: HashSet<usize>,
    failed: HashMap<usize, Arc<Error>>,
    prefetcher: Option<Prefetcher<usize, Handle<W>>>,
    /// Per tensor: the first step that reads it (where its fetched bytes are counted).
    owner: Vec<usize>,
    counters: Counters,
    layers: Vec<LayerStats>,
    timeline: VecDeque<TimelineEvent>,
    epoch: Instant,
    watch: PassWatch,
}

impl<W: Send + Sync + 'static> LayerScheduler<W> {
    /// Plans residency for `config.budget` and loads the pinned set; starts prefetch workers when
    /// the model does not fit. `loader` reads and uploads one tensor (by index into the plan).
    pub fn new(plan: LayerPlan, config: SchedulerConfig, loader: Loader<usize, W>) -> Result<Self> {
        let residency = plan.residency(config.budget, config.profile.distance())?;
        let meter = Arc::new(DeviceMeter::new(config.budget));
        let sizes: Arc<[u64]> = plan.tensors.iter().map(|t| t.bytes).collect();
        let mut me = Self::empty(plan, residency, config.profile, meter.clone());
        me.load_pinned(|t| loader(t))?;
        if me.residency.all_resident {
            return Ok(me);
        }
        let wrapped: Loader<usize, Handle<W>> = Arc::new(move |t| {
            let w = loader(t)?;
            Ok(Arc::new(Resident::new(w, sizes[t], meter.clone())))
        });
        let prefetcher = Prefetcher::new(config.prefetch, wrapped)?;
        me.prefetcher = Some(prefetcher);
        Ok(me)
    }
}

impl<W: Send + Sync + 'static> LayerScheduler<W> {
    /// Every tensor loaded now, on the calling thread; nothing is ever streamed.
    pub fn resident(plan: LayerPlan, load: impl FnMut(usize) -> Result<W>) -> Result<Self> {
        let budget = plan.total_bytes();
        let residency = plan.residency(budget, 1)?;
        let meter = Arc::new(DeviceMeter::new(budget));
        let mut me = Self::empty(plan, residency, PrefetchProfile::Default, meter);
        me.load_pinned(load)?;
        Ok(me)
    }

    fn empty(
        plan: LayerPlan,
        residency: Residency,
        profile: PrefetchProfile,
        meter: Arc<DeviceMeter>,
    ) -> Self {
        let mut owner = vec![0; plan.tensors.len()];
        let mut seen = vec![false; plan.tensors.len()];
        for (i, step) in plan.steps.iter().enumerate() {
            for &t in &step.tensors {
                if !std::mem::replace(&mut seen[t], true) {
                    owner[t] = i;
                }
            }
        }
        let layers = plan
            .steps
            .iter()
            .map(|s| LayerStats {
                layer: s.layer.to_string(),
                bytes: s.tensors.iter().map(|&t| plan.tensors[t].bytes).sum(),
                pinned: s.tensors.iter().all(|&t| residency.pinned[t]),
                ..LayerStats::default()
            })
            .collect();
        let now = Instant::now();
        Self {
            distance: residency.distance.max(1),
            plan,
            residency,
            profile,
            meter,
            resident: HashMap::new(),
            pending: HashSet::new(),
            failed: HashMap::new(),
            prefetcher: None,
            owner,
            counters: Counters::default(),
            layers,
            timeline: VecDeque::new(),
            epoch: now,
            watch: PassWatch {
                start: now,
                waited: Duration::ZERO,
                squeezed: false,
            },
        }
    }

    fn load_pinned(&mut self, mut load: impl FnMut(usize) -> Result<W>) -> Result<()> {
        for t in 0..self.plan.tensors.len() {
            if !self.residency.pinned[t] {
                continue;
            }
            let bytes = self.plan.tensors[t].bytes;
            if !self.meter.try_reserve(bytes) {
                return Err(self.budget_error(t));
            }
            let w = match load(t) {
                Ok(w) => w,
                Err(e) => {
                    self.meter.release(bytes);
                    return Err(self.layer_error(self.owner[t], t, Arc::new(e)));
                }
            };
            self.resident
                .insert(t, Arc::new(Resident::new(w, bytes, self.meter.clone())));
            self.arrived(t);
        }
        Ok(())
    }

    pub fn plan(&self) -> &LayerPlan {
        &self.plan
    }

    pub fn residency(&self) -> &Residency {
        &self.residency
    }

    /// Whether layers stream (the model does not fit the budget).
    pub fn is_streaming(&self) -> bool {
        !self.residency.all_resident
    }

    /// Bytes on the device or reserved for fetches under way, now.
    pub fn device_bytes(&self) -> u64 {
        self.meter.used()
    }

    /// The tensors of step `step`, on the device. Counts a hit, a stall (waited for a prefetch) or
    /// a synchronous load, and fetches the next `distance` steps in the background.
    pub fn acquire(&mut self, step: usize) -> Result<StepWeights<W>> {
        let started = Instant::now();
        let n = self.plan.steps.len();
        if step >= n {
            return Err(Error::Config(format!("step {step} of a {n}-step plan")));
        }
        if step == 0 {
            self.begin_pass(started);
        }
        let kind = match self.prefetcher.is_some() {
            true => self.bring_in(step)?,
            // Streamed tensors went with the prefetcher: say so rather than miss a tensor.
            false if self.is_streaming() => return Err(Error::ShutDown),
            false => Acquire::Hit,
        };
        let waited = match kind {
            Acquire::Hit => Duration::ZERO,
            _ => started.elapsed(),
        };
        self.record(step, kind, started, waited);
        let tensors = self.plan.steps[step]
            .tensors
            .iter()
            .map(|t| {
                self.resident
                    .get(t)
                    .cloned()
                    .ok_or_else(|| Error::Config(format!("tensor {t} missing after loading")))
            })
            .collect::<Result<_>>()?;
        Ok(StepWeights { tensors })
    }

    /// Makes step `step` resident and requests the window after it.
    fn bring_in(&mut self, step: usize) -> Result<Acquire> {
        self.collect();
        let window = self.window(step);
        let wanted: HashSet<usize> = window
            .iter()
            .flat_map(|&s| self.plan.steps[s].tensors.iter().copied())
            .collect();
        self.evict(&wanted);
        let current = self.plan.steps[step].tensors.clone();
        if let Some(&t) = current.iter().find(|t| self.failed.contains_key(t)) {
            let e = self
                .failed
                .remove(&t)
                .unwrap_or_else(|| Arc::new(Error::ShutDown));
            return Err(self.layer_error(step, t, e));
        }
        let missing: Vec<usize> = current
            .iter()
            .copied()
            .filter(|t| !self.resident.contains_key(t))
            .collect();
        let demand: Vec<usize> = missing
            .iter()
            .copied()
            .filter(|t| !self.pending.contains(t))
            .collect();
        let kind = match (missing.is_empty(), demand.is_empty()) {
            (true, _) => Acquire::Hit,
            (false, true) => Acquire::Stall,
            (false, false) => Acquire::Sync,
        };
        for (i, &t) in demand.iter().enumerate() {
            if let Err(e) = self.reserve_now(t, &wanted) {
                demand[..i].iter().for_each(|&d| self.release(d));
                return Err(e);
            }
        }
        self.request_ahead(&window[1..], &demand);
        for (i, &t) in demand.iter().enumerate() {
            let outcome = self.prefetcher()?.load_now(t);
            if let Err(e) = self.settle(step, t, outcome) {
                demand[i + 1..].iter().for_each(|&d| self.release(d));
                return Err(e);
            }
        }
        for &t in missing.iter().filter(|t| !demand.contains(t)) {
            let outcome = self.prefetcher()?.wait(t);
            self.prefetcher()?.take(t);
            self.pending.remove(&t);
            let outcome = outcome.unwrap_or_else(|| Err(Arc::new(Error::ShutDown)));
            self.settle(step, t, outcome)?;
        }
        // The queue may have been full a moment ago; it has drained while this step loaded.
        self.request_ahead(&window[1..], &[]);
        Ok(kind)
    }

    fn prefetcher(&self) -> Result<&Prefetcher<usize, Handle<W>>> {
        self.prefetcher.as_ref().ok_or(Error::ShutDown)
    }

    /// Files a fetched tensor as resident, or releases its reservation and hands back the error.
    fn file(
        &mut self,
        t: usize,
        outcome: Fetched<Handle<W>>,
    ) -> std::result::Result<(), Arc<Error>> {
        match outcome {
            Ok(h) => {
                self.arrived(t);
                self.resident.insert(t, h);
                Ok(())
            }
            Err(e) => {
                self.release(t);
                Err(e)
            }
        }
    }

    /// Files a fetched tensor, or turns its failure into the step's error.
    fn settle(&mut self, step: usize, t: usize, outcome: Fetched<Handle<W>>) -> Result<()> {
        self.file(t, outcome)
            .map_err(|e| self.layer_error(step, t, e))
    }

    /// Takes every fetch that has finished; failures wait for the step that needs them.
    fn collect(&mut self) {
        let Some(p) = &self.prefetcher else { return };
        for (t, outcome) in p.take_ready() {
            self.pending.remove(&t);
            if let Err(e) = self.file(t, outcome) {
                self.failed.insert(t, e);
            }
        }
    }

    /// The step and the next `distance` streamed steps after it (see `LayerPlan::window`), as far
    /// as the streaming budget holds them.
    fn window(&mut self, step: usize) -> Vec<usize> {
        let budget = self.residency.stream_budget();
        let (steps, _, cut) = self
            .plan
            .window(step, self.distance, &self.residency.pinned, budget);
        self.watch.squeezed |= cut;
        steps
    }

    /// Drops what the window no longer needs: resident tensors, queued requests, old failures.
    fn evict(&mut self, wanted: &HashSet<usize>) {
        let pinned = &self.residency.pinned;
        self.resident
            .retain(|t, _| pinned[*t] || wanted.contains(t));
        self.failed.retain(|t, _| wanted.contains(t));
        let Some(p) = &self.prefetcher else { return };
        let unwanted: Vec<usize> = self
            .pending
            .iter()
            .copied()
            .filter(|t| !wanted.contains(t))
            .collect();
        for t in unwanted {
            if p.cancel_queued(t) {
                self.pending.remove(&t);
                self.release(t);
            }
        }
    }

    /// Reserves room for a tensor the current step needs now, waiting for unwanted fetches still
    /// under way to land (and be dropped) if they hold the room.
    fn reserve_now(&mut self, t: usize, wanted: &HashSet<usize>) -> Result<()> {
        let bytes = self.plan.tensors[t].bytes;
        loop {
            if self.meter.try_reserve(bytes) {
                return Ok(());
            }
            let unwanted = self.pending.iter().find(|p| !wanted.contains(p));
            let Some(&other) = unwanted.or_else(|| self.pending.iter().next()) else {
                return Err(self.budget_error(t));
            };
            let p = self.prefetcher()?;
            let outcome = p.wait(other);
            p.take(other);
            self.pending.remove(&other);
            self.drop_outcome(other, outcome);
        }
    }

    fn release(&self, t: usize) {
        self.meter.release(self.plan.tensors[t].bytes);
    }

    /// Drops a fetch nobody needs any more, releasing its reservation where no tensor took it over.
    fn drop_outcome(&self, t: usize, outcome: Option<Fetched<Handle<W>>>) {
        match outcome {
            Some(Ok(h)) => drop(h),
            _ => self.release(t),
        }
    }

    /// Requests the tensors of `steps` in order until the budget or the queue says stop, leaving out
    /// `loading`: the current step's tensors about to be loaded synchronously, which a later step
    /// may read too (a tied output head and the next pass's embedding share the table).
    fn request_ahead(&mut self, steps: &[usize], loading: &[usize]) {
        let Some(p) = &self.prefetcher else { return };
        for &s in steps {
            for &t in &self.plan.steps[s].tensors {
                if self.resident.contains_key(&t)
                    || self.pending.contains(&t)
                    || self.failed.contains_key(&t)
                    || loading.contains(&t)
                {
                    continue;
                }
                if !self.meter.try_reserve(self.plan.tensors[t].bytes) {
                    self.watch.squeezed = true;
                    return;
                }
                if p.request(t).accepted() {
                    self.pending.insert(t);
                } else {
                    self.release(t);
                    return;
                }
            }
        }
    }

    fn arrived(&mut self, t: usize) {
        let bytes = self.plan.tensors[t].bytes;
        self.counters.bytes_moved += bytes;
        self.layers[self.owner[t]].bytes_fetched += bytes;
    }

    /// A new pass starts: `auto` moves the distance by what the last pass saw.
    fn begin_pass(&mut self, now: Instant) {
        if self.profile.is_auto() && self.counters.passes > 0 {
            let wall = now.duration_since(self.watch.start);
            let max = AUTO_MAX_DISTANCE.min(self.plan.steps.len().saturating_sub(1).max(1));
            if self.watch.squeezed {
                self.distance = self.distance.saturating_sub(1).max(1);
            } else if self.watch.waited > wall / 50 && self.distance < max {
                self.distance += 1;
            }
        }
        self.counters.passes += 1;
        self.watch = PassWatch {
            start: now,
            waited: Duration::ZERO,
            squeezed: false,
        };
    }

    fn record(&mut self, step: usize, kind: Acquire, started: Instant, waited: Duration) {
        let c = &mut self.counters;
        let l = &mut self.layers[step];
        match kind {
            Acquire::Hit => {
                c.hits += 1;
                l.hits += 1;
            }
            Acquire::Stall => {
                c.stalls += 1;
                l.stalls += 1;
            }
            Acquire::Sync => {
                c.sync_loads += 1;
                l.sync_loads += 1;
                if c.passes > 1 {
                    c.sync_after_first += 1;
                }
            }
        }
        c.stall_time += waited;
        l.wait_time += waited;
        self.watch.waited += waited;
        let pass = c.passes;
        if !self.is_streaming() {
            return;
        }
        if self.timeline.len() >= 4 * self.plan.steps.len() {
            self.timeline.pop_front();
        }
        self.timeline.push_back(TimelineEvent {
            pass,
            layer: self.plan.steps[step].layer.to_string(),
            kind,
            at_s: started.duration_since(self.epoch).as_secs_f64(),
            wait_s: waited.as_secs_f64(),
            distance: self.distance,
        });
    }

    fn layer_error(&self, step: usize, t: usize, source: Arc<Error>) -> Error {
        Error::LayerLoad {
            layer: self.plan.steps[step].layer.to_string(),
            tensor: self.plan.tensors[t].name.clone(),
            source,
        }
    }

    fn budget_error(&self, t: usize) -> Error {
        Error::DeviceBudget {
            budget: self.meter.budget(),
            needed: self.plan.tensors[t].bytes,
            what: format!(
                "tensor '{}' with {} bytes already in use",
                self.plan.tensors[t].name,
                self.meter.used()
            ),
        }
    }

    /// Statistics so far.
    pub fn stats(&self) -> PrefetchStats {
        let fetch = self
            .prefetcher
            .as_ref()
            .map(|p| p.counters())
            .unwrap_or_default();
        let c = &self.counters;
        PrefetchStats {
            mode: if self.is_streaming() {
                "streaming"
            } else {
                "resident"
            }
            .into(),
            profile: self.profile.to_string(),
            distance: self.distance,
            budget_bytes: self.meter.budget(),
            pinned_bytes: self.residency.pinned_bytes,
            device_bytes: self.meter.used(),
            peak_device_bytes: self.meter.peak(),
            passes: c.passes,
            hits: c.hits,
            stalls: c.stalls,
            sync_loads: c.sync_loads,
            sync_loads_after_first_pass: c.sync_after_first,
            stall_time: c.stall_time,
            bytes_moved: c.bytes_moved,
            fetch_busy_time: fetch.busy_time,
            failed_fetches: fetch.failed,
            retried_fetches: fetch.retried,
            queue_bound: self.prefetcher.as_ref().map_or(0, |p| p.queue_bound()),
            queue_high_water: fetch.policy.queue_high_water,
            peak_in_flight: fetch.policy.peak_in_flight,
            deduplicated: fetch.policy.deduplicated,
            layers: self.layers.clone(),
            timeline: self.timeline.iter().cloned().collect(),
        }
    }

    /// Stops and joins the prefetch workers; streamed tensors are dropped, pinned ones stay, and a
    /// streaming scheduler answers `acquire` with `Error::ShutDown` from then on.
    pub fn shutdown(&mut self) {
        let Some(mut p) = self.prefetcher.take() else {
            return;
        };
        // Settle every request first, so each reservation is released exactly once.
        for t in std::mem::take(&mut self.pending) {
            if p.cancel_queued(t) {
                self.release(t);
            } else {
                let outcome = p.wait(t);
                p.take(t);
                self.drop_outcome(t, outcome);
            }
        }
        p.shutdown();
        let pinned = &self.residency.pinned;
        self.resident.retain(|t, _| pinned[*t]);
        self.failed.clear();
    }
}

impl<W: Send + Sync + 'static> Drop for LayerScheduler<W> {
    fn drop(&mut self) {
        self.shutdown();
    }
}
