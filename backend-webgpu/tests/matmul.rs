//! `matmul`, `dequant` and `embedding` on WebGPU against the CPU backend's exact path, for every
//! weight type the kernels decode, over shapes drawn by proptest that are not multiples of any
//! workgroup or tile (GEMV and GEMM paths both), plus the errors the CPU gives for bad shapes.

mod common;

use backend_webgpu::kernels::{WEIGHT_TYPES, WEIGHT_TYPE_COUNT};
use backend_webgpu::WebGpuBackend;
use common::*;
use engine_core::backend::cpu::{CpuBackend, CpuWeight};
use engine_core::backend::{Backend, MatmulShape, WeightDesc};
use engine_core::quant::{self, GgmlType};
use engine_core::rng::SplitMix64;
use engine_core::Error;
use proptest::prelude::*;
use std::sync::OnceLock;

type GpuWeight = <WebGpuBackend as Backend>::Weight;

/// Every type the WebGPU matmul, dequant and embedding kernels decode.
const TYPES: [GgmlType; WEIGHT_TYPE_COUNT] = WEIGHT_TYPES;

/// Written past `m·n` (and past the gathered rows) before each op: it must still be there after.
const SENTINEL: f32 = 7.0;

/// One backend for the whole file: pipelines are compiled once per kernel, not once per case
/// (lavapipe compiles each in tens of milliseconds; the file's 36 kernels add up).
fn shared_gpu() -> Option<&'static WebGpuBackend> {
    static GPU: OnceLock<Option<WebGpuBackend>> = OnceLock::new();
    GPU.get_or_init(gpu).as_ref()
}

/// Tolerance of one matmul output against the CPU's: `1e-5 · (Σ|x_i·w_i| + |bias|) + 1e-6`.
///
/// Both sides sum the same f32 products (the decoded weights are bit-identical; see the dequant
/// test) in different orders: the CPU in 8 interleaved chains, the GPU in 64 chains per row (GEMV)
/// or one chain per thread (GEMM), maybe with fused multiply-adds. Each addition rounds by at most
/// 2^-24 of its partial sum, and partial sums of products with random signs stay far below
/// Σ|x_i·w_i|, so observed differences are around 1e-7 of it; the worst case for these k (≤ 1536)
/// is about 1e-4. A wrong or misplaced weight value, on the other hand, moves an output by about
/// Σ|x_i·w_i| / k ≥ 6e-4 of it, well above the bound. The bias adds one more rounding of the sum.
fn tolerance(mag: f64, bias: f32) -> f32 {
    (1e-5 * (mag + f64::from(bias.abs())) + 1e-6) as f32
}

/// Random values in ±`scale` encoded as `ty` (random valid blocks for types the engine cannot
/// quantize).
fn random_weight(r: &mut SplitMix64, ty: GgmlType, len: usize, scale: f32) -> Vec<u8> {
    quant::random_weight(r, ty, len, scale).expect("whole blocks")
}

/// The same weight (`rows` rows of `k` values of `ty`) on both backends.
fn upload(
    g: &WebGpuBackend,
    c: &CpuBackend,
    name: &str,
    ty: GgmlType,
    dims: &[u64],
    bytes: &[u8],
) -> (GpuWeight, CpuWeight) {
    let desc = WeightDesc {
        name,
        ggml_type: ty,
        dims,
    };
    (
        g.upload_weight(desc, bytes).expect("gpu upload"),
        c.upload_weight(desc, bytes).expect("cpu upload"),
    )
}

/// The CPU's dequantization of `w`.
fn cpu_values(c: &CpuBackend, w: &CpuWeight) -> Vec<f32> {
    let mut out = cpu_buf(&vec![0.0; w.elements()]);
    c.dequant(w, &mut out).expect("cpu dequant");
    out.into_vec()
}

/// Row length for `ty`: `blocks` whole blocks, or for float types (block size 1) `float_k`, so
/// that float rows also end inside a group of eight.
fn row_len(ty: GgmlType, blocks: usize, float_k: usize) -> usize {
    match ty.block_size() {
        1 => float_k,
        block => block * blocks,
    }
}

/// Bytes of one row of `k` values of `ty`.
fn row_bytes(ty: GgmlType, k: usize) -> usize {
    k / ty.block_size() * ty.type_size()
}

/// [`check_matmul`] on `g` as it is (subgroup GEMV where the adapter has subgroups), then with the
/// baseline kernels and the weight split into three parts.
#[allow(clippy::too_many_arguments)]
fn check_matmul_paths(
    g: &WebGpuBackend,
    c: &CpuBackend,
    r: &mut SplitMix64,
    ty: GgmlType,
    m: usize,
    n: usize,
    k: usize,
    bias_ty: Option<GgmlType>,
) {
    check_matmul(g, c, r, ty, m, n, k, bias_ty);
    let split = fallback_split(g, row_bytes(ty, k), rows_for_three_parts(n));
    check_matmul(&split, c, r, ty, m, n, k, bias_ty);
}

/// Runs one matmul of `ty` on both backends and compares every output within `tolerance`.
#[allow(clippy::too_many_arguments)]
fn check_matmul(
    g: &WebGpuBackend,
    c: &CpuBackend,
    r: &mut SplitMix64,
    ty: GgmlType,
    m: usize,
    n: usize,
    k: usize,
    bias_ty: Option<GgmlType>,
) {
    let what = format!("{ty} m={m} n={n} k={k} bias={bias_ty:?} {:?}", g.options());
    let (gw, cw) = upload(
        g,
        c,
        "w",
        ty,
        &[k as u64, n as u64],
        &random_weight(r, ty, k * n, 1.0),
    );
    let bias = bias_ty.map(|bt| {
        let bytes = random_weight(r, bt, n, 0.5);
        upload(g, c, "bias", bt, &[n as u64], &bytes)
    });
    let x = rand_vec(r, m * k, 2.0);
    let shape = MatmulShape { m, n, k };

    let mut go = gpu_buf(g, &vec![SENTINEL; m * n + 1]);
    g.matmul(
        &gw,
        bias.as_ref().map(|b| &b.0),
        &gpu_buf(g, &x),
        &mut go,
        shape,
    )
    .unwrap_or_else(|e| panic!("{what}: gpu matmul: {e}"));
    let mut co = cpu_buf(&vec![0.0; m * n]);
    c.matmul(
        &cw,
        bias.as_ref().map(|b| &b.1),
        &cpu_buf(&x),
        &mut co,
        shape,
    )
    .unwrap_or_else(|e| panic!("{what}: cpu matmul: {e}"));

    let got = read(g, &go, m * n + 1);
    assert_eq!(got[m * n], SENTINEL, "{what}: wrote past m·n");
    let wv = cpu_values(c, &cw);
    let bv = bias.as_ref().map(|b| cpu_values(c, &b.1));
    for t in 0..m {
        for row in 0..n {
            let mag: f64 = (0..k)
                .map(|i| f64::from(x[t * k + i]).abs() * f64::from(wv[row * k + i]).abs())
                .sum();
            let b = bv.as_ref().map_or(0.0, |bv| bv[row]);
            let (gv, cv) = (got[t * n + row], co.as_slice()[t * n + row]);
            let tol = tolerance(mag, b);
            assert!(
                (gv - cv).abs() <= tol,
                "{what}: out[{t}][{row}]: webgpu {gv} vs cpu {cv} (tolerance {tol})"
            );
        }
    }
}

/// Values equal bit for bit; NaNs need only both be NaN (adapters may canonicalize their
/// payloads on a store).
fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            "{what}: value {i}: webgpu {a} ({:#010x}) vs cpu {b} ({:#010x})",
            a.to_bits(),
            b.to_bits()
        );
    }
}

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        ..ProptestConfig::default()
    }
}

proptest! {
    // Each case runs all 7 types on every path, so a few cases cover a lot (and lavapipe is slow).
    #![proptest_config(cases(24))]

    /// Every type, GEMV (m = 1) and GEMM (the drawn m), with no bias or an F32 or F16 one.
    #[test]
    fn matmul_matches_cpu_for_every_type(
        m in 1usize..=9,
        n in 1usize..=70,
        blocks in 1usize..=6,
        float_k in 1usize..=200,
        bias in 0u8..3,
        seed in any::<u64>(),
    ) {
        let Some(g) = shared_gpu() else { return Ok(()) };
        let c = cpu();
        let mut r = SplitMix64::new(seed);
        let bias_ty = [None, Some(GgmlType::F32), Some(GgmlType::F16)][usize::from(bias)];
        for ty in TYPES {
            let k = row_len(ty, blocks, float_k);
            check_matmul_paths(g, &c, &mut r, ty, 1, n, k, bias_ty);
            if m > 1 {
                check_matmul_paths(g, &c, &mut r, ty, m, n, k, bias_ty);
            }
        }
    }

    /// Decoding is the same arithmetic as the CPU's, in the same order, and its products are exact
    /// (see blocks.wgsl): bit-exact.
    #[test]
    fn dequant_and_embedding_match_cpu_bit_for_bit(
        rows in 1usize..=20,
        blocks in 1usize..=6,
        float_k in 1usize..=200,
        ids in prop::collection::vec(any::<u32>(), 0..12),
        seed in any::<u64>(),
    ) {
        let Some(g) = shared_gpu() else { return Ok(()) };
        let c = cpu();
        let mut r = SplitMix64::new(seed);
        let ids: Vec<u32> = ids.iter().map(|&i| i % rows as u32).collect();
        for ty in TYPES {
            let k = row_len(ty, blocks, float_k);
            let what = format!("{ty} rows={rows} k={k}");
            let bytes = random_weight(&mut r, ty, rows * k, 3.0);
            for g in [g, &fallback_split(g, row_bytes(ty, k), rows_for_three_parts(rows))] {
            let what = format!("{what} parts of {}", g.options().max_weight_part);
            let (gw, cw) = upload(g, &c, "table", ty, &[k as u64, rows as u64], &bytes);
            let want = cpu_values(&c, &cw);

            let mut go = gpu_buf(g, &vec![SENTINEL; rows * k + 1]);
            g.dequant(&gw, &mut go).unwrap();
            let got = read(g, &go, rows * k + 1);
            assert_bits(&format!("dequant {what}"), &got[..rows * k], &want);
            prop_assert_eq!(got[rows * k], SENTINEL);

            let len = ids.len() * k;
            let mut go = gpu_buf(g, &vec![SENTINEL; len + 1]);
            g.embedding(&gw, &ids, &mut go).unwrap();
            let mut co = cpu_buf(&vec![0.0; len]);
            c.embedding(&cw, &ids, &mut co).unwrap();
            let got = read(g, &go, len + 1);
            assert_bits(&format!("embedding {what} ids={ids:?}"), &got[..len], co.as_slice());
            prop_assert_eq!(got[len], SENTINEL);
            }
        }
    }
}

/// A weight over the part limit is split into parts of whole rows, each op's results are those
/// of the unsplit weight.
#[test]
fn weights_larger_than_a_part_are_split_by_rows() {
    let Some(g) = shared_gpu() else { return };
    let c = cpu();
    let mut r = SplitMix64::new(77);
    let (n, k) = (70, 64);
    let bytes = random_weight(&mut r, GgmlType::Q8_0, n * k, 1.0);
    let split = fallback_split(g, row_bytes(GgmlType::Q8_0, k), 3);
    let (gw, _) = upload(
        &split,
        &c,
        "w",
        GgmlType::Q8_0,
        &[k as u64, n as u64],
        &bytes,
    );
    assert_eq!(gw.parts(), n.div_ceil(3), "parts of three rows");
    let (whole, _) = upload(g, &c, "w", GgmlType::Q8_0, &[k as u64, n as u64], &bytes);
    assert_eq!(whole.parts(), 1);

    let mut out = g.alloc(n * k).unwrap();
    split.dequant(&gw, &mut out).unwrap();
    let mut want = g.alloc(n * k).unwrap();
    g.dequant(&whole, &mut want).unwrap();
    assert_bits(
        "split dequant",
        &read(g, &out, n * k),
        &read(g, &want, n * k),
    );
}

/// Every f16 bit pattern (subnormals, signed zeros, infinities, NaNs), as F16 weights and as the
/// scale of Q8_0 blocks, decodes as on the CPU: random weights almost never reach these.
#[test]
fn every_f16_pattern_decodes_as_on_the_cpu() {
    let Some(g) = shared_gpu() else { return };
    let c = cpu();
    let bytes: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
    let (gw, cw) = upload(g, &c, "f16", GgmlType::F16, &[256, 256], &bytes);
    let mut go = g.alloc(1 << 16).unwrap();
    g.dequant(&gw, &mut go).unwrap();
    assert_bits("f16", &read(g, &go, 1 << 16), &cpu_values(&c, &cw));

    // Q8_0 blocks with every scale and quants -128..=127 cycling through them.
    let blocks = 1usize << 16;
    let mut bytes = Vec::with_capacity(blocks * 34);
    for h in 0..=u16::MAX {
        bytes.extend_from_slice(&h.to_le_bytes());
        bytes.extend((0..32u16).map(|i| (h.wrapping_mul(31).wrapping_add(i * 8)) as u8));
    }
    let (gw, cw) = upload(g, &c, "q8", GgmlType::Q8_0, &[1024, 2048], &bytes);
    let mut go = g.alloc(blocks * 32).unwrap();
    g.dequant(&gw, &mut go).unwrap();
    assert_bits("q8_0", &read(g, &go, blocks * 32), &cpu_values(&c, &cw));
}

/// Several GEMM tiles in both directions (64 rows × 16 tokens each), and a realistic row length.
#[test]
fn gemm_spans_several_tiles() {
    let Some(g) = shared_gpu() else { return };
    let c = cpu();
    let mut r = SplitMix64::new(41);
    for ty in TYPES {
        // 1024 values per quantized row; a float row ends inside a group of eight.
        let k = if ty.block_size() == 1 { 1029 } else { 1024 };
        check_matmul_paths(g, &c, &mut r, ty, 37, 130, k, Some(GgmlType::F16));
        check_matmul_paths(g, &c, &mut r, ty, 1, 130, k, None);
    }
}

/// Threads sharing one backend each get their own results: the driver's batched submits keep
/// every thread's dispatch ahead of its read-back (a submit released before it was queued let
/// another thread's later read-back overtake it).
#[test]
fn threads_sharing_a_backend_read_their_own_results() {
    let Some(g) = shared_gpu() else { return };
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                let c = cpu();
                let mut r = SplitMix64::new(100 + t);
                for _ in 0..150 {
                    check_matmul(g, &c, &mut r, GgmlType::F32, 1, 9, 94, None);
                }
            });
        }
    });
}

/// Empty products are no-ops (`m = 0`, no ids), and `k = 0` gives the bias alone, as on the CPU.
#[test]
fn empty_shapes_match_cpu() {
    let Some(g) = shared_gpu() else { return };
    let c = cpu();
    let (gw, cw) = upload(g, &c, "w", GgmlType::F16, &[0, 5], &[]);
    let bias_bytes: Vec<u8> = [1.5f32, -2.0, 0.25, 3.0, -0.5]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let (gb, cb) = upload(g, &c, "bias", GgmlType::F32, &[5], &bias_bytes);
    let shape = MatmulShape { m: 2, n: 5, k: 0 };
    let mut go = gpu_buf(g, &[SENTINEL; 10]);
    g.matmul(&gw, Some(&gb), &gpu_buf(g, &[0.0]), &mut go, shape)
        .unwrap();
    let mut co = cpu_buf(&[SENTINEL; 10]);
    c.matmul(&cw, Some(&cb), &cpu_buf(&[0.0]), &mut co, shape)
        .unwrap();
    assert_eq!(read(g, &go, 10), co.as_slice());

    let bytes = random_weight(&mut SplitMix64::new(3), GgmlType::Q8_0, 64, 1.0);
    let (gw, _) = upload(g, &c, "w", GgmlType::Q8_0, &[32, 2], &bytes);
    let mut go = gpu_buf(g, &[SENTINEL; 4]);
    let shape = MatmulShape { m: 0, n: 2, k: 32 };
    g.matmul(&gw, None, &gpu_buf(g, &[0.0]), &mut go, shape)
        .unwrap();
    g.embedding(&gw, &[], &mut go).unwrap();
    assert_eq!(read(g, &go, 4), [SENTINEL; 4]);
}

fn is_shape_err<T>(r: engine_core::Result<T>, op: &str) -> bool {
    matches!(r, Err(Error::Shape { op: o, .. }) if o == op)
}

fn is_unsupported<T>(r: engine_core::Result<T>, want: GgmlType) -> bool {
    matches!(r, Err(Error::UnsupportedType { ty, .. }) if ty == want)
}

/// Each bad shape is the error the CPU gives for it, and a bad id writes nothing.
#[test]
fn bad_shapes_are_the_cpu_errors() {
    let Some(g) = shared_gpu() else { return };
    let c = cpu();
    let mut r = SplitMix64::new(9);
    let (n, k) = (3, 64);
    let (gw, cw) = upload(
        g,
        &c,
        "w",
        GgmlType::Q4_0,
        &[k as u64, n as u64],
        &random_weight(&mut r, GgmlType::Q4_0, n * k, 1.0),
    );
    let bias4: Vec<u8> = [0f32; 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    let (gb, cb) = upload(g, &c, "bias", GgmlType::F32, &[4], &bias4);
    let (gx, cx) = (gpu_buf(g, &[0.5; 2 * 64]), cpu_buf(&[0.5; 2 * 64]));
    let (mut go, mut co) = (gpu_buf(g, &[0.0; 6]), cpu_buf(&[0.0; 6]));

    let bad = [
        (MatmulShape { m: 1, n: 4, k }, false), // n is not the weight's rows
        (MatmulShape { m: 1, n, k: 32 }, false), // k is not its row length
        (MatmulShape { m: 3, n, k }, false),    // x holds 2 tokens
        (MatmulShape { m: 2, n: 3, k }, true),  // a bias of 4 values
        (MatmulShape { m: 2, n: 3, k: 64 }, false), // fine, but out is shortened below
    ];
    for (i, &(shape, with_bias)) in bad.iter().enumerate() {
        let (gbias, cbias) = if with_bias {
            (Some(&gb), Some(&cb))
        } else {
            (None, None)
        };
        if i == 4 {
            let (mut gs, mut cs) = (gpu_buf(g, &[0.0; 5]), cpu_buf(&[0.0; 5]));
            assert!(is_shape_err(
                g.matmul(&gw, None, &gx, &mut gs, shape),
                "matmul"
            ));
            assert!(is_shape_err(
                c.matmul(&cw, None, &cx, &mut cs, shape),
                "matmul"
            ));
            continue;
        }
        assert!(
            is_shape_err(g.matmul(&gw, gbias, &gx, &mut go, shape), "matmul"),
            "case {i}"
        );
        assert!(
            is_shape_err(c.matmul(&cw, cbias, &cx, &mut co, shape), "matmul"),
            "case {i} on the cpu"
        );
    }

    let mut short = gpu_buf(g, &[0.0; 3 * 64 - 1]);
    assert!(is_shape_err(g.dequant(&gw, &mut short), "dequant"));
    assert!(is_shape_err(
        g.embedding(&gw, &[0, 1, 2], &mut short),
        "embedding"
    ));
    let mut out = gpu_buf(g, &[SENTINEL; 2 * 64]);
    assert!(is_shape_err(
        g.embedding(&gw, &[2, 3], &mut out),
        "embedding"
    ));
    assert!(is_shape_err(
        g.embedding(&gw, &[0, u32::MAX], &mut out),
        "embedding"
    ));
    assert_eq!(
        read(g, &out, 2 * 64),
        vec![SENTINEL; 2 * 64],
        "a bad id wrote"
    );
}

/// Types without a WebGPU decoder (for the weight) or outside F32/F16 (for the bias) are refused.
#[test]
fn unsupported_types_are_refused() {
    let Some(g) = shared_gpu() else { return };
    let desc = |ty, dims| WeightDesc {
        name: "w",
        ggml_type: ty,
        dims,
    };
    // IQ4_NL (18 bytes per 32 values) is a type the engine knows and no backend decodes: its
    // upload is refused, before any op sees it.
    let ty = GgmlType::IQ4_NL;
    assert!(is_unsupported(
        g.upload_weight(desc(ty, &[32, 2]), &[0; 36]),
        ty
    ));
    let x = gpu_buf(g, &[1.0; 256]);
    let mut out = gpu_buf(g, &[0.0; 512]);
    let shape = MatmulShape { m: 1, n: 2, k: 32 };

    let w = g
        .upload_weight(desc(GgmlType::F32, &[32, 2]), &[0; 256])
        .unwrap();
    let q8_bias = g
        .upload_weight(desc(GgmlType::Q8_0, &[32]), &[0; 34])
        .unwrap();
    assert!(is_unsupported(
        g.matmul(&w, Some(&q8_bias), &x, &mut out, shape),
        GgmlType::Q8_0
    ));
}
