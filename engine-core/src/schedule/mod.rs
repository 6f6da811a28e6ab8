//! Layer scheduling: which weights are on the device at each step of the forward pass.
//!
//! ## Design
//! `LayerPlan` lists the steps of a pass (embedding, blocks, output head) and the tensors each
//! reads. `LayerPlan::residency` decides, for a device budget and a prefetch distance, what stays
//! pinned; `LayerScheduler` streams the rest through a window of the next `distance` steps, fetched
//! on prefetch workers, and accounts every byte on the device against the budget (`DeviceMeter`).
//! A model that fits is loaded once and never streamed.

mod meter;
mod pass_stats;
mod plan;
mod profile;
mod scheduler;
#[cfg(all(test, not(target_family = "wasm")))]
mod tests;
mod window;

pub use meter::{DeviceMeter, Reservation, Resident};
pub use plan::{LayerPlan, PlanStep, PlannedTensor, Residency};
pub use profile::{PrefetchProfile, AUTO_MAX_DISTANCE};
pub use scheduler::{LayerScheduler, SchedulerConfig, StepWeights};
