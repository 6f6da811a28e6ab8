//! Device-memory accounting for the scheduler: bytes are reserved before a fetch starts and stay
//! counted until the last handle to the uploaded tensor is dropped, so the count bounds what is
//! really on the device, never only what the scheduler still indexes. Reservations are guards:
//! dropping one (on any path) releases its bytes, so there is no `release` to forget.

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

    /// Counts `bytes` more if the budget allows; they stay counted until the reservation (or the
    /// `Resident` it becomes) is dropped.
    pub fn reserve(self: &Arc<Self>, bytes: u64) -> Option<Reservation> {
        let reserved = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes).filter(|&n| n <= self.budget)
            });
        let before = reserved.ok()?;
        self.peak.fetch_max(before + bytes, Ordering::SeqCst);
        Some(Reservation {
            bytes,
            meter: self.clone(),
        })
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

/// Bytes counted on a `DeviceMeter`, released when this is dropped: an early return or a
/// failed fetch cannot leak them.
#[derive(Debug)]
#[must_use = "dropping a reservation releases its bytes at once"]
pub struct Reservation {
    bytes: u64,
    meter: Arc<DeviceMeter>,
}

impl Reservation {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.meter.used.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// A tensor on the device, holding the reservation made before its fetch: its bytes stay counted
/// until the last handle to it is dropped.
#[derive(Debug)]
pub struct Resident<W> {
    weight: Arc<W>,
    _reservation: Reservation,
}

impl<W> Resident<W> {
    pub fn new(weight: Arc<W>, reservation: Reservation) -> Self {
        Self {
            weight,
            _reservation: reservation,
        }
    }

    pub fn weight(&self) -> &W {
        &self.weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_hold_to_the_budget_and_drop_releases() {
        let meter = Arc::new(DeviceMeter::new(100));
        let sixty = meter.reserve(60).expect("room for 60");
        assert!(meter.reserve(41).is_none());
        let forty = meter.reserve(40).expect("room for 40");
        let r = Resident::new(Arc::new(()), sixty);
        assert_eq!(meter.used(), 100);
        drop(r);
        assert_eq!(meter.used(), 40);
        drop(forty);
        assert_eq!(meter.used(), 0);
        assert_eq!(meter.peak(), 100);
        assert!(meter.reserve(u64::MAX).is_none());
    }
}
