//! `LayerScheduler`: hands the forward pass each step's tensors, keeping the pinned set on the device
//! and streaming the rest through a window of the next `distance` steps fetched in the background
//! (the window and its fetches: `window.rs`; counters and statistics: `pass_stats.rs`).

use super::meter::{DeviceMeter, Reservation, Resident};
use super::pass_stats::{Counters, PassWatch};
use super::plan::{LayerPlan, Residency};
use super::profile::PrefetchProfile;
use crate::clock::Instant;
use crate::prefetch::{Acquire, LayerStats, Loader, PrefetchConfig, Prefetcher, TimelineEvent};
use crate::{Error, Result};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

pub(super) type Handle<W> = Arc<Resident<W>>;

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

/// Decides which tensors are on the device at each step and fetches ahead of use.
pub struct LayerScheduler<W: Send + Sync + 'static> {
    pub(super) plan: LayerPlan,
    pub(super) residency: Residency,
    pub(super) profile: PrefetchProfile,
    pub(super) distance: usize,
    pub(super) meter: Arc<DeviceMeter>,
    pub(super) resident: HashMap<usize, Handle<W>>,
    /// Requested fetches, each holding the room it will take on the device.
    pub(super) pending: HashMap<usize, Reservation>,
    pub(super) failed: HashMap<usize, Arc<Error>>,
    pub(super) prefetcher: Option<Prefetcher<usize, Arc<W>>>,
    /// Per tensor: the first step that reads it (where its fetched bytes are counted).
    pub(super) owner: Vec<usize>,
    pub(super) counters: Counters,
    pub(super) layers: Vec<LayerStats>,
    pub(super) timeline: VecDeque<TimelineEvent>,
    pub(super) epoch: Instant,
    pub(super) watch: PassWatch,
}

impl<W: Send + Sync + 'static> LayerScheduler<W> {
    /// Plans residency for `config.budget` and loads the pinned set; starts prefetch workers when
    /// the model does not fit. `loader` reads and uploads one tensor (by index into the plan).
    pub fn new(plan: LayerPlan, config: SchedulerConfig, loader: Loader<usize, W>) -> Result<Self> {
        let residency = plan.residency(config.budget, config.profile.distance())?;
        let meter = Arc::new(DeviceMeter::new(config.budget));
        let mut me = Self::empty(plan, residency, config.profile, meter);
        me.load_pinned(|t| loader(t))?;
        if me.residency.all_resident {
            return Ok(me);
        }
        let shared: Loader<usize, Arc<W>> = Arc::new(move |t| loader(t).map(Arc::new));
        me.prefetcher = Some(Prefetcher::new(config.prefetch, shared)?);
        Ok(me)
    }

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
            pending: HashMap::new(),
            failed: HashMap::new(),
            prefetcher: None,
            owner,
            counters: Counters::default(),
            layers,
            timeline: VecDeque::new(),
            epoch: now,
            watch: PassWatch::starting(now),
        }
    }

    fn load_pinned(&mut self, mut load: impl FnMut(usize) -> Result<W>) -> Result<()> {
        for t in 0..self.plan.tensors.len() {
            if !self.residency.pinned[t] {
                continue;
            }
            let room = self.reserve(t).ok_or_else(|| self.budget_error(t))?;
            let w = load(t).map_err(|e| self.layer_error(self.owner[t], t, Arc::new(e)))?;
            self.resident
                .insert(t, Arc::new(Resident::new(Arc::new(w), room)));
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

    /// Room on the device for tensor `t`, if the budget has it.
    pub(super) fn reserve(&self, t: usize) -> Option<Reservation> {
        self.meter.reserve(self.plan.tensors[t].bytes)
    }

    pub(super) fn layer_error(&self, step: usize, t: usize, source: Arc<Error>) -> Error {
        Error::LayerLoad {
            layer: self.plan.steps[step].layer.to_string(),
            tensor: self.plan.tensors[t].name.clone(),
            source,
        }
    }

    pub(super) fn budget_error(&self, t: usize) -> Error {
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

    /// Stops and joins the prefetch workers; streamed tensors are dropped, pinned ones stay, and a
    /// streaming scheduler answers `acquire` with `Error::ShutDown` from then on.
    pub fn shutdown(&mut self) {
        let Some(mut p) = self.prefetcher.take() else {
            return;
        };
        // Settle every request first: a fetch in flight lands (and is dropped) before its
        // reservation goes, so the meter never counts less than is on the device.
        for (t, room) in std::mem::take(&mut self.pending) {
            if !p.cancel_queued(t) {
                drop(p.wait(t));
                drop(p.take(t));
            }
            drop(room);
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
