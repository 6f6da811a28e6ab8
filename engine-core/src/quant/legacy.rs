//! Dequantization of the 32-value "legacy" blocks: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0.
//!
//! Each function takes one block and writes its 32 values. The float operations follow
//! `gguf.quants` (0.19.0) in order (`d * q`, `d * q + m`) so results are bit-identical to it.

use super::float::read_f16;

/// Block geometry shared by the legacy formats.
pub(super) const QK: usize = 32;

/// Q4_0: f16 d, then 16 bytes of nibbles; low nibbles are values 0..16, high nibbles 16..32.
pub(super) fn dequantize_q4_0(block: &[u8; 18], out: &mut [f32; QK]) {
    let d = read_f16(block, 0);
    for (i, &b) in block[2..].iter().enumerate() {
        out[i] = d * ((b & 0x0F) as i32 - 8) as f32;
        out[i + 16] = d * ((b >> 4) as i32 - 8) as f32;
    }
}

/// Q4_1: f16 d, f16 m, 16 bytes of nibbles; x = d·q + m.
pub(super) fn dequantize_q4_1(block: &[u8; 20], out: &mut [f32; QK]) {
    let d = read_f16(block, 0);
    let m = read_f16(block, 2);
    for (i, &b) in block[4..].iter().enumerate() {
        out[i] = d * (b & 0x0F) as f32 + m;
        out[i + 16] = d * (b >> 4) as f32 + m;
    }
}

/// Q5_0: f16 d, 32 high bits (bit i for value i), 16 bytes of low nibbles; q is offset by 16.
pub(super) fn dequantize_q5_0(block: &[u8; 22], out: &mut [f32; QK]) {
    let d = read_f16(block, 0);
    let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
    for (i, &b) in block[6..].iter().enumerate() {
        let lo = (b & 0x0F) | (((qh >> i) & 1) as u8) << 4;
        let hi = (b >> 4) | (((qh >> (i + 16)) & 1) as u8) << 4;
        out[i] = d * (lo as i32 - 16) as f32;
        out[i + 16] = d * (hi as i32 - 16) as f32;
    }
}

/// Q5_1: f16 d, f16 m, 32 high bits, 16 bytes of low nibbles; x = d·q + m.
pub(super) fn dequantize_q5_1(block: &[u8; 24], out: &mut [f32; QK]) {
    let d = read_f16(block, 0);
    let m = read_f16(block, 2);
    let qh = u32::from_le_bytes([block[4], block[5], block[6], block[7]]);
    for (i, &b) in block[8..].iter().enumerate() {
        let lo = (b & 0x0F) | (((qh >> i) & 1) as u8) << 4;
        let hi = (b >> 4) | (((qh >> (i + 16)) & 1) as u8) << 4;
        out[i] = d * lo as f32 + m;
        out[i + 16] = d * hi as f32 + m;
    }
}

/// Q8_0: f16 d, then 32 signed bytes.
pub(super) fn dequantize_q8_0(block: &[u8; 34], out: &mut [f32; QK]) {
    let d = read_f16(block, 0);
    for (o, &b) in out.iter_mut().zip(&block[2..]) {
        *o = d * (b as i8) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_nibble_order_and_offset() {
        let mut block = [0u8; 18];
        block[..2].copy_from_slice(&half::f16::from_f32(0.5).to_bits().to_le_bytes());
        block[2] = 0xF0; // value 0 -> q 0 (-8), value 16 -> q 15 (+7)
        let mut out = [0.0; QK];
        dequantize_q4_0(&block, &mut out);
        assert_eq!((out[0], out[16], out[1]), (-4.0, 3.5, -4.0));
    }

    #[test]
    fn q5_1_high_bits_follow_value_index() {
        let mut block = [0u8; 24];
        block[..2].copy_from_slice(&half::f16::from_f32(1.0).to_bits().to_le_bytes());
        block[2..4].copy_from_slice(&half::f16::from_f32(-1.0).to_bits().to_le_bytes());
        block[4..8].copy_from_slice(&(1u32 << 17).to_le_bytes()); // value 17
        let mut out = [0.0; QK];
        dequantize_q5_1(&block, &mut out);
        assert_eq!((out[1], out[17]), (-1.0, 15.0));
    }
}
