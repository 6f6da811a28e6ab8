//! Fetching layers ahead of use: the executor-free policy (`policy`), its native driver on worker
//! threads (`Prefetcher`), and the statistics a streamed run reports (`PrefetchStats`).
//!
//! ## Design
//! The policy decides; drivers only move bytes. A key asked for while queued or in flight is not
//! fetched twice; the queue has a bound and refuses beyond it; cancelled work is dropped, and
//! shutdown stops and joins every worker. The browser drives the same policy with futures.

mod native;
mod policy;
mod stats;
#[cfg(all(test, not(target_family = "wasm")))]
mod tests;

pub use native::{FetchCounters, Fetched, Loader, PrefetchConfig, Prefetcher};
pub use policy::{Admit, Cancel, Finish, PolicyCounters, PrefetchPolicy};
pub use stats::{Acquire, LayerStats, PrefetchStats, TimelineEvent};

/// Serializes a duration as seconds (JSON reports).
pub(crate) fn serialize_secs<S: serde::Serializer>(
    d: &std::time::Duration,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
