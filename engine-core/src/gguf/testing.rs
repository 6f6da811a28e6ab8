//! Support for tests and fuzzing of the GGUF reader, shared by the unit tests, the integration
//! tests and the cargo-fuzz target; not a stable API. It holds a sample file that uses every
//! metadata value type, and an allocator wrapper that measures a thread's peak heap use.

use super::{Array, GgufFile, GgufWriter, Metadata, TensorSpec, Value};
use crate::quant::GgmlType;
use crate::source::MemorySource;
use crate::Result;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Metadata with one key of every value type, arrays of every element type, nested arrays, an
/// empty array and `general.alignment` = 64.
pub fn sample_metadata() -> Metadata {
    let mut m = Metadata::new();
    m.set("general.architecture", Value::String("llama".into()));
    m.set("general.alignment", Value::U32(64));
    m.set("u8", Value::U8(7));
    m.set("i8", Value::I8(-7));
    m.set("u16", Value::U16(700));
    m.set("i16", Value::I16(-700));
    m.set("i32", Value::I32(-70000));
    m.set("f32", Value::F32(1.5e-5));
    m.set("bool", Value::Bool(true));
    m.set("u64", Value::U64(u64::MAX));
    m.set("i64", Value::I64(i64::MIN));
    m.set("f64", Value::F64(std::f64::consts::PI));
    m.set(
        "strings",
        Value::Array(Array::String(vec![
            "a".into(),
            "é€😀".into(),
            String::new(),
        ])),
    );
    m.set(
        "nested",
        Value::Array(Array::Array(vec![
            Array::I32(vec![1, -2]),
            Array::String(vec!["x".into()]),
            Array::Array(vec![Array::U8(vec![1, 2, 3]), Array::Bool(vec![])]),
        ])),
    );
    m.set("empty", Value::Array(Array::F64(vec![])));
    m.set("a.u8", Value::Array(Array::U8(vec![0, 1, 255])));
    m.set("a.i8", Value::Array(Array::I8(vec![-128, 127])));
    m.set("a.u16", Value::Array(Array::U16(vec![1, 65535])));
    m.set("a.i16", Value::Array(Array::I16(vec![-1, 300])));
    m.set("a.u32", Value::Array(Array::U32(vec![1, u32::MAX])));
    m.set("a.i32", Value::Array(Array::I32(vec![i32::MIN, 5])));
    m.set("a.f32", Value::Array(Array::F32(vec![0.5, -1.0, 3e38])));
    m.set("a.bool", Value::Array(Array::Bool(vec![true, false])));
    m.set("a.u64", Value::Array(Array::U64(vec![u64::MAX, 0])));
    m.set("a.i64", Value::Array(Array::I64(vec![-3, i64::MAX])));
    m.set("a.f64", Value::Array(Array::F64(vec![1e300, -0.0])));
    m
}

/// A few tensors of different types and shapes, one of them empty.
pub fn sample_tensors() -> Vec<TensorSpec> {
    vec![
        TensorSpec::new("token_embd.weight", &[4, 2], GgmlType::F32),
        TensorSpec::new("empty", &[0, 3], GgmlType::F16),
        TensorSpec::new("blk.0.attn_q.weight", &[32, 3], GgmlType::Q8_0),
        TensorSpec::new("blk.0.ffn_down.weight", &[256, 2], GgmlType::Q4_K),
        TensorSpec::new("output_norm.weight", &[5], GgmlType::F16),
    ]
}

/// A complete, valid GGUF file of `sample_metadata` and `sample_tensors`, data bytes counting up.
pub fn sample_file() -> Result<Vec<u8>> {
    let specs = sample_tensors();
    let sizes = specs
        .iter()
        .map(TensorSpec::n_bytes)
        .collect::<Result<Vec<u64>, _>>()?;
    let mut w = GgufWriter::new(Vec::new(), &sample_metadata(), specs)?;
    for size in sizes.into_iter().filter(|&n| n > 0) {
        let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
        w.write_tensor_data(&data)?;
    }
    w.finish()
}

/// A `GlobalAlloc` that forwards to `System` and counts, per thread, the bytes allocated now and
/// the peak since `measure_peak` began. Install it in a test binary with
/// `#[global_allocator] static ALLOC: CountingAlloc = CountingAlloc;`.
///
/// ## Design
/// Counting per thread keeps the measurement exact while the test harness runs other tests on
/// other threads. A block freed on another thread than the one that allocated it lowers that
/// thread's count, so counts are signed; only the peak above the starting count is reported.
pub struct CountingAlloc;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    // `try_with`: never panic inside the allocator, even while a thread is being torn down.
    let _ = CURRENT.try_with(|current| {
        let now = current.get().saturating_add(delta);
        current.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now);
            }
        });
    });
}

fn signed(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees carry over; the bookkeeping only touches this thread's counters and never unwinds.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract (non-zero size).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(signed(layout.size()));
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(signed(layout.size()));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a block this allocator (hence `System`) returned, with its
        // layout.
        unsafe { System.dealloc(ptr, layout) };
        track(-signed(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller passes a block `System` returned, its layout and a valid new size.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(signed(new_size) - signed(layout.size()));
        }
        p
    }
}

/// Runs `f` and returns its result with the most bytes this thread held during it, above what it
/// held when `f` began. Always 0 unless `CountingAlloc` is the global allocator.
pub fn measure_peak<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = CURRENT.with(Cell::get);
    let outer_peak = PEAK.with(|p| p.replace(start));
    let result = f();
    let peak = PEAK.with(Cell::get);
    PEAK.with(|p| p.set(outer_peak.max(peak)));
    (result, usize::try_from(peak - start).unwrap_or(0))
}

/// Whether `CountingAlloc` is installed and counting on this thread.
pub fn counting_is_active() -> bool {
    let (_, peak) = measure_peak(|| std::hint::black_box(Vec::<u8>::with_capacity(4096)));
    peak >= 4096
}

/// Most heap bytes `GgufFile::read` may take for a `file_len`-byte file: a fixed allowance (the
/// read window, capped reservations) plus a small multiple of the bytes it parses. Real model
/// headers take about 3 times their size; dense headers of one-byte entries up to about 12.
pub fn read_memory_bound(file_len: usize) -> usize {
    (1 << 20) + 16 * file_len
}

/// `GgufFile::read` over `bytes`, with the peak heap bytes it used (the copy into the source is
/// made before measuring).
pub fn read_measured(bytes: &[u8]) -> (Result<GgufFile>, usize) {
    let src = MemorySource::new(bytes);
    measure_peak(|| GgufFile::read(&src))
}
