//! Quantization of an f32 activation row to 16-bit integer blocks with an f32 scale per block.

use super::{QuantizedActivations, PAD, QMAX, SUM_BLOCK};
use crate::quant::GgmlType;

/// Adding 1.5·2²³ to an f32 of magnitude below 2²² rounds it to the nearest integer
/// (ties to even) with no libm call, which the baseline x86_64 and wasm32 targets would need.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// The largest |v| (NaNs ignored), over eight independent maxima so the compiler can vectorize.
fn abs_max(src: &[f32]) -> f32 {
    let mut m = [0.0f32; 8];
    let (chunks, rest) = src.as_chunks::<8>();
    for c in chunks {
        for (m, &v) in m.iter_mut().zip(c) {
            let a = v.abs();
            *m = if a > *m { a } else { *m };
        }
    }
    rest.iter().chain(&m).fold(0.0, |m, v| m.max(v.abs()))
}

/// Quantizes `x` (a whole number of `block`s, checked by the caller) in blocks of `block` values:
/// `d = amax/QMAX`, `q = round(x·QMAX/amax)` in [-QMAX, QMAX] (a zero block gets d = 0 and q = 0).
///
/// Keeping q ≥ -QMAX (never -32768) bounds every i16 product sum the kernels form.
pub(super) fn quantize(ty: GgmlType, block: usize, x: &[f32]) -> QuantizedActivations {
    let padded = x.len().div_ceil(PAD) * PAD;
    let mut qs = vec![0i16; padded];
    let mut d = vec![0.0; padded / block];
    for ((src, dst), scale_out) in x
        .chunks_exact(block)
        .zip(qs.chunks_exact_mut(block))
        .zip(d.iter_mut())
    {
        let amax = abs_max(src);
        let scale = amax / QMAX;
        let inv = if amax > 0.0 { QMAX / amax } else { 0.0 };
        for (q, &v) in dst.iter_mut().zip(src) {
            // |v·inv| ≤ QMAX (+ rounding) for finite blocks; the clamp bounds what non-finite
            // inputs give, and NaN becomes 0.
            let c = (v * inv).clamp(-QMAX, QMAX);
            let c = if c.is_nan() { 0.0 } else { c };
            // c + 1.5·2²³ has a unit step, so its low mantissa bits are round(c) offset by the
            // magic's: a branch-free conversion the compiler vectorizes (an `as` cast saturates).
            *q = ((c + ROUND_MAGIC).to_bits() as i32 - ROUND_MAGIC.to_bits() as i32) as i16;
        }
        *scale_out = scale;
    }
    let sums = qs
        .chunks_exact(SUM_BLOCK)
        .map(|c| c.iter().map(|&q| i32::from(q)).sum())
        .collect();
    QuantizedActivations {
        ty,
        block,
        k: x.len(),
        qs,
        d,
        sums,
        interleaved: Vec::new(),
    }
}

/// `qs` (a whole number of `PAD`-value groups) in the layout `QuantizedActivations::interleaved`
/// describes.
pub(super) fn interleaved(qs: &[i16]) -> Vec<i16> {
    let mut out = vec![0i16; qs.len()];
    for (src, dst) in qs.chunks_exact(PAD).zip(out.chunks_exact_mut(PAD)) {
        for (v, vector) in dst.chunks_exact_mut(16).enumerate() {
            let (base, part, p) = (4 * (v / 8), v % 8 / 4, v % 4);
            for (l, pair) in vector.chunks_exact_mut(2).enumerate() {
                let block = base + l % 4;
                let at = block * SUM_BLOCK + 2 * (8 * part + p + 4 * (l / 4));
                pair.copy_from_slice(&src[at..at + 2]);
            }
        }
    }
    out
}
