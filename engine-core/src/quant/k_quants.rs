//! Dequantization of the 256-value K-quant super-blocks: Q2_K, Q3_K, Q4_K, Q5_K and Q6_K.
//!
//! Each function takes one super-block and writes its 256 values. Sub-block scales are formed
//! first (`d * sc`, `dmin * m`) and then applied (`dl * q - ml`), in the order `gguf.quants`
//! (0.19.0) uses, so results are bit-identical to it.

use super::float::read_f16;
use super::QK_K;

/// Unpacks the 6-bit scale and min of sub-block `j` (0..8) from Q4_K/Q5_K's 12 packed bytes:
/// bytes 0..4 hold scales 0..4 (+2 high bits of scales 4..8), bytes 4..8 the mins likewise,
/// bytes 8..12 the low nibbles of scales and mins 4..8.
#[inline]
pub(super) fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 0x3F, s[j + 4] & 0x3F)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 2) & 0x30),
            (s[j + 4] >> 4) | ((s[j] >> 2) & 0x30),
        )
    }
}

/// Q2_K: 16 scale bytes (low nibble scale, high nibble min), 64 bytes of 2-bit values, f16 d, f16 dmin.
/// Value 128·h + 32·s + l is bits 2s..2s+2 of qs[32·h + l].
pub(super) fn dequantize_q2_k(block: &[u8; 84], out: &mut [f32; QK_K]) {
    let (scales, qs) = block.split_at(16);
    let d = read_f16(block, 80);
    let dmin = read_f16(block, 82);
    for (sub, chunk) in out.chunks_exact_mut(16).enumerate() {
        let dl = d * (scales[sub] & 0x0F) as f32;
        let ml = dmin * (scales[sub] >> 4) as f32;
        let (half, shift) = (sub / 8, 2 * ((sub / 2) % 4));
        let base = 32 * half + 16 * (sub % 2);
        for (l, o) in chunk.iter_mut().enumerate() {
            let q = (qs[base + l] >> shift) & 3;
            *o = dl * q as f32 - ml;
        }
    }
}

/// Q3_K: 32 bytes of high-bit masks, 64 bytes of low 2 bits, 12 bytes of packed 6-bit scales
/// (offset by 32), f16 d. A *clear* high bit subtracts 4.
pub(super) fn dequantize_q3_k(block: &[u8; 110], out: &mut [f32; QK_K]) {
    let (hmask, rest) = block.split_at(32);
    let (qs, rest) = rest.split_at(64);
    let scales = &rest[..12];
    let d = read_f16(block, 108);
    for (sub, chunk) in out.chunks_exact_mut(16).enumerate() {
        let low = if sub < 8 {
            scales[sub] & 0x0F
        } else {
            scales[sub - 8] >> 4
        };
        let high = (scales[8 + sub % 4] >> (2 * (sub / 4))) & 3;
        let dl = d * ((low | (high << 4)) as i32 - 32) as f32;
        // Value index e = 16·sub + l = 128·h + 32·s + m uses bits 2s of qs[32h + m] and bit 4h + s of hmask[m].
        let (half, s) = (sub / 8, (sub / 2) % 4);
        let m0 = 16 * (sub % 2);
        for (l, o) in chunk.iter_mut().enumerate() {
            let m = m0 + l;
            let ql = ((qs[32 * half + m] >> (2 * s)) & 3) as i32;
            let hbit = (hmask[m] >> (4 * half + s)) & 1;
            let q = ql - if hbit == 0 { 4 } else { 0 };
            *o = dl * q as f32;
        }
    }
}

/// Q4_K: f16 d, f16 dmin, 12 bytes of packed 6-bit scales/mins, 128 bytes of nibbles.
/// Value 64·j + 32·h + l is nibble h of qs[32·j + l].
pub(super) fn dequantize_q4_k(block: &[u8; 144], out: &mut [f32; QK_K]) {
    let d = read_f16(block, 0);
    let dmin = read_f16(block, 2);
    let scales = &block[4..16];
    let qs = &block[16..];
    for (sub, chunk) in out.chunks_exact_mut(32).enumerate() {
        let (sc, m) = scale_min_k4(sub, scales);
        let dl = d * sc as f32;
        let ml = dmin * m as f32;
        let (bytes, shift) = (&qs[32 * (sub / 2)..32 * (sub / 2) + 32], 4 * (sub % 2));
        for (o, &b) in chunk.iter_mut().zip(bytes) {
            *o = dl * ((b >> shift) & 0x0F) as f32 - ml;
        }
    }
}

/// Q5_K: as Q4_K plus 32 bytes of high bits before the nibbles (bit j of qh[l] for value 32·j + l).
pub(super) fn dequantize_q5_k(block: &[u8; 176], out: &mut [f32; QK_K]) {
    let d = read_f16(block, 0);
    let dmin = read_f16(block, 2);
    let scales = &block[4..16];
    let qh = &block[16..48];
    let qs = &block[48..];
    for (sub, chunk) in out.chunks_exact_mut(32).enumerate() {
        let (sc, m) = scale_min_k4(sub, scales);
        let dl = d * sc as f32;
        let ml = dmin * m as f32;
        let (bytes, shift) = (&qs[32 * (sub / 2)..32 * (sub / 2) + 32], 4 * (sub % 2));
        for ((o, &b), &h) in chunk.iter_mut().zip(bytes).zip(qh) {
            let q = ((b >> shift) & 0x0F) | (((h >> sub) & 1) << 4);
            *o = dl * q as f32 - ml;
        }
    }
}

/// Q6_K: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 signed scales, f16 d; q offset by 32.
/// In each half j of 128 values, value 32·s + l (l < 32) takes nibble s/2 of ql[64·j + 32·(s%2) + l]
/// and bits 2s..2s+2 of qh[32·j + l].
pub(super) fn dequantize_q6_k(block: &[u8; 210], out: &mut [f32; QK_K]) {
    let (ql, rest) = block.split_at(128);
    let (qh, scales) = rest.split_at(64);
    let d = read_f16(block, 208);
    let dl: [f32; 16] = std::array::from_fn(|i| d * (scales[i] as i8) as f32);
    for (j, y) in out.chunks_exact_mut(128).enumerate() {
        let (ql, qh, dl) = (
            &ql[64 * j..64 * j + 64],
            &qh[32 * j..32 * j + 32],
            &dl[8 * j..],
        );
        for l in 0..32 {
            let is = l / 16;
            let q = |lo: u8, hi: u8| ((lo & 0x0F) | ((hi & 3) << 4)) as i32 - 32;
            y[l] = dl[is] * q(ql[l], qh[l]) as f32;
            y[l + 32] = dl[is + 2] * q(ql[l + 32], qh[l] >> 2) as f32;
            y[l + 64] = dl[is + 4] * q(ql[l] >> 4, qh[l] >> 4) as f32;
            y[l + 96] = dl[is + 6] * q(ql[l + 32] >> 4, qh[l] >> 6) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k4_scale_packing_matches_ggml_layout() {
        // Scales 0..8 = 1..=8 (sub-block 5 gets 0b11_0110 = 54), mins = 60..=67 wrapped to 6 bits.
        let mut s = [0u8; 12];
        let scales = [1u8, 2, 3, 4, 5, 54, 7, 8];
        let mins = [60u8, 61, 62, 63, 0, 1, 2, 33];
        for j in 0..4 {
            s[j] = scales[j] | ((scales[j + 4] >> 4) << 6);
            s[j + 4] = mins[j] | ((mins[j + 4] >> 4) << 6);
            s[j + 8] = (scales[j + 4] & 0x0F) | ((mins[j + 4] & 0x0F) << 4);
        }
        for j in 0..8 {
            assert_eq!(scale_min_k4(j, &s), (scales[j], mins[j]), "sub-block {j}");
        }
    }
}
