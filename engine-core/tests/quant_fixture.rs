//! Quantization against outside truth: bit-exact dequantization versus the `gguf` Python package
//! (fixtures/quant/, made by scripts/make_quant_fixture.py), round trips within `error_bound`,
//! the error variants, and a check that the bounds are tight enough to catch a broken encoding.

use engine_core::quant::{dequantize, dequantize_to_vec, error_bound, quantize, GgmlType};
use engine_core::Error;
use proptest::prelude::*;
use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/quant")
}

#[test]
fn dequantize_matches_gguf_py_bit_for_bit() {
    let dir = fixture_dir();
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).expect("read manifest"),
    )
    .expect("parse manifest");
    assert_eq!(manifest["gguf_version"], "0.19.0");
    let files = manifest["files"].as_array().expect("files");
    let mut seen = Vec::new();
    for entry in files {
        let name = entry["type"].as_str().expect("type");
        let ty = GgmlType::from_name(name).expect("known type");
        assert_eq!(entry["id"].as_u64(), Some(u64::from(ty.id())), "{name}");
        assert_eq!(entry["block_size"].as_u64(), Some(ty.block_size() as u64));
        assert_eq!(entry["type_size"].as_u64(), Some(ty.type_size() as u64));
        let bytes = std::fs::read(dir.join(entry["file"].as_str().expect("file"))).expect("read");
        let data_len = entry["data_bytes"].as_u64().expect("data_bytes") as usize;
        let n = entry["n_blocks"].as_u64().expect("n_blocks") as usize * ty.block_size();
        assert_eq!(bytes.len(), data_len + 4 * n, "{name} file size");
        let (data, expected) = bytes.split_at(data_len);

        let mut out = vec![0.0f32; n];
        dequantize(ty, data, &mut out).expect("dequantize");
        let via_vec = dequantize_to_vec(ty, data).expect("dequantize_to_vec");
        let mut mismatches = 0;
        for (i, (e, (a, b))) in expected
            .chunks_exact(4)
            .zip(out.iter().zip(&via_vec))
            .enumerate()
        {
            let e = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
            if a.to_bits() != e || b.to_bits() != e {
                if mismatches < 5 {
                    eprintln!(
                        "{name}[{i}] (block {}): got {:#010x} ({a}), want {e:#010x} ({})",
                        i / ty.block_size(),
                        a.to_bits(),
                        f32::from_bits(e)
                    );
                }
                mismatches += 1;
            }
        }
        assert_eq!(mismatches, 0, "{name}: {mismatches} of {n} values differ");
        seen.push(ty);
    }
    seen.sort();
    let mut all = GgmlType::DEQUANTIZABLE.to_vec();
    all.sort();
    assert_eq!(
        seen, all,
        "the fixture covers exactly the dequantizable types"
    );
}

/// splitmix64: a tiny seeded generator so the tests need no extra crates.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (1.0 - self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

const LEN: usize = 1024; // a whole number of blocks for every type

/// Random data (several distributions and magnitudes) followed by the edge cases.
fn test_vectors() -> Vec<(String, Vec<f32>)> {
    let mut rng = Rng(0x05EE_D0F5_C1CE);
    let mut v = Vec::new();
    for scale in [1e-6f32, 1e-3, 0.02, 1.0, 37.0, 2e3] {
        v.push((
            format!("normal*{scale}"),
            (0..LEN).map(|_| rng.normal() * scale).collect(),
        ));
        v.push((
            format!("uniform*{scale}"),
            (0..LEN).map(|_| (rng.unit() * 2.0 - 1.0) * scale).collect(),
        ));
        v.push((
            format!("positive*{scale}"),
            (0..LEN).map(|_| (rng.unit() + 0.5) * scale).collect(),
        ));
    }
    // Per-block magnitudes varying over many decades, as in real weights with outlier channels.
    v.push((
        "mixed-magnitudes".into(),
        (0..LEN)
            .map(|_| rng.normal() * 10f32.powf(rng.unit() * 8.0 - 5.0))
            .collect(),
    ));
    v.push(("zeros".into(), vec![0.0; LEN]));
    v.push(("constant".into(), vec![0.731; LEN]));
    v.push(("negative-constant".into(), vec![-12.5; LEN]));
    let mut outlier: Vec<f32> = (0..LEN).map(|_| rng.normal() * 0.01).collect();
    for i in (5..LEN).step_by(97) {
        outlier[i] = if i % 2 == 0 { 3.0e4 } else { -4.5e3 };
    }
    v.push(("huge-outlier".into(), outlier));
    v.push((
        "negative-only".into(),
        (0..LEN).map(|_| -(rng.unit() * 3.0 + 0.01)).collect(),
    ));
    v.push((
        "tiny".into(),
        (0..LEN).map(|_| rng.normal() * 1e-8).collect(),
    ));
    v.push((
        "f16-range-edge".into(),
        (0..LEN).map(|_| rng.normal() * 2e4).collect(),
    ));
    v
}

/// Max |x - y| per block, and the block's bound.
fn block_errors(ty: GgmlType, src: &[f32], back: &[f32]) -> Vec<(f32, f32)> {
    src.chunks(ty.block_size())
        .zip(back.chunks(ty.block_size()))
        .map(|(s, b)| {
            let err = s
                .iter()
                .zip(b)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            (err, error_bound(ty, s))
        })
        .collect()
}

fn round_trip(ty: GgmlType, src: &[f32]) -> Vec<f32> {
    let mut q = Vec::new();
    quantize(ty, src, &mut q).expect("quantize");
    assert_eq!(q.len(), src.len() / ty.block_size() * ty.type_size());
    dequantize_to_vec(ty, &q).expect("dequantize")
}

#[test]
fn round_trip_stays_within_error_bound() {
    for ty in GgmlType::QUANTIZABLE {
        let mut worst_ratio = 0.0f32;
        for (name, src) in test_vectors() {
            let back = round_trip(ty, &src);
            for (i, (err, bound)) in block_errors(ty, &src, &back).into_iter().enumerate() {
                assert!(
                    err <= bound,
                    "{ty} {name} block {i}: error {err:e} exceeds bound {bound:e}"
                );
                if name.starts_with("normal") && bound > 0.0 {
                    worst_ratio = worst_ratio.max(err / bound);
                }
            }
        }
        eprintln!("{ty}: worst error/bound on normal data {worst_ratio:.3}");
    }
}

#[test]
fn zero_blocks_round_trip_exactly() {
    for ty in GgmlType::QUANTIZABLE {
        let back = round_trip(ty, &[0.0; LEN]);
        assert!(back.iter().all(|&y| y == 0.0), "{ty}");
    }
}

/// The bounds are tight: on normal data errors come close to them, they sit well below the data's
/// magnitude, and a single corrupted byte pushes some block past its bound.
#[test]
fn error_bound_is_not_vacuous() {
    let mut rng = Rng(42);
    let src: Vec<f32> = (0..LEN).map(|_| rng.normal()).collect();
    for ty in GgmlType::QUANTIZABLE {
        let back = round_trip(ty, &src);
        let errors = block_errors(ty, &src, &back);
        if ty.block_size() > 1 {
            let worst = errors.iter().fold(0.0f32, |m, (e, b)| m.max(e / b));
            assert!(
                worst > 0.5,
                "{ty}: errors reach only {worst:.3} of the bound"
            );
            // Fraction of the block's max |x| the bound may reach: about one 4-bit step, one 6-bit
            // step, or half an 8-bit step.
            let limit = match ty {
                GgmlType::Q8_0 => 1.0 / 200.0,
                GgmlType::Q6_K => 1.0 / 25.0,
                _ => 1.0 / 4.0,
            };
            for (block, (_, bound)) in src.chunks(ty.block_size()).zip(&errors) {
                let amax = block.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                assert!(*bound < limit * amax, "{ty}: bound {bound} vs max {amax}");
            }
        }

        let mut q = Vec::new();
        quantize(ty, &src, &mut q).expect("quantize");
        // Flip the top bit of each nibble of one byte of quantized values (for F32/F16 the byte
        // holding the exponent's top bits); some block must then break its bound.
        let at = match ty {
            GgmlType::F32 => 4 * 7 + 3,
            GgmlType::F16 => 2 * 7 + 1,
            GgmlType::Q4_K => 144 * 2 + 16 + 5,
            GgmlType::Q6_K => 210 * 2 + 5,
            _ => ty.type_size() * 2 + ty.type_size() - 3,
        };
        q[at] ^= 0x44;
        let bad = dequantize_to_vec(ty, &q).expect("dequantize");
        let broken = block_errors(ty, &src, &bad)
            .iter()
            .filter(|(e, b)| e > b)
            .count();
        assert_eq!(broken, 1, "{ty}: a corrupted byte went unnoticed");
    }
}

#[test]
fn unsupported_types_are_errors() {
    for ty in [
        GgmlType::IQ2_XXS,
        GgmlType::Q8_K,
        GgmlType::Q8_1,
        GgmlType::I32,
    ] {
        let data = vec![0u8; ty.type_size()];
        let mut out = vec![0.0; ty.block_size()];
        assert!(matches!(
            dequantize(ty, &data, &mut out),
            Err(Error::UnsupportedType { ty: t, op: "dequantize" }) if t == ty
        ));
        assert!(matches!(
            dequantize_to_vec(ty, &data),
            Err(Error::UnsupportedType { .. })
        ));
    }
    for ty in [
        GgmlType::Q5_0,
        GgmlType::Q2_K,
        GgmlType::BF16,
        GgmlType::IQ2_XXS,
    ] {
        let src = vec![0.0; ty.block_size()];
        let mut out = Vec::new();
        assert!(matches!(
            quantize(ty, &src, &mut out),
            Err(Error::UnsupportedType { ty: t, op: "quantize" }) if t == ty
        ));
        assert!(out.is_empty());
        assert!(error_bound(ty, &src).is_nan());
    }
}

#[test]
fn misaligned_lengths_are_errors() {
    let mut out = vec![0.0; 33];
    assert!(matches!(
        dequantize(GgmlType::Q4_0, &[0; 36], &mut out),
        Err(Error::BlockMisaligned {
            len: 33,
            block: 32,
            ty: GgmlType::Q4_0,
            ..
        })
    ));
    let mut bytes = Vec::new();
    assert!(matches!(
        quantize(GgmlType::Q4_K, &[0.0; 255], &mut bytes),
        Err(Error::BlockMisaligned {
            len: 255,
            block: 256,
            ty: GgmlType::Q4_K,
            ..
        })
    ));
    assert!(matches!(
        quantize(GgmlType::Q8_0, &[0.0; 48], &mut bytes),
        Err(Error::BlockMisaligned {
            len: 48,
            block: 32,
            ..
        })
    ));
    assert!(bytes.is_empty());
}

#[test]
fn wrong_data_sizes_are_errors() {
    let mut out = vec![0.0; 64];
    assert!(matches!(
        dequantize(GgmlType::Q8_0, &[0; 67], &mut out),
        Err(Error::SizeMismatch {
            expected: 68,
            actual: 67,
            ..
        })
    ));
    let mut out = vec![0.0; 256];
    assert!(matches!(
        dequantize(GgmlType::Q6_K, &[0; 211], &mut out),
        Err(Error::SizeMismatch {
            expected: 210,
            actual: 211,
            ..
        })
    ));
    assert!(matches!(
        dequantize(GgmlType::F16, &[0; 3], &mut [0.0; 1]),
        Err(Error::SizeMismatch {
            expected: 2,
            actual: 3,
            ..
        })
    ));
    assert!(matches!(
        dequantize_to_vec(GgmlType::Q4_K, &[0; 145]),
        Err(Error::SizeMismatch {
            expected: 144,
            actual: 145,
            ..
        })
    ));
    assert_eq!(
        dequantize_to_vec(GgmlType::Q4_K, &[]).expect("empty").len(),
        0
    );
}

proptest! {
    // No failure persistence: a regression file would land outside the test's directory.
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Arbitrary values at an arbitrary magnitude, including ones beyond the f16 scale range.
    #[test]
    fn any_finite_block_round_trips_within_bound(
        unit in prop::collection::vec(-1.0f32..1.0, 256),
        exponent in -30i32..24,
        ty_index in 0usize..GgmlType::QUANTIZABLE.len(),
    ) {
        let ty = GgmlType::QUANTIZABLE[ty_index];
        let scale = 2f32.powi(exponent);
        let src: Vec<f32> = unit.iter().map(|u| u * scale).collect();
        let back = round_trip(ty, &src);
        for (err, bound) in block_errors(ty, &src, &back) {
            prop_assert!(err <= bound, "{} at 2^{}: {:e} > {:e}", ty, exponent, err, bound);
        }
    }
}

/// Throughput of both directions, single-threaded:
/// `cargo test --release -p engine-core --test quant_fixture -- --ignored --nocapture`.
#[test]
#[ignore = "timing, not a check"]
fn throughput() {
    let mut rng = Rng(7);
    let n = 1 << 24;
    let src: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    // Best of three runs, so page faults on first touch of the buffers do not count.
    let best = |f: &mut dyn FnMut()| {
        (0..3)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    for ty in GgmlType::DEQUANTIZABLE {
        let mut q = Vec::with_capacity(n / ty.block_size() * ty.type_size());
        let quant_rate = if ty.can_quantize() {
            let secs = best(&mut || {
                q.clear();
                quantize(ty, &src, &mut q).expect("quantize");
            });
            Some(n as f64 / secs / 1e6)
        } else {
            q.resize(n / ty.block_size() * ty.type_size(), 0x5A);
            None
        };
        let mut out = vec![0.0f32; n];
        let secs = best(&mut || dequantize(ty, &q, &mut out).expect("dequantize"));
        let deq_rate = n as f64 / secs / 1e6;
        let quant = quant_rate.map_or("-".to_string(), |r| format!("{r:.0}"));
        eprintln!("{ty:>5}: quantize {quant:>5} M values/s, dequantize {deq_rate:.0} M values/s");
        std::hint::black_box(&out);
    }
}
