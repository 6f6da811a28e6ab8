//! synth streams: writing a model several times larger than the memory it may use, measured with a
//! counting allocator, so a 7B-shape file never needs its size in RAM.

use engine_core::quant::GgmlType;
use engine_core::synth::{self, SynthConfig};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Counts bytes written without keeping them.
struct CountingSink(u64);

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn writing_a_model_needs_a_bounded_amount_of_memory() {
    // 4 layers of a 7B-wide model with a 32k vocabulary: about 190 MB of Q4_0.
    let cfg = SynthConfig {
        layers: 4,
        ..SynthConfig::llama_7b(GgmlType::Q4_0)
    };
    let expected = cfg.tensor_bytes().unwrap();
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let sink = synth::write(&cfg, CountingSink(0), 2, |_, _| {}).unwrap();
    let peak = PEAK.load(Ordering::SeqCst) - base;
    assert!(sink.0 > expected, "header and data: {} bytes", sink.0);
    assert!(
        peak < 48 << 20,
        "peak allocation {peak} bytes while writing {} bytes",
        sink.0
    );
    assert!(
        (peak as u64) * 4 < sink.0,
        "peak {peak} is not a small fraction of {}",
        sink.0
    );
}
