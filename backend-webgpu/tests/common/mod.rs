//! Shared by the WebGPU conformance tests: the adapter (or a printed skip), the CPU reference, and
//! comparison helpers.
#![allow(dead_code)]

use backend_webgpu::{KernelOptions, WebGpuBackend};
use engine_core::backend::cpu::{CpuBackend, CpuBuffer, CpuConfig, MatmulPath};
use engine_core::backend::Backend;
use engine_core::rng::SplitMix64;

/// The WebGPU backend on the first adapter, or `None` with the reason printed. With
/// `SLUICE_REQUIRE_WEBGPU=1` (set by the test script where lavapipe is installed) a missing
/// adapter fails instead, so CI cannot skip these tests silently. One device serves every test of
/// the binary (opening one per proptest case is slow), which also exercises sharing it.
pub fn gpu() -> Option<WebGpuBackend> {
    static GPU: std::sync::OnceLock<Result<WebGpuBackend, String>> = std::sync::OnceLock::new();
    match GPU.get_or_init(|| WebGpuBackend::new().map_err(|e| e.to_string())) {
        Ok(b) => Some(b.clone()),
        Err(e) if std::env::var("SLUICE_REQUIRE_WEBGPU").as_deref() == Ok("1") => {
            panic!("SLUICE_REQUIRE_WEBGPU=1 but there is no WebGPU adapter: {e}")
        }
        Err(e) => {
            println!("skipped: {e}");
            None
        }
    }
}

/// The same device with only the baseline kernels (no subgroups, the fallback every adapter runs)
/// and weights split into parts of `rows` rows of `row_bytes` (the path of tensors larger than a
/// storage binding).
pub fn fallback_split(g: &WebGpuBackend, row_bytes: usize, rows: usize) -> WebGpuBackend {
    g.clone().with_options(KernelOptions {
        subgroups: false,
        max_weight_part: (rows.max(1) * row_bytes.max(1)) as u64 + 3,
    })
}

/// Rows per part that split `n` rows into three parts, the last one short where `n` allows:
/// every per-part offset is exercised without a dispatch per few rows (slow on lavapipe).
pub fn rows_for_three_parts(n: usize) -> usize {
    n.div_ceil(3).max(1)
}

/// The CPU reference: exact path (f32 dequantized weights, f32 accumulation).
pub fn cpu() -> CpuBackend {
    CpuBackend::new(CpuConfig {
        threads: 2,
        path: MatmulPath::Exact,
    })
    .expect("cpu backend")
}

pub fn rand_vec(rng: &mut SplitMix64, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.next_signed_unit() * scale).collect()
}

/// Uploads `v` to the GPU.
pub fn gpu_buf(g: &WebGpuBackend, v: &[f32]) -> <WebGpuBackend as Backend>::Buffer {
    let mut b = g.alloc(v.len()).expect("alloc");
    g.write(&mut b, v).expect("write");
    b
}

pub fn cpu_buf(v: &[f32]) -> CpuBuffer {
    CpuBuffer::from(v.to_vec())
}

pub fn read(g: &WebGpuBackend, b: &<WebGpuBackend as Backend>::Buffer, len: usize) -> Vec<f32> {
    pollster::block_on(g.download(b, len)).expect("download")
}

/// Asserts `|a - b| <= atol + rtol * |b|` everywhere, naming the first index that is not.
pub fn assert_close(what: &str, a: &[f32], b: &[f32], atol: f32, rtol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        let tol = atol + rtol * y.abs();
        assert!(
            (x - y).abs() <= tol || (x.is_nan() && y.is_nan()),
            "{what}: index {i}: webgpu {x} vs cpu {y} (tolerance {tol})"
        );
    }
}
