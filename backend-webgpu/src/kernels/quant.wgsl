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

// The f16 at byte `i`, widened.
fn f16_at(i: u32) -> f32 {
    return unpack2x16float(u16_at(i)).x;
}
