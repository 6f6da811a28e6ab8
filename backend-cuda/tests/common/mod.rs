//! Shared by the CUDA conformance tests: the device (or a printed skip), the CPU reference beside
//! it, random inputs on both, and the comparison.
#![allow(dead_code)]

use backend_cuda::{CudaBackend, CudaBuffer, CudaWeight};
use engine_core::backend::cpu::{CpuBackend, CpuBuffer, CpuConfig, CpuWeight, MatmulPath};
use engine_core::backend::{Backend, WeightDesc};
use engine_core::quant::{random_weight, GgmlType};
use engine_core::rng::SplitMix64;
use std::sync::OnceLock;

/// The CUDA backend on device 0, shared by every test of the binary (kernels compile once), or
/// `None` with the reason printed. With `SLUICE_REQUIRE_CUDA=1` a missing driver, device or NVRTC
/// fails instead, so a GPU machine cannot skip these tests silently.
pub fn gpu() -> Option<&'static CudaBackend> {
    static GPU: OnceLock<Result<CudaBackend, String>> = OnceLock::new();
    match GPU.get_or_init(|| CudaBackend::new(0).map_err(|e| e.to_string())) {
        Ok(b) => Some(b),
        Err(e) if std::env::var("SLUICE_REQUIRE_CUDA").as_deref() == Ok("1") => {
            panic!("SLUICE_REQUIRE_CUDA=1 but CUDA is unavailable: {e}")
        }
        Err(e) => {
            println!("skipped: {e}");
            None
        }
    }
}

/// The device and the CPU reference (exact path: f32 dequantized weights, f32 accumulation), with
/// a seeded generator for inputs.
pub struct Rig {
    pub g: &'static CudaBackend,
    pub c: CpuBackend,
    pub r: SplitMix64,
}

impl Rig {
    /// `None` (skipped) without a device.
    pub fn new(seed: u64) -> Option<Self> {
        let g = gpu()?;
        let c = CpuBackend::new(CpuConfig {
            threads: 2,
            path: MatmulPath::Exact,
        })
        .expect("cpu backend");
        Some(Self {
            g,
            c,
            r: SplitMix64::new(seed),
        })
    }

    /// `n` values uniform in ±`scale`.
    pub fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.r.next_signed_unit() * scale).collect()
    }

    /// `v` on both backends.
    pub fn both(&self, v: &[f32]) -> (CudaBuffer, CpuBuffer) {
        let mut gb = self.g.alloc(v.len()).expect("alloc");
        self.g.write(&mut gb, v).expect("write");
        (gb, CpuBuffer::from(v.to_vec()))
    }

    /// `len` random values in ±`scale` encoded as `ty` (random valid blocks for types the engine
    /// cannot quantize), uploaded to both backends.
    pub fn weight(&mut self, ty: GgmlType, dims: &[u64], scale: f32) -> (CudaWeight, CpuWeight) {
        let len = dims.iter().product::<u64>() as usize;
        let bytes = random_weight(&mut self.r, ty, len, scale).expect("whole blocks");
        let desc = WeightDesc {
            name: "w",
            ggml_type: ty,
            dims,
        };
        (
            self.g.upload_weight(desc, &bytes).expect("cuda upload"),
            self.c.upload_weight(desc, &bytes).expect("cpu upload"),
        )
    }

    /// The first `len` values of a device buffer.
    pub fn read(&self, b: &CudaBuffer, len: usize) -> Vec<f32> {
        pollster::block_on(self.g.download(b, len)).expect("download")
    }

    /// The CPU's dequantization of `w`.
    pub fn cpu_values(&self, w: &CpuWeight) -> Vec<f32> {
        let mut out = CpuBuffer::from(vec![0.0; w.elements()]);
        self.c.dequant(w, &mut out).expect("cpu dequant");
        out.into_vec()
    }
}

/// Asserts `|got - want| <= atol + rtol * |want|` everywhere (NaN matching NaN), naming the first
/// index that is not.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&x, &y)) in got.iter().zip(want).enumerate() {
        let tol = atol + rtol * y.abs();
        assert!(
            (x - y).abs() <= tol || (x.is_nan() && y.is_nan()),
            "{what}: index {i}: cuda {x} vs cpu {y} (tolerance {tol})"
        );
    }
}
