//! Every CUDA op against the CPU backend's exact path on random inputs, for every weight type the
//! kernels decode, with the WebGPU backend's tolerances; shapes drawn by proptest are not multiples
//! of any block, tile or warp (GEMV and GEMM paths, split and unsplit attention). Plus what only
//! this backend has: chunked pinned uploads, and out-of-memory as a typed error. Skips with a
//! printed reason without a CUDA device, unless `SLUICE_REQUIRE_CUDA=1`.

mod common;

use backend_cuda::kernels::WEIGHT_TYPES;
use common::{assert_close, Rig};
use engine_core::backend::{
    AttentionParams, Backend, CopyRowsParams, MatmulShape, RmsNormParams, RopeParams, RopeStyle,
    RowsParams, WeightDesc,
};
use engine_core::quant::GgmlType;
use engine_core::Error;
use proptest::prelude::*;

/// Element-wise ops compute the same f32 expression: only `exp` may differ in its last bits.
const ELEMENTWISE: (f32, f32) = (1e-6, 1e-5);
/// Row reductions sum in a different order: relative 2e-5.
const REDUCTION: (f32, f32) = (1e-6, 2e-5);
/// Attention: f32 scores and sums in different orders (see the WebGPU attention test).
const ATTENTION_RTOL: f32 = 2e-5;
/// Written past the outputs before an op: it must still be there after.
const SENTINEL: f32 = 7.0;

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: 16,
        ..ProptestConfig::default()
    }
}

/// Row length for `ty`: `blocks` whole blocks, or for float types `float_k` (any length).
fn row_len(ty: GgmlType, blocks: usize, float_k: usize) -> usize {
    match ty.block_size() {
        1 => float_k,
        block => block * blocks,
    }
}

/// One matmul on both backends; each output within `1e-5 · (Σ|x_i·w_i| + |bias|) + 1e-6` of the
/// CPU's (the decoded weights are bit-identical; only the summation order differs).
fn check_matmul(rig: &mut Rig, ty: GgmlType, m: usize, n: usize, k: usize, bias: Option<GgmlType>) {
    let what = format!("{ty} m={m} n={n} k={k} bias={bias:?}");
    let (gw, cw) = rig.weight(ty, &[k as u64, n as u64], 1.0);
    let gb = bias.map(|bt| rig.weight(bt, &[n as u64], 0.5));
    let x = rig.values(m * k, 2.0);
    let shape = MatmulShape { m, n, k };
    let (gx, cx) = rig.both(&x);
    let (mut go, _) = rig.both(&vec![SENTINEL; m * n + 1]);
    rig.g
        .matmul(&gw, gb.as_ref().map(|b| &b.0), &gx, &mut go, shape)
        .unwrap_or_else(|e| panic!("{what}: cuda: {e}"));
    let (_, mut co) = rig.both(&vec![0.0; m * n]);
    rig.c
        .matmul(&cw, gb.as_ref().map(|b| &b.1), &cx, &mut co, shape)
        .unwrap_or_else(|e| panic!("{what}: cpu: {e}"));
    let got = rig.read(&go, m * n + 1);
    assert_eq!(got[m * n], SENTINEL, "{what}: wrote past m·n");
    let wv = rig.cpu_values(&cw);
    let bv = gb.as_ref().map(|b| rig.cpu_values(&b.1));
    for t in 0..m {
        for row in 0..n {
            let mag: f64 = (0..k)
                .map(|i| f64::from((x[t * k + i] * wv[row * k + i]).abs()))
                .sum();
            let b = bv.as_ref().map_or(0.0, |b| b[row]);
            let tol = (1e-5 * (mag + f64::from(b.abs())) + 1e-6) as f32;
            let (a, c) = (got[t * n + row], co.as_slice()[t * n + row]);
            assert!(
                (a - c).abs() <= tol,
                "{what}: out[{t}][{row}] cuda {a} vs cpu {c} (tol {tol})"
            );
        }
    }
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn matmul_matches_cpu_for_every_type(
        ti in 0usize..WEIGHT_TYPES.len(),
        m in prop_oneof![Just(1usize), 2usize..40],
        n in 1usize..150,
        blocks in 1usize..5,
        float_k in 1usize..300,
        bias in prop_oneof![Just(None), Just(Some(GgmlType::F32)), Just(Some(GgmlType::F16))],
        seed in any::<u64>(),
    ) {
        let Some(mut rig) = Rig::new(seed) else { return Ok(()) };
        let ty = WEIGHT_TYPES[ti];
        check_matmul(&mut rig, ty, m, n, row_len(ty, blocks, float_k), bias);
    }

    #[test]
    fn dequant_and_embedding_are_bit_identical(
        ti in 0usize..WEIGHT_TYPES.len(),
        rows in 1usize..40,
        blocks in 1usize..4,
        float_k in 1usize..100,
        ids in proptest::collection::vec(0u32..40, 0..12),
        seed in any::<u64>(),
    ) {
        let Some(mut rig) = Rig::new(seed) else { return Ok(()) };
        let ty = WEIGHT_TYPES[ti];
        let k = row_len(ty, blocks, float_k);
        let (gw, cw) = rig.weight(ty, &[k as u64, rows as u64], 1.0);
        let want = rig.cpu_values(&cw);
        let (mut go, _) = rig.both(&vec![SENTINEL; rows * k + 1]);
        rig.g.dequant(&gw, &mut go).unwrap();
        let got = rig.read(&go, rows * k + 1);
        prop_assert_eq!(&got[..rows * k], &want[..], "{} dequant", ty);
        prop_assert_eq!(got[rows * k], SENTINEL);

        let ids: Vec<u32> = ids.into_iter().map(|i| i % rows as u32).collect();
        let (mut ge, _) = rig.both(&vec![SENTINEL; ids.len() * k + 1]);
        rig.g.embedding(&gw, &ids, &mut ge).unwrap();
        let got = rig.read(&ge, ids.len() * k + 1);
        for (j, &id) in ids.iter().enumerate() {
            let row = &want[id as usize * k..(id as usize + 1) * k];
            prop_assert_eq!(&got[j * k..(j + 1) * k], row, "{} embedding row {}", ty, j);
        }
        prop_assert_eq!(got[ids.len() * k], SENTINEL);
    }

    #[test]
    fn elementwise_ops_match_cpu(len in 1usize..5000, seed in any::<u64>()) {
        let Some(mut rig) = Rig::new(seed) else { return Ok(()) };
        let (a, x) = (rig.values(len, 4.0), rig.values(len, 4.0));
        let ((mut ga, mut ca), (gx, cx)) = (rig.both(&a), rig.both(&x));
        rig.g.add(&mut ga, &gx, len).unwrap();
        rig.c.add(&mut ca, &cx, len).unwrap();
        assert_close("add", &rig.read(&ga, len), ca.as_slice(), ELEMENTWISE.0, ELEMENTWISE.1);

        let (mut go, mut co) = rig.both(&vec![0.0; len]);
        let (ga, ca) = rig.both(&a);
        rig.g.silu_mul(&ga, &gx, &mut go, len).unwrap();
        rig.c.silu_mul(&ca, &cx, &mut co, len).unwrap();
        assert_close("silu_mul", &rig.read(&go, len), co.as_slice(), ELEMENTWISE.0, ELEMENTWISE.1);

        let (mut go, mut co) = rig.both(&vec![0.0; len]);
        rig.g.gelu_mul(&ga, &gx, &mut go, len).unwrap();
        rig.c.gelu_mul(&ca, &cx, &mut co, len).unwrap();
        assert_close("gelu_mul", &rig.read(&go, len), co.as_slice(), ELEMENTWISE.0, ELEMENTWISE.1);

        let (mut gs, mut cs) = rig.both(&a);
        rig.g.scale(&mut gs, 25.298, len).unwrap();
        rig.c.scale(&mut cs, 25.298, len).unwrap();
        prop_assert_eq!(rig.read(&gs, len), cs.as_slice().to_vec());

        let cols = len.min(37);
        let rows = len / cols;
        let p = CopyRowsParams { rows: rows / 2, cols, src_row0: rows - rows / 2, dst_row0: 1 };
        let (mut gd, mut cd) = rig.both(&vec![0.0; (rows + 1) * cols]);
        rig.g.copy_rows(&ga, &mut gd, p).unwrap();
        rig.c.copy_rows(&ca, &mut cd, p).unwrap();
        prop_assert_eq!(rig.read(&gd, (rows + 1) * cols), cd.as_slice().to_vec());
    }

    #[test]
    fn row_ops_match_cpu(
        rows in 1usize..6,
        dim in 1usize..3000,
        f16 in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let Some(mut rig) = Rig::new(seed) else { return Ok(()) };
        let x = rig.values(rows * dim, 3.0);
        let (gx, cx) = rig.both(&x);
        let ty = if f16 { GgmlType::F16 } else { GgmlType::F32 };
        let (gw, cw) = rig.weight(ty, &[dim as u64], 1.5);
        let p = RmsNormParams { rows, dim, eps: 1e-5 };
        let (mut go, mut co) = rig.both(&vec![0.0; rows * dim]);
        rig.g.rms_norm(&gx, &gw, &mut go, p).unwrap();
        rig.c.rms_norm(&cx, &cw, &mut co, p).unwrap();
        assert_close("rms_norm", &rig.read(&go, rows * dim), co.as_slice(), REDUCTION.0, REDUCTION.1);

        let rp = RowsParams { rows, cols: dim };
        let got_ids = pollster::block_on(rig.g.argmax(&gx, rp)).unwrap();
        let want_ids = pollster::block_on(rig.c.argmax(&cx, rp)).unwrap();
        prop_assert_eq!(got_ids, want_ids);

        let (mut gs, mut cs) = rig.both(&x);
        rig.g.softmax(&mut gs, rp).unwrap();
        rig.c.softmax(&mut cs, rp).unwrap();
        assert_close("softmax", &rig.read(&gs, rows * dim), cs.as_slice(), REDUCTION.0, REDUCTION.1);
    }

    #[test]
    fn rope_matches_cpu(
        tokens in 1usize..6,
        heads in 1usize..5,
        half_head in 1usize..40,
        rope_frac in 1usize..3,
        pos0 in 0usize..100_000,
        neox in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let Some(mut rig) = Rig::new(seed) else { return Ok(()) };
        let head_dim = 2 * half_head;
        let rope_dim = 2 * (half_head / rope_frac).max(1);
        let p = RopeParams {
            tokens, heads, head_dim, rope_dim, pos0,
            freq_base: 10000.0,
            freq_scale: 1.0,
            style: if neox { RopeStyle::Neox } else { RopeStyle::Normal },
            freq_factors: neox.then(|| vec![4.0; rope_dim / 2].into()),
            attn_factor: if neox { 1.3 } else { 1.0 },
            yarn: None,
        };
        let n = tokens * heads * head_dim;
        let x = rig.values(n, 2.0);
        let (mut gx, mut cx) = rig.both(&x);
        rig.g.rope(&mut gx, p.clone()).unwrap();
        rig.c.rope(&mut cx, p).unwrap();
        assert_close("rope", &rig.read(&gx, n), cx.as_slice(), 1e-6, 1e-5);
    }

    #[test]
    fn attention_matches_cpu_split_or_not(
        tokens in 1usize..4,
        pos0 in prop_oneof![0usize..70, 500usize..3000],
        kv_heads in 1usize..3,
        group in 1usize..4,
        head_dim in prop_oneof![Just(64usize), Just(128), 1usize..300],
        window in prop_oneof![Just(0usize), 1usize..1000],
        seed in any::<u64>(),
    ) {
        let Some(mut rig) = Rig::new(seed) else { return Ok(()) };
        let heads = kv_heads * group;
        let p = AttentionParams {
            tokens, pos0, heads, kv_heads, head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
            window,
        };
        let kv = (pos0 + tokens) * kv_heads * head_dim;
        let q = rig.values(tokens * heads * head_dim, 2.0);
        let (k, v) = (rig.values(kv, 2.0), rig.values(kv, 3.0));
        let ((gq, cq), (gk, ck), (gv, cv)) = (rig.both(&q), rig.both(&k), rig.both(&v));
        let len = tokens * heads * head_dim;
        let (mut go, mut co) = rig.both(&vec![0.0; len]);
        rig.g.attention(&gq, &gk, &gv, &mut go, p).unwrap();
        rig.c.attention(&cq, &ck, &cv, &mut co, p).unwrap();
        let amax = |x: &[f32]| x.iter().fold(0f32, |m, &y| m.max(y.abs()));
        let atol = amax(&v) * (1e-6 + f32::EPSILON * p.scale * head_dim as f32 * amax(&q) * amax(&k));
        assert_close(&format!("{p:?}"), &rig.read(&go, len), co.as_slice(), atol, ATTENTION_RTOL);
    }
}

#[test]
fn a_weight_larger_than_the_staging_buffers_arrives_whole() {
    let Some(mut rig) = Rig::new(1) else { return };
    // 20 MiB of f32: three chunks through the two alternating pinned buffers.
    let (rows, k) = (5 * 1024, 1024);
    let (gw, cw) = rig.weight(GgmlType::F32, &[k as u64, rows as u64], 1.0);
    let (mut go, _) = rig.both(&vec![0.0; rows * k]);
    rig.g.dequant(&gw, &mut go).unwrap();
    assert_eq!(rig.read(&go, rows * k), rig.cpu_values(&cw));
}

#[test]
fn out_of_memory_is_a_typed_error_naming_the_bytes() {
    let Some(rig) = Rig::new(2) else { return };
    // 4 TiB of activations: more than any device has.
    let err = match rig.g.alloc(1 << 40) {
        Ok(_) => panic!("a 4 TiB allocation succeeded"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(
        matches!(
            err,
            Error::Device {
                backend: "cuda",
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("out of CUDA device memory") && text.contains(&(4u64 << 40).to_string()),
        "{text}"
    );
}

#[test]
fn bad_shapes_are_refused_as_on_the_cpu() {
    let Some(mut rig) = Rig::new(3) else { return };
    let (gw, cw) = rig.weight(GgmlType::Q4_0, &[64, 8], 1.0);
    let (gx, cx) = rig.both(&[0.0; 64]);
    let (mut go, mut co) = rig.both(&[0.0; 8]);
    let shape = MatmulShape { m: 1, n: 9, k: 64 };
    let g = rig.g.matmul(&gw, None, &gx, &mut go, shape).unwrap_err();
    let c = rig.c.matmul(&cw, None, &cx, &mut co, shape).unwrap_err();
    assert!(
        matches!(
            (&g, &c),
            (
                Error::Shape { op: "matmul", .. },
                Error::Shape { op: "matmul", .. }
            )
        ),
        "{g} / {c}"
    );
    let desc = WeightDesc {
        name: "short",
        ggml_type: GgmlType::Q4_0,
        dims: &[64, 2],
    };
    assert!(matches!(
        rig.g.upload_weight(desc, &[0; 35]),
        Err(Error::Shape { .. })
    ));
}

/// The bandwidth probe copies real bytes: both figures are positive and finite, and device memory
/// is faster than the host link (true of every discrete GPU).
#[test]
fn bandwidth_probe_measures_both_links() {
    let Some(rig) = Rig::new(1) else { return };
    let bw = rig.g.measure_bandwidth(64 << 20).expect("bandwidth");
    assert_eq!(bw.bytes, 64 << 20);
    assert!(bw.device_gb_s.is_finite() && bw.device_gb_s > 0.0, "{bw:?}");
    assert!(
        bw.pinned_upload_gb_s.is_finite() && bw.pinned_upload_gb_s > 0.0,
        "{bw:?}"
    );
    assert!(bw.device_gb_s > bw.pinned_upload_gb_s, "{bw:?}");
}
