//! RMS normalisation: `out = x / sqrt(mean(x²) + eps) · w`, row by row.
//!
//! The sum of squares is accumulated in `f64` (as ggml does) and the scale rounded to `f32` once;
//! the products are `f32`.

use super::threads::Pool;
use super::{check_dequantizable, CpuWeight};
use crate::backend::RmsNormParams;
use crate::quant::dequantize_to_vec;
use crate::Result;

/// Rows per task at least: one row is only `dim` multiply-adds.
const MIN_ROWS: usize = 4;

/// `x` and `out` hold at least `rows·dim` values; `w` is `dim` values of any dequantizable type
/// (F32 in practice, F16 in some files).
pub(crate) fn rms_norm(
    pool: &Pool,
    x: &[f32],
    w: &CpuWeight,
    out: &mut [f32],
    p: RmsNormParams,
) -> Result<()> {
    const OP: &str = "rms_norm";
    let RmsNormParams { rows, dim, eps } = p;
    check_dequantizable(OP, w)?;
    let len = p.check(w.elements(), x.len(), out.len())?;
    if len == 0 {
        return Ok(());
    }
    let w = dequantize_to_vec(w.ggml_type(), w.bytes())?;
    let per_task = pool.chunk_items(rows, MIN_ROWS);
    pool.try_chunks_mut(&mut out[..len], per_task * dim, |ci, chunk| {
        for (r, o) in chunk.chunks_exact_mut(dim).enumerate() {
            let row = ci * per_task + r;
            let xr = &x[row * dim..(row + 1) * dim];
            let sum_sq: f64 = xr.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            let scale = (1.0 / (sum_sq / dim as f64 + f64::from(eps)).sqrt()) as f32;
            for ((o, &xv), &wv) in o.iter_mut().zip(xr).zip(&w) {
                *o = xv * scale * wv;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::super::reference::*;
    use crate::backend::{Backend, RmsNormParams, WeightDesc};
    use crate::quant::GgmlType;

    /// Only the final `f32` products round (the `f64` scale is rounded once): a few ulps of |out|.
    fn tol(want: &[f64]) -> Vec<f64> {
        want.iter().map(|w| 4e-7 * w.abs() + 1e-7).collect()
    }

    #[test]
    fn matches_f64_with_f32_and_f16_weights() {
        let b = backend(3);
        for (rows, dim) in [(1, 37), (3, 64), (7, 129)] {
            let mut r = rng(dim as u64);
            let x = rand_vec(&mut r, rows * dim, 3.0);
            let g = rand_vec(&mut r, dim, 2.0);
            let eps = 1e-5;
            let p = RmsNormParams { rows, dim, eps };
            let want = rms_norm_f64(&x, &g, rows, dim, eps);
            let mut out = buf(vec![0.0; rows * dim]);
            b.rms_norm(&buf(x.clone()), &f32_weight(&b, &g), &mut out, p)
                .expect("f32 weight");
            assert_close(
                &format!("f32 {rows}x{dim}"),
                out.as_slice(),
                &want,
                &tol(&want),
            );

            // An F16 weight: compare with the reference over the f16-rounded weight.
            let g16: Vec<half::f16> = g.iter().map(|&v| half::f16::from_f32(v)).collect();
            let bytes: Vec<u8> = g16.iter().flat_map(|v| v.to_le_bytes()).collect();
            let dims = [dim as u64];
            let desc = WeightDesc {
                name: "norm",
                ggml_type: GgmlType::F16,
                dims: &dims,
            };
            let w16 = b.upload_weight(desc, &bytes).expect("upload");
            let g16: Vec<f32> = g16.iter().map(|v| v.to_f32()).collect();
            let want = rms_norm_f64(&x, &g16, rows, dim, eps);
            b.rms_norm(&buf(x), &w16, &mut out, p).expect("f16 weight");
            assert_close(
                &format!("f16 {rows}x{dim}"),
                out.as_slice(),
                &want,
                &tol(&want),
            );
        }
    }

    #[test]
    fn eps_matters_for_small_rows() {
        // x = 0 → out = 0; x tiny with a big eps → strongly damped, as the formula says.
        let b = backend(1);
        let w = f32_weight(&b, &[1.0; 4]);
        let mut out = buf(vec![0.0; 4]);
        let p = RmsNormParams {
            rows: 1,
            dim: 4,
            eps: 1.0,
        };
        b.rms_norm(&buf(vec![1e-3; 4]), &w, &mut out, p)
            .expect("norm");
        for &v in out.as_slice() {
            assert!((v - 1e-3).abs() < 1e-8, "{v}");
        }
    }

    #[test]
    fn shape_errors() {
        let b = backend(1);
        let w = f32_weight(&b, &[1.0; 8]);
        let x = buf(vec![1.0; 16]);
        let mut out = buf(vec![0.0; 16]);
        let p = |rows, dim| RmsNormParams {
            rows,
            dim,
            eps: 1e-6,
        };
        assert_shape_err(b.rms_norm(&x, &w, &mut out, p(2, 7)), "rms_norm");
        assert_shape_err(b.rms_norm(&x, &w, &mut out, p(3, 8)), "rms_norm");
        assert!(b.rms_norm(&x, &w, &mut out, p(2, 8)).is_ok());
    }
}
