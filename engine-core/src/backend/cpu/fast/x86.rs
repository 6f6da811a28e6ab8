//! AVX2 + FMA + F16C kernels, bit-identical to `scalar.rs`.
//!
//! Integer dot products of a weight block with an activation block use `maddubs` (u8 × i8 pairs
//! into i16, which cannot saturate here: weights are at most 63 in magnitude after the sign move,
//! or 128 × 127 for Q8_0, and activations at most 127) and `madd` (i16 pairs into i32). For
//! signed weights the sign moves onto the activation (`sign_epi8`) so `maddubs` sees |w|.
//!
//! 32-value blocks are processed eight at a time: the eight blocks' i32 sums are gathered into one
//! vector (`hsum8`) and combined with their scales exactly as `scalar::Lanes` does lane by lane.

use super::scalar::{self, q4_k_scale_min, q4_k_term, q6_k_term, Lanes, QK};
use super::{QuantizedActivations, GEMM_MAX_X};
use crate::quant::GgmlType;
use std::arch::x86_64::*;

/// `out[r] = dot(row r of w, xq)` for `out.len()` rows of `row_bytes` bytes (checked by the caller).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn gemv(
    ty: GgmlType,
    w: &[u8],
    row_bytes: usize,
    xq: &QuantizedActivations,
    out: &mut [f32],
) {
    let rows = w.chunks_exact(row_bytes).zip(out.iter_mut());
    use GgmlType::*;
    match ty {
        Q8_0 => {
            for (r, o) in rows {
                *o = dot_legacy::<34, false>(r, xq, |w, x| block_q8_0(w, x));
            }
        }
        Q4_0 => {
            for (r, o) in rows {
                *o = dot_legacy::<18, false>(r, xq, |w, x| block_q4_0(w, x));
            }
        }
        Q4_1 => {
            for (r, o) in rows {
                *o = dot_legacy::<20, true>(r, xq, |w, x| block_q4_1(w, x));
            }
        }
        Q5_0 => {
            for (r, o) in rows {
                *o = dot_legacy::<22, false>(r, xq, |w, x| block_q5_0(w, x));
            }
        }
        Q4_K => {
            for (r, o) in rows {
                *o = dot_q4_k(r, xq);
            }
        }
        Q6_K => {
            for (r, o) in rows {
                *o = dot_q6_k(r, xq);
            }
        }
        // Types without a fast kernel never reach here: the scalar path holds the one fallback.
        _ => scalar::gemv(ty, w, row_bytes, xq, out),
    }
}

/// `out[r · xs.len() + j] = dot(row r of w, xs[j])`, bit-identical to `gemv` on each `xs[j]`, for
/// `out.len() / xs.len()` rows (checked by the caller; `xs.len() ≤ GEMM_MAX_X`). Each group of
/// eight weight blocks is unpacked once and dotted with every activation row, which is what
/// makes several tokens at once (a batch of decode steps, or a prefill) cheaper per token.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn gemm(
    ty: GgmlType,
    w: &[u8],
    row_bytes: usize,
    xs: &[&QuantizedActivations],
    out: &mut [f32],
) {
    use GgmlType::*;
    match ty {
        Q8_0 => gemm_legacy::<34, false, true>(w, row_bytes, xs, out, |b| load256(&b[2..])),
        Q4_0 => gemm_legacy::<18, false, true>(w, row_bytes, xs, out, |b| values_q4_0(b)),
        Q4_1 => gemm_legacy::<20, true, false>(w, row_bytes, xs, out, |b| nibbles(&b[4..])),
        Q5_0 => gemm_legacy::<22, false, true>(w, row_bytes, xs, out, |b| values_q5_0(b)),
        // K-quants: one activation row at a time (the closure inherits this function's features).
        _ => super::per_activation(xs, out, |xq, one| gemv(ty, w, row_bytes, xq, one)),
    }
}

/// `gemm` for 32-value blocks of TS bytes whose weights `unpack` gives as bytes: signed (moved
/// onto the activations' signs, as `mul_sum_i8_i8` does) when `SIGNED`, else unsigned.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn gemm_legacy<const TS: usize, const MIN: bool, const SIGNED: bool>(
    w: &[u8],
    row_bytes: usize,
    xs: &[&QuantizedActivations],
    out: &mut [f32],
    unpack: impl Fn(&[u8; TS]) -> __m256i,
) {
    let nx = xs.len().min(GEMM_MAX_X);
    let xs = &xs[..nx];
    for (row, out) in w.chunks_exact(row_bytes).zip(out.chunks_exact_mut(nx)) {
        let (blocks, _) = row.as_chunks::<TS>();
        let (groups, tail) = blocks.as_chunks::<8>();
        let mut acc = [_mm256_setzero_ps(); GEMM_MAX_X];
        for (g, wb) in groups.iter().enumerate() {
            let q: [__m256i; 8] = std::array::from_fn(|i| unpack(&wb[i]));
            let words = std::array::from_fn(|i| first_word(&wb[i]));
            gemm_group::<MIN, SIGNED>(&mut acc, q, words, xs, 8 * g);
        }
        if !tail.is_empty() {
            // Missing blocks: zero weights and zero scales add +0.0, as in `dot_legacy`.
            let mut q = [_mm256_setzero_si256(); 8];
            let mut words = [0i32; 8];
            for (i, b) in tail.iter().enumerate() {
                q[i] = unpack(b);
                words[i] = first_word(b);
            }
            gemm_group::<MIN, SIGNED>(&mut acc, q, words, xs, 8 * groups.len());
        }
        for (o, acc) in out.iter_mut().zip(&acc) {
            let mut lanes = Lanes::default();
            // SAFETY: `lanes.0` is 8 writable f32s; `storeu` has no alignment requirement.
            unsafe { _mm256_storeu_ps(lanes.0.as_mut_ptr(), *acc) };
            *o = lanes.sum();
        }
    }
}

/// Eight unpacked weight blocks `q` (from block `b0` on) dotted with every activation row.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn gemm_group<const MIN: bool, const SIGNED: bool>(
    acc: &mut [__m256; GEMM_MAX_X],
    q: [__m256i; 8],
    words: [i32; 8],
    xs: &[&QuantizedActivations],
    b0: usize,
) {
    let mag: [__m256i; 8] = if SIGNED {
        std::array::from_fn(|i| _mm256_sign_epi8(q[i], q[i]))
    } else {
        q
    };
    let (dw, mw) = split_f16_pairs(words);
    for (acc, xq) in acc.iter_mut().zip(xs) {
        let xb = &xq.qs[b0 * QK..(b0 + 8) * QK];
        let ints = std::array::from_fn(|i| {
            let x = load256(&xb[i * QK..]);
            let x = if SIGNED { _mm256_sign_epi8(x, q[i]) } else { x };
            mul_sum_u8_i8(mag[i], x)
        });
        *acc = group_scaled::<MIN>(*acc, ints, dw, mw, xq, b0);
    }
}

/// Unaligned load of `s[..32]`.
#[target_feature(enable = "avx2")]
#[inline]
fn load256<T: Copy>(s: &[T]) -> __m256i {
    let s = &s[..32 / size_of::<T>()];
    // SAFETY: `s` spans exactly 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
}

/// Unaligned load of `s[..16]`.
#[target_feature(enable = "avx2")]
#[inline]
fn load128<T: Copy>(s: &[T]) -> __m128i {
    let s = &s[..16 / size_of::<T>()];
    // SAFETY: `s` spans exactly 16 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(s.as_ptr().cast()) }
}

/// Unaligned load of `s[..8]`.
#[target_feature(enable = "avx2")]
#[inline]
fn load_ps(s: &[f32]) -> __m256 {
    let s = &s[..8];
    // SAFETY: `s` spans exactly 8 readable f32s; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_ps(s.as_ptr()) }
}

/// The little-endian f16 at `b[at..at + 2]` as f32 (exact, like `scalar::f16_at`).
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn f16_at(b: &[u8], at: usize) -> f32 {
    let bits = u16::from_le_bytes([b[at], b[at + 1]]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// Σ over the eight i32 lanes.
#[target_feature(enable = "avx2")]
#[inline]
fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s));
    _mm_cvtsi128_si32(s)
}

/// Lane i of the result is the sum of the eight lanes of `t[i]`.
#[target_feature(enable = "avx2")]
#[inline]
fn hsum8(t: [__m256i; 8]) -> __m256i {
    // hadd works within 128-bit halves: after two levels, the low half of `ab` holds the sums of
    // lanes 0..4 of t[0..4] and its high half the sums of lanes 4..8.
    let ab = _mm256_hadd_epi32(_mm256_hadd_epi32(t[0], t[1]), _mm256_hadd_epi32(t[2], t[3]));
    let cd = _mm256_hadd_epi32(_mm256_hadd_epi32(t[4], t[5]), _mm256_hadd_epi32(t[6], t[7]));
    let lo = _mm256_permute2x128_si256::<0x20>(ab, cd);
    let hi = _mm256_permute2x128_si256::<0x31>(ab, cd);
    _mm256_add_epi32(lo, hi)
}

/// Eight i32 lanes summing to Σ u·x, for unsigned bytes `u` (≤ 63) and signed `x` (|x| ≤ 127).
#[target_feature(enable = "avx2")]
#[inline]
fn mul_sum_u8_i8(u: __m256i, x: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1))
}

/// Eight i32 lanes summing to Σ w·x for signed bytes (|x| ≤ 127, w ≥ -128).
#[target_feature(enable = "avx2")]
#[inline]
fn mul_sum_i8_i8(w: __m256i, x: __m256i) -> __m256i {
    mul_sum_u8_i8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w))
}

/// The 32 nibbles of 16 bytes as bytes in value order: low nibbles (values 0..16), then high ones.
/// The bytes go to both halves (a load, no shuffle) and the upper half shifts right by 4.
#[target_feature(enable = "avx2")]
#[inline]
fn nibbles(s: &[u8]) -> __m256i {
    let b = _mm256_broadcastsi128_si256(load128(s));
    let shifted = _mm256_srlv_epi32(b, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F))
}

#[target_feature(enable = "avx2")]
#[inline]
fn block_q8_0(w: &[u8; 34], x: &[i8; QK]) -> __m256i {
    mul_sum_i8_i8(load256(&w[2..]), load256(x))
}

#[target_feature(enable = "avx2")]
#[inline]
fn block_q4_0(w: &[u8; 18], x: &[i8; QK]) -> __m256i {
    mul_sum_i8_i8(values_q4_0(w), load256(x))
}

/// A Q4_0 block's 32 weights as signed bytes.
#[target_feature(enable = "avx2")]
#[inline]
fn values_q4_0(w: &[u8; 18]) -> __m256i {
    _mm256_sub_epi8(nibbles(&w[2..]), _mm256_set1_epi8(8))
}

#[target_feature(enable = "avx2")]
#[inline]
fn block_q4_1(w: &[u8; 20], x: &[i8; QK]) -> __m256i {
    mul_sum_u8_i8(nibbles(&w[4..]), load256(x))
}

#[target_feature(enable = "avx2")]
#[inline]
fn block_q5_0(w: &[u8; 22], x: &[i8; QK]) -> __m256i {
    mul_sum_i8_i8(values_q5_0(w), load256(x))
}

/// A Q5_0 block's 32 weights as signed bytes.
#[target_feature(enable = "avx2")]
#[inline]
fn values_q5_0(w: &[u8; 22]) -> __m256i {
    let qh = u32::from_le_bytes([w[2], w[3], w[4], w[5]]);
    // Byte i gets byte i/8 of qh, then keeps bit i%8: 0x10 where bit i of qh is set.
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(qh as i32),
        _mm256_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, //
            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
        ),
    );
    let bits = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bits), bits);
    let high = _mm256_and_si256(set, _mm256_set1_epi8(0x10));
    _mm256_sub_epi8(
        _mm256_or_si256(nibbles(&w[6..]), high),
        _mm256_set1_epi8(16),
    )
}

/// A row of 32-value blocks of TS bytes (f16 d first; f16 min second when `MIN`), `int` giving
/// each block's integer dot product in eight i32 lanes. Same f32 operations as `scalar::Lanes`:
/// lane i of the accumulator is lane i of `Lanes`. In a last partial group the missing blocks
/// have integer sum 0 and scales 0, which adds +0.0 to their lanes: a no-op, as a lane never
/// holds -0.0 (it starts at +0.0 and round-to-nearest sums cannot reach -0.0 from there).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn dot_legacy<const TS: usize, const MIN: bool>(
    row: &[u8],
    xq: &QuantizedActivations,
    int: impl Fn(&[u8; TS], &[i8; QK]) -> __m256i,
) -> f32 {
    let (blocks, _) = row.as_chunks::<TS>();
    let (xs, _) = xq.qs.as_chunks::<QK>();
    let (groups, tail) = blocks.as_chunks::<8>();
    let mut acc = _mm256_setzero_ps();
    for (g, (wb, xb)) in groups.iter().zip(xs.chunks_exact(8)).enumerate() {
        let ints = std::array::from_fn(|i| int(&wb[i], &xb[i]));
        let words = std::array::from_fn(|i| first_word(&wb[i]));
        acc = group::<MIN>(acc, ints, words, xq, 8 * g);
    }
    if !tail.is_empty() {
        let b0 = 8 * groups.len();
        let mut ints = [_mm256_setzero_si256(); 8];
        let mut words = [0i32; 8];
        for (i, (w, x)) in tail.iter().zip(&xs[b0..]).enumerate() {
            ints[i] = int(w, x);
            words[i] = first_word(w);
        }
        acc = group::<MIN>(acc, ints, words, xq, b0);
    }
    let mut lanes = Lanes::default();
    // SAFETY: `lanes.0` is 8 writable f32s; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_ps(lanes.0.as_mut_ptr(), acc) };
    lanes.sum()
}

/// Bytes 0..4 of a block: its f16 scale and, for Q4_1, its f16 min.
#[inline(always)]
fn first_word<const TS: usize>(w: &[u8; TS]) -> i32 {
    i32::from_le_bytes([w[0], w[1], w[2], w[3]])
}

/// Adds eight blocks to the lanes in `acc`, given their integer dot products `ints` against
/// activation blocks `b0..b0 + 8` and their first four bytes `words` (see `first_word`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn group<const MIN: bool>(
    acc: __m256,
    ints: [__m256i; 8],
    words: [i32; 8],
    xq: &QuantizedActivations,
    b0: usize,
) -> __m256 {
    let (dw, mw) = split_f16_pairs(words);
    group_scaled::<MIN>(acc, ints, dw, mw, xq, b0)
}

/// `group` with the eight blocks' f16 scales (`dw`) and mins (`mw`) already converted.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn group_scaled<const MIN: bool>(
    acc: __m256,
    ints: [__m256i; 8],
    dw: __m256,
    mw: __m256,
    xq: &QuantizedActivations,
    b0: usize,
) -> __m256 {
    let span = b0..b0 + 8;
    let t = hsum8(ints);
    let dx = load_ps(&xq.d[span.clone()]);
    let acc = _mm256_add_ps(
        acc,
        _mm256_mul_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(t)),
    );
    if MIN {
        let s = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(load128(&xq.sums[span])));
        _mm256_add_ps(acc, _mm256_mul_ps(mw, _mm256_mul_ps(dx, s)))
    } else {
        acc
    }
}

/// The low and high f16 of each of eight words, as f32 (exact, like `f16_at`).
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn split_f16_pairs(words: [i32; 8]) -> (__m256, __m256) {
    let [w0, w1, w2, w3, w4, w5, w6, w7] = words;
    let v = _mm256_setr_epi32(w0, w1, w2, w3, w4, w5, w6, w7);
    // In each 128-bit half, [a0 b0 a1 b1 a2 b2 a3 b3] (u16) becomes [a0 a1 a2 a3 b0 b1 b2 b3];
    // then the 64-bit quarters go a(0..4) a(4..8) b(0..4) b(4..8).
    let order = _mm256_setr_epi8(
        0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, //
        0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
    );
    let v = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_shuffle_epi8(v, order));
    (
        _mm256_cvtph_ps(_mm256_castsi256_si128(v)),
        _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(v)),
    )
}

/// Σ_j m_j·Σx over the eight sub-blocks of a Q4_K super-block (exact).
#[inline]
fn q4_k_min_sum(scales: &[u8], sums: &[i16]) -> i32 {
    (0..8)
        .map(|j| i32::from(q4_k_scale_min(scales, j).1) * i32::from(sums[j]))
        .sum()
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn dot_q4_k(row: &[u8], xq: &QuantizedActivations) -> f32 {
    let (blocks, _) = row.as_chunks::<144>();
    let (xs, _) = xq.qs.as_chunks::<256>();
    let mask = _mm256_set1_epi8(0x0F);
    let mut acc = 0.0f32;
    for ((w, x), (&dx, sums)) in blocks
        .iter()
        .zip(xs)
        .zip(xq.d.iter().zip(xq.sums.chunks_exact(8)))
    {
        let scales = &w[4..16];
        let mut isc = _mm256_setzero_si256();
        for p in 0..4 {
            let q = load256(&w[16 + 32 * p..]);
            let lo = _mm256_and_si256(q, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), mask);
            let sc0 = i16::from(q4_k_scale_min(scales, 2 * p).0);
            let sc1 = i16::from(q4_k_scale_min(scales, 2 * p + 1).0);
            let p0 = _mm256_maddubs_epi16(lo, load256(&x[64 * p..]));
            let p1 = _mm256_maddubs_epi16(hi, load256(&x[64 * p + 32..]));
            isc = _mm256_add_epi32(isc, _mm256_madd_epi16(p0, _mm256_set1_epi16(sc0)));
            isc = _mm256_add_epi32(isc, _mm256_madd_epi16(p1, _mm256_set1_epi16(sc1)));
        }
        let imin = q4_k_min_sum(scales, sums);
        acc += q4_k_term(dx, f16_at(w, 0), f16_at(w, 2), hsum_i32(isc), imin);
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn dot_q6_k(row: &[u8], xq: &QuantizedActivations) -> f32 {
    let (blocks, _) = row.as_chunks::<210>();
    let (xs, _) = xq.qs.as_chunks::<256>();
    let (m4, m2, off) = (
        _mm256_set1_epi8(0x0F),
        _mm256_set1_epi8(0x03),
        _mm256_set1_epi8(32),
    );
    let mut acc = 0.0f32;
    for ((w, x), &dx) in blocks.iter().zip(xs).zip(&xq.d) {
        let (ql, rest) = w.split_at(128);
        let (qh, scales) = rest.split_at(64);
        let mut isc = _mm256_setzero_si256();
        for h in 0..2 {
            let hb = load256(&qh[32 * h..]);
            for s in 0..4usize {
                let lb = load256(&ql[64 * h + 32 * (s % 2)..]);
                let lo = _mm256_and_si256(
                    _mm256_srl_epi16(lb, _mm_cvtsi32_si128((4 * (s / 2)) as i32)),
                    m4,
                );
                let hi =
                    _mm256_and_si256(_mm256_srl_epi16(hb, _mm_cvtsi32_si128((2 * s) as i32)), m2);
                let q = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16::<4>(hi)), off);
                let dot = _mm256_maddubs_epi16(
                    _mm256_sign_epi8(q, q),
                    _mm256_sign_epi8(load256(&x[128 * h + 32 * s..]), q),
                );
                let t = 8 * h + 2 * s;
                let sc = _mm256_set_m128i(
                    _mm_set1_epi16(i16::from(scales[t + 1] as i8)),
                    _mm_set1_epi16(i16::from(scales[t] as i8)),
                );
                isc = _mm256_add_epi32(isc, _mm256_madd_epi16(dot, sc));
            }
        }
        acc += q6_k_term(dx, f16_at(w, 208), hsum_i32(isc));
    }
    acc
}
