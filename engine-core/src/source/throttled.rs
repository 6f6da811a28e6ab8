//! `ThrottledSource`: wraps a source so it behaves like a slow, flaky disk — one shared bandwidth,
//! a latency per read and injected read failures — for tests and benchmarks of the host tier.

use super::{check_range, ByteSource};
use crate::{Error, Result};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Which read calls fail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum FaultPlan {
    /// No read fails.
    #[default]
    None,
    /// Read call number `index` (0-based, counted from when the plan took effect) fails, and so do
    /// the `times - 1` calls after it.
    AtRead { index: u64, times: u32 },
    /// Read calls overlapping the absolute byte range `range` fail, `times` of them in total;
    /// `u32::MAX` means every such call.
    InRange { range: Range<u64>, times: u32 },
}

/// How slow and how flaky a `ThrottledSource` is. The default passes reads straight through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Bytes per second shared by all concurrent readers, as one disk would; `None` is unlimited.
    pub bandwidth: Option<u64>,
    /// Added to every read; concurrent reads wait out their latencies side by side.
    pub latency: Duration,
    /// Read calls that fail with an injected I/O error.
    pub faults: FaultPlan,
}

/// What a `ThrottledSource` has served so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ThrottleStats {
    /// Read calls that succeeded.
    pub reads: u64,
    /// Bytes delivered by those calls.
    pub bytes_read: u64,
    /// Read calls failed by the fault plan.
    pub faults_injected: u64,
    /// Transfer time reserved on the shared bandwidth (zero when unlimited).
    pub busy: Duration,
}

/// The shared "disk" timeline: when the last reserved transfer ends, and the total reserved.
#[derive(Debug)]
struct Timeline {
    busy_until: Instant,
    busy: Duration,
}

/// The fault plan with its progress: calls seen since it took effect, failures left in a range.
#[derive(Debug)]
struct FaultState {
    plan: FaultPlan,
    calls: u64,
    range_failures: u32,
}

impl FaultState {
    fn new(plan: FaultPlan) -> Self {
        Self {
            plan,
            calls: 0,
            range_failures: 0,
        }
    }

    /// Numbers this call and says whether the plan fails it.
    fn next_call_fails(&mut self, offset: u64, len: u64) -> bool {
        let call = self.calls;
        self.calls += 1;
        match &self.plan {
            FaultPlan::None => false,
            FaultPlan::AtRead { index, times } => {
                call >= *index && call - *index < u64::from(*times)
            }
            FaultPlan::InRange { range, times } => {
                // An empty read touches no byte, so it cannot overlap the range.
                let overlaps = len > 0 && offset < range.end && range.start < offset + len;
                if !overlaps {
                    return false;
                }
                if *times == u32::MAX {
                    return true;
                }
                if self.range_failures < *times {
                    self.range_failures += 1;
                    return true;
                }
                false
            }
        }
    }
}

/// A `ByteSource` that paces, delays and fails reads of the source it wraps.
///
/// ## Design
/// Bandwidth is one timeline shared by every caller: a read reserves `len / bandwidth` seconds
/// starting when the previous reservation ends (or now, if the disk is idle), then sleeps outside
/// the lock until its slot is over. Two threads reading N bytes each therefore take at least
/// 2N / bandwidth together, like two readers of one disk. Latency is slept before reserving, so
/// concurrent reads overlap their latencies but not their transfers. An injected failure returns at
/// once, without latency or bandwidth, so fault tests stay fast; it leaves the buffer untouched.
///
/// `slice` is always `None` and `is_mapped` false even when the inner source is memory-resident:
/// a throttled disk that handed out borrowed bytes would bypass the throttle, so the weight store
/// goes through its host cache, which is the tier these tests measure.
#[derive(Debug)]
pub struct ThrottledSource<S: ByteSource> {
    inner: S,
    bandwidth: Option<u64>,
    latency: Duration,
    timeline: Mutex<Timeline>,
    faults: Mutex<FaultState>,
    reads: AtomicU64,
    bytes_read: AtomicU64,
    faults_injected: AtomicU64,
}

/// Locks a mutex whose data stays consistent even if a holder panicked (counters and a plan).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: ByteSource> ThrottledSource<S> {
    /// Wraps `inner`; a bandwidth of zero bytes per second is a config error, since no read would end.
    pub fn new(inner: S, config: ThrottleConfig) -> Result<Self> {
        if config.bandwidth == Some(0) {
            return Err(Error::Config(
                "throttle bandwidth must be positive (use None for unlimited)".into(),
            ));
        }
        Ok(Self {
            inner,
            bandwidth: config.bandwidth,
            latency: config.latency,
            timeline: Mutex::new(Timeline {
                busy_until: Instant::now(),
                busy: Duration::ZERO,
            }),
            faults: Mutex::new(FaultState::new(config.faults)),
            reads: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            faults_injected: AtomicU64::new(0),
        })
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Counters so far.
    pub fn stats(&self) -> ThrottleStats {
        ThrottleStats {
            reads: self.reads.load(Ordering::SeqCst),
            bytes_read: self.bytes_read.load(Ordering::SeqCst),
            faults_injected: self.faults_injected.load(Ordering::SeqCst),
            busy: lock(&self.timeline).busy,
        }
    }

    /// Replaces the fault plan; `AtRead` indices count from this call on.
    pub fn set_faults(&self, plan: FaultPlan) {
        *lock(&self.faults) = FaultState::new(plan);
    }

    /// Reserves `len` bytes of transfer on the shared timeline and returns when that slot ends.
    fn reserve(&self, bandwidth: u64, len: u64) -> Instant {
        let nanos = u128::from(len) * 1_000_000_000 / u128::from(bandwidth);
        // Saturate rather than overflow: a read that long is a test mistake, not a reason to panic.
        let transfer = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        let mut t = lock(&self.timeline);
        let start = t.busy_until.max(Instant::now());
        let end = start.checked_add(transfer).unwrap_or(start);
        t.busy_until = end;
        t.busy = t.busy.saturating_add(transfer);
        end
    }
}

impl<S: ByteSource> ByteSource for ThrottledSource<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len() as u64;
        // An out-of-range read is the caller's mistake, not the disk's: it is neither numbered for
        // the fault plan nor paced.
        check_range(offset, len, self.inner.len())?;
        if lock(&self.faults).next_call_fails(offset, len) {
            self.faults_injected.fetch_add(1, Ordering::SeqCst);
            return Err(Error::Io(std::io::Error::other(format!(
                "injected read failure: {len} bytes at offset {offset}"
            ))));
        }
        if !self.latency.is_zero() {
            std::thread::sleep(self.latency);
        }
        if let Some(bandwidth) = self.bandwidth {
            let end = self.reserve(bandwidth, len);
            let wait = end.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
        self.inner.read_at(offset, buf)?;
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.bytes_read.fetch_add(len, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemorySource;

    fn source(len: usize, config: ThrottleConfig) -> ThrottledSource<MemorySource> {
        let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
        ThrottledSource::new(MemorySource::new(bytes), config).unwrap()
    }

    fn faults(plan: FaultPlan) -> ThrottleConfig {
        ThrottleConfig {
            faults: plan,
            ..ThrottleConfig::default()
        }
    }

    /// Whether read `offset..offset+len` succeeds, checking the bytes when it does.
    fn read_ok(src: &ThrottledSource<MemorySource>, offset: u64, len: usize) -> bool {
        let mut buf = vec![0xAAu8; len];
        match src.read_at(offset, &mut buf) {
            Ok(()) => {
                let want: Vec<u8> = (offset..offset + len as u64).map(|i| i as u8).collect();
                assert_eq!(buf, want);
                true
            }
            Err(Error::Io(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::Other);
                let msg = e.to_string();
                assert!(
                    msg.contains("injected")
                        && msg.contains(&format!("offset {offset}"))
                        && msg.contains(&format!("{len} bytes")),
                    "{msg}"
                );
                assert!(
                    buf.iter().all(|&b| b == 0xAA),
                    "a failed read fills nothing"
                );
                false
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn the_default_passes_reads_through_and_counts_them() {
        let src = source(1000, ThrottleConfig::default());
        assert_eq!(src.len(), 1000);
        assert!(read_ok(&src, 10, 100));
        assert!(read_ok(&src, 990, 10));
        assert_eq!(
            src.stats(),
            ThrottleStats {
                reads: 2,
                bytes_read: 110,
                faults_injected: 0,
                busy: Duration::ZERO,
            }
        );
    }

    #[test]
    fn bandwidth_paces_a_read_and_counts_busy_time() {
        // 40 000 bytes at 1 MB/s is a 40 ms transfer.
        let src = source(
            40_000,
            ThrottleConfig {
                bandwidth: Some(1_000_000),
                ..ThrottleConfig::default()
            },
        );
        let start = Instant::now();
        assert!(read_ok(&src, 0, 40_000));
        let elapsed = start.elapsed();
        assert_eq!(src.stats().busy, Duration::from_millis(40));
        assert!(elapsed >= Duration::from_millis(40), "{elapsed:?}");
    }

    #[test]
    fn concurrent_readers_share_one_bandwidth() {
        let n = 30_000usize;
        let src = source(
            2 * n,
            ThrottleConfig {
                bandwidth: Some(1_000_000),
                ..ThrottleConfig::default()
            },
        );
        let start = Instant::now();
        std::thread::scope(|s| {
            let src = &src;
            let a = s.spawn(move || read_ok(src, 0, n));
            let b = s.spawn(move || read_ok(src, n as u64, n));
            assert!(a.join().unwrap() && b.join().unwrap());
        });
        let elapsed = start.elapsed();
        // Each alone would take 30 ms; sharing the disk, both together take at least 60 ms.
        assert!(elapsed >= Duration::from_millis(60), "{elapsed:?}");
        let stats = src.stats();
        assert_eq!(stats.busy, Duration::from_millis(60));
        assert_eq!((stats.reads, stats.bytes_read), (2, 2 * n as u64));
    }

    #[test]
    fn latency_is_added_to_every_read() {
        let src = source(
            100,
            ThrottleConfig {
                latency: Duration::from_millis(15),
                ..ThrottleConfig::default()
            },
        );
        let start = Instant::now();
        assert!(read_ok(&src, 0, 10));
        assert!(read_ok(&src, 10, 10));
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(src.stats().busy, Duration::ZERO, "latency is not transfer");
    }

    #[test]
    fn a_fault_at_read_k_fails_that_call_and_the_next_times_minus_one() {
        let src = source(100, faults(FaultPlan::AtRead { index: 2, times: 1 }));
        let results: Vec<bool> = (0..5).map(|i| read_ok(&src, i * 10, 10)).collect();
        assert_eq!(results, [true, true, false, true, true]);

        let src = source(100, faults(FaultPlan::AtRead { index: 1, times: 3 }));
        let results: Vec<bool> = (0..6).map(|i| read_ok(&src, i * 10, 10)).collect();
        assert_eq!(results, [true, false, false, false, true, true]);
        let stats = src.stats();
        assert_eq!(
            (stats.reads, stats.bytes_read, stats.faults_injected),
            (3, 30, 3)
        );
    }

    #[test]
    fn range_faults_hit_overlapping_reads_at_most_times() {
        let plan = FaultPlan::InRange {
            range: 50..60,
            times: 2,
        };
        let src = source(100, faults(plan));
        assert!(read_ok(&src, 40, 10), "ends where the range starts");
        assert!(read_ok(&src, 60, 10), "starts where the range ends");
        assert!(read_ok(&src, 55, 0), "an empty read overlaps nothing");
        assert!(!read_ok(&src, 45, 10));
        assert!(read_ok(&src, 0, 20), "elsewhere is unaffected");
        assert!(!read_ok(&src, 59, 1));
        assert!(read_ok(&src, 50, 10), "two failures used up");
        assert_eq!(src.stats().faults_injected, 2);

        let always = FaultPlan::InRange {
            range: 0..1,
            times: u32::MAX,
        };
        let src = source(100, faults(always));
        assert!((0..10).all(|_| !read_ok(&src, 0, 100)));
        assert_eq!(src.stats().faults_injected, 10);
    }

    #[test]
    fn set_faults_injects_and_clears_at_run_time() {
        let src = source(100, ThrottleConfig::default());
        assert!(read_ok(&src, 0, 10));
        // Indices count from when the plan is set, not from the first read ever.
        src.set_faults(FaultPlan::AtRead { index: 0, times: 1 });
        assert!(!read_ok(&src, 0, 10));
        src.set_faults(FaultPlan::InRange {
            range: 0..100,
            times: u32::MAX,
        });
        assert!(!read_ok(&src, 20, 10));
        src.set_faults(FaultPlan::None);
        assert!(read_ok(&src, 20, 10));
        let stats = src.stats();
        assert_eq!((stats.reads, stats.faults_injected), (2, 2));
    }

    #[test]
    fn reads_past_the_end_stay_read_past_end_errors() {
        let src = source(100, faults(FaultPlan::AtRead { index: 0, times: 1 }));
        let mut buf = [0u8; 10];
        let err = src.read_at(95, &mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                Error::ReadPastEnd {
                    offset: 95,
                    len: 10,
                    source_len: 100
                }
            ),
            "{err}"
        );
        let err = src.read_at(u64::MAX, &mut buf).unwrap_err();
        assert!(matches!(err, Error::ReadPastEnd { .. }), "{err}");
        // Those were not numbered: the planned fault still hits the first in-range call.
        assert!(!read_ok(&src, 0, 10));
        assert_eq!(src.stats().reads, 0);
    }

    #[test]
    fn a_throttled_source_never_lends_its_bytes() {
        let src = source(100, ThrottleConfig::default());
        assert!(src.inner().is_mapped());
        assert!(!src.is_mapped());
        assert!(src.slice(0, 10).is_none());
    }

    #[test]
    fn zero_bandwidth_is_a_config_error() {
        let config = ThrottleConfig {
            bandwidth: Some(0),
            ..ThrottleConfig::default()
        };
        let err = ThrottledSource::new(MemorySource::new(vec![0u8; 4]), config).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
    }
}
