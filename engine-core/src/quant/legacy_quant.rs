//! Quantization of 32-value blocks to Q8_0, Q4_0 and Q4_1, with the error bound of each format.
//!
//! Round-to-nearest in the style of ggml's reference quantizers (absmax for Q8_0 and Q4_0, min/max
//! for Q4_1), except that the stored f16 scale is rounded so the grid covers the block (see
//! `scale.rs`) and the values are quantized against that stored scale.

use super::legacy::QK;
use super::scale::{
    abs_max, extreme, f16_round_down, f16_round_up, f16_spacing, f16_up_bound, min_max,
    recip_or_zero, signed_absmax_bound, F16_MAX, SLACK,
};

/// Q8_0: d = amax/127 rounded up to f16, q = round(x/d) in [-127, 127].
pub(super) fn quantize_q8_0(src: &[f32; QK], out: &mut Vec<u8>) {
    let d = f16_round_up(abs_max(src) / 127.0);
    let id = recip_or_zero(d.to_f32());
    let mut block = [0u8; 34];
    block[..2].copy_from_slice(&d.to_bits().to_le_bytes());
    for (b, &x) in block[2..].iter_mut().zip(src) {
        // floor(v + 0.5) via truncation of a positive number: round half up, no libm call.
        let q = ((x * id + 128.5) as i32 - 128).clamp(-127, 127);
        *b = q as i8 as u8;
    }
    out.extend_from_slice(&block);
}

/// Q8_0 bound: half a step, with the step amax/127 rounded up to f16 (+ one f16 spacing); if the
/// step saturated at f16::MAX, the values beyond 127 steps are off by their excess.
pub(super) fn q8_0_error_bound(block: &[f32]) -> f32 {
    let amax = abs_max(block);
    let step_lo = (amax / 127.0).min(F16_MAX);
    let step_up = f16_up_bound(amax / 127.0);
    (step_up / 2.0).max(amax - 127.0 * step_lo) + SLACK * amax
}

/// Q4_0: the value of largest magnitude maps to q = -8 (d = -extreme/8, magnitude rounded up to
/// f16); q = round(x/d) + 8 clamped to [0, 15], so values of the other sign reach only 7·|d|.
pub(super) fn quantize_q4_0(src: &[f32; QK], out: &mut Vec<u8>) {
    let e = extreme(src);
    let mag = f16_round_up(e.abs() / 8.0);
    let d = if e > 0.0 { -mag } else { mag };
    let id = recip_or_zero(d.to_f32());
    let mut block = [0u8; 18];
    block[..2].copy_from_slice(&d.to_bits().to_le_bytes());
    let q = |x: f32| ((x * id + 8.5) as u8).min(15);
    for (i, b) in block[2..].iter_mut().enumerate() {
        *b = q(src[i]) | (q(src[i + QK / 2]) << 4);
    }
    out.extend_from_slice(&block);
}

/// Q4_0 bound: half a step (amax/8 rounded up to f16) inside the grid; values of the other sign
/// beyond 7 steps are off by their excess over 7·amax/8 (at most one step).
pub(super) fn q4_0_error_bound(block: &[f32]) -> f32 {
    let amax = abs_max(block);
    let step_lo = (amax / 8.0).min(F16_MAX);
    let step_up = f16_up_bound(amax / 8.0);
    signed_absmax_bound(block, 8.0, step_lo, step_up) + SLACK * amax
}

/// Q4_1: m = min rounded down to f16, d = (max - m)/15 rounded up, q = round((x - m)/d).
pub(super) fn quantize_q4_1(src: &[f32; QK], out: &mut Vec<u8>) {
    let (lo, hi) = min_max(src);
    let m = f16_round_down(lo);
    let mf = m.to_f32();
    let d = f16_round_up((hi - mf) / 15.0);
    let id = recip_or_zero(d.to_f32());
    let mut block = [0u8; 20];
    block[..2].copy_from_slice(&d.to_bits().to_le_bytes());
    block[2..4].copy_from_slice(&m.to_bits().to_le_bytes());
    let q = |x: f32| (((x - mf) * id + 0.5) as u8).min(15);
    for (i, b) in block[4..].iter_mut().enumerate() {
        *b = q(src[i]) | (q(src[i + QK / 2]) << 4);
    }
    out.extend_from_slice(&block);
}

/// Q4_1 bound: half a step, the step being (max - m)/15 rounded up where m ≥ min - one f16 spacing;
/// plus any excess beyond the f16 range of m (below -65504) or of 15·d (above m + 15·65504).
pub(super) fn q4_1_error_bound(block: &[f32]) -> f32 {
    let (lo, hi) = min_max(block);
    let m_lo = (lo - f16_spacing(lo)).max(-F16_MAX);
    let step_up = f16_up_bound((hi - m_lo) / 15.0);
    let clip_lo = -F16_MAX - lo;
    let clip_hi = hi - (m_lo + 15.0 * F16_MAX);
    (step_up / 2.0).max(clip_lo).max(clip_hi) + SLACK * abs_max(block)
}

#[cfg(test)]
mod tests {
    use super::super::legacy::{dequantize_q4_0, dequantize_q4_1, dequantize_q8_0};
    use super::*;

    fn ramp(scale: f32) -> [f32; QK] {
        std::array::from_fn(|i| (i as f32 - 13.3) * scale)
    }

    #[test]
    fn each_format_round_trips_a_ramp_within_its_bound() {
        for scale in [1e-9, 1e-6, 0.01, 1.0, 300.0, 1e5] {
            let src = ramp(scale);
            let mut back = [0.0; QK];

            let mut q = Vec::new();
            quantize_q8_0(&src, &mut q);
            dequantize_q8_0(q.as_slice().try_into().unwrap(), &mut back);
            let b = q8_0_error_bound(&src);
            assert!(
                src.iter().zip(&back).all(|(x, y)| (x - y).abs() <= b),
                "q8_0 {scale}"
            );

            let mut q = Vec::new();
            quantize_q4_0(&src, &mut q);
            dequantize_q4_0(q.as_slice().try_into().unwrap(), &mut back);
            let b = q4_0_error_bound(&src);
            assert!(
                src.iter().zip(&back).all(|(x, y)| (x - y).abs() <= b),
                "q4_0 {scale}"
            );

            let mut q = Vec::new();
            quantize_q4_1(&src, &mut q);
            dequantize_q4_1(q.as_slice().try_into().unwrap(), &mut back);
            let b = q4_1_error_bound(&src);
            assert!(
                src.iter().zip(&back).all(|(x, y)| (x - y).abs() <= b),
                "q4_1 {scale}"
            );
        }
    }

    #[test]
    fn q4_0_puts_the_extreme_at_minus_eight() {
        let mut src = [0.5f32; QK];
        src[3] = 4.0;
        let mut q = Vec::new();
        quantize_q4_0(&src, &mut q);
        assert_eq!(half::f16::from_le_bytes([q[0], q[1]]).to_f32(), -0.5);
        assert_eq!(q[2 + 3] & 0x0F, 0);
    }
}
