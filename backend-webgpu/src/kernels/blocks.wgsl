// Decoding of weight rows eight values at a time, for the weight type `WTYPE` (a constant the
// kernel's source starts with, so each pipeline keeps only its own decoder). Eight values is the
// largest run that shares one scale in every supported type (Q2_K, Q3_K and Q6_K scale 16), and
// 32 and 256 are multiples of it, so a group never straddles a block.
//
// The float operations follow engine-core's CPU dequantization in order (`d * q`, `d * q + m`,
// `(d * sc) * q - dmin * m`) so that values match it bit for bit. Every product there is exact in
// f32 (an f16 scale has 11 significant bits, a 6- or 8-bit scale and a 2- to 8-bit quant add at
// most 14 more), so only a final add rounds, and a compiler fusing it into an fma changes nothing.

const T_F32: u32 = 0u;
const T_F16: u32 = 1u;
const T_Q4_0: u32 = 2u;
const T_Q4_1: u32 = 3u;
const T_Q8_0: u32 = 4u;
const T_Q4_K: u32 = 5u;
const T_Q6_K: u32 = 6u;
const T_Q5_0: u32 = 7u;
const T_Q5_1: u32 = 8u;
const T_Q2_K: u32 = 9u;
const T_Q3_K: u32 = 10u;
const T_Q5_K: u32 = 11u;
const T_BF16: u32 = 12u;

// Values 8g..8g+8 of a row, in order.
struct Eight {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

// The `mask`ed field at bit `shift` of each of the four bytes of `w`.
fn fields(w: u32, shift: u32, mask: u32) -> vec4<u32> {
    let s = vec4<u32>(0u, 8u, 16u, 24u) + vec4<u32>(shift);
    return (vec4<u32>(w) >> s) & vec4<u32>(mask);
}

// The four nibbles at bit `shift` of each byte of `w`, as values 0..16.
fn nibbles(w: u32, shift: u32) -> vec4<f32> {
    return vec4<f32>(fields(w, shift, 15u));
}

// The four bytes of `w` as signed values.
fn signed_bytes(w: u32) -> vec4<f32> {
    let up = vec4<u32>(w) << vec4<u32>(24u, 16u, 8u, 0u);
    return vec4<f32>(bitcast<vec4<i32>>(up) >> vec4<u32>(24u));
}

// Q6_K's 6-bit values of four bytes: the nibble at `lo_shift` of `lo` and the 2-bit field at
// `hi_shift` of `hi` above it, less 32.
fn six_bits(lo: u32, lo_shift: u32, hi: u32, hi_shift: u32) -> vec4<f32> {
    let q = fields(lo, lo_shift, 15u) | (fields(hi, hi_shift, 3u) << vec4<u32>(4u));
    return vec4<f32>(vec4<i32>(q) - vec4<i32>(32));
}

// Float rows may have any length: values at or past `k` read as zero (and are not read).
fn f32_value(base: u32, i: u32, k: u32) -> f32 {
    if (i >= k) {
        return 0.0;
    }
    return bitcast<f32>(W[(base >> 2u) + i]);
}

fn f16_value(base: u32, i: u32, k: u32) -> f32 {
    if (i >= k) {
        return 0.0;
    }
    let h = (base >> 1u) + i;
    return f16_bits_to_f32((W[h >> 1u] >> ((h & 1u) * 16u)) & 0xffffu);
}

// bf16 is the top half of an f32: a shift, as the CPU does (no NaN quieting).
fn bf16_value(base: u32, i: u32, k: u32) -> f32 {
    if (i >= k) {
        return 0.0;
    }
    let h = (base >> 1u) + i;
    return bitcast<f32>(((W[h >> 1u] >> ((h & 1u) * 16u)) & 0xffffu) << 16u);
}

fn load8_f32(base: u32, g: u32, k: u32) -> Eight {
    let i = 8u * g;
    return Eight(
        vec4<f32>(f32_value(base, i, k), f32_value(base, i + 1u, k),
                  f32_value(base, i + 2u, k), f32_value(base, i + 3u, k)),
        vec4<f32>(f32_value(base, i + 4u, k), f32_value(base, i + 5u, k),
                  f32_value(base, i + 6u, k), f32_value(base, i + 7u, k)));
}

fn load8_f16(base: u32, g: u32, k: u32) -> Eight {
    let i = 8u * g;
    return Eight(
        vec4<f32>(f16_value(base, i, k), f16_value(base, i + 1u, k),
                  f16_value(base, i + 2u, k), f16_value(base, i + 3u, k)),
        vec4<f32>(f16_value(base, i + 4u, k), f16_value(base, i + 5u, k),
                  f16_value(base, i + 6u, k), f16_value(base, i + 7u, k)));
}

fn load8_bf16(base: u32, g: u32, k: u32) -> Eight {
    let i = 8u * g;
    return Eight(
        vec4<f32>(bf16_value(base, i, k), bf16_value(base, i + 1u, k),
                  bf16_value(base, i + 2u, k), bf16_value(base, i + 3u, k)),
        vec4<f32>(bf16_value(base, i + 4u, k), bf16_value(base, i + 5u, k),
                  bf16_value(base, i + 6u, k), bf16_value(base, i + 7u, k)));
}

// Q4_0 (18 bytes): f16 d, 16 bytes of nibbles; value i < 16 is the low nibble of byte i, value
// i + 16 the high one; x = d · (q - 8). Group j of the block: bytes 8·(j % 2).., nibble j / 2.
fn load8_q4_0(base: u32, g: u32) -> Eight {
    let blk = base + 18u * (g >> 2u);
    let j = g & 3u;
    let d = f16_at(blk);
    let at = blk + 2u + 8u * (j & 1u);
    let shift = 4u * (j >> 1u);
    return Eight(d * (nibbles(bytes4_at(at), shift) - 8.0),
                 d * (nibbles(bytes4_at(at + 4u), shift) - 8.0));
}

// Q4_1 (20 bytes): f16 d, f16 m, nibbles as Q4_0; x = d · q + m.
fn load8_q4_1(base: u32, g: u32) -> Eight {
    let blk = base + 20u * (g >> 2u);
    let j = g & 3u;
    let d = f16_at(blk);
    let m = f16_at(blk + 2u);
    let at = blk + 4u + 8u * (j & 1u);
    let shift = 4u * (j >> 1u);
    return Eight(d * nibbles(bytes4_at(at), shift) + m,
                 d * nibbles(bytes4_at(at + 4u), shift) + m);
}

// The fifth bits of values 8j..8j+8 of a Q5 block (bits 8j.. of its u32 `qh`), as 0 or 16.
fn fifth_bits(qh: u32, j: u32) -> array<vec4<u32>, 2> {
    let b = vec4<u32>(qh >> (8u * j));
    return array<vec4<u32>, 2>(((b >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u)) << vec4<u32>(4u),
                               ((b >> vec4<u32>(4u, 5u, 6u, 7u)) & vec4<u32>(1u)) << vec4<u32>(4u));
}

// Q5_0 (22 bytes): f16 d, u32 qh, nibbles as Q4_0 at byte 6; value i's fifth bit is bit i of qh;
// x = d · (q - 16).
fn load8_q5_0(base: u32, g: u32) -> Eight {
    let blk = base + 22u * (g >> 2u);
    let j = g & 3u;
    let d = f16_at(blk);
    let h = fifth_bits(bytes4_at(blk + 2u), j);
    let at = blk + 6u + 8u * (j & 1u);
    let shift = 4u * (j >> 1u);
    let lo = fields(bytes4_at(at), shift, 15u) | h[0];
    let hi = fields(bytes4_at(at + 4u), shift, 15u) | h[1];
    return Eight(d * (vec4<f32>(lo) - 16.0), d * (vec4<f32>(hi) - 16.0));
}

// Q5_1 (24 bytes): f16 d, f16 m, u32 qh, nibbles at byte 8; bits as Q5_0; x = d · q + m.
fn load8_q5_1(base: u32, g: u32) -> Eight {
    let blk = base + 24u * (g >> 2u);
    let j = g & 3u;
    let d = f16_at(blk);
    let m = f16_at(blk + 2u);
    let h = fifth_bits(bytes4_at(blk + 4u), j);
    let at = blk + 8u + 8u * (j & 1u);
    let shift = 4u * (j >> 1u);
    let lo = fields(bytes4_at(at), shift, 15u) | h[0];
    let hi = fields(bytes4_at(at + 4u), shift, 15u) | h[1];
    return Eight(d * vec4<f32>(lo) + m, d * vec4<f32>(hi) + m);
}

// Q2_K (84 bytes): 16 scale bytes (low nibble scale, high nibble min), 64 bytes of 2-bit values,
// f16 d, f16 dmin. Sub-block s (16 values) has scale byte s; value 128·h + 32·j + l is bits 2j..
// of qs[32·h + l]; x = (d · sc) · q - dmin · m.
fn load8_q2_k(base: u32, g: u32) -> Eight {
    let blk = base + 84u * (g >> 5u);
    let gi = g & 31u;
    let sub = gi >> 1u;
    let sc = byte_at(blk + sub);
    let dl = f16_at(blk + 80u) * f32(sc & 15u);
    let ml = f16_at(blk + 82u) * f32(sc >> 4u);
    let at = blk + 16u + 32u * (sub >> 3u) + 16u * (sub & 1u) + 8u * (gi & 1u);
    let shift = 2u * ((sub >> 1u) & 3u);
    return Eight(dl * vec4<f32>(fields(bytes4_at(at), shift, 3u)) - ml,
                 dl * vec4<f32>(fields(bytes4_at(at + 4u), shift, 3u)) - ml);
}

// Q3_K (110 bytes): 32 bytes of high-bit masks, 64 bytes of low 2 bits, 12 bytes of packed 6-bit
// scales (less 32), f16 d. Value 128·h + 32·j + l takes bits 2j.. of qs[32·h + l] and bit 4h + j
// of hmask[l], a clear bit subtracting 4; x = (d · sc) · q.
fn load8_q3_k(base: u32, g: u32) -> Eight {
    let blk = base + 110u * (g >> 5u);
    let gi = g & 31u;
    let sub = gi >> 1u;
    let s = blk + 96u;
    var low: u32;
    if (sub < 8u) {
        low = byte_at(s + sub) & 15u;
    } else {
        low = byte_at(s + sub - 8u) >> 4u;
    }
    let high = (byte_at(s + 8u + (sub & 3u)) >> (2u * (sub >> 2u))) & 3u;
    let dl = f16_at(blk + 108u) * f32(i32(low | (high << 4u)) - 32);
    let h = sub >> 3u;
    let j = (sub >> 1u) & 3u;
    let l = 16u * (sub & 1u) + 8u * (gi & 1u);
    let at = blk + 32u + 32u * h + l;
    let bit = 4u * h + j;
    let lo = vec4<i32>(fields(bytes4_at(at), 2u * j, 3u))
        - 4 * vec4<i32>(vec4<u32>(1u) - fields(bytes4_at(blk + l), bit, 1u));
    let hi = vec4<i32>(fields(bytes4_at(at + 4u), 2u * j, 3u))
        - 4 * vec4<i32>(vec4<u32>(1u) - fields(bytes4_at(blk + l + 4u), bit, 1u));
    return Eight(dl * vec4<f32>(lo), dl * vec4<f32>(hi));
}

// Q8_0 (34 bytes): f16 d, 32 signed bytes; x = d · q.
fn load8_q8_0(base: u32, g: u32) -> Eight {
    let blk = base + 34u * (g >> 2u);
    let d = f16_at(blk);
    let at = blk + 2u + 8u * (g & 3u);
    return Eight(d * signed_bytes(bytes4_at(at)), d * signed_bytes(bytes4_at(at + 4u)));
}

// The 6-bit scale and min of sub-block `sub` of Q4_K/Q5_K from their 12 packed bytes at `s`:
// bytes 0..4 hold scales 0..4 (and the top 2 bits of scales 4..8), bytes 4..8 the mins likewise,
// bytes 8..12 the low nibbles of scales and mins 4..8.
fn k_scale_min(s: u32, sub: u32) -> vec2<u32> {
    if (sub < 4u) {
        return vec2<u32>(byte_at(s + sub) & 63u, byte_at(s + sub + 4u) & 63u);
    }
    let low = byte_at(s + sub + 4u);
    return vec2<u32>((low & 15u) | ((byte_at(s + sub - 4u) >> 2u) & 48u),
                     (low >> 4u) | ((byte_at(s + sub) >> 2u) & 48u));
}

// Q4_K (144 bytes): f16 d, f16 dmin, 12 bytes of packed 6-bit scales and mins, 128 bytes of
// nibbles. Sub-block s (32 values) takes nibble s % 2 of bytes 32·(s / 2)..; x = d·sc·q - dmin·m.
fn load8_q4_k(base: u32, g: u32) -> Eight {
    let blk = base + 144u * (g >> 5u);
    let sub = (g >> 2u) & 7u;
    let part = g & 3u;
    let sm = k_scale_min(blk + 4u, sub);
    let dl = f16_at(blk) * f32(sm.x);
    let ml = f16_at(blk + 2u) * f32(sm.y);
    let at = blk + 16u + 32u * (sub >> 1u) + 8u * part;
    let shift = 4u * (sub & 1u);
    return Eight(dl * nibbles(bytes4_at(at), shift) - ml,
                 dl * nibbles(bytes4_at(at + 4u), shift) - ml);
}

// Q5_K (176 bytes): as Q4_K with 32 bytes of fifth bits (bit s of qh[l] for value 32·s + l)
// before the 128 bytes of nibbles.
fn load8_q5_k(base: u32, g: u32) -> Eight {
    let blk = base + 176u * (g >> 5u);
    let sub = (g >> 2u) & 7u;
    let part = g & 3u;
    let sm = k_scale_min(blk + 4u, sub);
    let dl = f16_at(blk) * f32(sm.x);
    let ml = f16_at(blk + 2u) * f32(sm.y);
    let at = blk + 48u + 32u * (sub >> 1u) + 8u * part;
    let shift = 4u * (sub & 1u);
    let qh = blk + 16u + 8u * part;
    let lo = fields(bytes4_at(at), shift, 15u) | (fields(bytes4_at(qh), sub, 1u) << vec4<u32>(4u));
    let hi = fields(bytes4_at(at + 4u), shift, 15u)
        | (fields(bytes4_at(qh + 4u), sub, 1u) << vec4<u32>(4u));
    return Eight(dl * vec4<f32>(lo) - ml, dl * vec4<f32>(hi) - ml);
}

// Q6_K (210 bytes): 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 signed scales, f16
// d; x = (d · sc) · (q - 32). In half h (128 values), value 32·s + l takes nibble s / 2 of
// ql[64·h + 32·(s % 2) + l], bits 2s.. of qh[32·h + l], and scale 8·h + 2·s + l / 16.
fn load8_q6_k(base: u32, g: u32) -> Eight {
    let blk = base + 210u * (g >> 5u);
    let gi = g & 31u;
    let h = gi >> 4u;
    let s = (gi >> 2u) & 3u;
    let l = 8u * (gi & 3u);
    let d = f16_at(blk + 208u);
    let dl = d * f32(i8_at(blk + 192u + 8u * h + 2u * s + (l >> 4u)));
    let ql = blk + 64u * h + 32u * (s & 1u) + l;
    let qh = blk + 128u + 32u * h + l;
    let lo_shift = 4u * (s >> 1u);
    let hi_shift = 2u * s;
    return Eight(dl * six_bits(bytes4_at(ql), lo_shift, bytes4_at(qh), hi_shift),
                 dl * six_bits(bytes4_at(ql + 4u), lo_shift, bytes4_at(qh + 4u), hi_shift));
}

// Values 8g..8g+8 of the row starting at byte `base` of `W`; `k` is the row length (values past it
// are zero; only float rows can end inside a group).
fn load8(base: u32, g: u32, k: u32) -> Eight {
    var r: Eight;
    switch (WTYPE) {
        case T_F32: { r = load8_f32(base, g, k); }
        case T_F16: { r = load8_f16(base, g, k); }
        case T_Q4_0: { r = load8_q4_0(base, g); }
        case T_Q4_1: { r = load8_q4_1(base, g); }
        case T_Q8_0: { r = load8_q8_0(base, g); }
        case T_Q4_K: { r = load8_q4_k(base, g); }
        case T_Q5_0: { r = load8_q5_0(base, g); }
        case T_Q5_1: { r = load8_q5_1(base, g); }
        case T_Q2_K: { r = load8_q2_k(base, g); }
        case T_Q3_K: { r = load8_q3_k(base, g); }
        case T_Q5_K: { r = load8_q5_k(base, g); }
        case T_BF16: { r = load8_bf16(base, g, k); }
        default: { r = load8_q6_k(base, g); }
    }
    return r;
}
