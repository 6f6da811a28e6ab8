//! A self-check every build can run where it executes: each kernel implementation this CPU (or
//! wasm engine) has, against the scalar reference, bit for bit, on seeded random blocks. The unit
//! tests cover the native implementations; the browser tests call this for the wasm ones.

use super::{available_isas, quantize_activations, Isa, Kernels, QuantizedActivations};
use crate::quant::GgmlType;
use crate::rng::SplitMix64;

/// The weight types with a fast kernel.
pub(super) const TYPES: [GgmlType; 6] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
];

/// Runs every implementation on seeded random weights (every bit pattern of the quants, finite
/// scales) and activations (normal-like, some at ±32767 everywhere), one to three activation rows
/// at a time, over row lengths around the eight-block groups. Returns the implementations checked
/// and the number of outputs compared, or the first output that differs from the scalar path's.
#[doc(hidden)]
pub fn check_against_scalar(seed: u64) -> Result<(Vec<String>, usize), String> {
    let isas = available_isas();
    let mut rng = SplitMix64::new(seed);
    let mut compared = 0;
    for ty in TYPES {
        let ks: &[usize] = if ty.block_size() == 32 {
            &[32, 96, 160, 256, 288, 576, 608]
        } else {
            &[256, 768, 1536]
        };
        for &k in ks {
            for trial in 0..3 {
                let n = 5;
                let row_bytes = k / ty.block_size() * ty.type_size();
                let w = random_blocks(&mut rng, ty, n * k / ty.block_size());
                let xs: Vec<QuantizedActivations> = (0..1 + trial)
                    .map(|_| {
                        let x: Vec<f32> = (0..k)
                            .map(|_| match trial {
                                2 => rng.next_signed_unit().signum(),
                                _ => rng.next_signed_unit() * 3.0,
                            })
                            .collect();
                        quantize_activations(ty, &x).map_err(|e| e.to_string())
                    })
                    .collect::<Result<_, _>>()?;
                let refs: Vec<&QuantizedActivations> = xs.iter().collect();
                let run = |isa: Isa| {
                    let mut out = vec![0f32; n * refs.len()];
                    Kernels { ty, isa }.gemm(&w, row_bytes, &refs, &mut out);
                    out
                };
                let want = run(Isa::Scalar);
                for &isa in &isas[1..] {
                    for (i, (g, e)) in run(isa).iter().zip(&want).enumerate() {
                        if g.to_bits() != e.to_bits() {
                            return Err(format!(
                                "{ty} k={k} {} activation rows, output {i}: {isa:?} gives {g}, scalar {e}",
                                refs.len()
                            ));
                        }
                        compared += 1;
                    }
                }
            }
        }
    }
    Ok((isas.iter().map(|i| format!("{i:?}")).collect(), compared))
}

/// `blocks` random blocks of `ty` with finite f16 scales (and mins) of realistic size.
fn random_blocks(rng: &mut SplitMix64, ty: GgmlType, blocks: usize) -> Vec<u8> {
    let ts = ty.type_size();
    let mut out: Vec<u8> = (0..blocks * ts).map(|_| rng.next_u64() as u8).collect();
    let mut f16 = |scale: f32| {
        half::f16::from_f32(scale * rng.next_signed_unit())
            .to_bits()
            .to_le_bytes()
    };
    for b in out.chunks_exact_mut(ts) {
        let (d_at, min_at) = match ty {
            GgmlType::Q4_1 | GgmlType::Q4_K => (0, Some(2)),
            GgmlType::Q6_K => (208, None),
            _ => (0, None),
        };
        b[d_at..d_at + 2].copy_from_slice(&f16(0.05));
        if let Some(m) = min_at {
            b[m..m + 2].copy_from_slice(&f16(0.3));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_implementation_here_matches_scalar() {
        let (isas, compared) = super::check_against_scalar(7).unwrap();
        println!("{isas:?}: {compared} outputs compared");
        assert!(isas.len() == 1 || compared > 0);
    }
}
