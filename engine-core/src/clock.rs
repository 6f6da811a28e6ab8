//! A monotonic clock that also works on wasm, for stall times and timelines.
//!
//! `std::time::Instant::now()` panics on `wasm*-unknown-unknown`, and engine-core may not import
//! the browser's APIs. So natively `Instant` wraps the std one, and on wasm it reads a millisecond
//! source the embedder installs once with `set_wasm_millis` (the web crate passes
//! `performance.now()`). Until one is installed the wasm clock stands still at zero: durations
//! read as zero, which only blanks the timing statistics.

use std::time::Duration;

/// A point in time from this clock; only differences between points mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(Inner);

#[cfg(not(target_family = "wasm"))]
type Inner = std::time::Instant;

/// Time since the source's origin.
#[cfg(target_family = "wasm")]
type Inner = Duration;

impl Instant {
    /// The current time.
    pub fn now() -> Self {
        #[cfg(not(target_family = "wasm"))]
        {
            Self(std::time::Instant::now())
        }
        #[cfg(target_family = "wasm")]
        {
            Self(wasm::now())
        }
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        #[cfg(not(target_family = "wasm"))]
        {
            self.0.saturating_duration_since(earlier.0)
        }
        #[cfg(target_family = "wasm")]
        {
            self.0.saturating_sub(earlier.0)
        }
    }

    /// Time since `self`.
    pub fn elapsed(&self) -> Duration {
        Self::now().duration_since(*self)
    }
}

/// Installs the wasm clock's source: milliseconds since any fixed origin, never decreasing.
/// Only the first call counts; later ones return `false`. A no-op natively.
pub fn set_wasm_millis(source: fn() -> f64) -> bool {
    #[cfg(target_family = "wasm")]
    {
        wasm::SOURCE.set(source).is_ok()
    }
    #[cfg(not(target_family = "wasm"))]
    {
        let _ = source;
        false
    }
}

#[cfg(target_family = "wasm")]
mod wasm {
    use std::sync::OnceLock;
    use std::time::Duration;

    pub(super) static SOURCE: OnceLock<fn() -> f64> = OnceLock::new();

    pub(super) fn now() -> Duration {
        let ms = SOURCE.get().map_or(0.0, |f| f());
        // A NaN, negative or absurd reading must not panic in `from_secs_f64`.
        Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_grows_and_earlier_later_is_zero() {
        let a = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        let b = Instant::now();
        assert!(b.duration_since(a) >= Duration::from_millis(2));
        assert_eq!(a.duration_since(b), Duration::ZERO);
        assert!(a.elapsed() >= Duration::from_millis(2));
        assert!(!set_wasm_millis(|| 0.0));
    }
}
