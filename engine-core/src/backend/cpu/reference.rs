//! Test-only: naive `f64` implementations of every op, seeded random inputs and weights of every
//! dequantizable type, and comparison helpers shared by the per-op tests.

use super::{CpuBackend, CpuBuffer, CpuConfig, CpuWeight, MatmulPath};
use crate::backend::{Backend, RopeStyle, WeightDesc};
use crate::quant::{dequantize_to_vec, GgmlType};
use crate::synth::SplitMix64;
use crate::Error;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls a future that is ready at once (the CPU backend's read-backs are `std::future::ready`).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("CPU backend future was not ready"),
    }
}

pub fn backend(threads: usize) -> CpuBackend {
    CpuBackend::new(CpuConfig {
        threads,
        path: MatmulPath::Exact,
    })
    .expect("backend")
}

pub fn buf(v: Vec<f32>) -> CpuBuffer {
    CpuBuffer::from(v)
}

/// Uniform values in `[-scale, scale)`.
pub fn rand_vec(rng: &mut SplitMix64, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| rng.next_signed_unit() * scale).collect()
}

pub fn rng(seed: u64) -> SplitMix64 {
    SplitMix64::new(seed)
}

/// A weight of `rows` rows of `k` values of `ty` (quantized from random values where `quantize`
/// supports `ty`, random blocks otherwise), uploaded, plus its dequantized values.
pub fn weight(
    b: &CpuBackend,
    rng: &mut SplitMix64,
    ty: GgmlType,
    k: usize,
    rows: usize,
) -> (CpuWeight, Vec<f32>) {
    let bytes = crate::quant::random_weight(rng, ty, k * rows, 1.0).expect("whole blocks");
    let values = dequantize_to_vec(ty, &bytes).expect("dequantize");
    assert!(
        values.iter().all(|v| v.is_finite()),
        "{ty}: non-finite weights"
    );
    let dims = [k as u64, rows as u64];
    let desc = WeightDesc {
        name: "w",
        ggml_type: ty,
        dims: &dims,
    };
    (b.upload_weight(desc, &bytes).expect("upload"), values)
}

/// An F32 weight holding `values` (a bias or a norm weight).
pub fn f32_weight(b: &CpuBackend, values: &[f32]) -> CpuWeight {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let dims = [values.len() as u64];
    let desc = WeightDesc {
        name: "v",
        ggml_type: GgmlType::F32,
        dims: &dims,
    };
    b.upload_weight(desc, &bytes).expect("upload")
}

pub fn download(b: &CpuBackend, buf: &CpuBuffer, len: usize) -> Vec<f32> {
    block_on(b.download(buf, len)).expect("download")
}

/// A row length that is a small whole number of blocks of `ty`, odd for the float types.
pub fn row_len_for(ty: GgmlType, blocks: usize) -> usize {
    match ty.block_size() {
        1 => 37 * blocks,
        bs => bs * blocks,
    }
}

/// Asserts `|got[i] - want[i]| <= tol[i]` everywhere, naming the first failure.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, ((&g, &w), &t)) in got.iter().zip(want).zip(tol).enumerate() {
        let err = (f64::from(g) - w).abs();
        assert!(
            err <= t,
            "{what}: [{i}] got {g}, want {w} (error {err:e} > tolerance {t:e})"
        );
    }
}

/// Asserts `result` is `Error::Shape` for `op`.
pub fn assert_shape_err<T: std::fmt::Debug>(result: crate::Result<T>, op: &str) {
    match result {
        Err(Error::Shape { op: o, .. }) if o == op => {}
        other => panic!("expected a shape error in {op}, got {other:?}"),
    }
}

/// `out[m][n] = Σ_k x[m][k]·w[n][k] (+ bias[n])` in `f64`, with `Σ_k |x·w|` per output (the scale
/// of `f32` rounding error in the dot product).
pub fn matmul_f64(
    w: &[f32],
    bias: Option<&[f32]>,
    x: &[f32],
    m: usize,
    n: usize,
    k: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut out = vec![0.0; m * n];
    let mut mag = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut a) = (0.0f64, 0.0f64);
            for l in 0..k {
                let p = f64::from(x[i * k + l]) * f64::from(w[j * k + l]);
                s += p;
                a += p.abs();
            }
            let b = bias.map_or(0.0, |b| f64::from(b[j]));
            out[i * n + j] = s + b;
            mag[i * n + j] = a + b.abs();
        }
    }
    (out, mag)
}

pub fn rms_norm_f64(x: &[f32], w: &[f32], rows: usize, dim: usize, eps: f32) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows * dim);
    for r in 0..rows {
        let row = &x[r * dim..(r + 1) * dim];
        let ms = row.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / dim as f64;
        let inv = 1.0 / (ms + f64::from(eps)).sqrt();
        out.extend(
            row.iter()
                .zip(w)
                .map(|(&v, &g)| f64::from(v) * inv * f64::from(g)),
        );
    }
    out
}

#[allow(clippy::too_many_arguments)]
pub fn rope_f64(
    x: &[f32],
    tokens: usize,
    heads: usize,
    head_dim: usize,
    rope_dim: usize,
    pos0: usize,
    freq_base: f32,
    freq_scale: f32,
    style: RopeStyle,
) -> Vec<f64> {
    let mut out: Vec<f64> = x[..tokens * heads * head_dim]
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    for t in 0..tokens {
        let pos = (pos0 + t) as f64 * f64::from(freq_scale);
        for h in 0..heads {
            let base = (t * heads + h) * head_dim;
            for i in 0..rope_dim / 2 {
                let theta = pos * f64::from(freq_base).powf(-2.0 * i as f64 / rope_dim as f64);
                let (a, b) = match style {
                    RopeStyle::Normal => (base + 2 * i, base + 2 * i + 1),
                    RopeStyle::Neox => (base + i, base + i + rope_dim / 2),
                };
                let (x0, x1) = (out[a], out[b]);
                out[a] = x0 * theta.cos() - x1 * theta.sin();
                out[b] = x0 * theta.sin() + x1 * theta.cos();
            }
        }
    }
    out
}

/// Causal GQA in `f64`; caches are rows of `kv_heads·head_dim`.
#[allow(clippy::too_many_arguments)]
pub fn attention_f64(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    tokens: usize,
    pos0: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    scale: f32,
) -> Vec<f64> {
    let group = heads / kv_heads;
    let kv_row = kv_heads * head_dim;
    let mut out = vec![0.0; tokens * heads * head_dim];
    for t in 0..tokens {
        for h in 0..heads {
            let qv = &q[(t * heads + h) * head_dim..][..head_dim];
            let kvh = h / group;
            let scores: Vec<f64> = (0..=pos0 + t)
                .map(|j| {
                    let kr = &k[j * kv_row + kvh * head_dim..][..head_dim];
                    let d: f64 = qv
                        .iter()
                        .zip(kr)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    d * f64::from(scale)
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            let o = &mut out[(t * heads + h) * head_dim..][..head_dim];
            for (j, &p) in e.iter().enumerate() {
                let vr = &v[j * kv_row + kvh * head_dim..][..head_dim];
                for (acc, &val) in o.iter_mut().zip(vr) {
                    *acc += p / sum * f64::from(val);
                }
            }
        }
    }
    out
}

pub fn softmax_f64(x: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let row: Vec<f64> = x[r * cols..(r + 1) * cols]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
        out.extend(row.iter().map(|v| (v - max).exp() / sum));
    }
    out
}

/// `gelu_tanh(gate) · up` in f64.
pub fn gelu_mul_f64(gate: &[f32], up: &[f32]) -> Vec<f64> {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    gate.iter()
        .zip(up)
        .map(|(&g, &u)| {
            let g = f64::from(g);
            0.5 * g * (1.0 + (c * (g + 0.044715 * g * g * g)).tanh()) * f64::from(u)
        })
        .collect()
}

pub fn silu_mul_f64(gate: &[f32], up: &[f32]) -> Vec<f64> {
    gate.iter()
        .zip(up)
        .map(|(&g, &u)| {
            let g = f64::from(g);
            g / (1.0 + (-g).exp()) * f64::from(u)
        })
        .collect()
}
