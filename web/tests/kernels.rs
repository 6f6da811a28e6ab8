//! Every kernel family on WebGPU (the web-sys driver) and on the CPU backend in the same page,
//! compared on seeded random inputs with the tolerances of backend-webgpu's native tests:
//! matmul for each weight type (GEMV and GEMM), rms_norm, softmax, argmax and attention.
//!
//! Runs in headless Chromium (`scripts/test-web.sh`). Without an adapter the tests print why and
//! pass, unless the build had `SLUICE_REQUIRE_WEBGPU=1`, which makes that a failure.
#![cfg(target_family = "wasm")]

mod common;

use backend_webgpu::KernelOptions;
use common::{require_webgpu, webgpu_or_skip, Gpu};
use engine_core::backend::cpu::{CpuBackend, CpuBuffer, CpuConfig, MatmulPath};
use engine_core::backend::WeightDesc;
use engine_core::backend::{AttentionParams, Backend, MatmulShape, RmsNormParams, RowsParams};
use engine_core::quant::{quantize, GgmlType};
use engine_core::rng::SplitMix64;
use std::cell::RefCell;
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// Written past the output before each op: it must still be there after.
const SENTINEL: f32 = 7.0;

thread_local! {
    /// One device for the whole page: pipelines compile once per kernel, not once per test.
    static GPU: RefCell<Option<Gpu>> = const { RefCell::new(None) };
}

/// The page's WebGPU backend (opened once), or `None` with the reason printed.
async fn gpu() -> Option<Gpu> {
    if let Some(g) = GPU.with(|g| g.borrow().clone()) {
        return Some(g);
    }
    let g = webgpu_or_skip().await?;
    GPU.with(|slot| *slot.borrow_mut() = Some(g.clone()));
    Some(g)
}

/// The CPU reference: exact path (f32 dequantized weights, f32 accumulation), one thread.
fn cpu() -> CpuBackend {
    CpuBackend::new(CpuConfig {
        threads: 1,
        path: MatmulPath::Exact,
    })
    .expect("cpu backend")
}

fn rand_vec(r: &mut SplitMix64, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| r.next_signed_unit() * scale).collect()
}

fn upload(g: &Gpu, v: &[f32]) -> <Gpu as Backend>::Buffer {
    let mut b = g.alloc(v.len()).expect("alloc");
    g.write(&mut b, v).expect("write");
    b
}

async fn read(g: &Gpu, b: &<Gpu as Backend>::Buffer, len: usize) -> Vec<f32> {
    g.download(b, len).await.expect("download")
}

/// `|a - b| <= atol + rtol·|b|` everywhere, naming the first index where not.
fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        let tol = atol + rtol * b.abs();
        assert!(
            (a - b).abs() <= tol,
            "{what}: index {i}: webgpu {a} vs cpu {b} (tolerance {tol})"
        );
    }
}

/// Both backends sum the same f32 products in different orders: each output may differ by
/// `1e-5 · (Σ|x·w| + |bias|) + 1e-6`, while a wrong weight moves it by about Σ|x·w| / k.
fn matmul_tolerance(magnitude: f64, bias: f32) -> f32 {
    (1e-5 * (magnitude + f64::from(bias.abs())) + 1e-6) as f32
}

/// One matmul of `ty` (`m` tokens, `n` rows of `k`, an F32 bias or none) on both backends.
#[allow(clippy::too_many_arguments)]
async fn check_matmul(
    g: &Gpu,
    c: &CpuBackend,
    r: &mut SplitMix64,
    ty: GgmlType,
    m: usize,
    n: usize,
    k: usize,
    with_bias: bool,
) {
    let what = format!("matmul {ty} m={m} n={n} k={k} bias={with_bias}");
    let mut bytes = Vec::new();
    quantize(ty, &rand_vec(r, k * n, 1.0), &mut bytes).expect("quantize");
    let dims = [k as u64, n as u64];
    let desc = WeightDesc {
        name: "w",
        ggml_type: ty,
        dims: &dims,
    };
    let (gw, cw) = (
        g.upload_weight(desc, &bytes).expect("gpu upload"),
        c.upload_weight(desc, &bytes).expect("cpu upload"),
    );
    let bias_values = rand_vec(r, n, 0.5);
    let bias_bytes: Vec<u8> = bias_values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let bias_dims = [n as u64];
    let bias_desc = WeightDesc {
        name: "bias",
        ggml_type: GgmlType::F32,
        dims: &bias_dims,
    };
    let bias = with_bias.then(|| {
        (
            g.upload_weight(bias_desc, &bias_bytes).expect("gpu bias"),
            c.upload_weight(bias_desc, &bias_bytes).expect("cpu bias"),
        )
    });
    let x = rand_vec(r, m * k, 2.0);
    let shape = MatmulShape { m, n, k };

    let mut go = upload(g, &vec![SENTINEL; m * n + 1]);
    g.matmul(
        &gw,
        bias.as_ref().map(|b| &b.0),
        &upload(g, &x),
        &mut go,
        shape,
    )
    .unwrap_or_else(|e| panic!("{what}: gpu: {e}"));
    let mut co = CpuBuffer::from(vec![0.0; m * n]);
    let cx = CpuBuffer::from(x.clone());
    c.matmul(&cw, bias.as_ref().map(|b| &b.1), &cx, &mut co, shape)
        .unwrap_or_else(|e| panic!("{what}: cpu: {e}"));

    let got = read(g, &go, m * n + 1).await;
    assert_eq!(got[m * n], SENTINEL, "{what}: wrote past m·n");
    let mut weights = CpuBuffer::from(vec![0.0; k * n]);
    c.dequant(&cw, &mut weights).expect("cpu dequant");
    let weights = weights.as_slice();
    for t in 0..m {
        for row in 0..n {
            let magnitude: f64 = (0..k)
                .map(|i| f64::from(x[t * k + i]).abs() * f64::from(weights[row * k + i]).abs())
                .sum();
            let b = if with_bias { bias_values[row] } else { 0.0 };
            let (gv, cv) = (got[t * n + row], co.as_slice()[t * n + row]);
            let tol = matmul_tolerance(magnitude, b);
            assert!(
                (gv - cv).abs() <= tol,
                "{what}: out[{t}][{row}]: webgpu {gv} vs cpu {cv} (tolerance {tol})"
            );
        }
    }
}

/// Every weight type the WebGPU kernels decode, on the GEMV (m = 1) and GEMM paths, with the
/// subgroup GEMV where the adapter has subgroups and with the workgroup-memory fallback.
#[wasm_bindgen_test]
async fn matmul_matches_cpu_for_every_type() {
    let Some(best) = gpu().await else { return };
    let baseline = best.clone().with_options(KernelOptions {
        subgroups: false,
        ..best.options()
    });
    console_log!("kernel options: {:?}", best.options());
    for g in [best, baseline] {
        matmul_every_type(&g).await;
    }
}

async fn matmul_every_type(g: &Gpu) {
    let c = cpu();
    let mut r = SplitMix64::new(7);
    let types = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ];
    for ty in types {
        // Three whole blocks, or for float types a row that ends inside a group of eight.
        let k = match ty.block_size() {
            1 => 141,
            block => 3 * block,
        };
        check_matmul(g, &c, &mut r, ty, 1, 37, k, false).await;
        check_matmul(g, &c, &mut r, ty, 5, 37, k, true).await;
    }
}

/// Row reductions sum in another order (tree vs sequential): relative 2e-5.
const REDUCTION: (f32, f32) = (1e-6, 2e-5);

#[wasm_bindgen_test]
async fn rms_norm_matches_cpu() {
    let Some(g) = gpu().await else { return };
    let c = cpu();
    let mut r = SplitMix64::new(11);
    let (rows, dim) = (3, 577);
    for ty in [GgmlType::F32, GgmlType::F16] {
        let x = rand_vec(&mut r, rows * dim, 3.0);
        let mut bytes = Vec::new();
        quantize(ty, &rand_vec(&mut r, dim, 1.5), &mut bytes).expect("encode");
        let dims = [dim as u64];
        let desc = WeightDesc {
            name: "norm",
            ggml_type: ty,
            dims: &dims,
        };
        let p = RmsNormParams {
            rows,
            dim,
            eps: 1e-5,
        };
        let mut go = g.alloc(rows * dim).expect("alloc");
        let gw = g.upload_weight(desc, &bytes).expect("gpu upload");
        g.rms_norm(&upload(&g, &x), &gw, &mut go, p)
            .expect("gpu rms_norm");
        let mut co = CpuBuffer::from(vec![0.0; rows * dim]);
        let cw = c.upload_weight(desc, &bytes).expect("cpu upload");
        c.rms_norm(&CpuBuffer::from(x), &cw, &mut co, p)
            .expect("cpu rms_norm");
        let got = read(&g, &go, rows * dim).await;
        let (atol, rtol) = REDUCTION;
        assert_close(&format!("rms_norm {ty}"), &got, co.as_slice(), atol, rtol);
    }
}

#[wasm_bindgen_test]
async fn softmax_and_argmax_match_cpu() {
    let Some(g) = gpu().await else { return };
    let c = cpu();
    let mut r = SplitMix64::new(13);
    let (rows, cols) = (3, 1999);
    let mut x = rand_vec(&mut r, rows * cols, 8.0);
    // Ties: the first index must win on both backends.
    x[1] = 100.0;
    x[cols - 1] = 100.0;
    let p = RowsParams { rows, cols };
    let ids = g.argmax(&upload(&g, &x), p).await.expect("gpu argmax");
    let want = c
        .argmax(&CpuBuffer::from(x.clone()), p)
        .await
        .expect("cpu argmax");
    assert_eq!(ids, want, "argmax");
    let mut gs = upload(&g, &x);
    g.softmax(&mut gs, p).expect("gpu softmax");
    let mut cs = CpuBuffer::from(x);
    c.softmax(&mut cs, p).expect("cpu softmax");
    let got = read(&g, &gs, rows * cols).await;
    let (atol, rtol) = REDUCTION;
    assert_close("softmax", &got, cs.as_slice(), atol, rtol);
}

/// As backend-webgpu's attention test: relative 2e-5, and an absolute bound of one ulp of the
/// largest possible score times the largest value.
#[wasm_bindgen_test]
async fn attention_matches_cpu() {
    let Some(g) = gpu().await else { return };
    let c = cpu();
    let mut r = SplitMix64::new(17);
    // (tokens, pos0, heads, kv_heads, head_dim, window): grouped-query 2:1 and 4:1, odd head
    // dims, a sliding window.
    for (tokens, pos0, heads, kv_heads, head_dim, window) in [
        (3, 10, 4, 2, 64, 0),
        (1, 70, 4, 1, 7, 0),
        (2, 0, 2, 2, 80, 0),
        (3, 90, 4, 1, 32, 20),
    ] {
        let p = AttentionParams {
            tokens,
            pos0,
            heads,
            kv_heads,
            head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
            window,
        };
        let q = rand_vec(&mut r, tokens * heads * head_dim, 4.0);
        let kv_len = (pos0 + tokens) * kv_heads * head_dim;
        let (k, v) = (rand_vec(&mut r, kv_len, 1.0), rand_vec(&mut r, kv_len, 1.0));
        let len = tokens * heads * head_dim;
        let mut go = upload(&g, &vec![SENTINEL; len + 1]);
        g.attention(
            &upload(&g, &q),
            &upload(&g, &k),
            &upload(&g, &v),
            &mut go,
            p,
        )
        .expect("gpu attention");
        let mut co = CpuBuffer::from(vec![0.0; len]);
        let (cq, ck, cv) = (CpuBuffer::from(q), CpuBuffer::from(k), CpuBuffer::from(v));
        c.attention(&cq, &ck, &cv, &mut co, p)
            .expect("cpu attention");
        let got = read(&g, &go, len + 1).await;
        assert_eq!(got[len], SENTINEL, "{p:?}: wrote past the output");
        // Inputs are bounded by their scales: |q| ≤ 4, |k|, |v| ≤ 1.
        let score_bound = p.scale * head_dim as f32 * 4.0;
        let atol = 1e-6 + f32::EPSILON * score_bound;
        assert_close(&format!("{p:?}"), &got[..len], co.as_slice(), atol, 2e-5);
    }
}

/// Under `SLUICE_REQUIRE_WEBGPU=1` an adapter must really run a kernel, so nothing above skipped.
#[wasm_bindgen_test]
async fn an_adapter_runs_kernels_when_required() {
    let Some(g) = gpu().await else {
        assert!(!require_webgpu(), "unreachable: gpu() panics when required");
        return;
    };
    let mut a = upload(&g, &[1.0, 2.0, 3.0]);
    g.add(&mut a, &upload(&g, &[0.5, 0.25, 0.125]), 3)
        .expect("add");
    assert_eq!(read(&g, &a, 3).await, [1.5, 2.25, 3.125]);
}

/// The CPU kernels' SIMD128 versions (this module is built with `+simd128`) equal the scalar
/// reference bit for bit, as the native SIMD paths do.
#[wasm_bindgen_test]
fn cpu_simd128_kernels_equal_the_scalar_path() {
    let checked = engine_core::backend::cpu::fast::check_against_scalar(11);
    let (isas, compared) = checked.unwrap_or_else(|e| panic!("{e}"));
    console_log!("cpu kernels: {isas:?}, {compared} outputs compared with the scalar path");
    assert!(
        isas.iter().any(|i| i == "Simd128"),
        "no SIMD128 kernels in this build: {isas:?}"
    );
    assert!(compared > 0);
}
