//! Device-memory accounting for the scheduler: bytes are reserved before a fetch starts and stay
//! counted until the last handle to the uploaded tensor is dropped, so the count bounds what is
//! really on the device, never only what the scheduler still indexes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes on the device or reserved for fetches under way, held to a budget.
#[derive(Debug)]
pub struct DeviceMeter {
    budget: u64,
    used: AtomicU64,
    peak: AtomicU64,
}

impl DeviceMeter {
    pub fn new(budget: u64) -> Self {
        Self {
            budget,
            used: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        }
    }

    /// Counts `bytes` more if the budget allows.
    pub fn try_reserve(&self, bytes: u64) -> bool {
        let reserved = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes).filter(|&n| n <= self.budget)
            });
        match reserved {
            Ok(before) => {
                self.peak.fetch_max(before + bytes, Ordering::SeqCst);
                true
            }
            Err(_) => false,
        }
    }

    pub fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::SeqCst);
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }

    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::SeqCst)
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }
}

/// A tensor on the device whose bytes (reserved before its fetch) are released when it is dropped.
#[derive(Debug)]
pub struct Resident<W> {
    weight: W,
    bytes: u64,
    meter: Arc<DeviceMeter>,
}

impl<W> Resident<W> {
    /// Takes over a reservation of `bytes` already made on `meter`.
    pub fn new(weight: W, bytes: u64, meter: Arc<DeviceMeter>) -> Self {
        Self {
            weight,
            bytes,
            meter,
        }
    }

    pub fn weight(&self) -> &W {
        &self.weight
    }
}

impl<W> Drop for Resident<W> {
    fn drop(&mut self) {
        self.meter.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_hold_to_the_budget_and_drop_releases() {
        let meter = Arc::new(DeviceMeter::new(100));
        assert!(meter.try_reserve(60));
        assert!(!meter.try_reserve(41));
        assert!(meter.try_reserve(40));
        let r = Resident::new((), 60, meter.clone());
        assert_eq!(meter.used(), 100);
        drop(r);
        assert_eq!(meter.used(), 40);
        assert_eq!(meter.peak(), 100);
        assert!(!meter.try_reserve(u64::MAX));
    }
}
