//! One group of eight 32-value blocks of `gemm` with the activations in the interleaved layout
//! (`QuantizedActivations::interleave`): each vector of a group holds value pairs of eight
//! different blocks, so the integer products accumulate straight into one lane per block and no
//! per-token horizontal sum is needed. The group's widened weights are transposed into that
//! layout once, for every activation row. The block sums are the same exact
//! integers as the natural layout's, so the results are bit-identical to `scalar::gemv`.

use super::super::{QuantizedActivations, GEMM_MAX_X};
use super::{block_sums_scaled, load256, madd_acc, Wide, QK};
use std::arch::x86_64::*;

/// Group `g`'s eight widened weight blocks `q`, transposed, dotted with every activation row
/// (all in the interleaved layout).
#[inline(always)]
pub(super) unsafe fn group<const MIN: bool, const OFF: i32, const VNNI: bool>(
    acc: &mut [__m256; GEMM_MAX_X],
    q: [Wide; 8],
    words: [i32; 8],
    xs: &[&QuantizedActivations],
    g: usize,
) {
    // SAFETY (this block): the caller guarantees AVX2, FMA, F16C and, when `VNNI`, AVX-512 VNNI
    // + VL, all that the functions below use.
    unsafe {
        let v = transpose(q);
        let (dw, mw) = super::split_f16_pairs(words);
        for (acc, xq) in acc.iter_mut().zip(xs) {
            let x = &xq.interleaved[g * 8 * QK..(g + 1) * 8 * QK];
            // Four independent chains: blocks 0..4 and 4..8, each from its low and high halves.
            let mut sums = [_mm256_setzero_si256(); 4];
            for (i, w) in v.iter().enumerate() {
                sums[i / 4] = madd_acc::<VNNI>(sums[i / 4], *w, load256(&x[i * 16..]));
            }
            let a = _mm256_add_epi32(sums[0], sums[1]);
            let b = _mm256_add_epi32(sums[2], sums[3]);
            // Lane l < 4 of `a` and lane l + 4 hold halves of block l's sum; `b` the same for
            // blocks 4..8: one vector of the eight block sums in block order.
            let t = _mm256_add_epi32(
                _mm256_permute2x128_si256::<0x20>(a, b),
                _mm256_permute2x128_si256::<0x31>(a, b),
            );
            *acc = block_sums_scaled::<MIN, OFF>(*acc, t, dw, mw, xq, 8 * g);
        }
    }
}

/// Eight widened blocks as the interleaved layout's sixteen vectors: vector `v` of blocks
/// `4·(v / 8) ..` holds, in u32 lane `l`, value pair `8·part + p + 4·(l / 4)` of block
/// `4·(v / 8) + l % 4`, where `part = v % 8 / 4` (low or high sixteen values) and `p = v % 4`.
#[target_feature(enable = "avx2")]
#[inline]
fn transpose(q: [Wide; 8]) -> [__m256i; 16] {
    let mut v = [_mm256_setzero_si256(); 16];
    for set in 0..2 {
        for part in 0..2 {
            let b = 4 * set;
            let r = transpose4(q[b][part], q[b + 1][part], q[b + 2][part], q[b + 3][part]);
            v[8 * set + 4 * part..][..4].copy_from_slice(&r);
        }
    }
    v
}

/// The 4×4 transpose of u32 lanes within each 128-bit half of four vectors.
#[target_feature(enable = "avx2")]
#[inline]
fn transpose4(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> [__m256i; 4] {
    let t0 = _mm256_unpacklo_epi32(a, b);
    let t1 = _mm256_unpackhi_epi32(a, b);
    let t2 = _mm256_unpacklo_epi32(c, d);
    let t3 = _mm256_unpackhi_epi32(c, d);
    [
        _mm256_unpacklo_epi64(t0, t2),
        _mm256_unpackhi_epi64(t0, t2),
        _mm256_unpacklo_epi64(t1, t3),
        _mm256_unpackhi_epi64(t1, t3),
    ]
}
