//! Accuracy against an f64 reference, scalar/AVX2 identity, typed errors, and a timing benchmark.
//!
//! ## The error bound
//! The kernels compute `Σ_j w_j·xq_j` with `xq_j = d·round(x_j/d)` and `d = amax_b/32767` (amax over
//! x's activation block b containing j). Rounding moves each value by at most half a step, so
//! `|Σ w_j·xq_j − Σ w_j·x_j| ≤ 0.5·Σ_j |w_j|·amax_b(j)/32767`, i.e. c = 0.5 in
//! `|err| ≤ c·Σ_j |w_j|·amax_b(j)/32767`. On top come f32 roundings: scale products, weight
//! dequantization and the accumulation over blocks, each a few ε relative to the block terms
//! `|d_w·q_j|·|xq_j|` and `|m|·|xq_j|`, both at most 2·wmax·amax where wmax is the largest |w| of
//! the weight's 32-value block. Hence the slack `(nb + 32)·3ε·Σ_j wmax(j)·amax_b(j)` (nb blocks).

use super::*;
use crate::quant::{self, dequantize_to_vec};

/// xorshift64* generator: deterministic, no dependencies.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f32 {
        let u = self.unit().max(1e-7);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }

    fn f16_bytes(&mut self, lo: f32, hi: f32) -> [u8; 2] {
        let v = lo + (hi - lo) * self.unit();
        half::f16::from_f32(v).to_bits().to_le_bytes()
    }
}

use super::conformance::TYPES as ALL_TYPES;

/// Row lengths to test: 32·odd and block counts around the 8-block groups for the legacy types.
fn test_ks(ty: GgmlType) -> &'static [usize] {
    if ty.block_size() == 32 {
        &[32, 96, 288, 576, 608, 1536]
    } else {
        &[256, 768, 1536]
    }
}

/// Activations like a transformer's: normal, with a few large outliers.
fn random_x(rng: &mut Rng, k: usize) -> Vec<f32> {
    (0..k)
        .map(|_| {
            let v = rng.normal();
            if rng.unit() < 0.01 {
                v * 20.0
            } else {
                v
            }
        })
        .collect()
}

/// `n` rows of `k` values of `ty`: through `quant::quantize` where it can, else random valid blocks.
fn quantized_weights(rng: &mut Rng, ty: GgmlType, n: usize, k: usize) -> Vec<u8> {
    if !ty.can_quantize() {
        return raw_weights(rng, ty, n, k);
    }
    let mut vals = Vec::with_capacity(n * k);
    for _ in 0..n {
        let (scale, bias) = (0.02 + 0.05 * rng.unit(), 0.02 * rng.normal());
        vals.extend((0..k).map(|_| scale * rng.normal() + bias));
    }
    let mut out = Vec::new();
    quant::quantize(ty, &vals, &mut out).unwrap();
    out
}

/// Random bytes with finite f16 scales: every bit pattern of the quants and packed scales occurs
/// (Q8_0 bytes of -128, Q6_K scales of -128, 6-bit Q4_K scales up to 63).
fn raw_weights(rng: &mut Rng, ty: GgmlType, n: usize, k: usize) -> Vec<u8> {
    let nb = n * k / ty.block_size();
    let ts = ty.type_size();
    let mut out: Vec<u8> = (0..nb * ts).map(|_| rng.next_u64() as u8).collect();
    for b in out.chunks_exact_mut(ts) {
        let (d_at, min_at): (usize, Option<usize>) = match ty {
            GgmlType::Q4_1 | GgmlType::Q4_K => (0, Some(2)),
            GgmlType::Q6_K => (208, None),
            _ => (0, None),
        };
        b[d_at..d_at + 2].copy_from_slice(&rng.f16_bytes(0.001, 0.05));
        if let Some(m) = min_at {
            b[m..m + 2].copy_from_slice(&rng.f16_bytes(-0.3, 0.3));
        }
    }
    out
}

/// Per-row reference (f64 over dequantized weights × original x), the bound and the magnitude Σ|w·x|.
struct Reference {
    exact: f64,
    bound: f64,
    magnitude: f64,
}

fn reference(ty: GgmlType, row: &[u8], x: &[f32]) -> Reference {
    let w = dequantize_to_vec(ty, row).unwrap();
    let act_block = activation_block(ty).unwrap();
    let amax: Vec<f64> = x
        .chunks(act_block)
        .map(|c| c.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64)))
        .collect();
    let wmax: Vec<f64> = w
        .chunks(32)
        .map(|c| c.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64)))
        .collect();
    let nb = x.len() / ty.block_size();
    let eps = f32::EPSILON as f64;
    let (mut exact, mut half_steps, mut slack, mut magnitude) = (0.0, 0.0, 0.0, 0.0);
    for (j, (&wj, &xj)) in w.iter().zip(x).enumerate() {
        let (wj, xj, a) = (wj as f64, xj as f64, amax[j / act_block]);
        exact += wj * xj;
        magnitude += (wj * xj).abs();
        half_steps += wj.abs() * a / f64::from(QMAX);
        slack += wmax[j / 32] * a;
    }
    Reference {
        exact,
        bound: 0.5 * half_steps + (nb as f64 + 32.0) * 3.0 * eps * slack,
        magnitude,
    }
}

/// Every implementation the CPU can run, so every test checks the SIMD paths too.
fn isas() -> Vec<Isa> {
    let isas = available_isas();
    println!("kernel implementations on this CPU: {isas:?}");
    isas
}

fn gemv_with(isa: Isa, ty: GgmlType, w: &[u8], xq: &QuantizedActivations) -> Vec<f32> {
    let row_bytes = xq.len() / ty.block_size() * ty.type_size();
    let mut out = vec![0.0; w.len() / row_bytes];
    Kernels { ty, isa }.gemv(w, row_bytes, xq, &mut out);
    out
}

#[test]
fn dot_and_gemv_are_within_the_activation_rounding_bound() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let n = 7;
    for ty in ALL_TYPES {
        let (mut worst_ratio, mut err_sum, mut mag_sum) = (0.0f64, 0.0f64, 0.0f64);
        for &k in test_ks(ty) {
            let w = quantized_weights(&mut rng, ty, n, k);
            let x = random_x(&mut rng, k);
            let xq = quantize_activations(ty, &x).unwrap();
            let row_bytes = w.len() / n;
            let mut out = vec![0.0; n];
            gemv_rows(ty, &w, k, &xq, 0..n, &mut out).unwrap();
            for (r, row) in w.chunks_exact(row_bytes).enumerate() {
                let re = reference(ty, row, &x);
                let d = dot(ty, row, &xq).unwrap();
                assert_eq!(
                    d.to_bits(),
                    out[r].to_bits(),
                    "{ty} k={k} row {r}: dot vs gemv"
                );
                let err = (d as f64 - re.exact).abs();
                assert!(
                    err <= re.bound,
                    "{ty} k={k} row {r}: |{d} - {}| = {err:e} > bound {:e}",
                    re.exact,
                    re.bound
                );
                worst_ratio = worst_ratio.max(err / re.bound);
                err_sum += err;
                mag_sum += re.magnitude;
            }
            for isa in isas() {
                let got = gemv_with(isa, ty, &w, &xq);
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{ty} k={k} {isa:?}"
                );
            }
        }
        let rel = err_sum / mag_sum;
        println!("{ty}: worst err/bound {worst_ratio:.3}, mean |err| / Σ|w·x| = {rel:.2e}");
        assert!(rel < 0.01, "{ty}: typical relative error {rel:e}");
    }
}

#[test]
fn avx2_path_is_bit_identical_to_scalar_on_arbitrary_blocks() {
    let isas = isas();
    if isas.len() == 1 {
        println!("no AVX2+FMA+F16C on this CPU: only the scalar path exists here (skipped)");
        return;
    }
    let mut rng = Rng(0xA5A5_0000_1111_2222);
    for ty in ALL_TYPES {
        for &k in test_ks(ty) {
            for trial in 0..3 {
                let n = 5;
                let w = raw_weights(&mut rng, ty, n, k);
                let mut x = random_x(&mut rng, k);
                if trial == 2 {
                    // Blocks hitting ±32767 everywhere, the extreme for the i32 lane sums.
                    x.iter_mut()
                        .for_each(|v| *v = if rng.unit() < 0.5 { -1.0 } else { 1.0 });
                }
                let xq = quantize_activations(ty, &x).unwrap();
                let want = gemv_with(Isa::Scalar, ty, &w, &xq);
                for &isa in &isas[1..] {
                    let got = gemv_with(isa, ty, &w, &xq);
                    for (r, (g, e)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(g.to_bits(), e.to_bits(), "{ty} k={k} row {r}: {g} vs {e}");
                    }
                }
            }
        }
    }
}

#[test]
fn q8_0_bytes_of_minus_128_are_exact() {
    // All weights -128 and activations ±32767: the largest integer sums the kernels can meet.
    let k = 96;
    let mut w = Vec::new();
    for _ in 0..k / 32 {
        w.extend_from_slice(&half::f16::from_f32(1.0).to_bits().to_le_bytes());
        w.extend_from_slice(&[0x80; 32]);
    }
    let x: Vec<f32> = (0..k)
        .map(|i| if i % 3 == 0 { -32767.0 } else { 32767.0 })
        .collect();
    let xq = quantize_activations(GgmlType::Q8_0, &x).unwrap();
    let want: f64 = x.iter().map(|&v| -128.0 * v as f64).sum();
    for isa in isas() {
        let got = gemv_with(isa, GgmlType::Q8_0, &w, &xq);
        assert_eq!(got[0] as f64, want, "{isa:?}");
    }
}

#[test]
fn gemv_rows_takes_a_sub_range() {
    let mut rng = Rng(77);
    for ty in ALL_TYPES {
        let (n, k) = (9, test_ks(ty)[1]);
        let w = quantized_weights(&mut rng, ty, n, k);
        let xq = quantize_activations(ty, &random_x(&mut rng, k)).unwrap();
        let row_bytes = w.len() / n;
        let mut out = vec![0.0; 4];
        gemv_rows(ty, &w, k, &xq, 3..7, &mut out).unwrap();
        for (i, o) in out.iter().enumerate() {
            let r = 3 + i;
            let d = dot(ty, &w[r * row_bytes..(r + 1) * row_bytes], &xq).unwrap();
            assert_eq!(o.to_bits(), d.to_bits(), "{ty} row {r}");
        }
        let mut none: [f32; 0] = [];
        gemv_rows(ty, &w, k, &xq, 9..9, &mut none).unwrap();
    }
}

#[test]
fn gemm_rows_equals_gemv_rows_for_every_activation_row() {
    let mut rng = Rng(78);
    for ty in ALL_TYPES {
        for (n, k) in [(5, test_ks(ty)[0]), (9, test_ks(ty)[1])] {
            let w = quantized_weights(&mut rng, ty, n, k);
            for nx in [1, 2, 3, 8, GEMM_MAX_X] {
                let xqs: Vec<_> = (0..nx)
                    .map(|_| quantize_activations(ty, &random_x(&mut rng, k)).unwrap())
                    .collect();
                let xs: Vec<_> = xqs.iter().collect();
                let mut out = vec![0.0; 4 * nx];
                gemm_rows(ty, &w, k, &xs, 1..5, &mut out).unwrap();
                for (j, xq) in xqs.iter().enumerate() {
                    let mut want = vec![0.0; 4];
                    gemv_rows(ty, &w, k, xq, 1..5, &mut want).unwrap();
                    for (i, want) in want.iter().enumerate() {
                        let got = out[i * nx + j];
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "{ty} k={k} nx={nx} x{j} r{i}"
                        );
                    }
                }
            }
            let xq = quantize_activations(ty, &random_x(&mut rng, k)).unwrap();
            let many = vec![&xq; GEMM_MAX_X + 1];
            let mut out = vec![0.0; n * many.len()];
            assert!(gemm_rows(ty, &w, k, &many, 0..n, &mut out).is_err());
            assert!(gemm_rows(ty, &w, k, &[], 0..n, &mut []).is_err());
        }
    }
}

#[test]
fn every_isa_gemm_equals_scalar_gemv() {
    let mut rng = Rng(79);
    let isas = isas();
    for (ty, k) in ALL_TYPES
        .into_iter()
        .flat_map(|ty| test_ks(ty)[1..].iter().take(3).map(move |&k| (ty, k)))
    {
        let n = 6;
        let w = raw_weights(&mut rng, ty, n, k);
        let row_bytes = w.len() / n;
        for (nx, interleave) in [1, 3, 7, 8, 13, GEMM_MAX_X]
            .into_iter()
            .flat_map(|nx| [(nx, false), (nx, true)])
        {
            // The interleaved layout (as `matmul` adds it for several tokens) must not change a bit.
            let xqs: Vec<_> = (0..nx)
                .map(|_| {
                    let mut xq = quantize_activations(ty, &random_x(&mut rng, k)).unwrap();
                    if interleave {
                        xq.interleave();
                    }
                    xq
                })
                .collect();
            let xs: Vec<_> = xqs.iter().collect();
            for &isa in &isas {
                let mut out = vec![0.0; n * nx];
                Kernels { ty, isa }.gemm(&w, row_bytes, &xs, &mut out);
                for (j, xq) in xqs.iter().enumerate() {
                    let want = gemv_with(Isa::Scalar, ty, &w, xq);
                    for (r, want) in want.iter().enumerate() {
                        let got = out[r * nx + j];
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "{ty} k={k} {isa:?} nx={nx} interleaved={interleave} x{j} r{r}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn supports_exactly_the_fast_types() {
    for ty in GgmlType::ALL {
        assert_eq!(supports(ty), ALL_TYPES.contains(&ty), "{ty}");
    }
}

#[test]
fn wrong_inputs_give_typed_errors() {
    use GgmlType::*;
    let x = vec![0.5f32; 256];
    assert!(matches!(
        quantize_activations(F16, &x),
        Err(Error::UnsupportedType { ty: F16, .. })
    ));
    assert!(matches!(
        quantize_activations(Q4_K, &x[..100]),
        Err(Error::BlockMisaligned { len: 100, .. })
    ));
    assert!(matches!(
        quantize_activations(Q4_1, &x[..33]),
        Err(Error::BlockMisaligned { len: 33, .. })
    ));

    let xq = quantize_activations(Q4_1, &x).unwrap();
    assert_eq!((xq.len(), xq.weight_type()), (256, Q4_1));
    let row = vec![0u8; 8 * 20];
    assert!(dot(Q4_1, &row, &xq).is_ok());
    // Q4_1 activations serve every 32-block type, but not the K-quants.
    assert!(dot(Q8_0, &vec![0u8; 8 * 34], &xq).is_ok());
    assert!(matches!(
        dot(Q4_1, &row[..159], &xq),
        Err(Error::SizeMismatch {
            expected: 160,
            actual: 159,
            ..
        })
    ));
    assert!(matches!(
        dot(Q4_K, &[0u8; 144], &xq),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        dot(F32, &[0u8; 1024], &xq),
        Err(Error::UnsupportedType { ty: F32, .. })
    ));

    let w = vec![0u8; 3 * 160];
    let mut out = vec![0.0; 3];
    assert!(gemv_rows(Q4_1, &w, 256, &xq, 0..3, &mut out).is_ok());
    assert!(matches!(
        gemv_rows(Q4_1, &w, 224, &xq, 0..3, &mut out),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        gemv_rows(Q4_1, &w[..479], 256, &xq, 0..2, &mut out[..2]),
        Err(Error::SizeMismatch { .. })
    ));
    assert!(matches!(
        gemv_rows(Q4_1, &w, 256, &xq, 1..4, &mut out),
        Err(Error::Shape { .. })
    ));
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 2..1;
    assert!(matches!(
        gemv_rows(Q4_1, &w, 256, &xq, backwards, &mut out[..0]),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        gemv_rows(Q4_1, &w, 256, &xq, 0..3, &mut out[..2]),
        Err(Error::SizeMismatch {
            expected: 3,
            actual: 2,
            ..
        })
    ));

    // k = 0: empty activations, empty rows, zero results.
    let empty = quantize_activations(Q4_K, &[]).unwrap();
    assert!(empty.is_empty());
    assert_eq!(dot(Q4_K, &[], &empty).unwrap(), 0.0);
    let mut two = [1.0f32; 2];
    gemv_rows(Q4_K, &[], 0, &empty, 0..2, &mut two).unwrap();
    assert_eq!(two, [0.0; 2]);
}

/// Times `gemv_rows`'s kernels single-threaded on SmolLM2-135M and Gemma-3-270M shapes.
/// Run: `cargo test --release -p engine-core --lib fast::tests::bench -- --ignored --nocapture`
/// (the test profile keeps debug assertions, whose UB checks slow the intrinsics down).
#[test]
#[ignore = "benchmark; prints timings"]
fn bench_gemv() {
    use std::time::Instant;
    let shapes: [(GgmlType, usize, usize, &str); 8] = [
        (GgmlType::Q4_1, 576, 1536, "SmolLM2 ffn up/gate"),
        (GgmlType::Q4_1, 1536, 576, "SmolLM2 ffn down"),
        (GgmlType::Q4_1, 576, 576, "SmolLM2 attn q/o"),
        (GgmlType::Q8_0, 576, 49152, "SmolLM2 output head"),
        (GgmlType::Q4_0, 576, 1536, "Q4_0 576x1536"),
        (GgmlType::Q5_0, 640, 2048, "Gemma-270M ffn (Q5_0)"),
        (GgmlType::Q4_K, 2048, 640, "Gemma-270M ffn down (Q4_K)"),
        (GgmlType::Q6_K, 2048, 640, "Gemma-270M ffn down (Q6_K)"),
    ];
    let mut rng = Rng(99);
    println!(
        "{:<28} {:>6} {:>6} {:>9} | {:>9} {:>8} | {:>9} {:>8} | speedup",
        "shape", "k", "n", "MiB", "scalar ns/row", "GB/s", "best ns/row", "GB/s"
    );
    for (ty, k, n, name) in shapes {
        let w = raw_weights(&mut rng, ty, n, k);
        let xq = quantize_activations(ty, &random_x(&mut rng, k)).unwrap();
        let mut results = Vec::new();
        let row_bytes = w.len() / n;
        // Timed runs of at most 256 rows, short enough to dodge preemption on a shared machine;
        // the best run counts. Consecutive runs walk through the whole matrix, so the output head
        // streams from memory as in decoding while the small matrices stay in cache.
        let chunk = n.min(256);
        for isa in isas() {
            let mut out = vec![0.0; chunk];
            let mut best = f64::INFINITY;
            let start = Instant::now();
            let mut c = 0;
            while start.elapsed().as_secs_f64() < 0.5 {
                let rows = &w[c * chunk * row_bytes..(c + 1) * chunk * row_bytes];
                let t = Instant::now();
                Kernels { ty, isa }.gemv(rows, row_bytes, &xq, &mut out);
                best = best.min(t.elapsed().as_secs_f64());
                c = (c + 1) % (n / chunk);
            }
            std::hint::black_box(&out);
            results.push((
                best * 1e9 / chunk as f64,
                (chunk * row_bytes) as f64 / best / 1e9,
            ));
        }
        let (s_ns, s_gb) = results[0];
        // The best implementation: the last one this CPU has.
        let (a_ns, a_gb) = match results.len() {
            1 => (f64::NAN, f64::NAN),
            n => results[n - 1],
        };
        println!(
            "{name:<28} {k:>6} {n:>6} {:>9.2} | {s_ns:>13.1} {s_gb:>8.2} | {a_ns:>11.1} {a_gb:>8.2} | {:.1}x",
            w.len() as f64 / (1 << 20) as f64,
            s_ns / a_ns
        );
    }
    // GEMM over several activation rows (batched decode, prefill) with the best ISA, in the
    // natural and the interleaved activation layout: ns per weight row and activation row.
    let best_isa = *isas().last().unwrap();
    for (ty, k, n, name) in shapes[..4].iter().chain(&shapes[6..7]) {
        let (ty, k, n) = (*ty, *k, (*n).min(1536));
        let w = raw_weights(&mut rng, ty, n, k);
        let row_bytes = w.len() / n;
        for nx in [4, 8, 16] {
            let mut line = format!("gemm {name:<28} nx={nx:<2}");
            for interleave in [false, true] {
                let xqs: Vec<_> = (0..nx)
                    .map(|_| {
                        let mut xq = quantize_activations(ty, &random_x(&mut rng, k)).unwrap();
                        if interleave {
                            xq.interleave();
                        }
                        xq
                    })
                    .collect();
                let xs: Vec<_> = xqs.iter().collect();
                let mut out = vec![0.0; n * nx];
                let mut best = f64::INFINITY;
                for _ in 0..200 {
                    let t = Instant::now();
                    Kernels { ty, isa: best_isa }.gemm(&w, row_bytes, &xs, &mut out);
                    best = best.min(t.elapsed().as_secs_f64());
                }
                std::hint::black_box(&out);
                let ns = best * 1e9 / (n * nx) as f64;
                line += &format!(" | interleaved={interleave}: {ns:>6.2} ns");
            }
            println!("{line}");
        }
    }
    // Activation quantization, once per matmul.
    let x = random_x(&mut rng, 1536);
    let mut best = f64::INFINITY;
    for _ in 0..2000 {
        let t = Instant::now();
        std::hint::black_box(quantize_activations(GgmlType::Q4_1, &x).unwrap());
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("quantize_activations k=1536: {:.0} ns", best * 1e9);
}
