//! Quantization of an f32 activation row to int8 blocks with an f32 scale per block.

use super::{QuantizedActivations, SUM_BLOCK};
use crate::quant::GgmlType;

/// Adding and subtracting 1.5·2²³ rounds an f32 of magnitude below 2²² to the nearest integer
/// (ties to even) with no libm call, which the baseline x86_64 and wasm32 targets would need.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Quantizes `x` (a whole number of `block`s, checked by the caller) in blocks of `block` values:
/// `d = amax/127`, `q = round(x·127/amax)` in [-127, 127] (a zero block gets d = 0 and q = 0).
///
/// Keeping q ≥ -127 lets the AVX2 kernels move signs between operands without overflow.
pub(super) fn quantize(ty: GgmlType, block: usize, x: &[f32]) -> QuantizedActivations {
    let mut qs = vec![0i8; x.len()];
    let mut d = Vec::with_capacity(x.len() / block.max(1));
    for (src, dst) in x.chunks_exact(block).zip(qs.chunks_exact_mut(block)) {
        let amax = src.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
        for (q, &v) in dst.iter_mut().zip(src) {
            // |v·inv| ≤ 127 (+ rounding) for finite blocks; `as` saturates (NaN to 0) and the
            // clamp bounds what non-finite inputs give.
            let r = (v * inv + ROUND_MAGIC) - ROUND_MAGIC;
            *q = (r as i32).clamp(-127, 127) as i8;
        }
        d.push(scale);
    }
    let sums = qs
        .chunks_exact(SUM_BLOCK)
        .map(|c| c.iter().map(|&q| i16::from(q)).sum())
        .collect();
    QuantizedActivations {
        ty,
        block,
        qs,
        d,
        sums,
    }
}
