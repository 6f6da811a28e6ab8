//! The model plan (the steps of a forward pass and the tensors each needs) and the residency decision
//! for a device budget: everything pinned when it fits, else a pinned set plus a streamed window.

use crate::store::LayerId;
use crate::{Error, Result};
use std::collections::HashSet;

/// A tensor the forward pass reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTensor {
    pub name: String,
    /// Bytes it takes on the device (its stored, possibly quantized, size).
    pub bytes: u64,
}

/// One step of the pass: a layer and the tensors it reads (indices into `LayerPlan::tensors`).
/// Steps may share a tensor (a tied output head reads the embedding table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanStep {
    pub layer: LayerId,
    pub tensors: Vec<usize>,
}

/// The steps of one forward pass in order; every token walks all of them, then starts again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPlan {
    pub tensors: Vec<PlannedTensor>,
    pub steps: Vec<PlanStep>,
}

/// Which tensors stay on the device, and how many bytes are left for the streamed window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Residency {
    pub budget: u64,
    /// Steps ahead to fetch.
    pub distance: usize,
    /// Per tensor: kept on the device for the whole run.
    pub pinned: Vec<bool>,
    pub pinned_bytes: u64,
    /// Everything is pinned: loaded once, never streamed.
    pub all_resident: bool,
}

impl Residency {
    /// Bytes left for the streamed window.
    pub fn stream_budget(&self) -> u64 {
        self.budget - self.pinned_bytes
    }
}

impl LayerPlan {
    /// Checks that every step names known tensors and there is at least one step.
    pub fn new(tensors: Vec<PlannedTensor>, steps: Vec<PlanStep>) -> Result<Self> {
        if steps.is_empty() {
            return Err(Error::Config("a layer plan needs at least one step".into()));
        }
        if let Some(bad) = steps
            .iter()
            .flat_map(|s| &s.tensors)
            .find(|&&t| t >= tensors.len())
        {
            return Err(Error::Config(format!(
                "layer plan step names tensor {bad} of {}",
                tensors.len()
            )));
        }
        Ok(Self { tensors, steps })
    }

    /// Bytes of all the tensors (each counted once).
    pub fn total_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes).sum()
    }

    /// Bytes of the distinct tensors of steps `first..first+len` (wrapping around), leaving out
    /// `pinned` ones.
    pub fn window_bytes(&self, first: usize, len: usize, pinned: &[bool]) -> u64 {
        let n = self.steps.len();
        let mut seen = HashSet::new();
        (0..len.min(n))
            .flat_map(|j| &self.steps[(first + j) % n].tensors)
            .filter(|&&t| !pinned.get(t).copied().unwrap_or(false) && seen.insert(t))
            .map(|&t| self.tensors[t].bytes)
            .sum()
    }

    /// The streaming window from step `first`: it, then following steps (wrapping into the next
    /// pass) until `distance` of them needed bytes beyond `pinned`, or the next would take the window
    /// past `budget`. Steps that need nothing more (pinned, host-side, or sharing tensors already in
    /// the window) ride along without counting, so the stream keeps fetching across a pinned
    /// stretch. Returns the steps, their bytes beyond `pinned`, and whether the budget cut it short.
    pub fn window(
        &self,
        first: usize,
        distance: usize,
        pinned: &[bool],
        budget: u64,
    ) -> (Vec<usize>, u64, bool) {
        let n = self.steps.len();
        let mut seen = HashSet::new();
        let extra = |s: usize, seen: &mut HashSet<usize>, commit: bool| -> u64 {
            let mut add = 0;
            for &t in &self.steps[s].tensors {
                if !pinned.get(t).copied().unwrap_or(false) && !seen.contains(&t) {
                    if commit {
                        seen.insert(t);
                    }
                    add += self.tensors[t].bytes;
                }
            }
            add
        };
        let mut bytes = extra(first % n, &mut seen, true);
        let mut out = vec![first % n];
        let mut ahead = 0;
        for j in 1..n {
            if ahead >= distance {
                break;
            }
            let s = (first + j) % n;
            let add = extra(s, &mut seen, false);
            if add > 0 && bytes + add > budget {
                return (out, bytes, true);
            }
            if add > 0 {
                extra(s, &mut seen, true);
                bytes += add;
                ahead += 1;
            }
            out.push(s);
        }
        (out, bytes, false)
    }

    /// The most bytes any streaming window of `distance` steps ahead needs beyond `pinned`.
    fn max_window(&self, distance: usize, pinned: &[bool]) -> u64 {
        (0..self.steps.len())
            .map(|i| self.window(i, distance, pinned, u64::MAX).1)
            .max()
            .unwrap_or(0)
    }

    /// Decides residency for a device `budget` and a prefetch `distance`.
    ///
    /// Access is cyclic, so LRU would evict exactly the layer needed soonest. Instead: pin whole
    /// steps in pass order (embedding, blk.0, blk.1, ...) while what is left still holds the largest
    /// window (a step and the next `distance` streamed ones); everything else streams through it. Pinning the
    /// first steps gives the stream a head start at every pass. When even an unpinned window of
    /// `distance` steps ahead does not fit, nothing is pinned and the window shrinks at run time where
    /// it must; a single step larger than the budget is an error.
    pub fn residency(&self, budget: u64, distance: usize) -> Result<Residency> {
        let n_t = self.tensors.len();
        let total = self.total_bytes();
        if total <= budget {
            return Ok(Residency {
                budget,
                distance,
                pinned: vec![true; n_t],
                pinned_bytes: total,
                all_resident: true,
            });
        }
        let none = vec![false; n_t];
        if let Some((i, need)) = (0..self.steps.len())
            .map(|i| (i, self.window_bytes(i, 1, &none)))
            .find(|&(_, need)| need > budget)
        {
            return Err(Error::DeviceBudget {
                budget,
                needed: need,
                what: format!("layer {}", self.steps[i].layer),
            });
        }
        let window = distance.max(1);
        let mut pinned = none;
        let mut pinned_bytes = 0;
        for step in &self.steps {
            let mut trial = pinned.clone();
            let mut trial_bytes = pinned_bytes;
            for &t in &step.tensors {
                if !trial[t] {
                    trial[t] = true;
                    trial_bytes += self.tensors[t].bytes;
                }
            }
            if trial_bytes >= total {
                // Pinning the last step would pin everything, which the budget does not hold.
                break;
            }
            if trial_bytes + self.max_window(window, &trial) <= budget {
                pinned = trial;
                pinned_bytes = trial_bytes;
            }
        }
        Ok(Residency {
            budget,
            distance,
            pinned,
            pinned_bytes,
            all_resident: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An embedding of `e` bytes, `blocks` blocks of `b` bytes, and a head tied to the embedding.
    fn tied(e: u64, blocks: u32, b: u64) -> LayerPlan {
        let mut tensors = vec![PlannedTensor {
            name: "token_embd.weight".into(),
            bytes: e,
        }];
        let mut steps = vec![PlanStep {
            layer: LayerId::Embedding,
            tensors: vec![0],
        }];
        for i in 0..blocks {
            tensors.push(PlannedTensor {
                name: format!("blk.{i}"),
                bytes: b,
            });
            steps.push(PlanStep {
                layer: LayerId::Block(i),
                tensors: vec![tensors.len() - 1],
            });
        }
        tensors.push(PlannedTensor {
            name: "output_norm.weight".into(),
            bytes: 1,
        });
        steps.push(PlanStep {
            layer: LayerId::Output,
            tensors: vec![tensors.len() - 1, 0],
        });
        LayerPlan::new(tensors, steps).unwrap()
    }

    #[test]
    fn a_model_that_fits_is_all_resident() {
        let plan = tied(100, 4, 10);
        let r = plan.residency(141, 2).unwrap();
        assert!(r.all_resident);
        assert_eq!(r.pinned_bytes, 141);
    }

    #[test]
    fn pins_leading_steps_and_keeps_room_for_the_window() {
        let plan = tied(10, 8, 10);
        // 91 bytes in all; a step and two streamed ones need at most 30.
        let r = plan.residency(60, 2).unwrap();
        assert!(!r.all_resident);
        assert!(r.pinned_bytes + plan.max_window(2, &r.pinned) <= 60);
        assert_eq!(
            r.pinned_bytes, 30,
            "embedding (and so the head's table), blk.0, blk.1"
        );
        assert!(r.pinned[0] && r.pinned[1] && r.pinned[2] && !r.pinned[3]);
    }

    #[test]
    fn a_big_embedding_is_streamed_when_it_cannot_be_pinned() {
        let plan = tied(50, 8, 10);
        // Pinning the table would leave 25 bytes, less than three blocks; blk.6, blk.7 and the
        // head need 71, so nothing else can be pinned either.
        let r = plan.residency(75, 2).unwrap();
        assert_eq!(r.pinned_bytes, 0);
        assert!(plan.max_window(2, &r.pinned) <= 75);
    }

    #[test]
    fn a_step_larger_than_the_budget_is_an_error() {
        let plan = tied(50, 2, 10);
        match plan.residency(40, 1) {
            Err(Error::DeviceBudget { needed, what, .. }) => {
                assert_eq!(needed, 50);
                assert_eq!(what, "layer embedding");
            }
            other => panic!("expected DeviceBudget, got {other:?}"),
        }
    }

    #[test]
    fn windows_skip_pinned_steps_and_stop_at_the_budget() {
        let plan = tied(10, 4, 5);
        let mut pinned = vec![false; plan.tensors.len()];
        pinned[1] = true; // blk.0
        pinned[2] = true; // blk.1
                          // From the head: the table (shared by the embedding step), blk.0 and blk.1 ride along,
                          // blk.2 is the one streamed step ahead.
        let (steps, bytes, cut) = plan.window(5, 1, &pinned, u64::MAX);
        assert_eq!((steps, bytes, cut), (vec![5, 0, 1, 2, 3], 16, false));
        let (steps, bytes, cut) = plan.window(5, 1, &pinned, 15);
        assert_eq!((steps, bytes, cut), (vec![5, 0, 1, 2], 11, true));
    }

    #[test]
    fn window_bytes_wrap_and_count_shared_tensors_once() {
        let plan = tied(10, 2, 5);
        let none = vec![false; plan.tensors.len()];
        // output (norm 1 + table 10), then embedding (same table), then blk.0.
        assert_eq!(plan.window_bytes(3, 3, &none), 16);
    }
}
