//! Causal grouped-query attention over the KV cache. A unit of work is one token and a run of
//! query heads that share a KV head: each K and V row is read once for all of them.
//!
//! Scores `scale·q·k` are `f32` dots (`matmul::dot`), the softmax subtracts the row maximum before
//! `exp`, and the weighted sum of values is accumulated in `f32` (in key order) then divided by the
//! `f32` sum. Every output is computed by the same operations in the same order whatever the unit
//! size, the thread count or the instruction set (AVX2 is used where present), so all agree bit
//! for bit.

use super::matmul::dot;
use super::threads::Pool;
use crate::backend::AttentionParams;
use crate::Result;

/// `q` and `out` hold at least `tokens·heads·head_dim` values, each cache at least
/// `(pos0+tokens)·kv_heads·head_dim`. Query token `t` sees cache rows `0..=pos0+t`.
pub(crate) fn attention(
    pool: &Pool,
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    out: &mut [f32],
    p: AttentionParams,
) -> Result<()> {
    let sizes = p.check(q.len(), k_cache.len(), v_cache.len(), out.len())?;
    let q_len = sizes.q_len;
    if q_len == 0 {
        return Ok(());
    }
    let span = heads_per_unit(pool.threads(), p);
    let units = p.tokens * p.heads / span;
    let per_task = pool.chunk_items(units, 1);
    let job = Job {
        q,
        k_cache,
        v_cache,
        p,
        span,
    };
    let unit_len = span * p.head_dim;
    pool.try_chunks_mut(&mut out[..q_len], per_task * unit_len, |ci, chunk| {
        let mut scores = Vec::with_capacity(span * (p.pos0 + p.tokens));
        for (u, o) in chunk.chunks_exact_mut(unit_len).enumerate() {
            job.run(&mut scores, (ci * per_task + u) * span, o);
        }
        Ok(())
    })
}

/// Query heads per unit: the most heads of one group (a divisor of the group size) that still
/// leave two units per thread, so a decode step's few KV heads do not idle a thread.
fn heads_per_unit(threads: usize, p: AttentionParams) -> usize {
    let group = p.heads / p.kv_heads;
    (1..=group)
        .rev()
        .find(|&s| group.is_multiple_of(s) && p.tokens * p.heads / s >= 2 * threads)
        .unwrap_or(1)
}

/// What every unit reads.
struct Job<'a> {
    q: &'a [f32],
    k_cache: &'a [f32],
    v_cache: &'a [f32],
    p: AttentionParams,
    span: usize,
}

impl Job<'_> {
    /// Computes the unit whose first (token, head) pair has flat index `first` into `o`.
    fn run(&self, scores: &mut Vec<f32>, first: usize, o: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, all that `run_avx2` is compiled with.
            return unsafe { self.run_avx2(scores, first, o) };
        }
        self.body(scores, first, o)
    }

    /// `body` compiled for AVX2 (wider vectors; the same operations in the same order).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn run_avx2(&self, scores: &mut Vec<f32>, first: usize, o: &mut [f32]) {
        self.body(scores, first, o)
    }

    #[inline(always)]
    fn body(&self, scores: &mut Vec<f32>, first: usize, o: &mut [f32]) {
        let AttentionParams {
            pos0,
            heads,
            kv_heads,
            head_dim,
            scale,
            ..
        } = self.p;
        let (t, h0) = (first / heads, first % heads);
        let (q_row, kv_row) = (heads * head_dim, kv_heads * head_dim);
        let kv_off = (h0 / (heads / kv_heads)) * head_dim;
        // Keys `first..pos0 + t + 1` (all of them, or the sliding window's).
        let first = self.p.first_key(t);
        let keys = pos0 + t + 1 - first;
        let (k_cache, v_cache) = (
            &self.k_cache[first * kv_row..],
            &self.v_cache[first * kv_row..],
        );
        let qs = &self.q[t * q_row + h0 * head_dim..][..self.span * head_dim];
        scores.clear();
        scores.resize(self.span * keys, 0.0);
        // Scores, head by head within each key row, so the row is read once for the run.
        for j in 0..keys {
            let kr = &k_cache[j * kv_row + kv_off..][..head_dim];
            for (i, qv) in qs.chunks_exact(head_dim).enumerate() {
                scores[i * keys + j] = dot(qv, kr) * scale;
            }
        }
        for (row, o) in scores
            .chunks_exact_mut(keys)
            .zip(o.chunks_exact_mut(head_dim))
        {
            // `f32::max` skips NaN, so one NaN score poisons only its own weight.
            let mut max = f32::NEG_INFINITY;
            for &s in row.iter() {
                max = max.max(s);
            }
            let mut sum = 0f32;
            for s in row.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            weighted_values(v_cache, row, kv_row, kv_off, o);
            let inv = 1.0 / sum;
            for acc in o.iter_mut() {
                *acc *= inv;
            }
        }
    }
}

/// `o = Σ_j w[j]·V[j]`, each output summed in key order. Outputs go 32 at a time so their
/// sums stay in registers while the value rows stream past.
#[inline(always)]
fn weighted_values(v_cache: &[f32], w: &[f32], kv_row: usize, kv_off: usize, o: &mut [f32]) {
    const STRIP: usize = 32;
    let mut c0 = 0;
    while c0 < o.len() {
        let width = STRIP.min(o.len() - c0);
        let mut acc = [0f32; STRIP];
        for (j, &wt) in w.iter().enumerate() {
            let vr = &v_cache[j * kv_row + kv_off + c0..][..width];
            for (a, &v) in acc.iter_mut().zip(vr) {
                *a += wt * v;
            }
        }
        o[c0..c0 + width].copy_from_slice(&acc[..width]);
        c0 += width;
    }
}

#[cfg(test)]
mod tests {
    use super::super::reference::*;
    use crate::backend::{AttentionParams, Backend};

    /// `f32` dots over `head_dim ≤ 64` terms and a weighted sum of values bounded by 1 in magnitude:
    /// errors are ~1e-6 of the largest |q·k| at worst; 2e-5 absolute leaves a wide margin.
    const TOL: f64 = 2e-5;

    #[allow(clippy::type_complexity)]
    fn inputs(seed: u64, p: AttentionParams, capacity: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut r = rng(seed);
        let q = rand_vec(&mut r, p.tokens * p.heads * p.head_dim, 1.0);
        let kv = capacity * p.kv_heads * p.head_dim;
        (q, rand_vec(&mut r, kv, 1.0), rand_vec(&mut r, kv, 1.0))
    }

    fn run(threads: usize, p: AttentionParams, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f32> {
        let b = backend(threads);
        let mut out = buf(vec![0.0; p.tokens * p.heads * p.head_dim]);
        b.attention(
            &buf(q.to_vec()),
            &buf(k.to_vec()),
            &buf(v.to_vec()),
            &mut out,
            p,
        )
        .expect("attention");
        out.into_vec()
    }

    fn params(
        tokens: usize,
        pos0: usize,
        heads: usize,
        kv_heads: usize,
        hd: usize,
    ) -> AttentionParams {
        AttentionParams {
            tokens,
            pos0,
            heads,
            kv_heads,
            head_dim: hd,
            scale: 1.0 / (hd as f32).sqrt(),
            window: 0,
        }
    }

    #[test]
    fn gqa_matches_f64() {
        for &(tokens, pos0, heads, kv_heads, hd) in &[
            (5, 0, 6, 2, 7),   // groups of 3
            (1, 9, 3, 1, 16),  // one KV head for all
            (3, 4, 5, 5, 9),   // plain multi-head
            (7, 0, 9, 3, 64),  // groups of 3, long heads
            (2, 37, 4, 2, 33), // decode-sized batch over a longer cache
        ] {
            let p = params(tokens, pos0, heads, kv_heads, hd);
            // The cache is larger than pos0 + tokens: rows past it must not be read.
            let (q, k, v) = inputs(hd as u64, p, pos0 + tokens + 4);
            let got = run(3, p, &q, &k, &v);
            let want = attention_f64(&q, &k, &v, tokens, pos0, heads, kv_heads, hd, p.scale);
            assert_close(&format!("{p:?}"), &got, &want, &vec![TOL; want.len()]);
        }
    }

    #[test]
    fn decode_after_prefill_equals_prefill_rows() {
        // Each (token, head) is computed from the same rows in the same order, so the rows of a
        // full prefill and a later decode of the same positions agree exactly.
        let full = params(7, 0, 6, 2, 12);
        let (q, k, v) = inputs(1, full, 7);
        let all = run(2, full, &q, &k, &v);
        let row = 6 * 12;
        for (pos0, tokens) in [(5, 2), (6, 1), (3, 1)] {
            let p = params(tokens, pos0, 6, 2, 12);
            let part = run(2, p, &q[pos0 * row..(pos0 + tokens) * row], &k, &v);
            assert_eq!(
                &part[..],
                &all[pos0 * row..(pos0 + tokens) * row],
                "pos0 {pos0}"
            );
        }
    }

    #[test]
    fn first_token_returns_its_own_value() {
        // Position 0 sees one key: the softmax weight is 1 and the output is that value row.
        let p = params(1, 0, 4, 2, 5);
        let (q, k, v) = inputs(2, p, 1);
        let got = run(1, p, &q, &k, &v);
        for h in 0..4 {
            assert_eq!(&got[h * 5..(h + 1) * 5], &v[(h / 2) * 5..(h / 2 + 1) * 5]);
        }
    }

    #[test]
    fn large_scores_stay_finite() {
        let mut p = params(4, 0, 2, 1, 8);
        p.scale = 1e4;
        let (q, k, v) = inputs(3, p, 4);
        let got = run(1, p, &q, &k, &v);
        assert!(got.iter().all(|x| x.is_finite()), "{got:?}");
        let want = attention_f64(&q, &k, &v, 4, 0, 2, 1, 8, p.scale);
        // With huge scores the softmax is (nearly) one-hot; f32 rounding of the scores can tip
        // near-ties, so check only that values stay within the range of V.
        assert!(want.iter().all(|x| x.is_finite()));
        assert!(got.iter().all(|x| x.abs() <= 1.0));
    }

    #[test]
    fn threads_do_not_change_results() {
        let p = params(9, 3, 6, 3, 20);
        let (q, k, v) = inputs(4, p, 12);
        assert_eq!(run(1, p, &q, &k, &v), run(3, p, &q, &k, &v));
    }

    #[test]
    fn unit_size_and_isa_do_not_change_results() {
        // One token, 6 heads over 2 KV heads: one thread takes runs of 3 heads, three threads
        // one head per unit (to have 6 units); the portable body and AVX2 agree with both.
        let p = params(1, 40, 6, 2, 70);
        assert_eq!(
            (super::heads_per_unit(1, p), super::heads_per_unit(3, p)),
            (3, 1)
        );
        let (q, k, v) = inputs(5, p, 41);
        let one = run(1, p, &q, &k, &v);
        assert_eq!(one, run(3, p, &q, &k, &v));
        for span in [1, 3] {
            let job = super::Job {
                q: &q,
                k_cache: &k,
                v_cache: &v,
                p,
                span,
            };
            let mut portable = vec![0.0; 6 * 70];
            let mut scores = Vec::new();
            for (u, o) in portable.chunks_exact_mut(span * 70).enumerate() {
                job.body(&mut scores, u * span, o);
            }
            assert_eq!(portable, one, "span {span}");
        }
    }

    #[test]
    fn a_window_sees_only_its_last_keys() {
        // With a window of 4, the query at position p attends to keys p-3..=p: the same as a
        // full attention whose cache starts at row p-3, bit for bit.
        let mut p = params(3, 10, 4, 2, 16);
        p.window = 4;
        let (q, k, v) = inputs(6, p, 13);
        let got = run(2, p, &q, &k, &v);
        let (q_row, kv_row) = (4 * 16, 2 * 16);
        for t in 0..3 {
            let first = 10 + t + 1 - 4;
            assert_eq!(p.first_key(t), first);
            let one = params(1, 3, 4, 2, 16);
            let want = run(
                2,
                one,
                &q[t * q_row..(t + 1) * q_row],
                &k[first * kv_row..],
                &v[first * kv_row..],
            );
            assert_eq!(&got[t * q_row..(t + 1) * q_row], &want[..], "token {t}");
        }
        // A window wider than the history changes nothing.
        let mut wide = p;
        wide.window = 100;
        p.window = 0;
        assert_eq!(run(1, wide, &q, &k, &v), run(1, p, &q, &k, &v));
    }

    #[test]
    fn shape_errors() {
        let b = backend(1);
        let p = params(2, 1, 4, 2, 8);
        let q = buf(vec![0.0; 2 * 4 * 8]);
        let kv = buf(vec![0.0; 3 * 2 * 8]);
        let short_kv = buf(vec![0.0; 3 * 2 * 8 - 1]);
        let mut out = buf(vec![0.0; 2 * 4 * 8]);
        assert!(b.attention(&q, &kv, &kv, &mut out, p).is_ok());
        assert_shape_err(b.attention(&q, &short_kv, &kv, &mut out, p), "attention");
        assert_shape_err(b.attention(&q, &kv, &short_kv, &mut out, p), "attention");
        assert_shape_err(
            b.attention(&q, &kv, &kv, &mut out, params(3, 0, 4, 2, 8)),
            "attention",
        );
        assert_shape_err(
            b.attention(&q, &kv, &kv, &mut out, params(2, 1, 4, 3, 8)),
            "attention",
        );
        assert_shape_err(
            b.attention(&q, &kv, &kv, &mut out, params(2, 1, 4, 0, 8)),
            "attention",
        );
        let mut short_out = buf(vec![0.0; 2 * 4 * 8 - 1]);
        assert_shape_err(b.attention(&q, &kv, &kv, &mut short_out, p), "attention");
    }
}
