// Shared by every kernel file (the host prepends it to each program, so NVRTC needs no include
// paths): fixed-width integer names, f16 widening, and decoding of GGML weight rows eight values at
// a time for each weight type.
//
// The float operations follow engine-core's CPU dequantization in order (`d * q`, `d * q + m`,
// `(d * sc) * q - dmin * m`), so decoded values match it bit for bit: every product there is exact
// in f32 (an f16 scale has 11 significant bits, a 6- or 8-bit scale and a 2- to 8-bit quant add at
// most 14 more), so only the final add rounds, and NVRTC fusing it into an fma changes nothing.

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

// -inf (NVRTC has no <math.h> here, so no INFINITY).
#define NEG_INF __uint_as_float(0xff800000u)

// Weight types, in the order of `WEIGHT_TYPES` on the host.
#define T_F32 0
#define T_F16 1
#define T_Q4_0 2
#define T_Q4_1 3
#define T_Q8_0 4
#define T_Q4_K 5
#define T_Q6_K 6
#define T_Q5_0 7
#define T_Q5_1 8
#define T_Q2_K 9
#define T_Q3_K 10
#define T_Q5_K 11
#define T_BF16 12

// f16 bits widened to f32 by integer operations: exact, and subnormals and NaN payloads kept as
// the CPU keeps them, whatever the hardware conversion would do with them.
__device__ __forceinline__ float f16_to_f32(u32 h) {
    const u32 sign = (h & 0x8000u) << 16;
    const u32 exp = (h >> 10) & 0x1fu;
    const u32 mant = h & 0x3ffu;
    if (exp == 0u) {
        // Zero or subnormal: mant * 2^-24 is exact in f32.
        return __uint_as_float(sign | __float_as_uint((float)mant * 5.9604644775390625e-8f));
    }
    if (exp == 31u) {
        return __uint_as_float(sign | 0x7f800000u | (mant << 13));
    }
    return __uint_as_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

// The little-endian f16 at `p` (blocks are not 2-byte aligned: Q4_0 is 18 bytes).
__device__ __forceinline__ float f16_at(const u8* p) {
    return f16_to_f32((u32)p[0] | ((u32)p[1] << 8));
}

// Float rows may have any length: values at or past `k` read as zero (and are not read).
__device__ __forceinline__ void load8_f32(const u8* row, u32 g, u32 k, float v[8]) {
    const float* r = (const float*)row;
#pragma unroll
    for (u32 i = 0; i < 8; ++i) {
        const u32 at = 8u * g + i;
        v[i] = at < k ? r[at] : 0.0f;
    }
}

__device__ __forceinline__ void load8_f16(const u8* row, u32 g, u32 k, float v[8]) {
    const u16* r = (const u16*)row;
#pragma unroll
    for (u32 i = 0; i < 8; ++i) {
        const u32 at = 8u * g + i;
        v[i] = at < k ? f16_to_f32(r[at]) : 0.0f;
    }
}

// bf16 is the top half of an f32: a shift, as the CPU does (no NaN quieting).
__device__ __forceinline__ void load8_bf16(const u8* row, u32 g, u32 k, float v[8]) {
    const u16* r = (const u16*)row;
#pragma unroll
    for (u32 i = 0; i < 8; ++i) {
        const u32 at = 8u * g + i;
        v[i] = at < k ? __uint_as_float((u32)r[at] << 16) : 0.0f;
    }
}

// Q4_0 (18 bytes): f16 d, 16 bytes of nibbles; value i < 16 is the low nibble of byte i, value
// i + 16 the high one; x = d * (q - 8). Group j of a block: bytes 8 * (j % 2).., nibble j / 2.
__device__ __forceinline__ void load8_q4_0(const u8* row, u32 g, float v[8]) {
    const u8* blk = row + 18u * (g >> 2);
    const u32 j = g & 3u;
    const float d = f16_at(blk);
    const u8* q = blk + 2u + 8u * (j & 1u);
    const u32 shift = 4u * (j >> 1);
#pragma unroll
    for (u32 i = 0; i < 8; ++i) {
        v[i] = d * (float)((int)((q[i] >> shift) & 15u) - 8);
    }
}

// Q4_1 (20 bytes): f16 d, f16 m, nibbles as Q4_0; x = d * q + m.
__device__ __forceinline__ void load8_q4_1(const u8* row, u32 g, float v[8]) {
    const u8* blk = row + 20u * (g >> 2);
    const u32 j = g & 3u;
    const float d = f16_at(blk);
    const float m = f16_at(blk + 2);
    const u8* q = blk + 4u + 8u * (j & 1u);
    const u32 shift = 4u * (j >> 1);
#pragma unroll
    for (u32 i = 0; i < 8; ++i) {
        v[i] = d * (float)((q[i] >> shift) & 15u) + m;
    }
}

// The little-endian u32 at `p` (any alignment).
__device__ __forceinline__ u32 u32_at(const u8* p) {
    return (u32)p[0] | ((u32)p[1] << 8) | ((u32)p[2] << 16) | ((u32)p[3] << 24);
}

// Q5_0 (22 bytes): f16 d, u32 qh, nibbles as Q4_0 at byte 6; value i's fifth bit is bit i of qh;
// x = d * (q - 16).
__device__ __forceinline__ void load8_q5_0(const u8* row, u32 g, float v[8]) {
    const u8* blk = row + 22u * (g >> 2);
    const u32 j = g & 3u;
    const float d = f16_at(blk);
    const u32 qh = u32_at(blk + 2) >> (8u * j);
    const u8* q = blk + 6u + 8u * (j & 1u);
    const u32 shift = 4u * (j >> 1);
#pragma unroll
    for (u32 i = 0; i < 8; ++i) {
        const u32 x = ((q[i] >> shift) & 15u) | (((qh >> i) & 1u) << 4);
        v[i] = d * (float)((int)x - 16);
    }
}

// Q5_1 (24 bytes): f16 d, f16 m, u32 qh, nibbles at byte 8; bits as Q5_0; x = d * q + m.
__device__ __forceinline__ void load8_q5_1(const u8* row, u32 g, float v[8]) {
    const u8* blk = row + 24u * (g >> 2);
    const u32 j = g & 3u;
    const float d = f16_at(blk);
    const float m = f16_at(blk + 2);
    const u32 qh = u32_at(blk + 4) >> (8u * j);
    const u8* q = blk + 8u + 8u * (j & 1u);
    const u32 shift = 4u * (j >> 1);
#pragma unroll
    for (u32 i = 0; i < 8; ++i) {
        const u32 x = ((q[i] >> shift) & 15u) | (((qh >> i) & 1u) << 4);
        v[i] = d * (float)x + m;
    }
}

// Q8_0 (34 bytes): f16 d, 32 signed bytes; x = d * q.
__device__ __forceinline__ void load8_q8_0(const u8* row, u32 g, float v[8]) {
    const u8* blk = row + 34u * (g >> 2);
    const float d = f16_at(blk);
    const i8* q = (const i8*)(blk + 2u + 8u * (g & 3u));
#pragma unroll
    for (u32 i = 0; i < 8; ++i) {
        v[i] = d * (float)q[i];
    }
}

// Q2_K (84 bytes): 16 scale bytes (low nibble scale, high nibble min), 64 bytes of 2-bit values,
// f16 d, f16 dmin. Sub-block s (16 values) has scale byte s; value 128h + 32j + l is bits 2j.. of
// qs[32h + l]; x = (d * sc) * q - dmin * m.
__device__ __forceinline__ void load8_q2_k(const u8* row, u32 g, float v[8]) {
    const u8* blk = row + 84u * (g >> 5);
    const u32 gi = g & 31u;
    const u32 sub = gi >> 1;
    const u32 sc = blk[sub];
    const float dl = f16_at(blk + 80) * (float)(sc & 15u);
    const float ml = f16_at(blk + 82) * (float)(sc >> 4);
    const u8* q = blk + 16u + 32u * (sub >> 3) + 16u * (sub & 1u) + 8u * (gi & 1u);
    const u32 shift = 2u * ((sub >> 1) & 3u);
#pragma unroll
    for (u32 i = 0; i < 8; ++i) {
        v[i] = dl * (float)((q[i] >> shift) & 3u) - ml;
    }
}

// Q3_K (110 bytes): 32 bytes of high-bit masks, 64 bytes of low 2 bits, 12 bytes of packed 6-bit
// scales (less 32), f16 d. Value 128h + 32j + l takes bits 2j.. of qs[32h + l] and bit 4h + j of
// hmask[l], a clear bit subtracting 4; x = (d * sc) * q.
__device__ __forceinline__ void load8_q3_k(const u8* row, u32 g, float v[8]) {
    const u8* blk = row + 110u * (g >> 5);
    const u32 gi = g & 31u;
    const u32 sub = gi >> 1;
    const u8* s = blk + 96;
    const u32 low = sub < 8u ? (s[sub] & 15u) : (s[sub - 8u] >> 4);
    const u32 high = (s[8u + (sub & 3u)] >> (2u * (sub >> 2))) & 3u;
    const float dl = f16_at(blk + 108) * (float)((int)(low | (high << 4)) - 32);
    const u32 h = sub >> 3;
    const u32 j = (sub >> 1) & 3u;
    const u32 l = 16u * (sub & 1u) + 8u * (gi & 1u);
    const u8* q = blk + 32u + 32u * h + l;
    const u8* hm = blk + l;
    const u32 bit = 4u * h + j;
#pragma unroll
    for (u32 i = 0; i < 8; ++i) {
        const int x = (int)((q[i] >> (2u * j)) & 3u) - (((hm[i] >> bit) & 1u) ? 0 : 4);
        v[i] = dl * (float)x;
    }
}

// The 6-bit scale and min of sub-block `sub` of Q4_K/Q5_K from their 12 packed bytes at `s`:
// bytes 0..4 hold scales 0..4 (and the top 2 bits of scales 4..8), bytes 4..8 the mins likewise,
// bytes 8..12 the low nibbles of scales and mins 4..8.
__device__ __forceinline__ void k_scale_min(const u8* s, u32 sub, u32& sc, u32& mn) {
    if (sub < 4u) {
        sc = s[sub] & 63u;
        mn = s[sub + 4u] & 63u;
    } else {
        sc = (s[sub + 4u] & 15u) | ((s[sub - 4u] >> 2) & 48u);
        mn = (s[sub + 4u] >> 4) | ((s[sub] >> 2) & 48u);
    }
}

// Q4_K (144 bytes): f16 d, f16 dmin, 12 bytes of packed scales and mins, 128 bytes of nibbles.
// Sub-block s (32 values) takes nibble s % 2 of bytes 32 * (s / 2)..; x = (d * sc) * q - dmin * m.
__device__ __forceinline__ void load8_q4_k(const u8* row, u32 g, float v[8]) {
    const u8* blk = row + 144u * (g >> 5);
    const u32 sub = (g >> 2) & 7u;
    u32 sc, mn;
    k_scale_min(blk + 4, sub, sc, mn);
    const float dl = f16_at(blk) * (float)sc;
    const float ml = f16_at(blk + 2) * (float)mn;
    const u8* q = blk + 16u + 32u * (sub >> 1) + 8u * (g & 3u);
    const u32 shift = 4u * (sub & 1u);
#pragma unroll
    for (u32 i = 0; i < 8; ++i) {
        v[i] = dl * (float)((q[i] >> shift) & 15u) - ml;
    }
}

// Q5_K (176 bytes): as Q4_K with 32 bytes of fifth bits (bit s of qh[l] for value 32s + l) before
// the 128 bytes of nibbles.
__device__ __forceinline__ void load8_q5_k(const u8* row, u32 g, float v[8]) {
    const u8* blk = row + 176u * (g >> 5);
    const u32 sub = (g >> 2) & 7u;
    u32 sc, mn;
    k_scale_min(blk + 4, sub, sc, mn);
    const float dl = f16_at(blk) * (float)sc;
    const float ml = f16_at(blk + 2) * (float)mn;
    const u8* q = blk + 48u + 32u * (sub >> 1) + 8u * (g & 3u);
    const u8* qh = blk + 16u + 8u * (g & 3u);
    const u32 shift = 4u * (sub & 1u);
#pragma unroll
    for (u32 i = 0; i < 8; ++i) {
        const u32 x = ((q[i] >> shift) & 15u) | (((qh[i] >> sub) & 1u) << 4);
        v[i] = dl * (float)x - ml;
    }
}

// Q6_K (210 bytes): 128 bytes of low nibbles (ql), 64 bytes of high 2-bit pairs (qh), 16 signed
// scales, f16 d; x = (d * sc) * (q - 32). In half h (128 values), value 32 * s + l takes nibble
// s / 2 of ql[64 * h + 32 * (s % 2) + l], bits 2s.. of qh[32 * h + l], and scale 8h + 2s + l / 16.
__device__ __forceinline__ void load8_q6_k(const u8* row, u32 g, float v[8]) {
    const u8* blk = row + 210u * (g >> 5);
    const u32 gi = g & 31u;
    const u32 h = gi >> 4;
    const u32 s = (gi >> 2) & 3u;
    const u32 l = 8u * (gi & 3u);
    const float d = f16_at(blk + 208);
    const float dl = d * (float)((const i8*)blk)[192u + 8u * h + 2u * s + (l >> 4)];
    const u8* ql = blk + 64u * h + 32u * (s & 1u) + l;
    const u8* qh = blk + 128u + 32u * h + l;
    const u32 lo_shift = 4u * (s >> 1);
    const u32 hi_shift = 2u * s;
#pragma unroll
    for (u32 i = 0; i < 8; ++i) {
        const int q = (int)(((ql[i] >> lo_shift) & 15u) | (((qh[i] >> hi_shift) & 3u) << 4));
        v[i] = dl * (float)(q - 32);
    }
}

// Values 8g..8g+8 of the row starting at `row`, of `k` values (only float rows can end inside a
// group; past `k` they read as zero).
template <int T>
__device__ __forceinline__ void load8(const u8* row, u32 g, u32 k, float v[8]) {
    if constexpr (T == T_F32) {
        load8_f32(row, g, k, v);
    } else if constexpr (T == T_F16) {
        load8_f16(row, g, k, v);
    } else if constexpr (T == T_Q4_0) {
        load8_q4_0(row, g, v);
    } else if constexpr (T == T_Q4_1) {
        load8_q4_1(row, g, v);
    } else if constexpr (T == T_Q8_0) {
        load8_q8_0(row, g, v);
    } else if constexpr (T == T_Q4_K) {
        load8_q4_k(row, g, v);
    } else if constexpr (T == T_Q6_K) {
        load8_q6_k(row, g, v);
    } else if constexpr (T == T_Q5_0) {
        load8_q5_0(row, g, v);
    } else if constexpr (T == T_Q5_1) {
        load8_q5_1(row, g, v);
    } else if constexpr (T == T_Q2_K) {
        load8_q2_k(row, g, v);
    } else if constexpr (T == T_Q3_K) {
        load8_q3_k(row, g, v);
    } else if constexpr (T == T_Q5_K) {
        load8_q5_k(row, g, v);
    } else {
        static_assert(T == T_BF16, "unknown weight type");
        load8_bf16(row, g, k, v);
    }
}

// Declares `extern "C"` entry `{op}_{type}` for every weight type, each calling `body<T>` with the
// kernel's arguments: `PER_WEIGHT_TYPE(gemv, (PARAMS_DECL), (ARGS))`.
#define SLUICE_ENTRY(op, ty, T, decl, args) \
    extern "C" __global__ void op##_##ty decl { op<T> args; }
#define PER_WEIGHT_TYPE(op, decl, args)              \
    SLUICE_ENTRY(op, f32, T_F32, decl, args)         \
    SLUICE_ENTRY(op, f16, T_F16, decl, args)         \
    SLUICE_ENTRY(op, q4_0, T_Q4_0, decl, args)       \
    SLUICE_ENTRY(op, q4_1, T_Q4_1, decl, args)       \
    SLUICE_ENTRY(op, q8_0, T_Q8_0, decl, args)       \
    SLUICE_ENTRY(op, q4_k, T_Q4_K, decl, args)       \
    SLUICE_ENTRY(op, q6_k, T_Q6_K, decl, args)       \
    SLUICE_ENTRY(op, q5_0, T_Q5_0, decl, args)       \
    SLUICE_ENTRY(op, q5_1, T_Q5_1, decl, args)       \
    SLUICE_ENTRY(op, q2_k, T_Q2_K, decl, args)       \
    SLUICE_ENTRY(op, q3_k, T_Q3_K, decl, args)       \
    SLUICE_ENTRY(op, q5_k, T_Q5_K, decl, args)       \
    SLUICE_ENTRY(op, bf16, T_BF16, decl, args)
