//! AVX2 + FMA + F16C kernels, and the same with AVX-512 VNNI's fused multiply-add of i16 pairs
//! (`vpdpwssd`, on 256-bit vectors), bit-identical to `scalar.rs`.
//!
//! The two instruction sets share one body: `#[inline(always)]` functions generic over `VNNI`
//! (no `#[target_feature]` of their own), instantiated by the `#[target_feature]` entry points,
//! so each copy is compiled with its entry's features.
//!
//! Weights are widened to i16 (values in value order, 16 per vector) and multiplied with the i16
//! activations by `madd` (pairs into i32). Q4_0 and Q5_0 weights stay unsigned (0..16, 0..32):
//! their offset comes off through the activation sums, `Σ(u − o)·x = Σu·x − o·Σx`, exactly.
//!
//! 32-value blocks are processed eight at a time: the eight blocks' i32 sums are gathered into one
//! vector (`hsum8`) and combined with their scales exactly as `scalar::Lanes` does lane by lane.
//! K-quant super-blocks multiply weights by their sub-block scales in i16 first and accumulate
//! per lane in i32 (bounds at each kernel); Q4_K keeps those lanes to the row's end
//! (`scalar::Q4kLanes`, 512-bit in `q4_k_512`), Q6_K sums them in i64 per super-block.

use super::scalar::{self, q6_k_term, Lanes, QK};
use super::{QuantizedActivations, GEMM_MAX_X};
use crate::quant::GgmlType;
use std::arch::x86_64::*;

mod interleaved;
mod q4_k_512;

/// `out[r · xs.len() + j] = dot(row r of w, xs[j])`, bit-identical to `scalar::gemv` on each
/// `xs[j]`, for `out.len() / xs.len()` rows (checked by the caller; `xs.len() ≤ GEMM_MAX_X`). Each
/// group of eight weight blocks is unpacked once and dotted with every activation row, which is
/// what makes several tokens at once (a batch of decode steps, or a prefill) cheaper per token.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn gemm(
    ty: GgmlType,
    w: &[u8],
    row_bytes: usize,
    xs: &[&QuantizedActivations],
    out: &mut [f32],
) {
    // SAFETY: compiled with, and only called where the CPU has, AVX2, FMA and F16C: all that
    // `gemm_body::<false>` uses.
    unsafe { gemm_body::<false>(ty, w, row_bytes, xs, out) }
}

/// `gemm` with AVX-512 F, BW, VL and VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni,avx512vl")]
pub(super) fn gemm_vnni(
    ty: GgmlType,
    w: &[u8],
    row_bytes: usize,
    xs: &[&QuantizedActivations],
    out: &mut [f32],
) {
    // SAFETY: as in `gemm`, plus AVX-512 F, BW, VL and VNNI, which `gemm_body::<true>` uses.
    unsafe { gemm_body::<true>(ty, w, row_bytes, xs, out) }
}

/// The body of `gemm`. Callers guarantee AVX2, FMA, F16C and, when `VNNI`, AVX-512 F, BW, VL
/// and VNNI.
#[inline(always)]
unsafe fn gemm_body<const VNNI: bool>(
    ty: GgmlType,
    w: &[u8],
    row_bytes: usize,
    xs: &[&QuantizedActivations],
    out: &mut [f32],
) {
    use GgmlType::*;
    // SAFETY: the caller's guarantee covers every kernel below.
    unsafe {
        // No closures here: a closure would be compiled without the entry's target features, and
        // the intrinsics in it would become calls.
        let nx = xs.len();
        match ty {
            Q8_0 if nx > 1 => gemm_legacy::<34, false, 0, VNNI>(w, row_bytes, xs, out),
            Q4_0 if nx > 1 => gemm_legacy::<18, false, 8, VNNI>(w, row_bytes, xs, out),
            Q4_1 if nx > 1 => gemm_legacy::<20, true, 0, VNNI>(w, row_bytes, xs, out),
            Q5_0 if nx > 1 => gemm_legacy::<22, false, 16, VNNI>(w, row_bytes, xs, out),
            // 512-bit vectors, one activation row or several.
            Q4_K if VNNI => q4_k_512::gemm(w, row_bytes, xs, out),
            Q8_0 | Q4_0 | Q4_1 | Q5_0 | Q4_K | Q6_K => {
                // One activation row at a time (Q6_K, Q4_K without AVX-512, decode's single row).
                for (r, (row, out)) in w
                    .chunks_exact(row_bytes)
                    .zip(out.chunks_exact_mut(nx))
                    .enumerate()
                {
                    prefetch_ahead(w, r * row_bytes, row_bytes);
                    for (o, xq) in out.iter_mut().zip(xs) {
                        *o = match ty {
                            Q8_0 => dot_legacy::<34, false, 0, VNNI>(row, xq),
                            Q4_0 => dot_legacy::<18, false, 8, VNNI>(row, xq),
                            Q4_1 => dot_legacy::<20, true, 0, VNNI>(row, xq),
                            Q5_0 => dot_legacy::<22, false, 16, VNNI>(row, xq),
                            Q4_K => dot_q4_k::<VNNI>(row, xq),
                            _ => dot_q6_k::<VNNI>(row, xq),
                        };
                    }
                }
            }
            // Types without a fast kernel never reach here: the scalar path holds the fallback.
            _ => super::per_activation(xs, out, |xq, one| scalar::gemv(ty, w, row_bytes, xq, one)),
        }
    }
}

/// How far ahead of the row being read weights are prefetched (16 KiB measured best on a 1 GiB
/// model and no worse on a 100 MB one): rows are read once per token, so a decode step is a
/// stream from memory, and a task's short range of rows gives the hardware prefetcher little time
/// to ramp up.
const PREFETCH_BYTES: usize = 16384;

/// Prefetches the `len` bytes `PREFETCH_BYTES` after `w[at..]` into the cache, one line at a time
/// (never faults: a prefetch past the end of `w` is dropped by the CPU), where it pays (`Tuning`).
#[inline(always)]
unsafe fn prefetch_ahead(w: &[u8], at: usize, len: usize) {
    if !tuning().prefetch {
        return;
    }
    let base = w.as_ptr().wrapping_add(at + PREFETCH_BYTES);
    for off in (0..len).step_by(64) {
        // SAFETY: a prefetch is a hint with no memory access semantics; SSE is baseline x86_64.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(off).cast()) };
    }
}

/// Choices that change speed, never results, and go opposite ways on different cores, detected
/// once. Measured with `sluice bench` on the 1 GiB synth models and `bench_gemv`: on an Intel Xeon
/// (AVX-512 VNNI) the software prefetch took Q4_0 decode from 0.89× to 1.16× llama.cpp's; on an
/// AMD EPYC (Zen 4) it cost 5–10% and the gather 8–13% of a gemv, as eight loads are cheaper there.
#[derive(Debug, Clone, Copy)]
struct Tuning {
    /// Prefetch weights `PREFETCH_BYTES` ahead.
    prefetch: bool,
    /// Read eight block scales with one `vpgatherdd`.
    gather: bool,
}

fn tuning() -> Tuning {
    static TUNING: std::sync::OnceLock<Tuning> = std::sync::OnceLock::new();
    *TUNING.get_or_init(|| {
        // CPUID leaf 0 names the vendor in EBX, EDX, ECX: "AuthenticAMD" for AMD.
        let id = __cpuid(0);
        let amd = [id.ebx, id.edx, id.ecx] == [0x6874_7541, 0x6974_6E65, 0x444D_4163];
        Tuning {
            prefetch: !amd,
            gather: !amd,
        }
    })
}

/// `gemm` for 32-value blocks of TS bytes whose weights `widen` gives as i16 values (less `OFF`).
#[inline(always)]
unsafe fn gemm_legacy<const TS: usize, const MIN: bool, const OFF: i32, const VNNI: bool>(
    w: &[u8],
    row_bytes: usize,
    xs: &[&QuantizedActivations],
    out: &mut [f32],
) {
    let nx = xs.len().min(GEMM_MAX_X);
    let xs = &xs[..nx];
    // Rows in the interleaved layout need no horizontal sums (`interleaved`).
    let il = xs.iter().all(|xq| xq.has_interleaved());
    for (r, (row, out)) in w
        .chunks_exact(row_bytes)
        .zip(out.chunks_exact_mut(nx))
        .enumerate()
    {
        prefetch_ahead(w, r * row_bytes, row_bytes);
        let (blocks, _) = row.as_chunks::<TS>();
        let (groups, tail) = blocks.as_chunks::<8>();
        let mut acc = [_mm256_setzero_ps(); GEMM_MAX_X];
        for (g, wb) in groups.iter().enumerate() {
            let mut q = [[_mm256_setzero_si256(); 2]; 8];
            for i in 0..8 {
                q[i] = widen::<TS>(&wb[i]);
            }
            let words = gather_words(wb);
            match il {
                true => interleaved::group::<MIN, OFF, VNNI>(&mut acc, q, words, xs, g),
                false => gemm_group::<MIN, OFF, VNNI>(&mut acc, q, words, xs, 8 * g),
            }
        }
        if !tail.is_empty() {
            // Missing blocks: zero weights and zero scales add +0.0, as in `dot_legacy`.
            let mut q = [[_mm256_setzero_si256(); 2]; 8];
            let mut words = [0i32; 8];
            for (i, b) in tail.iter().enumerate() {
                q[i] = widen::<TS>(b);
                words[i] = first_word(b);
            }
            let g = groups.len();
            match il {
                true => interleaved::group::<MIN, OFF, VNNI>(&mut acc, q, words, xs, g),
                false => gemm_group::<MIN, OFF, VNNI>(&mut acc, q, words, xs, 8 * g),
            }
        }
        for (o, acc) in out.iter_mut().zip(&acc[..nx]) {
            *o = lanes_sum(*acc);
        }
    }
}

/// Eight widened weight blocks `q` (from block `b0` on) dotted with every activation row.
#[inline(always)]
unsafe fn gemm_group<const MIN: bool, const OFF: i32, const VNNI: bool>(
    acc: &mut [__m256; GEMM_MAX_X],
    q: [Wide; 8],
    words: [i32; 8],
    xs: &[&QuantizedActivations],
    b0: usize,
) {
    let (dw, mw) = split_f16_pairs(words);
    for (acc, xq) in acc.iter_mut().zip(xs) {
        let xb = &xq.qs[b0 * QK..(b0 + 8) * QK];
        let mut ints = [_mm256_setzero_si256(); 8];
        for i in 0..8 {
            ints[i] = block_dot::<VNNI>(q[i], &xb[i * QK..]);
        }
        *acc = group_scaled::<MIN, OFF>(*acc, ints, dw, mw, xq, b0);
    }
}

/// One 32-value block's 32 weights as i16, values 0..16 then 16..32.
type Wide = [__m256i; 2];

/// Eight i32 lanes summing to Σ w·x over a block: `w` from `Wide` (|w| ≤ 128), `x` the block's
/// 32 activations (|x| ≤ 32767); each lane holds 4 products, far from overflow.
#[inline(always)]
unsafe fn block_dot<const VNNI: bool>(w: Wide, x: &[i16]) -> __m256i {
    // SAFETY: the caller guarantees AVX2 and, when `VNNI`, AVX-512 VNNI + VL.
    unsafe {
        let lo = _mm256_madd_epi16(w[0], load256(x));
        if VNNI {
            _mm256_dpwssd_epi32(lo, w[1], load256(&x[16..]))
        } else {
            _mm256_add_epi32(lo, _mm256_madd_epi16(w[1], load256(&x[16..])))
        }
    }
}

/// A block's 32 weights as i16 (less the type's offset, which comes off through the sums): the
/// block size names the type (34 bytes Q8_0, 18 Q4_0, 20 Q4_1, 22 Q5_0).
#[inline(always)]
unsafe fn widen<const TS: usize>(b: &[u8; TS]) -> Wide {
    // SAFETY: the caller guarantees AVX2.
    unsafe {
        match TS {
            34 => widen_q8_0(b),
            18 => widen_nibbles(&b[2..]),
            20 => widen_nibbles(&b[4..]),
            _ => widen_q5_0(b),
        }
    }
}

/// The 8 f32 lanes of `acc` summed as `Lanes::sum` does.
#[target_feature(enable = "avx2")]
#[inline]
fn lanes_sum(acc: __m256) -> f32 {
    let mut lanes = Lanes::default();
    // SAFETY: `lanes.0` is 8 writable f32s; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_ps(lanes.0.as_mut_ptr(), acc) };
    lanes.sum()
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

/// The 32 nibbles of 16 bytes as i16 in value order: low nibbles (values 0..16), then high ones.
#[target_feature(enable = "avx2")]
#[inline]
fn widen_nibbles(s: &[u8]) -> Wide {
    let b = _mm256_cvtepu8_epi16(load128(s));
    [
        _mm256_and_si256(b, _mm256_set1_epi16(0x0F)),
        _mm256_srli_epi16::<4>(b),
    ]
}

/// A Q8_0 block's 32 signed weights as i16.
#[target_feature(enable = "avx2")]
#[inline]
fn widen_q8_0(w: &[u8]) -> Wide {
    [
        _mm256_cvtepi8_epi16(load128(&w[2..])),
        _mm256_cvtepi8_epi16(load128(&w[18..])),
    ]
}

/// A Q5_0 block's 32 weights as unsigned i16 (0..32; the offset 16 comes off through the sums).
#[target_feature(enable = "avx2")]
#[inline]
fn widen_q5_0(w: &[u8]) -> Wide {
    let qh = u32::from_le_bytes([w[2], w[3], w[4], w[5]]);
    let [lo, hi] = widen_nibbles(&w[6..]);
    // Lane i of half h gets 0x10 where bit 16·h + i of qh is set.
    let bits = _mm256_setr_epi16(
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        512,
        1024,
        2048,
        4096,
        8192,
        16384,
        i16::MIN,
    );
    let high = |half: u32| {
        let spread = _mm256_and_si256(_mm256_set1_epi16(half as u16 as i16), bits);
        _mm256_and_si256(_mm256_cmpeq_epi16(spread, bits), _mm256_set1_epi16(0x10))
    };
    [
        _mm256_or_si256(lo, high(qh & 0xFFFF)),
        _mm256_or_si256(hi, high(qh >> 16)),
    ]
}

/// A row of 32-value blocks of TS bytes (f16 d first; f16 min second when `MIN`), `widen` giving
/// each block's weights as i16 (less `OFF`). Same f32 operations as `scalar::Lanes`: lane i of the
/// accumulator is lane i of `Lanes`. In a last partial group the missing blocks have integer sum
/// 0 and scales 0, which adds +0.0 to their lanes: a no-op, as a lane never holds -0.0 (it starts
/// at +0.0 and round-to-nearest sums cannot reach -0.0 from there).
#[inline(always)]
unsafe fn dot_legacy<const TS: usize, const MIN: bool, const OFF: i32, const VNNI: bool>(
    row: &[u8],
    xq: &QuantizedActivations,
) -> f32 {
    let (blocks, _) = row.as_chunks::<TS>();
    let (xs, _) = xq.qs.as_chunks::<QK>();
    let (groups, tail) = blocks.as_chunks::<8>();
    let mut acc = _mm256_setzero_ps();
    for (g, (wb, xb)) in groups.iter().zip(xs.chunks_exact(8)).enumerate() {
        let mut ints = [_mm256_setzero_si256(); 8];
        for i in 0..8 {
            ints[i] = block_dot::<VNNI>(widen::<TS>(&wb[i]), &xb[i]);
        }
        let words = gather_words(wb);
        let (dw, mw) = split_f16_pairs(words);
        acc = group_scaled::<MIN, OFF>(acc, ints, dw, mw, xq, 8 * g);
    }
    if !tail.is_empty() {
        let b0 = 8 * groups.len();
        let mut ints = [_mm256_setzero_si256(); 8];
        let mut words = [0i32; 8];
        for (i, (w, x)) in tail.iter().zip(&xs[b0..]).enumerate() {
            ints[i] = block_dot::<VNNI>(widen::<TS>(w), x);
            words[i] = first_word(w);
        }
        let (dw, mw) = split_f16_pairs(words);
        acc = group_scaled::<MIN, OFF>(acc, ints, dw, mw, xq, b0);
    }
    lanes_sum(acc)
}

/// Bytes 0..4 of each of eight consecutive blocks (scale, and min for Q4_1): one gather where
/// gathers are fast (`Tuning`), else eight loads.
#[inline(always)]
unsafe fn gather_words<const TS: usize>(blocks: &[[u8; TS]; 8]) -> [i32; 8] {
    // SAFETY: the caller guarantees AVX2; lane i reads bytes `i·TS..i·TS + 4` of `blocks`, inside
    // block i (TS ≥ 18), and `loadu`-like gathers have no alignment requirement.
    unsafe {
        if !tuning().gather {
            return std::array::from_fn(|i| first_word(&blocks[i]));
        }
        let ts = TS as i32;
        let idx = _mm256_setr_epi32(0, ts, 2 * ts, 3 * ts, 4 * ts, 5 * ts, 6 * ts, 7 * ts);
        let v = _mm256_i32gather_epi32::<1>(blocks.as_ptr().cast(), idx);
        let mut words = [0i32; 8];
        _mm256_storeu_si256(words.as_mut_ptr().cast(), v);
        words
    }
}

/// Bytes 0..4 of a block: its f16 scale and, for Q4_1, its f16 min.
#[inline(always)]
fn first_word<const TS: usize>(w: &[u8; TS]) -> i32 {
    i32::from_le_bytes([w[0], w[1], w[2], w[3]])
}

/// Adds eight blocks to the lanes in `acc`, given their integer dot products `ints` against
/// activation blocks `b0..b0 + 8` and their f16 scales (`dw`) and mins (`mw`) converted. The
/// exact block sums are `Σu·x − OFF·Σx` (at most 32·128·32767 in magnitude).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn group_scaled<const MIN: bool, const OFF: i32>(
    acc: __m256,
    ints: [__m256i; 8],
    dw: __m256,
    mw: __m256,
    xq: &QuantizedActivations,
    b0: usize,
) -> __m256 {
    block_sums_scaled::<MIN, OFF>(acc, hsum8(ints), dw, mw, xq, b0)
}

/// `group_scaled` from the eight blocks' integer sums `t` (lane i: block `b0 + i`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn block_sums_scaled<const MIN: bool, const OFF: i32>(
    acc: __m256,
    mut t: __m256i,
    dw: __m256,
    mw: __m256,
    xq: &QuantizedActivations,
    b0: usize,
) -> __m256 {
    let span = b0..b0 + 8;
    let needs_sums = MIN || OFF != 0;
    let s = if needs_sums {
        load256(&xq.sums[span.clone()])
    } else {
        _mm256_setzero_si256()
    };
    if OFF != 0 {
        t = _mm256_sub_epi32(t, _mm256_mullo_epi32(s, _mm256_set1_epi32(OFF)));
    }
    let dx = load_ps(&xq.d[span]);
    let acc = _mm256_add_ps(
        acc,
        _mm256_mul_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(t)),
    );
    if MIN {
        _mm256_add_ps(
            acc,
            _mm256_mul_ps(mw, _mm256_mul_ps(dx, _mm256_cvtepi32_ps(s))),
        )
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

/// `acc + madd(a, b)`: one fused `vpdpwssd` with VNNI.
#[inline(always)]
unsafe fn madd_acc<const VNNI: bool>(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    // SAFETY: the caller guarantees AVX2 and, when `VNNI`, AVX-512 VNNI + VL.
    unsafe {
        if VNNI {
            _mm256_dpwssd_epi32(acc, a, b)
        } else {
            _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
        }
    }
}

/// The eight 6-bit scales and eight 6-bit mins of a Q4_K super-block from its 12 packed bytes
/// (the layout `scalar::q4_k_scale_min` reads one at a time), with a few u32 operations.
#[inline(always)]
fn q4_k_scales_mins(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let word = |i: usize| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
    let (s0, s1, s2) = (word(0), word(1), word(2));
    const LOW6: u32 = 0x3F3F_3F3F;
    const LOW4: u32 = 0x0F0F_0F0F;
    const LOW2: u32 = 0x0303_0303;
    // Scales and mins 4..8 take their low nibble from bytes 8..12 and their top two bits from
    // the top bits of bytes 0..4 (scales) or 4..8 (mins).
    let sc_hi = (s2 & LOW4) | (((s0 >> 6) & LOW2) << 4);
    let m_hi = ((s2 >> 4) & LOW4) | (((s1 >> 6) & LOW2) << 4);
    let join = |a: u32, b: u32| {
        let (a, b) = (a.to_le_bytes(), b.to_le_bytes());
        [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
    };
    (join(s0 & LOW6, sc_hi), join(s1 & LOW6, m_hi))
}

/// Σ over the eight i32 lanes, in i64 (exact).
#[target_feature(enable = "avx2")]
#[inline]
fn hsum_i64(v: __m256i) -> i64 {
    let lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v));
    let hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(v));
    let s = _mm256_add_epi64(lo, hi);
    let s = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
    _mm_cvtsi128_si64(s) + _mm_extract_epi64::<1>(s)
}

/// Q4_K in `scalar::Q4kLanes`' layout: weights (0..16) times their 6-bit scale fit i16 (≤ 945);
/// `isc[h]` holds lanes `8h..8h + 8` (values 16h.. of each sub-block), each summing 16 products of
/// at most 945·32767 (< 2³¹); the mins' lanes `m_j·Σx_j` are exact in i32 (≤ 63·32·32767).
#[inline(always)]
unsafe fn dot_q4_k<const VNNI: bool>(row: &[u8], xq: &QuantizedActivations) -> f32 {
    let (blocks, _) = row.as_chunks::<144>();
    let (xs, _) = xq.qs.as_chunks::<256>();
    // SAFETY: the caller guarantees AVX2, FMA, F16C and, when `VNNI`, AVX-512 VNNI + VL.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut acc_min = _mm256_setzero_ps();
        for ((w, x), (&dx, sums)) in blocks
            .iter()
            .zip(xs)
            .zip(xq.d.iter().zip(xq.sums.chunks_exact(8)))
        {
            let (sc, mins) = q4_k_scales_mins(&w[4..16]);
            let mut isc = [_mm256_setzero_si256(); 2];
            for p in 0..4 {
                let sc0 = _mm256_set1_epi16(i16::from(sc[2 * p]));
                let sc1 = _mm256_set1_epi16(i16::from(sc[2 * p + 1]));
                for (h, isc) in isc.iter_mut().enumerate() {
                    // Bytes 32p + 16h.. hold values 16h.. of sub-blocks 2p (low) and 2p + 1 (high).
                    let [lo, hi] = widen_nibbles(&w[16 + 32 * p + 16 * h..]);
                    let x0 = load256(&x[64 * p + 16 * h..]);
                    let x1 = load256(&x[64 * p + 32 + 16 * h..]);
                    *isc = madd_acc::<VNNI>(*isc, _mm256_mullo_epi16(lo, sc0), x0);
                    *isc = madd_acc::<VNNI>(*isc, _mm256_mullo_epi16(hi, sc1), x1);
                }
            }
            let dxd = _mm256_set1_ps(dx * f16_at(w, 0));
            for (acc, isc) in acc.iter_mut().zip(isc) {
                *acc = _mm256_add_ps(*acc, _mm256_mul_ps(dxd, _mm256_cvtepi32_ps(isc)));
            }
            acc_min = q4_k_min_lanes(acc_min, q4_k_widen_mins(&mins), sums, dx * f16_at(w, 2));
        }
        q4_k_sum(_mm256_add_ps(acc[0], acc[1]), acc_min)
    }
}

/// A Q4_K super-block's eight 6-bit mins as i32 lanes, for `q4_k_min_lanes`.
#[target_feature(enable = "avx2")]
#[inline]
fn q4_k_widen_mins(mins: &[u8; 8]) -> __m256i {
    // SAFETY: `mins` is 8 readable bytes; `loadl` has no alignment requirement.
    _mm256_cvtepu8_epi32(unsafe { _mm_loadl_epi64(mins.as_ptr().cast()) })
}

/// `acc + dxm·(m_j·Σx_j)` lane by lane (`m` from `q4_k_widen_mins`), as `scalar::Q4kLanes::add`
/// does for the mins.
#[target_feature(enable = "avx2")]
#[inline]
fn q4_k_min_lanes(acc: __m256, m: __m256i, sums: &[i32], dxm: f32) -> __m256 {
    let imin = _mm256_mullo_epi32(m, load256(&sums[..8]));
    _mm256_add_ps(
        acc,
        _mm256_mul_ps(_mm256_set1_ps(dxm), _mm256_cvtepi32_ps(imin)),
    )
}

/// `scalar::Q4kLanes::sum` from the scaled lanes already folded (`l` + `l + 8`) and the mins.
#[target_feature(enable = "avx2")]
#[inline]
fn q4_k_sum(folded: __m256, mins: __m256) -> f32 {
    lanes_sum(folded) - lanes_sum(mins)
}

/// Q6_K: weights (−32..32) times their i8 scale fit i16 (|·| ≤ 4096); each half super-block has
/// its own i32 lanes, each summing 16 products of at most 4096·32767 (< 2³¹).
#[inline(always)]
unsafe fn dot_q6_k<const VNNI: bool>(row: &[u8], xq: &QuantizedActivations) -> f32 {
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
        let mut isc = 0i64;
        for h in 0..2 {
            let hb = load256(&qh[32 * h..]);
            let mut half = _mm256_setzero_si256();
            for s in 0..4usize {
                let lb = load256(&ql[64 * h + 32 * (s % 2)..]);
                let lo = _mm256_and_si256(
                    _mm256_srl_epi16(lb, _mm_cvtsi32_si128((4 * (s / 2)) as i32)),
                    m4,
                );
                let hi =
                    _mm256_and_si256(_mm256_srl_epi16(hb, _mm_cvtsi32_si128((2 * s) as i32)), m2);
                let q = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16::<4>(hi)), off);
                let t = 8 * h + 2 * s;
                let q0 = _mm256_mullo_epi16(
                    _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q)),
                    _mm256_set1_epi16(i16::from(scales[t] as i8)),
                );
                let q1 = _mm256_mullo_epi16(
                    _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(q)),
                    _mm256_set1_epi16(i16::from(scales[t + 1] as i8)),
                );
                let xs = &x[128 * h + 32 * s..];
                half = madd_acc::<VNNI>(half, q0, load256(xs));
                half = madd_acc::<VNNI>(half, q1, load256(&xs[16..]));
            }
            isc += hsum_i64(half);
        }
        acc += q6_k_term(dx, f16_at(w, 208), isc);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::super::scalar::q4_k_scale_min;
    use super::q4_k_scales_mins;

    #[test]
    fn q4_k_scales_and_mins_unpack_like_the_scalar_reader() {
        let mut state = 0x1234_5678_9ABC_DEF0u64;
        for _ in 0..500 {
            let bytes: [u8; 12] = std::array::from_fn(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 56) as u8
            });
            let (sc, m) = q4_k_scales_mins(&bytes);
            for j in 0..8 {
                assert_eq!((sc[j], m[j]), q4_k_scale_min(&bytes, j), "{bytes:?} j={j}");
            }
        }
    }
}
