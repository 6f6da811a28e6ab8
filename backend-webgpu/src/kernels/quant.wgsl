// GGML blocks live in `array<u32>` storage as the file's raw bytes (little-endian); blocks are not
// 4-byte aligned (Q4_0 is 18 bytes), so every read goes through bytes.

// Byte `i` of `w`.
fn byte_at(i: u32) -> u32 {
    return (W[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

// Signed byte `i` of `w`.
fn i8_at(i: u32) -> i32 {
    return (i32(byte_at(i)) << 24u) >> 24u;
}

// The little-endian u16 at byte `i`.
fn u16_at(i: u32) -> u32 {
    return byte_at(i) | (byte_at(i + 1u) << 8u);
}

// The four bytes at byte `i` (any alignment) as a little-endian u32: one or two word reads
// instead of four byte reads.
fn bytes4_at(i: u32) -> u32 {
    let word = i >> 2u;
    let shift = (i & 3u) * 8u;
    if (shift == 0u) {
        return W[word];
    }
    return (W[word] >> shift) | (W[word + 1u] << (32u - shift));
}

// f16 bits widened to f32 by integer ops, not `unpack2x16float`: exact and payload-keeping as the
// CPU's is, whatever an adapter's `unpack2x16float` does with subnormals and NaNs.
fn f16_bits_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let exp = (h >> 10u) & 0x1fu;
    let mant = h & 0x3ffu;
    if (exp == 0u) {
        // Zero or subnormal: mant · 2^-24, a normal f32 (or zero), so the product is exact.
        return bitcast<f32>(sign | bitcast<u32>(ldexp(f32(mant), -24)));
    }
    if (exp == 31u) {
        // Infinity or NaN, payload kept.
        return bitcast<f32>(sign | 0x7f800000u | (mant << 13u));
    }
    return bitcast<f32>(sign | ((exp + 112u) << 23u) | (mant << 13u));
}

// The f16 at byte `i`, widened.
fn f16_at(i: u32) -> f32 {
    return f16_bits_to_f32(u16_at(i));
}
