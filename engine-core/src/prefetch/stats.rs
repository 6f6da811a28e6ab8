//! What a streamed run reports: how each layer was found when the forward pass needed it, the bytes
//! moved, the time spent waiting, and a per-layer timeline of the most recent passes.

use serde::Serialize;
use std::time::Duration;

/// How a layer was found when the forward pass asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Acquire {
    /// Already on the device (resident, or prefetched in time).
    Hit,
    /// Prefetched, but the fetch had not finished: the pass waited for it.
    Stall,
    /// Not fetched ahead: loaded on demand while the pass waited (a synchronous load).
    Sync,
}

/// One layer's totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LayerStats {
    /// `embedding`, `blk.N` or `output`.
    pub layer: String,
    /// Bytes of the layer's tensors.
    pub bytes: u64,
    /// Whether it stays on the device for the whole run.
    pub pinned: bool,
    pub hits: u64,
    pub stalls: u64,
    pub sync_loads: u64,
    #[serde(serialize_with = "super::serialize_secs")]
    pub wait_time: Duration,
    /// Bytes fetched for it (counted per tensor, when a tensor arrives).
    pub bytes_fetched: u64,
}

/// One step of the timeline: a layer asked for by pass `pass` at `at_s` seconds after the
/// scheduler started, and how long the pass waited for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEvent {
    pub pass: u64,
    pub layer: String,
    pub kind: Acquire,
    pub at_s: f64,
    pub wait_s: f64,
    /// Steps ahead being fetched at that moment.
    pub distance: usize,
}

/// A streamed (or fully resident) run's prefetch statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PrefetchStats {
    /// `resident` (the model fits: loaded once) or `streaming`.
    pub mode: String,
    /// The prefetch profile (`default`, `auto`, a number...).
    pub profile: String,
    /// Steps ahead fetched now (auto may have moved it).
    pub distance: usize,
    pub budget_bytes: u64,
    /// Bytes pinned on the device for the whole run.
    pub pinned_bytes: u64,
    /// Bytes on the device (or reserved for fetches under way) now.
    pub device_bytes: u64,
    /// The most bytes ever on the device or reserved at once.
    pub peak_device_bytes: u64,
    /// Forward passes that walked the layers.
    pub passes: u64,
    pub hits: u64,
    pub stalls: u64,
    pub sync_loads: u64,
    /// Synchronous loads after the first pass (the target is 0).
    pub sync_loads_after_first_pass: u64,
    /// Total time passes waited for layers.
    #[serde(serialize_with = "super::serialize_secs")]
    pub stall_time: Duration,
    /// Bytes moved to the device, pinned set included.
    pub bytes_moved: u64,
    /// Wall time during which at least one fetch (read, copy, upload) was running.
    #[serde(serialize_with = "super::serialize_secs")]
    pub fetch_busy_time: Duration,
    /// Fetches that failed after their retries.
    pub failed_fetches: u64,
    pub retried_fetches: u64,
    pub queue_bound: usize,
    pub queue_high_water: usize,
    pub peak_in_flight: usize,
    /// Requests answered by a fetch already queued or under way.
    pub deduplicated: u64,
    pub layers: Vec<LayerStats>,
    /// The most recent steps, oldest first (bounded).
    pub timeline: Vec<TimelineEvent>,
}

impl PrefetchStats {
    /// Share of layer requests found on the device.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.stalls + self.sync_loads;
        if total == 0 {
            return 1.0;
        }
        self.hits as f64 / total as f64
    }
}
