//! WebGPU attention against the CPU backend's op: shapes drawn by proptest (grouped-query ratios
//! 1, 2 and 4, head dims that are not multiples of the workgroup), a long context, head dims that
//! take more than one workgroup slice, NaN propagation, and the shape errors.

mod common;

use backend_webgpu::WebGpuBackend;
use common::*;
use engine_core::backend::{AttentionParams, Backend};
use engine_core::rng::SplitMix64;
use engine_core::Error;
use proptest::prelude::*;
use std::sync::OnceLock;

/// Relative tolerance against the CPU op: both compute in f32 from the same inputs but in
/// different orders (the CPU dot uses 8 lanes, the kernel a sequential dot; the CPU sums the
/// weights once under the final max, the kernel per chunk of 64 keys, rescaled as the max grows),
/// and the sums of up to ~4000 weights round like sqrt(n) ulps: 2e-5 relative.
const RTOL: f32 = 2e-5;

/// Absolute tolerance: each output is a convex combination of values, so its error is absolute,
/// max|v| times the relative error of the weights, which is the rounding error of the scores: a
/// few ulps of `Σ|q_i·k_i|·scale`, itself at most `scale·head_dim·max|q|·max|k|`. One ulp of that
/// bound (plus 1e-6 for outputs near 0) is ~10x the worst difference measured over 300 random
/// shapes (6.6e-7 at head_dim 128 with |q| up to 4, where the bound gives 6.4e-6).
fn atol(p: AttentionParams, q: &[f32], k: &[f32], v: &[f32]) -> f32 {
    // `f32::max` skips the NaN the NaN test plants.
    let amax = |x: &[f32]| x.iter().fold(0f32, |m, &y| m.max(y.abs()));
    let score_bound = p.scale.abs() * p.head_dim as f32 * amax(q) * amax(k);
    amax(v) * (1e-6 + f32::EPSILON * score_bound)
}

/// One adapter for every case: creating a device and compiling the pipeline per case would
/// dominate the runtime on a software adapter.
fn shared_gpu() -> Option<&'static WebGpuBackend> {
    static GPU: OnceLock<Option<WebGpuBackend>> = OnceLock::new();
    GPU.get_or_init(gpu).as_ref()
}

fn params(
    tokens: usize,
    pos0: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
) -> AttentionParams {
    AttentionParams {
        tokens,
        pos0,
        heads,
        kv_heads,
        head_dim,
        scale: 1.0 / (head_dim as f32).sqrt(),
        window: 0,
    }
}

/// Random `q` (scaled by `q_mag`, to make the softmax peaked or flat) and caches of `extra` rows
/// more than the op may read.
fn inputs(
    seed: u64,
    p: AttentionParams,
    q_mag: f32,
    extra: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut r = SplitMix64::new(seed);
    let q = rand_vec(&mut r, p.tokens * p.heads * p.head_dim, q_mag);
    let kv = (p.pos0 + p.tokens + extra) * p.kv_heads * p.head_dim;
    (q, rand_vec(&mut r, kv, 1.0), rand_vec(&mut r, kv, 1.0))
}

/// Runs both backends and compares; the GPU `out` is longer than needed and prefilled, to check
/// that nothing past `tokens·heads·head_dim` is written. Returns the output.
fn check(g: &WebGpuBackend, p: AttentionParams, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f32> {
    let len = p.tokens * p.heads * p.head_dim;
    let mut go = gpu_buf(g, &vec![7.0; len + 5]);
    g.attention(&gpu_buf(g, q), &gpu_buf(g, k), &gpu_buf(g, v), &mut go, p)
        .expect("webgpu attention");
    let mut got = read(g, &go, len + 5);
    let mut co = cpu_buf(&vec![0.0; len]);
    cpu()
        .attention(&cpu_buf(q), &cpu_buf(k), &cpu_buf(v), &mut co, p)
        .expect("cpu attention");
    let atol = atol(p, q, k, v);
    assert_close(&format!("{p:?}"), &got[..len], co.as_slice(), atol, RTOL);
    assert_eq!(&got[len..], &[7.0; 5], "{p:?}: wrote past the output");
    got.truncate(len);
    got
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn attention_matches_cpu(
        tokens in 1usize..=6,
        pos0 in 0usize..=300,
        kv_heads in 1usize..=3,
        ratio in prop::sample::select(vec![1usize, 2, 4]),
        head_dim in prop::sample::select(vec![1usize, 7, 32, 64, 80, 128]),
        q_mag in prop::sample::select(vec![1.0f32, 4.0]),
        extra in 0usize..3,
        window in prop_oneof![Just(0usize), 1usize..=200],
        seed in any::<u64>(),
    ) {
        let Some(g) = shared_gpu() else { return Ok(()) };
        let p = AttentionParams { window, ..params(tokens, pos0, kv_heads * ratio, kv_heads, head_dim) };
        let (q, k, v) = inputs(seed, p, q_mag, extra);
        check(g, p, &q, &k, &v);
    }
}

#[test]
fn sliding_window_over_a_long_context() {
    // Gemma 3's window of 512 over ~1000 keys: the window starts mid-chunk, at a different key
    // for each token of the batch.
    let Some(g) = shared_gpu() else { return };
    for (tokens, pos0) in [(3, 997), (1, 1023)] {
        let p = AttentionParams {
            window: 512,
            ..params(tokens, pos0, 4, 1, 256)
        };
        let (q, k, v) = inputs(pos0 as u64 + 1, p, 4.0, 1);
        check(g, p, &q, &k, &v);
    }
}

#[test]
fn long_context() {
    // ~4000 keys: 63 chunks of the online softmax, with prefill-sized and decode-sized batches.
    let Some(g) = shared_gpu() else { return };
    for (tokens, pos0) in [(3, 3997), (1, 4095)] {
        let p = params(tokens, pos0, 8, 2, 128);
        let (q, k, v) = inputs(pos0 as u64, p, 4.0, 1);
        check(g, p, &q, &k, &v);
    }
}

#[test]
fn head_dims_past_one_slice() {
    // 256 fills one workgroup's slice exactly; 300 takes a second, partly idle, slice.
    let Some(g) = shared_gpu() else { return };
    for hd in [256, 300] {
        let p = params(2, 70, 4, 2, hd);
        let (q, k, v) = inputs(hd as u64, p, 2.0, 0);
        check(g, p, &q, &k, &v);
    }
}

#[test]
fn nan_spreads_as_on_cpu() {
    // A NaN key makes the scores of the heads reading it NaN, so their whole output is NaN for
    // tokens that see that row and untouched for earlier ones; a NaN value poisons one dim.
    let Some(g) = shared_gpu() else { return };
    let p = params(5, 3, 4, 2, 9);
    let (q, mut k, mut v) = inputs(11, p, 1.0, 0);
    let kv_row = p.kv_heads * p.head_dim;
    k[5 * kv_row + 2] = f32::NAN; // row 5, KV head 0: query heads 0 and 1 from token 2 on
    v[6 * kv_row + p.head_dim + 4] = f32::NAN; // row 6, KV head 1, dim 4
    let got = check(g, p, &q, &k, &v);
    // Both backends agree (NaN for NaN) on the whole output; say where the NaN must be, so the
    // test cannot pass on two outputs that simply lack them.
    for t in 0..p.tokens {
        for h in 0..p.heads {
            for d in 0..p.head_dim {
                let x = got[(t * p.heads + h) * p.head_dim + d];
                let want_nan = (h < 2 && t >= 2) || (h >= 2 && t >= 3 && d == 4);
                assert_eq!(x.is_nan(), want_nan, "token {t} head {h} dim {d}: {x}");
            }
        }
    }
}

#[test]
fn bad_shapes_are_shape_errors() {
    let Some(g) = shared_gpu() else { return };
    let p = params(2, 1, 4, 2, 8);
    let q = gpu_buf(g, &[0.5; 2 * 4 * 8]);
    let kv = gpu_buf(g, &[0.5; 3 * 2 * 8]);
    let short_kv = gpu_buf(g, &[0.5; 3 * 2 * 8 - 1]);
    let short_q = gpu_buf(g, &[0.5; 2 * 4 * 8 - 1]);
    let mut out = g.alloc(2 * 4 * 8).expect("alloc");
    let mut short_out = g.alloc(2 * 4 * 8 - 1).expect("alloc");
    let is_shape = |r: engine_core::Result<()>| {
        matches!(
            r,
            Err(Error::Shape {
                op: "attention",
                ..
            })
        )
    };
    assert!(g.attention(&q, &kv, &kv, &mut out, p).is_ok());
    let cases = [
        ("heads not a multiple of kv_heads", params(2, 1, 4, 3, 8)),
        ("kv_heads 0", params(2, 1, 4, 0, 8)),
        (
            "a token more than q and the caches hold",
            params(3, 0, 4, 2, 8),
        ),
        ("pos0 + tokens overflows", params(2, usize::MAX, 4, 2, 8)),
    ];
    for (what, bad) in cases {
        assert!(is_shape(g.attention(&q, &kv, &kv, &mut out, bad)), "{what}");
    }
    assert!(
        is_shape(g.attention(&short_q, &kv, &kv, &mut out, p)),
        "short q"
    );
    assert!(
        is_shape(g.attention(&q, &short_kv, &kv, &mut out, p)),
        "short k"
    );
    assert!(
        is_shape(g.attention(&q, &kv, &short_kv, &mut out, p)),
        "short v"
    );
    assert!(
        is_shape(g.attention(&q, &kv, &kv, &mut short_out, p)),
        "short out"
    );
}
