//! Rotary position embedding in place, normal (adjacent pairs) and NeoX (split halves) styles.
//!
//! `theta_i = pos · freq_scale · freq_base^(-2i/rope_dim)` for `i < rope_dim/2`, as ggml_rope without
//! YaRN. Angles, their sines and cosines and the rotation are computed in `f64` and rounded to `f32`
//! once: at positions in the thousands an `f32` angle is already off by ~1e-4 rad.

use super::threads::Pool;
use crate::backend::{RopeParams, RopeStyle};
use crate::Result;

/// `x` holds at least `tokens·heads·head_dim` values; token `t` is at position `pos0 + t`.
pub(crate) fn rope(pool: &Pool, x: &mut [f32], p: RopeParams) -> Result<()> {
    let RopeParams {
        heads,
        head_dim,
        rope_dim,
        style,
        ..
    } = p;
    let len = p.check(x.len())?;
    let row = heads * head_dim;
    if len == 0 || rope_dim == 0 {
        return Ok(());
    }
    let half = rope_dim / 2;
    let table = p.angle_table();
    pool.try_chunks_mut(&mut x[..len], row, |t, xt| {
        let cs = &table[t * half..(t + 1) * half];
        for head in xt.chunks_exact_mut(head_dim) {
            for (i, &[c, s]) in cs.iter().enumerate() {
                let (a, b) = match style {
                    RopeStyle::Normal => (2 * i, 2 * i + 1),
                    RopeStyle::Neox => (i, i + half),
                };
                let (x0, x1) = (f64::from(head[a]), f64::from(head[b]));
                head[a] = (x0 * c - x1 * s) as f32;
                head[b] = (x0 * s + x1 * c) as f32;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::super::reference::*;
    use crate::backend::{Backend, RopeParams, RopeStyle};

    /// Everything is `f64` and rounded once to `f32`: half an ulp of values below 4 in magnitude.
    const TOL: f64 = 3e-7;

    #[allow(clippy::too_many_arguments)]
    fn params(
        tokens: usize,
        heads: usize,
        head_dim: usize,
        rope_dim: usize,
        pos0: usize,
        freq_base: f32,
        freq_scale: f32,
        style: RopeStyle,
    ) -> RopeParams {
        RopeParams {
            tokens,
            heads,
            head_dim,
            rope_dim,
            pos0,
            freq_base,
            freq_scale,
            style,
            freq_factors: None,
            attn_factor: 1.0,
            yarn: None,
        }
    }

    #[test]
    fn frequency_factors_divide_each_pairs_angle() {
        // Factors of 4 everywhere are a linear scale of 1/4 (both exact in f64); one factor
        // changed moves only its own pair.
        let b = backend(2);
        let plain = params(3, 2, 8, 8, 7, 10000.0, 0.25, RopeStyle::Normal);
        let mut r = rng(3);
        let x = rand_vec(&mut r, 3 * 2 * 8, 2.0);
        let run = |p: RopeParams| {
            let mut out = buf(x.clone());
            b.rope(&mut out, p).expect("rope");
            out.into_vec()
        };
        let fours = RopeParams {
            freq_scale: 1.0,
            freq_factors: Some(vec![4.0; 4].into()),
            ..plain.clone()
        };
        assert_eq!(run(fours.clone()), run(plain));
        let one_changed = RopeParams {
            freq_factors: Some(vec![4.0, 4.0, 8.0, 4.0].into()),
            ..fours.clone()
        };
        let (a, c) = (run(fours.clone()), run(one_changed));
        for (i, (a, c)) in a.iter().zip(&c).enumerate() {
            // Pair 2 of each head is values 4 and 5 (adjacent pairs).
            assert_eq!(a == c, i % 8 / 2 != 2, "value {i}");
        }
        let wrong = RopeParams {
            freq_factors: Some(vec![1.0; 3].into()),
            ..fours
        };
        assert_shape_err(b.rope(&mut buf(x.clone()), wrong), "rope");
    }

    #[test]
    fn both_styles_match_f64() {
        let b = backend(3);
        for style in [RopeStyle::Normal, RopeStyle::Neox] {
            for &(tokens, heads, head_dim, rope_dim, pos0, base, scale) in &[
                (3, 5, 16, 16, 0, 10000.0, 1.0),
                (1, 3, 64, 64, 4321, 1_000_000.0, 1.0),
                (5, 1, 24, 8, 17, 10000.0, 0.25),
                (7, 2, 10, 6, 1000, 500.0, 2.0),
            ] {
                let p = params(tokens, heads, head_dim, rope_dim, pos0, base, scale, style);
                let len = tokens * heads * head_dim;
                let mut r = rng(pos0 as u64 + head_dim as u64);
                let x = rand_vec(&mut r, len + 3, 2.0);
                let want = rope_f64(
                    &x, tokens, heads, head_dim, rope_dim, pos0, base, scale, style,
                );
                let mut buf_x = buf(x.clone());
                b.rope(&mut buf_x, p.clone()).expect("rope");
                let got = buf_x.as_slice();
                assert_close(&format!("{p:?}"), &got[..len], &want, &vec![TOL; len]);
                // Dims past rope_dim and values past the rows are untouched, bit for bit.
                for (i, (&g, &x0)) in got.iter().zip(&x).enumerate() {
                    if i >= len || i % head_dim >= rope_dim {
                        assert_eq!(g.to_bits(), x0.to_bits(), "{p:?} [{i}] changed");
                    }
                }
            }
        }
    }

    /// Hand-computed: at position 1 with freq_scale 1, pair 0 rotates by 1 rad and pair 1 by
    /// `base^(-2/4)` = 0.01 rad; the styles differ only in which dims form the pairs.
    #[test]
    fn hand_checked_pairs() {
        let b = backend(1);
        let (c0, s0) = (1f32.cos(), 1f32.sin());
        let (c1, s1) = (0.01f32.cos(), 0.01f32.sin());
        let x = vec![1.0, 0.0, 1.0, 0.0];
        let mut normal = buf(x.clone());
        b.rope(
            &mut normal,
            params(1, 1, 4, 4, 1, 10000.0, 1.0, RopeStyle::Normal),
        )
        .expect("normal");
        // Normal pairs (0,1) and (2,3).
        let want = [c0, s0, c1, s1];
        for (g, w) in normal.as_slice().iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "normal {:?}", normal.as_slice());
        }
        let mut neox = buf(x);
        b.rope(
            &mut neox,
            params(1, 1, 4, 4, 1, 10000.0, 1.0, RopeStyle::Neox),
        )
        .expect("neox");
        // NeoX pairs (0,2) and (1,3): x0=1,x2=1 rotate by 1 rad; x1=0,x3=0 stay 0.
        let want = [c0 - s0, 0.0, s0 + c0, 0.0];
        for (g, w) in neox.as_slice().iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "neox {:?}", neox.as_slice());
        }
    }

    #[test]
    fn threads_do_not_change_results() {
        let mut r = rng(3);
        let x = rand_vec(&mut r, 9 * 4 * 32, 1.0);
        let p = params(9, 4, 32, 32, 100, 10000.0, 1.0, RopeStyle::Neox);
        let (mut a, mut c) = (buf(x.clone()), buf(x));
        backend(1).rope(&mut a, p.clone()).expect("1");
        backend(3).rope(&mut c, p).expect("3");
        assert_eq!(a, c);
    }

    #[test]
    fn shape_errors() {
        let b = backend(1);
        let mut x = buf(vec![0.0; 32]);
        let n = RopeStyle::Normal;
        assert_shape_err(b.rope(&mut x, params(1, 2, 16, 15, 0, 1e4, 1.0, n)), "rope");
        assert_shape_err(b.rope(&mut x, params(1, 2, 16, 18, 0, 1e4, 1.0, n)), "rope");
        assert_shape_err(b.rope(&mut x, params(3, 1, 16, 16, 0, 1e4, 1.0, n)), "rope");
        assert!(b.rope(&mut x, params(2, 1, 16, 16, 0, 1e4, 1.0, n)).is_ok());
    }
}
