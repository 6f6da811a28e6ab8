//! Element-wise ops: `silu_mul` and `gelu_mul` (the SwiGLU and GeGLU gates), `scale`, `add`
//! (residuals) and `copy_rows` (KV append).

use super::need;
use super::threads::Pool;
use crate::backend::CopyRowsParams;
use crate::Result;

/// Values per task at least: these ops are memory-bound, so only large buffers are worth splitting.
const MIN_VALUES: usize = 1 << 14;

/// `silu(x) = x / (1 + e^-x)`; for very negative `x`, `e^-x` is `inf` and the result `-0`, not NaN.
fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `out[i] = silu(gate[i]) · up[i]` for `i < len`.
pub(crate) fn silu_mul(
    pool: &Pool,
    gate: &[f32],
    up: &[f32],
    out: &mut [f32],
    len: usize,
) -> Result<()> {
    gated("silu_mul", pool, (gate, up, out), len, silu)
}

/// GELU in its tanh form, `x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³)))`, as Gemma uses it.
pub(crate) fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

/// `out[i] = act(gate[i]) · up[i]` for `i < len`.
fn gated(
    op: &'static str,
    pool: &Pool,
    (gate, up, out): (&[f32], &[f32], &mut [f32]),
    len: usize,
    act: impl Fn(f32) -> f32 + Sync + Send,
) -> Result<()> {
    need(op, "gate", gate.len(), len)?;
    need(op, "up", up.len(), len)?;
    need(op, "out", out.len(), len)?;
    let per_task = pool.chunk_items(len, MIN_VALUES);
    pool.try_chunks_mut(&mut out[..len], per_task, |ci, o| {
        let start = ci * per_task;
        let (g, u) = (&gate[start..start + o.len()], &up[start..start + o.len()]);
        for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
            *o = act(g) * u;
        }
        Ok(())
    })
}

/// `out[i] = gelu_tanh(gate[i]) · up[i]` for `i < len`.
pub(crate) fn gelu_mul(
    pool: &Pool,
    gate: &[f32],
    up: &[f32],
    out: &mut [f32],
    len: usize,
) -> Result<()> {
    gated("gelu_mul", pool, (gate, up, out), len, gelu_tanh)
}

/// `x[i] *= factor` for `i < len`.
pub(crate) fn scale(pool: &Pool, x: &mut [f32], factor: f32, len: usize) -> Result<()> {
    need("scale", "x", x.len(), len)?;
    let per_task = pool.chunk_items(len, MIN_VALUES);
    pool.try_chunks_mut(&mut x[..len], per_task, |_, chunk| {
        for v in chunk.iter_mut() {
            *v *= factor;
        }
        Ok(())
    })
}

/// `acc[i] += x[i]` for `i < len`.
pub(crate) fn add(pool: &Pool, acc: &mut [f32], x: &[f32], len: usize) -> Result<()> {
    const OP: &str = "add";
    need(OP, "acc", acc.len(), len)?;
    need(OP, "x", x.len(), len)?;
    let per_task = pool.chunk_items(len, MIN_VALUES);
    pool.try_chunks_mut(&mut acc[..len], per_task, |ci, a| {
        let start = ci * per_task;
        let x = &x[start..start + a.len()];
        for (a, &v) in a.iter_mut().zip(x) {
            *a += v;
        }
        Ok(())
    })
}

/// Copies `rows·cols` values of `src` from row `src_row0` to `dst` from row `dst_row0`.
pub(crate) fn copy_rows(src: &[f32], dst: &mut [f32], p: CopyRowsParams) -> Result<()> {
    let len = p.check(src.len(), dst.len())?;
    // Both ends are within the checked lengths, so these products cannot overflow.
    let (s0, d0) = (p.src_row0 * p.cols, p.dst_row0 * p.cols);
    dst[d0..d0 + len].copy_from_slice(&src[s0..s0 + len]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::reference::*;
    use crate::backend::{Backend, CopyRowsParams};

    #[test]
    fn gelu_mul_matches_f64() {
        let len = 2 * (1 << 14) + 5;
        let mut r = rng(7);
        let mut gate = rand_vec(&mut r, len, 6.0);
        gate[..4].copy_from_slice(&[-200.0, 200.0, 0.0, -3.0]);
        let up = rand_vec(&mut r, len, 2.0);
        let want = gelu_mul_f64(&gate, &up);
        let mut out = buf(vec![5.0; len + 1]);
        backend(3)
            .gelu_mul(&buf(gate.clone()), &buf(up.clone()), &mut out, len)
            .expect("gelu_mul");
        // tanh and a few products in f32: within 1e-6 relative, plus an absolute floor for the
        // cancellation of 1 + tanh near -1 (large negative gates, where the result is ~0).
        let tol: Vec<f64> = want.iter().map(|w| 1e-6 * w.abs() + 1e-6).collect();
        assert_close("gelu_mul", &out.as_slice()[..len], &want, &tol);
        assert_eq!(out.as_slice()[len], 5.0);
        let mut one = buf(vec![5.0; len + 1]);
        backend(1)
            .gelu_mul(&buf(gate), &buf(up), &mut one, len)
            .expect("1 thread");
        assert_eq!(out, one);
    }

    #[test]
    fn scale_multiplies_the_prefix_only() {
        let mut x = buf(vec![1.5, -2.0, 4.0, 7.0]);
        backend(2).scale(&mut x, 2.5, 3).expect("scale");
        assert_eq!(x.as_slice(), &[3.75, -5.0, 10.0, 7.0]);
        assert_shape_err(backend(1).scale(&mut x, 2.0, 5), "scale");
    }

    #[test]
    fn silu_mul_matches_f64() {
        let b = backend(3);
        // Long enough to be split over threads, odd so the last chunk is short.
        let len = 3 * (1 << 14) + 77;
        let mut r = rng(1);
        let mut gate = rand_vec(&mut r, len, 8.0);
        gate[..4].copy_from_slice(&[-200.0, 200.0, 0.0, -88.0]);
        let up = rand_vec(&mut r, len, 2.0);
        let want = silu_mul_f64(&gate, &up);
        let mut out = buf(vec![5.0; len + 1]);
        b.silu_mul(&buf(gate.clone()), &buf(up.clone()), &mut out, len)
            .expect("silu_mul");
        // exp, one division and one product in f32: a few ulps of the result.
        let tol: Vec<f64> = want.iter().map(|w| 1e-6 * w.abs() + 1e-12).collect();
        assert_close("silu_mul", &out.as_slice()[..len], &want, &tol);
        assert_eq!(out.as_slice()[len], 5.0);
        assert!(out.as_slice().iter().all(|v| !v.is_nan()));
        let out1 = {
            let mut o = buf(vec![5.0; len + 1]);
            backend(1)
                .silu_mul(&buf(gate), &buf(up), &mut o, len)
                .expect("1 thread");
            o
        };
        assert_eq!(out, out1);
    }

    #[test]
    fn add_is_exact_and_bounded() {
        let b = backend(2);
        let len = (1 << 15) + 3;
        let mut r = rng(2);
        let a = rand_vec(&mut r, len + 2, 1.0);
        let x = rand_vec(&mut r, len, 1.0);
        let mut acc = buf(a.clone());
        b.add(&mut acc, &buf(x.clone()), len).expect("add");
        for i in 0..len {
            assert_eq!(acc.as_slice()[i], a[i] + x[i], "[{i}]");
        }
        assert_eq!(&acc.as_slice()[len..], &a[len..]);
        assert_shape_err(b.add(&mut acc, &buf(x), len + 1), "add");
    }

    #[test]
    fn copy_rows_appends_to_a_cache() {
        let b = backend(1);
        let src = buf((0..6).map(|v| v as f32).collect());
        let mut dst = buf(vec![-1.0; 10]);
        let p = CopyRowsParams {
            rows: 3,
            cols: 2,
            src_row0: 0,
            dst_row0: 1,
        };
        b.copy_rows(&src, &mut dst, p).expect("copy_rows");
        assert_eq!(
            dst.as_slice(),
            &[-1.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, -1.0, -1.0]
        );
        let past_end = CopyRowsParams { dst_row0: 3, ..p };
        assert_shape_err(b.copy_rows(&src, &mut dst, past_end), "copy_rows");
        let short_src = CopyRowsParams { rows: 4, ..p };
        assert_shape_err(b.copy_rows(&src, &mut dst, short_src), "copy_rows");
        let overflow = CopyRowsParams {
            rows: 1,
            cols: 2,
            src_row0: 0,
            dst_row0: usize::MAX,
        };
        assert_shape_err(b.copy_rows(&src, &mut dst, overflow), "copy_rows");
        // Taking the last row of a 3-row buffer.
        let last = CopyRowsParams {
            rows: 1,
            cols: 2,
            src_row0: 2,
            dst_row0: 0,
        };
        let mut one = buf(vec![0.0; 2]);
        b.copy_rows(&src, &mut one, last).expect("last row");
        assert_eq!(one.as_slice(), &[4.0, 5.0]);
        let src_past_end = CopyRowsParams {
            src_row0: 3,
            ..last
        };
        assert_shape_err(b.copy_rows(&src, &mut one, src_past_end), "copy_rows");
    }

    #[test]
    fn silu_mul_shape_errors() {
        let b = backend(1);
        let (g, u) = (buf(vec![0.0; 4]), buf(vec![0.0; 3]));
        let mut out = buf(vec![0.0; 4]);
        assert_shape_err(b.silu_mul(&g, &u, &mut out, 4), "silu_mul");
        assert!(b.silu_mul(&g, &u, &mut out, 3).is_ok());
        assert_shape_err(b.silu_mul(&g, &g, &mut out, 5), "silu_mul");
    }
}
