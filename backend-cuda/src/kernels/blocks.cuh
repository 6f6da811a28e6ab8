// Shared by every kernel file (the host prepends it to each program, so NVRTC needs no include
// paths): fixed-width integer names, f16 widening, and decoding of GGML weight rows eight values at
// a time for each weight type.
//
// The float operations follow engine-core's CPU dequantization in order (`d * q`, `d * q + m`,
// `(d * sc) * q - dmin * m`), so decoded values match it bit for bit: every product there is exact
// in f32 (an f16 scale has 11 significant bits, a 6- or 8-bit scale and a 4- to 8-bit quant add at
// most 13 more), so only the final add rounds, and NVRTC fusing it into an fma changes nothing.

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

// Q4_K (144 bytes): f16 d, f16 dmin, 12 bytes of packed 6-bit scales and mins, 128 bytes of
// nibbles. Bytes 0..4 of the 12 hold scales 0..4 (and the top 2 bits of scales 4..8), bytes 4..8
// the mins likewise, bytes 8..12 the low nibbles of scales and mins 4..8. Sub-block s (32 values)
// takes nibble s % 2 of bytes 32 * (s / 2)..; x = (d * sc) * q - dmin * m.
__device__ __forceinline__ void load8_q4_k(const u8* row, u32 g, float v[8]) {
    const u8* blk = row + 144u * (g >> 5);
    const u32 sub = (g >> 2) & 7u;
    const float d = f16_at(blk);
    const float dmin = f16_at(blk + 2);
    const u8* s = blk + 4;
    u32 sc, mn;
    if (sub < 4u) {
        sc = s[sub] & 63u;
        mn = s[sub + 4u] & 63u;
    } else {
        sc = (s[sub + 4u] & 15u) | ((s[sub - 4u] >> 2) & 48u);
        mn = (s[sub + 4u] >> 4) | ((s[sub] >> 2) & 48u);
    }
    const float dl = d * (float)sc;
    const float ml = dmin * (float)mn;
    const u8* q = blk + 16u + 32u * (sub >> 1) + 8u * (g & 3u);
    const u32 shift = 4u * (sub & 1u);
#pragma unroll
    for (u32 i = 0; i < 8; ++i) {
        v[i] = dl * (float)((q[i] >> shift) & 15u) - ml;
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
    } else {
        load8_q6_k(row, g, v);
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
    SLUICE_ENTRY(op, q6_k, T_Q6_K, decl, args)
