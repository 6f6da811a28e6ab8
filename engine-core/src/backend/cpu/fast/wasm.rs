//! WebAssembly SIMD128 kernels for 32-value blocks (Q4_0, Q4_1, Q5_0, Q8_0), bit-identical to
//! `scalar.rs`: each block's integer dot product is exact in i32 (`i32x4_dot_i16x8` pairs
//! weights widened to i16 with the i16 activations), four blocks' sums are gathered into one
//! vector, and their scales are applied with the f32 operations of `scalar::Lanes`, lane by lane
//! (lanes 0..4 and 4..8 are two f32x4). The blocks left after the last whole group of eight, and
//! the K-quants, go through the scalar code, which is the same arithmetic.
//!
//! SIMD128 is a compile-time feature on wasm (`-C target-feature=+simd128`, set for the wasm
//! targets in `.cargo/config.toml`); a module built with it fails to instantiate where the engine
//! lacks SIMD. There is no scalar fallback module yet: every browser with WebGPU has SIMD128.

use super::scalar::{self, f16_at, Lanes, QK};
use super::{QuantizedActivations, GEMM_MAX_X};
use crate::quant::GgmlType;
#[cfg(target_arch = "wasm32")]
use std::arch::wasm32::*;
#[cfg(target_arch = "wasm64")]
use std::arch::wasm64::*;

/// `out[r · xs.len() + j] = dot(row r of w, xs[j])` for `out.len() / xs.len()` rows (checked by
/// the caller, `xs.len() ≤ GEMM_MAX_X`), bit-identical to `scalar::gemv`. Each weight block is
/// widened once for every activation row.
pub(super) fn gemm(
    ty: GgmlType,
    w: &[u8],
    row_bytes: usize,
    xs: &[&QuantizedActivations],
    out: &mut [f32],
) {
    use GgmlType::*;
    let nx = xs.len().max(1);
    let row: fn(&[u8], &[&QuantizedActivations], &mut [f32]) = match ty {
        Q4_0 => |r, x, o| row_legacy::<18, false, 8>(r, x, o, scalar::int_q4_0),
        Q4_1 => |r, x, o| row_legacy::<20, true, 0>(r, x, o, scalar::int_q4_1),
        Q5_0 => |r, x, o| row_legacy::<22, false, 16>(r, x, o, scalar::int_q5_0),
        Q8_0 => |r, x, o| row_legacy::<34, false, 0>(r, x, o, scalar::int_q8_0),
        _ => {
            return super::per_activation(xs, out, |xq, one| {
                scalar::gemv(ty, w, row_bytes, xq, one)
            })
        }
    };
    for (w_row, out) in w.chunks_exact(row_bytes).zip(out.chunks_exact_mut(nx)) {
        row(w_row, xs, out);
    }
}

/// The 16 bytes at `s[..16]` as a vector.
#[inline(always)]
fn load(s: &[u8]) -> v128 {
    let s = &s[..16];
    // SAFETY: `s` spans 16 readable bytes; `v128_load` has no alignment requirement.
    unsafe { v128_load(s.as_ptr().cast()) }
}

/// The eight i16 at `x[..8]` as a vector.
#[inline(always)]
fn load_i16(x: &[i16]) -> v128 {
    let x = &x[..8];
    // SAFETY: `x` spans 16 readable bytes; `v128_load` has no alignment requirement.
    unsafe { v128_load(x.as_ptr().cast()) }
}

/// A block's 32 weights as four i16x8 in value order, without the type's offset (which comes off
/// through the activation sums): the block size names the type (34 bytes Q8_0, 18 Q4_0, 20 Q4_1,
/// 22 Q5_0).
#[inline(always)]
fn widen<const TS: usize>(b: &[u8; TS]) -> [v128; 4] {
    match TS {
        34 => {
            let (lo, hi) = (load(&b[2..]), load(&b[18..]));
            [
                i16x8_extend_low_i8x16(lo),
                i16x8_extend_high_i8x16(lo),
                i16x8_extend_low_i8x16(hi),
                i16x8_extend_high_i8x16(hi),
            ]
        }
        18 => nibbles(load(&b[2..])),
        20 => nibbles(load(&b[4..])),
        _ => {
            // Q5_0: bit i of the u32 at bytes 2..6 is bit 4 of value i.
            let [a, b0, c, d] = nibbles(load(&b[6..]));
            let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
            // Values 16h..16h + 16 take their bits from bytes 2h and 2h + 1 of qh.
            let bits = u8x16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
            let high = |h: u8| {
                let (a, b) = (2 * h, 2 * h + 1);
                let index = u8x16(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b);
                let spread = u8x16_swizzle(u32x4_splat(qh), index);
                v128_and(u8x16_eq(v128_and(spread, bits), bits), u8x16_splat(0x10))
            };
            let (lo, hi) = (high(0), high(1));
            [
                v128_or(a, u16x8_extend_low_u8x16(lo)),
                v128_or(b0, u16x8_extend_high_u8x16(lo)),
                v128_or(c, u16x8_extend_low_u8x16(hi)),
                v128_or(d, u16x8_extend_high_u8x16(hi)),
            ]
        }
    }
}

/// The 32 nibbles of 16 bytes as i16, in value order: low nibbles (values 0..16), then high ones.
#[inline(always)]
fn nibbles(v: v128) -> [v128; 4] {
    let lo = v128_and(v, u8x16_splat(0x0F));
    let hi = u8x16_shr(v, 4);
    [
        u16x8_extend_low_u8x16(lo),
        u16x8_extend_high_u8x16(lo),
        u16x8_extend_low_u8x16(hi),
        u16x8_extend_high_u8x16(hi),
    ]
}

/// Four i32 lanes summing to Σ w·x over a block (|w| ≤ 128, |x| ≤ 32767: each lane holds 8
/// products, far from overflow).
#[inline(always)]
fn block_dot(w: [v128; 4], x: &[i16; QK]) -> v128 {
    let d = |i: usize| i32x4_dot_i16x8(w[i], load_i16(&x[8 * i..]));
    i32x4_add(i32x4_add(d(0), d(1)), i32x4_add(d(2), d(3)))
}

/// Lane i of the result is the sum of the four lanes of `d[i]` (exact in i32).
#[inline(always)]
fn hsum4(d: [v128; 4]) -> v128 {
    let s01 = i32x4_add(
        i32x4_shuffle::<0, 4, 1, 5>(d[0], d[1]),
        i32x4_shuffle::<2, 6, 3, 7>(d[0], d[1]),
    );
    let s23 = i32x4_add(
        i32x4_shuffle::<0, 4, 1, 5>(d[2], d[3]),
        i32x4_shuffle::<2, 6, 3, 7>(d[2], d[3]),
    );
    i32x4_add(
        i32x4_shuffle::<0, 1, 4, 5>(s01, s23),
        i32x4_shuffle::<2, 3, 6, 7>(s01, s23),
    )
}

/// Four f32 from `s[..4]`.
#[inline(always)]
fn load_f32(s: &[f32]) -> v128 {
    f32x4(s[0], s[1], s[2], s[3])
}

/// One weight row of 32-value blocks of TS bytes (f16 d first; f16 min second when `MIN`),
/// weights less `OFF`, dotted with each of `xs` into `out`: lanes `b % 8` of `scalar::Lanes`,
/// each with the same f32 operations in the same order. `int` is the scalar reader of one block's
/// exact integer sum, for the blocks after the last whole group of eight.
#[inline(always)]
fn row_legacy<const TS: usize, const MIN: bool, const OFF: i32>(
    row: &[u8],
    xs: &[&QuantizedActivations],
    out: &mut [f32],
    int: fn(&[u8; TS], &[i16; QK]) -> i32,
) {
    let xs = &xs[..xs.len().min(GEMM_MAX_X)];
    let (blocks, _) = row.as_chunks::<TS>();
    let (groups, tail) = blocks.as_chunks::<4>();
    // Blocks 4g.. go to lanes 0..4 for even g, 4..8 for odd g: a whole group of eight is two.
    let whole = groups.len() - groups.len() % 2;
    let mut acc = [[f32x4_splat(0.0); 2]; GEMM_MAX_X];
    for (g, wb) in groups[..whole].iter().enumerate() {
        let b0 = 4 * g;
        let q: [[v128; 4]; 4] = std::array::from_fn(|i| widen(&wb[i]));
        let scale = |at: usize| {
            f32x4(
                f16_at(&wb[0], at),
                f16_at(&wb[1], at),
                f16_at(&wb[2], at),
                f16_at(&wb[3], at),
            )
        };
        let dw = scale(0);
        let mw = if MIN { scale(2) } else { dw };
        for (acc, xq) in acc.iter_mut().zip(xs) {
            let (xb, _) = xq.qs[b0 * QK..(b0 + 4) * QK].as_chunks::<QK>();
            let mut t = hsum4(std::array::from_fn(|i| block_dot(q[i], &xb[i])));
            let s = i32x4(
                xq.sums[b0],
                xq.sums[b0 + 1],
                xq.sums[b0 + 2],
                xq.sums[b0 + 3],
            );
            if OFF != 0 {
                t = i32x4_sub(t, i32x4_mul(s, i32x4_splat(OFF)));
            }
            let dx = load_f32(&xq.d[b0..]);
            let a = &mut acc[g % 2];
            *a = f32x4_add(*a, f32x4_mul(f32x4_mul(dw, dx), f32x4_convert_i32x4(t)));
            if MIN {
                *a = f32x4_add(*a, f32x4_mul(mw, f32x4_mul(dx, f32x4_convert_i32x4(s))));
            }
        }
    }
    for ((o, acc), xq) in out.iter_mut().zip(&acc).zip(xs) {
        let mut lanes = Lanes::default();
        for (h, a) in acc.iter().enumerate() {
            lanes.0[4 * h] = f32x4_extract_lane::<0>(*a);
            lanes.0[4 * h + 1] = f32x4_extract_lane::<1>(*a);
            lanes.0[4 * h + 2] = f32x4_extract_lane::<2>(*a);
            lanes.0[4 * h + 3] = f32x4_extract_lane::<3>(*a);
        }
        // The rest, one block at a time as `scalar` does (same lanes, same operations).
        let (x_blocks, _) = xq.qs.as_chunks::<QK>();
        let rest = groups[whole..].iter().flatten().chain(tail);
        for (b, w) in (4 * whole..).zip(rest) {
            lanes.add_block(b, f16_at(w, 0), xq.d[b], int(w, &x_blocks[b]));
            if MIN {
                lanes.add_min(b, f16_at(w, 2), xq.d[b], xq.sums[b]);
            }
        }
        *o = lanes.sum();
    }
}
