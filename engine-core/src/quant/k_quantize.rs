//! Quantization of 256-value super-blocks to Q4_K and Q6_K, with the error bound of each format.
//!
//! A simple, one-pass scheme: each sub-block gets the scale (and, for Q4_K, the min) that covers its
//! range, and those are quantized against the super-block's f16 `d`/`dmin` by rounding *up*, so
//! coverage survives and every value is within half a (slightly widened) step of the grid.

use super::scale::{
    abs_max, extreme, f16_round_up, f16_up_bound, min_max, recip_or_zero, signed_absmax_bound,
    F16_MAX, SLACK,
};
use super::QK_K;

/// `ceil(v)` as an integer in [0, max]; NaN gives 0.
#[inline]
fn ceil_to(v: f32, max: u8) -> u8 {
    (v.ceil() as u8).min(max)
}

fn max_of(values: &[f32]) -> f32 {
    values.iter().fold(0.0f32, |m, &x| m.max(x))
}

/// Q4_K: per 32-value sub-block j, x ≈ (d·sc_j)·q - dmin·m_j with q in [0, 15], sc_j and m_j 6-bit.
/// m_j = ceil(offset_j / dmin) puts the lowest grid point at or below the sub-block minimum (or at 0
/// when the minimum is positive); sc_j = ceil(span_j / (15·d)) then reaches the maximum.
pub(super) fn quantize_q4_k(src: &[f32; QK_K], out: &mut Vec<u8>) {
    let mut offset = [0.0f32; 8];
    let mut top = [0.0f32; 8];
    for (j, sub) in src.chunks_exact(32).enumerate() {
        let (lo, hi) = min_max(sub);
        offset[j] = (-lo).max(0.0);
        top[j] = hi;
    }
    let dmin = f16_round_up(max_of(&offset) / 63.0);
    let dmin_f = dmin.to_f32();
    let inv_dmin = recip_or_zero(dmin_f);
    let m: [u8; 8] = std::array::from_fn(|j| ceil_to(offset[j] * inv_dmin, 63));
    // The same products dequantization forms, so q is chosen against the exact grid.
    let ml: [f32; 8] = std::array::from_fn(|j| dmin_f * m[j] as f32);
    let span: [f32; 8] = std::array::from_fn(|j| (top[j] + ml[j]).max(0.0));
    let d = f16_round_up(max_of(&span) / (15.0 * 63.0));
    let d_f = d.to_f32();
    let inv_step = recip_or_zero(15.0 * d_f);
    let sc: [u8; 8] = std::array::from_fn(|j| ceil_to(span[j] * inv_step, 63));

    out.extend_from_slice(&d.to_bits().to_le_bytes());
    out.extend_from_slice(&dmin.to_bits().to_le_bytes());
    for j in 0..4 {
        out.push(sc[j] | ((sc[j + 4] >> 4) << 6));
    }
    for j in 0..4 {
        out.push(m[j] | ((m[j + 4] >> 4) << 6));
    }
    for j in 0..4 {
        out.push((sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4));
    }
    let mut q = [0u8; QK_K];
    for (j, (sub, qsub)) in src.chunks_exact(32).zip(q.chunks_exact_mut(32)).enumerate() {
        let id = recip_or_zero(d_f * sc[j] as f32);
        for (qv, &x) in qsub.iter_mut().zip(sub) {
            *qv = (((x + ml[j]) * id + 0.5) as u8).min(15);
        }
    }
    // Value 64·p + 32·h + l is nibble h of byte 32·p + l.
    for pair in q.chunks_exact(64) {
        out.extend((0..32).map(|l| pair[l] | (pair[l + 32] << 4)));
    }
}

/// Q4_K bound, per sub-block j with offset_j = max(0, -min_j):
/// dmin·m_j ≤ offset_j + dmin_up, so the span to cover is at most
/// span_j = max_j + offset_j + dmin_up, and the step d·sc_j ≤ span_j/15 + d_up (ceil adds < one d),
/// with dmin_up, d_up the f16 round-up bounds of max(offset)/63 and max(span)/945. The error is half
/// a step, or the excess beyond the f16 range: offset_j over 63·65504, span_j over 945·65504.
pub(super) fn q4_k_error_bound(block: &[f32]) -> f32 {
    let mut max_offset = 0.0f32;
    for sub in block.chunks(32) {
        max_offset = max_offset.max(-min_max(sub).0);
    }
    let dmin_up = f16_up_bound(max_offset / 63.0);
    let dmin_lo = (max_offset / 63.0).min(F16_MAX);
    let span_of = |sub: &[f32]| {
        let (lo, hi) = min_max(sub);
        ((-lo).max(0.0), hi + (-lo).max(0.0) + dmin_up)
    };
    let max_span = block
        .chunks(32)
        .fold(0.0f32, |m, sub| m.max(span_of(sub).1));
    let d_up = f16_up_bound(max_span / 945.0);
    let worst = block.chunks(32).fold(0.0f32, |acc, sub| {
        let (offset, span) = span_of(sub);
        acc.max((span / 15.0 + d_up) / 2.0)
            .max(offset - 63.0 * dmin_lo)
            .max(span - 945.0 * F16_MAX)
    });
    worst + SLACK * abs_max(block)
}

/// Q6_K: per 16-value sub-block j, x ≈ (d·sc_j)·q with q in [-32, 31] and sc_j a signed byte whose
/// sign puts the sub-block's extreme at q = -32; |sc_j| = ceil(|extreme_j|/32 / d).
pub(super) fn quantize_q6_k(src: &[f32; QK_K], out: &mut Vec<u8>) {
    let ext: [f32; 16] = std::array::from_fn(|j| extreme(&src[16 * j..16 * j + 16]));
    let max_step = ext.iter().fold(0.0f32, |m, e| m.max(e.abs() / 32.0));
    let d = f16_round_up(max_step / 127.0);
    let d_f = d.to_f32();
    let inv_d = recip_or_zero(d_f);
    let sc: [i8; 16] = std::array::from_fn(|j| {
        let mag = ceil_to(ext[j].abs() / 32.0 * inv_d, 127) as i8;
        if ext[j] > 0.0 {
            -mag
        } else {
            mag
        }
    });
    let mut q = [0u8; QK_K];
    for (j, (sub, qsub)) in src.chunks_exact(16).zip(q.chunks_exact_mut(16)).enumerate() {
        let id = recip_or_zero(d_f * sc[j] as f32);
        for (qv, &x) in qsub.iter_mut().zip(sub) {
            *qv = ((x * id + 32.5) as u8).min(63);
        }
    }
    // Within each half of 128 values: value 64·h + l takes nibble h of ql[l] (l < 64), and value
    // 32·s + l takes bits 2s..2s+2 of qh[l] (l < 32).
    for half in q.chunks_exact(128) {
        out.extend((0..64).map(|l| (half[l] & 0x0F) | ((half[l + 64] & 0x0F) << 4)));
    }
    for half in q.chunks_exact(128) {
        out.extend((0..32).map(|l| {
            (half[l] >> 4)
                | ((half[l + 32] >> 4) << 2)
                | ((half[l + 64] >> 4) << 4)
                | ((half[l + 96] >> 4) << 6)
        }));
    }
    out.extend(sc.iter().map(|&s| s as u8));
    out.extend_from_slice(&d.to_bits().to_le_bytes());
}

/// Q6_K bound, per sub-block: the step d·|sc_j| lies between |extreme_j|/32 (or 127·65504 if the
/// scale saturated) and |extreme_j|/32 + d_up, d_up the f16 round-up bound of max_step/127; then as
/// Q4_0 (`signed_absmax_bound`): half a step, or the excess beyond 31 steps on the other side.
pub(super) fn q6_k_error_bound(block: &[f32]) -> f32 {
    let max_step = block
        .chunks(16)
        .fold(0.0f32, |m, sub| m.max(abs_max(sub) / 32.0));
    let d_up = f16_up_bound(max_step / 127.0);
    let worst = block.chunks(16).fold(0.0f32, |acc, sub| {
        let step = abs_max(sub) / 32.0;
        acc.max(signed_absmax_bound(
            sub,
            32.0,
            step.min(127.0 * F16_MAX),
            step + d_up,
        ))
    });
    worst + SLACK * abs_max(block)
}

#[cfg(test)]
mod tests {
    use super::super::k_quants::{dequantize_q4_k, dequantize_q6_k};
    use super::*;

    fn wave(scale: f32) -> [f32; QK_K] {
        std::array::from_fn(|i| ((i as f32 * 0.37).sin() + 0.3 * (i / 32) as f32 - 0.5) * scale)
    }

    #[test]
    fn q4_k_and_q6_k_round_trip_within_bound() {
        for scale in [1e-8, 1e-4, 1.0, 50.0, 3e4] {
            let src = wave(scale);
            let mut back = [0.0; QK_K];

            let mut q = Vec::new();
            quantize_q4_k(&src, &mut q);
            dequantize_q4_k(q.as_slice().try_into().unwrap(), &mut back);
            let b = q4_k_error_bound(&src);
            let worst = src
                .iter()
                .zip(&back)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(worst <= b, "q4_k scale {scale}: {worst} > {b}");

            let mut q = Vec::new();
            quantize_q6_k(&src, &mut q);
            dequantize_q6_k(q.as_slice().try_into().unwrap(), &mut back);
            let b = q6_k_error_bound(&src);
            let worst = src
                .iter()
                .zip(&back)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(worst <= b, "q6_k scale {scale}: {worst} > {b}");
        }
    }
}
