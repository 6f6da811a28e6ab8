//! Every WebGPU op against the CPU backend's exact path on random inputs, with shapes drawn by
//! proptest (sizes that are not multiples of the workgroup or block included), and every WGSL file
//! validated by naga. Tolerances are stated per op.

mod common;

use backend_webgpu::kernels;
use common::*;
use engine_core::backend::{
    Backend, CopyRowsParams, RmsNormParams, RopeParams, RopeStyle, RowsParams, WeightDesc,
};
use engine_core::quant::GgmlType;
use engine_core::rng::SplitMix64;
use proptest::prelude::*;

/// Element-wise ops compute the same f32 expression: only `exp` may differ in its last bits.
const ELEMENTWISE: (f32, f32) = (1e-6, 1e-5);
/// Row reductions sum in a different order (tree vs sequential f64): relative 1e-5.
const REDUCTION: (f32, f32) = (1e-6, 2e-5);

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    }
}

#[test]
fn every_kernel_is_valid_wgsl() {
    for k in kernels::all() {
        let source = k.source();
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{}: {}", k.name, e.emit_to_string(&source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {e:?}", k.name));
    }
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn add_and_silu_mul_match_cpu(len in 1usize..3000, seed in any::<u64>()) {
        let Some(g) = gpu() else { return Ok(()) };
        let c = cpu();
        let mut r = SplitMix64::new(seed);
        let (a, x) = (rand_vec(&mut r, len, 4.0), rand_vec(&mut r, len, 4.0));
        let mut ga = gpu_buf(&g, &a);
        g.add(&mut ga, &gpu_buf(&g, &x), len).unwrap();
        let mut ca = cpu_buf(&a);
        c.add(&mut ca, &cpu_buf(&x), len).unwrap();
        assert_close("add", &read(&g, &ga, len), ca.as_slice(), ELEMENTWISE.0, ELEMENTWISE.1);

        let mut go = g.alloc(len).unwrap();
        g.silu_mul(&gpu_buf(&g, &a), &gpu_buf(&g, &x), &mut go, len).unwrap();
        let mut co = cpu_buf(&vec![0.0; len]);
        c.silu_mul(&cpu_buf(&a), &cpu_buf(&x), &mut co, len).unwrap();
        assert_close("silu_mul", &read(&g, &go, len), co.as_slice(), ELEMENTWISE.0, ELEMENTWISE.1);

        let mut go = g.alloc(len).unwrap();
        g.gelu_mul(&gpu_buf(&g, &a), &gpu_buf(&g, &x), &mut go, len).unwrap();
        let mut co = cpu_buf(&vec![0.0; len]);
        c.gelu_mul(&cpu_buf(&a), &cpu_buf(&x), &mut co, len).unwrap();
        assert_close("gelu_mul", &read(&g, &go, len), co.as_slice(), ELEMENTWISE.0, ELEMENTWISE.1);

        let factor = 1.0 + (seed % 7) as f32 * 3.7;
        let mut ga = gpu_buf(&g, &a);
        g.scale(&mut ga, factor, len).unwrap();
        let mut ca = cpu_buf(&a);
        c.scale(&mut ca, factor, len).unwrap();
        prop_assert_eq!(read(&g, &ga, len), ca.as_slice().to_vec());
    }

    #[test]
    fn rms_norm_matches_cpu(rows in 1usize..9, dim in 1usize..1100, f16 in any::<bool>(), seed in any::<u64>()) {
        let Some(g) = gpu() else { return Ok(()) };
        let c = cpu();
        let mut r = SplitMix64::new(seed);
        let x = rand_vec(&mut r, rows * dim, 3.0);
        let wv = rand_vec(&mut r, dim, 1.5);
        let (ty, bytes): (GgmlType, Vec<u8>) = if f16 {
            (GgmlType::F16, wv.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect())
        } else {
            (GgmlType::F32, wv.iter().flat_map(|v| v.to_le_bytes()).collect())
        };
        let desc = WeightDesc { name: "norm", ggml_type: ty, dims: &[dim as u64] };
        let p = RmsNormParams { rows, dim, eps: 1e-5 };
        let mut go = g.alloc(rows * dim).unwrap();
        g.rms_norm(&gpu_buf(&g, &x), &g.upload_weight(desc, &bytes).unwrap(), &mut go, p).unwrap();
        let mut co = cpu_buf(&vec![0.0; rows * dim]);
        c.rms_norm(&cpu_buf(&x), &c.upload_weight(desc, &bytes).unwrap(), &mut co, p).unwrap();
        assert_close("rms_norm", &read(&g, &go, rows * dim), co.as_slice(), REDUCTION.0, REDUCTION.1);
    }

    #[test]
    fn softmax_and_argmax_match_cpu(rows in 1usize..7, cols in 1usize..5000, seed in any::<u64>()) {
        let Some(g) = gpu() else { return Ok(()) };
        let c = cpu();
        let mut r = SplitMix64::new(seed);
        let mut x = rand_vec(&mut r, rows * cols, 8.0);
        // Ties: the first index must win on both backends.
        if cols > 3 {
            x[1] = 100.0;
            x[cols - 1] = 100.0;
        }
        let p = RowsParams { rows, cols };
        let gx = gpu_buf(&g, &x);
        let ids = pollster::block_on(g.argmax(&gx, p)).unwrap();
        let want = pollster::block_on(c.argmax(&cpu_buf(&x), p)).unwrap();
        prop_assert_eq!(ids, want);
        let mut gs = gpu_buf(&g, &x);
        g.softmax(&mut gs, p).unwrap();
        let mut cs = cpu_buf(&x);
        c.softmax(&mut cs, p).unwrap();
        assert_close("softmax", &read(&g, &gs, rows * cols), cs.as_slice(), REDUCTION.0, REDUCTION.1);
    }

    #[test]
    fn rope_matches_cpu(tokens in 1usize..6, heads in 1usize..5, half in 1usize..40, extra in 0usize..3,
                        pos0 in 0usize..5000, neox in any::<bool>(), factors in any::<bool>(),
                        seed in any::<u64>()) {
        let Some(g) = gpu() else { return Ok(()) };
        let c = cpu();
        let mut r = SplitMix64::new(seed);
        let (rope_dim, head_dim) = (2 * half, 2 * half + 2 * extra);
        let n = tokens * heads * head_dim;
        let x = rand_vec(&mut r, n, 2.0);
        // Llama 3's per-pair divisors span 1..32.
        let freq_factors = factors.then(|| {
            (0..half).map(|_| 1.0 + 15.5 * (1.0 + r.next_signed_unit())).collect::<Vec<f32>>().into()
        });
        let p = RopeParams {
            tokens, heads, head_dim, rope_dim, pos0, freq_base: 10000.0, freq_scale: 1.0,
            style: if neox { RopeStyle::Neox } else { RopeStyle::Normal },
            freq_factors, attn_factor: 1.0, yarn: None,
        };
        let mut gx = gpu_buf(&g, &x);
        g.rope(&mut gx, p.clone()).unwrap();
        let mut cx = cpu_buf(&x);
        c.rope(&mut cx, p).unwrap();
        // Same f64 angles; the rotation itself is f32 on the GPU, f64 on the CPU.
        assert_close("rope", &read(&g, &gx, n), cx.as_slice(), 1e-6, 1e-5);
    }

    #[test]
    fn copy_rows_matches_cpu(rows in 0usize..6, cols in 1usize..300, src0 in 0usize..4, dst0 in 0usize..4, seed in any::<u64>()) {
        let Some(g) = gpu() else { return Ok(()) };
        let c = cpu();
        let mut r = SplitMix64::new(seed);
        let src = rand_vec(&mut r, (src0 + rows) * cols, 1.0);
        let dst = rand_vec(&mut r, (dst0 + rows + 1) * cols, 1.0);
        let p = CopyRowsParams { rows, cols, src_row0: src0, dst_row0: dst0 };
        let mut gd = gpu_buf(&g, &dst);
        g.copy_rows(&gpu_buf(&g, &src), &mut gd, p).unwrap();
        let mut cd = cpu_buf(&dst);
        c.copy_rows(&cpu_buf(&src), &mut cd, p).unwrap();
        prop_assert_eq!(read(&g, &gd, dst.len()), cd.as_slice().to_vec());
    }
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    let Some(g) = gpu() else { return };
    let mut a = g.alloc(4).unwrap();
    let x = g.alloc(3).unwrap();
    assert!(matches!(
        g.add(&mut a, &x, 4),
        Err(engine_core::Error::Shape { op: "add", .. })
    ));
    let p = RowsParams { rows: 2, cols: 3 };
    assert!(pollster::block_on(g.argmax(&x, p)).is_err());
    let bytes = vec![0u8; 10];
    let desc = WeightDesc {
        name: "w",
        ggml_type: GgmlType::Q4_0,
        dims: &[32, 1],
    };
    assert!(
        g.upload_weight(desc, &bytes).is_err(),
        "18 bytes needed, 10 given"
    );
}

/// Where the test script has installed a Vulkan driver it sets `SLUICE_REQUIRE_WEBGPU=1`; then
/// this fails unless an adapter really runs a kernel, so the conformance tests cannot have skipped.
#[test]
fn an_adapter_runs_kernels_when_required() {
    let required = std::env::var("SLUICE_REQUIRE_WEBGPU").as_deref() == Ok("1");
    let Some(g) = gpu() else {
        assert!(!required, "unreachable: gpu() panics when required");
        return;
    };
    println!("adapter: {}", g.name());
    let mut a = gpu_buf(&g, &[1.0, 2.0, 3.0]);
    g.add(&mut a, &gpu_buf(&g, &[0.5, 0.25, 0.125]), 3).unwrap();
    assert_eq!(read(&g, &a, 3), vec![1.5, 2.25, 3.125]);
}
