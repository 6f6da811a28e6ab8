//! Plain float formats (F32, F16, BF16): conversion to f32, and F32/F16 encoding for the writer.

use half::f16;
use half::slice::HalfFloatSliceExt;

/// Reads a little-endian f16 and widens it exactly.
///
/// NaNs keep their payload bit for bit (signalling ones too), as numpy does and the reference
/// fixture expects; `half` would set the quiet bit.
#[inline]
pub(super) fn f16_bits_to_f32(bits: u16) -> f32 {
    if bits & 0x7C00 == 0x7C00 && bits & 0x03FF != 0 {
        let sign = u32::from(bits & 0x8000) << 16;
        f32::from_bits(sign | 0x7F80_0000 | (u32::from(bits & 0x03FF) << 13))
    } else {
        f16::from_bits(bits).to_f32()
    }
}

/// Reads the little-endian f16 at `bytes[at..at + 2]`.
#[inline]
pub(super) fn read_f16(bytes: &[u8], at: usize) -> f32 {
    f16_bits_to_f32(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

/// `data` holds `out.len()` little-endian f32s (sizes checked by the caller).
pub(super) fn dequantize_f32(data: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(data.chunks_exact(4)) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// `data` holds `out.len()` little-endian f16s.
pub(super) fn dequantize_f16(data: &[u8], out: &mut [f32]) {
    // Convert in chunks through `half`'s vectorized slice conversion, then redo the rare NaNs so
    // their payloads match the reference (see `f16_bits_to_f32`).
    let mut bits = [f16::ZERO; 256];
    for (o, b) in out.chunks_mut(256).zip(data.chunks(512)) {
        let bits = &mut bits[..o.len()];
        for (h, pair) in bits.iter_mut().zip(b.chunks_exact(2)) {
            *h = f16::from_bits(u16::from_le_bytes([pair[0], pair[1]]));
        }
        bits.convert_to_f32_slice(o);
        for (v, h) in o.iter_mut().zip(bits.iter()) {
            if v.is_nan() {
                *v = f16_bits_to_f32(h.to_bits());
            }
        }
    }
}

/// `data` holds `out.len()` little-endian bf16s.
pub(super) fn dequantize_bf16(data: &[u8], out: &mut [f32]) {
    // A plain shift, as the reference does: `half::bf16::to_f32` would quiet signalling NaNs.
    for (o, b) in out.iter_mut().zip(data.chunks_exact(2)) {
        *o = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
    }
}

pub(super) fn quantize_f32(src: &[f32], out: &mut Vec<u8>) {
    out.reserve(src.len() * 4);
    for &x in src {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

/// Round to nearest even, overflow to infinity: IEEE conversion, as numpy's `astype(float16)`.
pub(super) fn quantize_f16(src: &[f32], out: &mut Vec<u8>) {
    out.reserve(src.len() * 2);
    let mut halves = [f16::ZERO; 256];
    for chunk in src.chunks(256) {
        let halves = &mut halves[..chunk.len()];
        halves.convert_from_f32_slice(chunk);
        for h in halves.iter() {
            out.extend_from_slice(&h.to_bits().to_le_bytes());
        }
    }
}

/// F16 error bound: half an f16 ulp at each value, i.e. |x|·2⁻¹¹ for normal values and 2⁻²⁵ in the
/// subnormal range; values that round to infinity (|x| ≥ 65520) have no finite bound.
pub(super) fn f16_error_bound(block: &[f32]) -> f32 {
    block.iter().fold(0.0f32, |acc, &x| {
        let a = x.abs();
        if a < 65520.0 {
            acc.max((a * f32::powi(2.0, -11)).max(f32::powi(2.0, -25)))
        } else {
            f32::INFINITY
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_nan_payloads_survive_widening() {
        assert_eq!(f16_bits_to_f32(0x7C01).to_bits(), 0x7F80_2000);
        assert_eq!(f16_bits_to_f32(0xFE00).to_bits(), 0xFFC0_0000);
        assert_eq!(f16_bits_to_f32(0x0001), f32::powi(2.0, -24));
        assert_eq!(f16_bits_to_f32(0x7C00), f32::INFINITY);
    }

    #[test]
    fn f16_slice_path_matches_scalar_path() {
        let bits: Vec<u16> = (0..=u16::MAX).collect();
        let data: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        let mut out = vec![0.0; bits.len()];
        dequantize_f16(&data, &mut out);
        for (b, v) in bits.iter().zip(&out) {
            assert_eq!(v.to_bits(), f16_bits_to_f32(*b).to_bits(), "bits {b:#06x}");
        }
    }

    #[test]
    fn f16_bound_covers_every_rounding() {
        let xs = [
            0.0, 1e-8, 3e-6, 6.1e-5, 0.1, 1.0, 1000.3, 65504.0, 65519.0, -7.77,
        ];
        for x in xs {
            let mut out = Vec::new();
            quantize_f16(&[x], &mut out);
            let back = f16_bits_to_f32(u16::from_le_bytes([out[0], out[1]]));
            assert!((back - x).abs() <= f16_error_bound(&[x]), "{x}");
        }
        assert_eq!(f16_error_bound(&[7e4]), f32::INFINITY);
    }
}
