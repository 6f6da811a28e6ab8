//! The streaming half of `LayerScheduler`: making a step resident, evicting what its window no
//! longer needs, and requesting the window ahead. Every fetch holds a `Reservation` from the
//! moment it is requested; a failure or an early return drops it, and with it the bytes.

use super::meter::{Reservation, Resident};
use super::scheduler::LayerScheduler;
use crate::prefetch::{Acquire, Fetched, Prefetcher};
use crate::{Error, Result};
use std::collections::HashSet;
use std::sync::Arc;

impl<W: Send + Sync + 'static> LayerScheduler<W> {
    /// Makes step `step` resident and requests the window after it.
    pub(super) fn bring_in(&mut self, step: usize) -> Result<Acquire> {
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
            .filter(|t| !self.pending.contains_key(t))
            .collect();
        let kind = match (missing.is_empty(), demand.is_empty()) {
            (true, _) => Acquire::Hit,
            (false, true) => Acquire::Stall,
            (false, false) => Acquire::Sync,
        };
        // Room for every synchronous load first; on an error the rooms taken so far drop.
        let mut rooms = Vec::with_capacity(demand.len());
        for &t in &demand {
            rooms.push((t, self.reserve_now(t, &wanted)?));
        }
        self.request_ahead(&window[1..], &demand);
        for (t, room) in rooms {
            let outcome = self.prefetcher()?.load_now(t);
            self.settle(step, t, outcome, room)?;
        }
        for &t in missing.iter().filter(|t| !demand.contains(t)) {
            let outcome = self.prefetcher()?.wait(t);
            self.prefetcher()?.take(t);
            let outcome = outcome.unwrap_or_else(|| Err(Arc::new(Error::ShutDown)));
            match self.pending.remove(&t) {
                Some(room) => self.settle(step, t, outcome, room)?,
                None => return Err(Error::Config(format!("tensor {t} fetched unrequested"))),
            }
        }
        // The queue may have been full a moment ago; it has drained while this step loaded.
        self.request_ahead(&window[1..], &[]);
        Ok(kind)
    }

    fn prefetcher(&self) -> Result<&Prefetcher<usize, Arc<W>>> {
        self.prefetcher.as_ref().ok_or(Error::ShutDown)
    }

    /// Files a fetched tensor as resident in the room reserved for it; a failure drops the room.
    fn file(
        &mut self,
        t: usize,
        outcome: Fetched<Arc<W>>,
        room: Reservation,
    ) -> std::result::Result<(), Arc<Error>> {
        let w = outcome?;
        self.arrived(t);
        self.resident.insert(t, Arc::new(Resident::new(w, room)));
        Ok(())
    }

    /// Files a fetched tensor, or turns its failure into the step's error.
    fn settle(
        &mut self,
        step: usize,
        t: usize,
        outcome: Fetched<Arc<W>>,
        room: Reservation,
    ) -> Result<()> {
        self.file(t, outcome, room)
            .map_err(|e| self.layer_error(step, t, e))
    }

    /// Takes every fetch that has finished; failures wait for the step that needs them.
    fn collect(&mut self) {
        let Some(p) = &self.prefetcher else { return };
        for (t, outcome) in p.take_ready() {
            // Only requested fetches land here, each with its room; anything else is dropped.
            let Some(room) = self.pending.remove(&t) else {
                continue;
            };
            if let Err(e) = self.file(t, outcome, room) {
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
        // A queued request cancels at once; one in flight lands and is dropped later.
        self.pending
            .retain(|t, _| wanted.contains(t) || !p.cancel_queued(*t));
    }

    /// Reserves room for a tensor the current step needs now, waiting for fetches still under way
    /// (unwanted ones first) to land and be dropped if they hold the room.
    fn reserve_now(&mut self, t: usize, wanted: &HashSet<usize>) -> Result<Reservation> {
        loop {
            if let Some(room) = self.reserve(t) {
                return Ok(room);
            }
            let unwanted = self.pending.keys().find(|p| !wanted.contains(p));
            let Some(&other) = unwanted.or_else(|| self.pending.keys().next()) else {
                return Err(self.budget_error(t));
            };
            let p = self.prefetcher()?;
            drop(p.wait(other));
            drop(p.take(other));
            self.pending.remove(&other);
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
                    || self.pending.contains_key(&t)
                    || self.failed.contains_key(&t)
                    || loading.contains(&t)
                {
                    continue;
                }
                let Some(room) = self.meter.reserve(self.plan.tensors[t].bytes) else {
                    self.watch.squeezed = true;
                    return;
                };
                if !p.request(t).accepted() {
                    return;
                }
                self.pending.insert(t, room);
            }
        }
    }
}
