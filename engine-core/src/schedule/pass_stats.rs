//! What `LayerScheduler` counts: per pass (for `auto`'s distance), per step and in all, and the
//! `PrefetchStats` it reports.

use super::profile::AUTO_MAX_DISTANCE;
use super::scheduler::LayerScheduler;
use crate::clock::Instant;
use crate::prefetch::{Acquire, PrefetchStats, TimelineEvent};
use std::time::Duration;

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub passes: u64,
    pub hits: u64,
    pub stalls: u64,
    pub sync_loads: u64,
    pub sync_after_first: u64,
    pub stall_time: Duration,
    pub bytes_moved: u64,
}

/// What `auto` watches during a pass.
#[derive(Debug)]
pub(super) struct PassWatch {
    start: Instant,
    waited: Duration,
    /// The window had to stop short of the distance for lack of budget.
    pub squeezed: bool,
}

impl PassWatch {
    pub fn starting(now: Instant) -> Self {
        Self {
            start: now,
            waited: Duration::ZERO,
            squeezed: false,
        }
    }
}

impl<W: Send + Sync + 'static> LayerScheduler<W> {
    /// Tensor `t` came onto the device: its bytes count as moved, for the step that owns it.
    pub(super) fn arrived(&mut self, t: usize) {
        let bytes = self.plan.tensors[t].bytes;
        self.counters.bytes_moved += bytes;
        self.layers[self.owner[t]].bytes_fetched += bytes;
    }

    /// A new pass starts: `auto` moves the distance by what the last pass saw.
    pub(super) fn begin_pass(&mut self, now: Instant) {
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
        self.watch = PassWatch::starting(now);
    }

    pub(super) fn record(
        &mut self,
        step: usize,
        kind: Acquire,
        started: Instant,
        waited: Duration,
    ) {
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
}
