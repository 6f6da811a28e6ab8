//! Q4_K on 512-bit vectors (AVX-512 F + BW + VNNI): one vector holds a 32-value sub-block as i16,
//! so a super-block is eight `vpdpwssd`, and its weights are unpacked and scaled once for every
//! activation row of a GEMM (prefill, batched decode). A vector's sixteen i32 lanes are the lanes
//! of `scalar::Q4kLanes`, exact, and take the same f32 operations, so the results are
//! bit-identical to `scalar.rs`.

use super::super::{QuantizedActivations, GEMM_MAX_X};
use super::{
    f16_at, load256, prefetch_ahead, q4_k_min_lanes, q4_k_scales_mins, q4_k_sum, q4_k_widen_mins,
};
use std::arch::x86_64::*;

/// Bytes of one Q4_K super-block: f16 d, f16 dmin, 12 bytes of scales and mins, 128 of nibbles.
const BLOCK_BYTES: usize = 144;

/// `out[r · xs.len() + j] = dot(row r of w, xs[j])` for Q4_K rows (shapes checked by the caller;
/// `xs.len() ≤ GEMM_MAX_X`). Callers guarantee AVX2, FMA, F16C, AVX-512 F, BW, VL and VNNI.
#[inline(always)]
pub(super) unsafe fn gemm(
    w: &[u8],
    row_bytes: usize,
    xs: &[&QuantizedActivations],
    out: &mut [f32],
) {
    let nx = xs.len().min(GEMM_MAX_X);
    let xs = &xs[..nx];
    // SAFETY (this block): the caller's guarantee covers every intrinsic below.
    unsafe {
        for (r, (row, out)) in w
            .chunks_exact(row_bytes)
            .zip(out.chunks_exact_mut(nx))
            .enumerate()
        {
            prefetch_ahead(w, r * row_bytes, row_bytes);
            let (blocks, _) = row.as_chunks::<BLOCK_BYTES>();
            // `scalar::Q4kLanes` per activation row: sixteen scaled lanes and eight min lanes.
            let mut acc = [_mm512_setzero_ps(); GEMM_MAX_X];
            let mut acc_min = [_mm256_setzero_ps(); GEMM_MAX_X];
            for (b, wb) in blocks.iter().enumerate() {
                let (q, mins) = scaled_weights(wb);
                let (d, dmin) = (f16_at(wb, 0), f16_at(wb, 2));
                // Widened once for every activation row.
                let m = q4_k_widen_mins(&mins);
                for ((acc, acc_min), xq) in acc.iter_mut().zip(&mut acc_min).zip(xs) {
                    let x = &xq.qs[256 * b..256 * (b + 1)];
                    // Four independent chains (a `vpdpwssd` waits for its accumulator); each
                    // lane sums 16 products of at most 945·32767 (< 2³¹) in all.
                    let mut chains = [_mm512_setzero_si512(); 4];
                    for (j, q) in q.iter().enumerate() {
                        let c = &mut chains[j % 4];
                        *c = _mm512_dpwssd_epi32(*c, *q, load512(&x[32 * j..]));
                    }
                    let isc = _mm512_add_epi32(
                        _mm512_add_epi32(chains[0], chains[1]),
                        _mm512_add_epi32(chains[2], chains[3]),
                    );
                    let dx = xq.d[b];
                    let dxd = _mm512_set1_ps(dx * d);
                    *acc = _mm512_add_ps(*acc, _mm512_mul_ps(dxd, _mm512_cvtepi32_ps(isc)));
                    let sums = &xq.sums[8 * b..8 * (b + 1)];
                    *acc_min = q4_k_min_lanes(*acc_min, m, sums, dx * dmin);
                }
            }
            for ((o, acc), acc_min) in out.iter_mut().zip(&acc).zip(&acc_min) {
                let folded = _mm256_add_ps(
                    _mm512_castps512_ps256(*acc),
                    // The high eight lanes (AVX-512 F has no f32x8 extract).
                    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(*acc))),
                );
                *o = q4_k_sum(folded, *acc_min);
            }
        }
    }
}

/// A super-block's 256 weights (0..16) times their sub-block's 6-bit scale, as i16 (≤ 945): vector
/// `j` is sub-block `j`. Also returns the eight 6-bit mins.
#[inline(always)]
unsafe fn scaled_weights(w: &[u8; BLOCK_BYTES]) -> ([__m512i; 8], [u8; 8]) {
    let (sc, mins) = q4_k_scales_mins(&w[4..16]);
    let mut q = [_mm512_setzero_si512(); 8];
    // SAFETY (this block): the caller guarantees AVX-512 F and BW.
    unsafe {
        let low4 = _mm512_set1_epi16(0x0F);
        for p in 0..4 {
            // Bytes 16 + 32p.. hold sub-block 2p in their low nibbles and 2p + 1 in their high.
            let b = _mm512_cvtepu8_epi16(load256(&w[16 + 32 * p..]));
            let lo = _mm512_and_si512(b, low4);
            let hi = _mm512_srli_epi16::<4>(b);
            q[2 * p] = _mm512_mullo_epi16(lo, _mm512_set1_epi16(i16::from(sc[2 * p])));
            q[2 * p + 1] = _mm512_mullo_epi16(hi, _mm512_set1_epi16(i16::from(sc[2 * p + 1])));
        }
    }
    (q, mins)
}

/// Unaligned load of `s[..32]` (64 bytes).
#[target_feature(enable = "avx512f")]
#[inline]
fn load512(s: &[i16]) -> __m512i {
    let s = &s[..32];
    // SAFETY: `s` spans exactly 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(s.as_ptr().cast()) }
}
