//! Matrix product `out[m][n] = x[m][k] · w[n][k] (+ bias[n])`. Exact path: weight rows are
//! dequantized to `f32` and dotted with the activations in `f32`. Precise path: activations are
//! quantized to 16-bit blocks once per token and dotted with the quantized rows by the `fast`
//! kernels (types without one take the exact path).

use super::fast;
use super::threads::Pool;
use super::{check_dequantizable, CpuWeight, MatmulPath};
use crate::backend::{MatmulOut, MatmulShape, WeightLayout};
use crate::quant::{dequantize, dequantize_to_vec};
use crate::Result;

/// Partial sums in `dot`: enough independent chains for the compiler to vectorize the loop.
const LANES: usize = 8;

/// Weight rows dequantized together in GEMM, each reused for all `m` tokens: 16 rows of a 4096-long
/// row are 256 KiB of scratch, which stays in L2 while every token's activations stream past.
const TILE_ROWS: usize = 16;

/// Weight rows per task in GEMV at least, so the pool hand-off is small next to the work.
const MIN_GEMV_ROWS: usize = 16;

/// `Σ a[i]·b[i]` in `f32` over `LANES` interleaved partial sums combined pairwise in a fixed order:
/// deterministic, vectorizable, and more accurate than one running sum (each chain is `k/8` long).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0f32; LANES];
    for (xa, xb) in ca.zip(cb) {
        for ((s, x), y) in acc.iter_mut().zip(xa).zip(xb) {
            *s += x * y;
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// The matmul. `x` holds at least `m·k` values and `out` at least `m·n`; only those prefixes
/// are read and written. The weight must be `n` rows of `k`; the bias, if any, `n` values.
pub(crate) fn matmul(
    path: MatmulPath,
    pool: &Pool,
    w: &CpuWeight,
    bias: Option<&CpuWeight>,
    x: &[f32],
    out: &mut [f32],
    shape: MatmulShape,
) -> Result<()> {
    let mut one = [MatmulOut {
        w,
        bias,
        out,
        n: shape.n,
    }];
    matmuls(path, pool, x, shape.m, shape.k, &mut one)
}

/// Several matmuls of the same input (Q, K and V; gate and up). On the precise path, when the
/// weights pair with the same activation blocks, the input is quantized once and all their rows
/// run as one pool job; results are bit-identical to separate `matmul` calls either way.
pub(crate) fn matmuls(
    path: MatmulPath,
    pool: &Pool,
    x: &[f32],
    m: usize,
    k: usize,
    outs: &mut [MatmulOut<'_, CpuWeight, [f32]>],
) -> Result<()> {
    let mut biases = Vec::with_capacity(outs.len());
    for o in outs.iter() {
        biases.push(checked(
            o.w,
            o.bias,
            x.len(),
            o.out.len(),
            MatmulShape { m, n: o.n, k },
        )?);
    }
    let x = &x[..m * k];
    let block = |o: &MatmulOut<'_, CpuWeight, [f32]>| fast::activation_block(o.w.ggml_type());
    let fused = path == MatmulPath::Precise
        && k > 0
        && m > 0
        && outs
            .first()
            .and_then(block)
            .is_some_and(|b| outs.iter().all(|o| block(o) == Some(b)));
    if fused {
        let mut jobs: Vec<PreciseJob<'_>> = outs
            .iter_mut()
            .map(|o| PreciseJob {
                w: o.w,
                out: &mut o.out[..m * o.n],
            })
            .collect();
        matmul_precise(pool, &mut jobs, x, m)?;
    } else {
        for o in outs.iter_mut() {
            let out = &mut o.out[..m * o.n];
            if out.is_empty() {
                continue;
            }
            if k == 0 {
                // An empty sum: zeros (plus the bias).
                out.fill(0.0);
            } else if path == MatmulPath::Precise && fast::supports(o.w.ggml_type()) {
                let mut job = [PreciseJob { w: o.w, out }];
                matmul_precise(pool, &mut job, x, m)?;
            } else if m == 1 {
                gemv(pool, o.w, x, out)?;
            } else {
                gemm(pool, o.w, x, out, m)?;
            }
        }
    }
    for (o, bias) in outs.iter_mut().zip(biases) {
        if let Some(bias) = bias {
            for row in o.out[..m * o.n].chunks_exact_mut(o.n) {
                for (v, b) in row.iter_mut().zip(&bias) {
                    *v += b;
                }
            }
        }
    }
    Ok(())
}

/// Checks one matmul's shapes and returns its bias, dequantized.
fn checked(
    w: &CpuWeight,
    bias: Option<&CpuWeight>,
    x_len: usize,
    out_len: usize,
    shape: MatmulShape,
) -> Result<Option<Vec<f32>>> {
    const OP: &str = "matmul";
    check_dequantizable(OP, w)?;
    let layout = WeightLayout {
        row_len: w.row_len(),
        rows: w.rows(),
    };
    let bias_values = bias.map(|b| b.elements());
    shape.check(layout, w.dims(), bias_values, x_len, out_len)?;
    match bias {
        Some(b) => {
            check_dequantizable(OP, b)?;
            Ok(Some(dequantize_to_vec(b.ggml_type(), b.bytes())?))
        }
        None => Ok(None),
    }
}

/// One token: each task dequantizes its rows one at a time into a `k`-value scratch.
fn gemv(pool: &Pool, w: &CpuWeight, x: &[f32], out: &mut [f32]) -> Result<()> {
    let (ty, k) = (w.ggml_type(), w.row_len());
    let per_task = pool.chunk_items(out.len(), MIN_GEMV_ROWS);
    pool.try_chunks_mut(out, per_task, |ci, chunk| {
        let mut row = vec![0f32; k];
        for (i, o) in chunk.iter_mut().enumerate() {
            dequantize(ty, w.row(ci * per_task + i), &mut row)?;
            *o = dot(x, &row);
        }
        Ok(())
    })
}

/// `m > 1` tokens (and `k > 0`): each task takes a range of weight rows, dequantizes them `TILE_ROWS` at a time and
/// reuses each tile for every token. Tasks write a transposed `[n][m]` result (so each owns a
/// contiguous piece), scattered into `out[m][n]` at the end.
fn gemm(pool: &Pool, w: &CpuWeight, x: &[f32], out: &mut [f32], m: usize) -> Result<()> {
    let (ty, k, n) = (w.ggml_type(), w.row_len(), w.rows());
    let mut out_t = vec![0f32; out.len()];
    let per_task = pool.chunk_items(n, TILE_ROWS);
    pool.try_chunks_mut(&mut out_t, per_task * m, |ci, chunk| {
        let row0 = ci * per_task;
        let rows = chunk.len() / m;
        let mut tile = vec![0f32; TILE_ROWS.min(rows) * k];
        for t0 in (0..rows).step_by(TILE_ROWS) {
            let tn = TILE_ROWS.min(rows - t0);
            for (r, dst) in tile.chunks_exact_mut(k).take(tn).enumerate() {
                dequantize(ty, w.row(row0 + t0 + r), &mut dst[..k])?;
            }
            for (j, xr) in x.chunks_exact(k).take(m).enumerate() {
                let xr = &xr[..k];
                for r in 0..tn {
                    chunk[(t0 + r) * m + j] = dot(xr, &tile[r * k..(r + 1) * k]);
                }
            }
        }
        Ok(())
    })?;
    scatter_to_token_rows(pool, &out_t, out, m, n)
}

/// Tasks own weight rows, so they write `[n][m]`; the caller wants `[m][n]` (token rows). Each
/// pool task writes whole token rows of `out`, reading them from `out_t`.
fn scatter_to_token_rows(
    pool: &Pool,
    out_t: &[f32],
    out: &mut [f32],
    m: usize,
    n: usize,
) -> Result<()> {
    let per_task = pool.chunk_items(m, 1);
    pool.try_chunks_mut(&mut out[..m * n], per_task * n, |ci, rows| {
        for (j, row) in rows.chunks_exact_mut(n).enumerate() {
            let token = ci * per_task + j;
            for (i, v) in row.iter_mut().enumerate() {
                *v = out_t[i * m + token];
            }
        }
        Ok(())
    })
}

/// Each of the `m` token rows of `x` quantized for `ty` (on the pool when there are several).
fn quantize_tokens(
    pool: &Pool,
    ty: crate::quant::GgmlType,
    x: &[f32],
    m: usize,
    k: usize,
) -> Result<Vec<fast::QuantizedActivations>> {
    let rows = x.chunks_exact(k).take(m);
    if m == 1 {
        return rows
            .map(|row| fast::quantize_activations(ty, row))
            .collect();
    }
    let mut slots: Vec<Option<fast::QuantizedActivations>> = vec![None; m];
    let per_task = pool.chunk_items(m, 1);
    pool.try_chunks_mut(&mut slots, per_task, |ci, chunk| {
        for (j, slot) in chunk.iter_mut().enumerate() {
            let t = ci * per_task + j;
            let mut xq = fast::quantize_activations(ty, &x[t * k..(t + 1) * k])?;
            // Several rows go through the GEMM together, which reads this layout.
            xq.interleave();
            *slot = Some(xq);
        }
        Ok(())
    })?;
    slots
        .into_iter()
        .map(|s| s.ok_or_else(|| crate::Error::Config("a token row was not quantized".into())))
        .collect()
}

/// One weight of a precise-path job and its `[m][n]` result.
struct PreciseJob<'a> {
    w: &'a CpuWeight,
    out: &'a mut [f32],
}

/// A pool task: rows `row0..` of `w`, written to `out` (`[rows][m]` when `m > 1`).
struct RowTask<'a> {
    w: &'a CpuWeight,
    row0: usize,
    out: &'a mut [f32],
}

/// The precise path: each token's activations are quantized once to 16-bit blocks (`fast`), about
/// the precision of f32 dot products of these lengths (8 bits alone drift by up to 2.5 in
/// SmolLM2's logits over 30 layers), and shared by every weight in `jobs` (all pairing with the
/// same activation blocks, `k` columns, `k > 0`). Tasks take ranges of weight rows and run every
/// token over a tile of rows while it is in cache, so the weights stream from memory once.
fn matmul_precise(pool: &Pool, jobs: &mut [PreciseJob<'_>], x: &[f32], m: usize) -> Result<()> {
    let Some(first) = jobs.first() else {
        return Ok(());
    };
    let (ty, k) = (first.w.ggml_type(), first.w.row_len());
    let xq = quantize_tokens(pool, ty, x, m, k)?;
    let total_rows = jobs.iter().map(|j| j.w.rows()).sum();
    let per_task = pool.chunk_items(total_rows, if m == 1 { MIN_GEMV_ROWS } else { TILE_ROWS });
    // Tasks own rows; results go to a row-major `[n][m]` scratch per job (for m = 1, `out` itself).
    let mut scratch: Vec<Vec<f32>> = if m == 1 {
        Vec::new()
    } else {
        jobs.iter().map(|j| vec![0f32; j.out.len()]).collect()
    };
    let mut tasks = Vec::new();
    if m == 1 {
        for job in jobs.iter_mut() {
            let w = job.w;
            for (ci, out) in job.out.chunks_mut(per_task).enumerate() {
                let row0 = ci * per_task;
                tasks.push(RowTask { w, row0, out });
            }
        }
    } else {
        for (job, out_t) in jobs.iter().zip(scratch.iter_mut()) {
            for (ci, out) in out_t.chunks_mut(per_task * m).enumerate() {
                let row0 = ci * per_task;
                tasks.push(RowTask {
                    w: job.w,
                    row0,
                    out,
                });
            }
        }
    }
    // Up to this many tokens share each unpacked weight block.
    let per_call = fast::GEMM_MAX_X;
    let calls: Vec<Vec<_>> = xq.chunks(per_call).map(|t| t.iter().collect()).collect();
    pool.try_chunks_mut(&mut tasks, 1, |_, task| {
        for RowTask { w, row0, out } in task.iter_mut() {
            let rows = out.len() / m;
            let mut tile = vec![0f32; TILE_ROWS * per_call.min(m)];
            for t0 in (0..rows).step_by(TILE_ROWS) {
                let tn = TILE_ROWS.min(rows - t0);
                let r = *row0 + t0;
                for (c, xs) in calls.iter().enumerate() {
                    let nx = xs.len();
                    let tile = &mut tile[..tn * nx];
                    fast::gemm_rows(w.ggml_type(), w.bytes(), k, xs, r..r + tn, tile)?;
                    for i in 0..tn {
                        let dst = (t0 + i) * m + c * per_call;
                        out[dst..dst + nx].copy_from_slice(&tile[i * nx..(i + 1) * nx]);
                    }
                }
            }
        }
        Ok(())
    })?;
    drop(tasks);
    for (job, out_t) in jobs.iter_mut().zip(&scratch) {
        scatter_to_token_rows(pool, out_t, job.out, m, job.w.rows())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::reference::*;
    use super::super::{CpuBackend, CpuConfig, MatmulPath};
    use super::dot;
    use crate::backend::{Backend, MatmulShape, WeightDesc};
    use crate::quant::GgmlType;
    use proptest::prelude::*;

    /// `f32` dot-product rounding grows with `Σ|x·w|`; 8 chains of `k/8` terms stay far below
    /// `1e-5` of it for these k (worst case ≈ (k/8)·6e-8), while any indexing or dequant bug is O(1).
    fn tol(mag: &[f64]) -> Vec<f64> {
        mag.iter().map(|a| 1e-5 * a + 1e-6).collect()
    }

    /// Runs one matmul on a fresh weight of `ty` and compares it with the f64 reference.
    fn check(b: &CpuBackend, seed: u64, ty: GgmlType, m: usize, n: usize, k: usize, bias: bool) {
        let mut r = rng(seed);
        let (w, wv) = weight(b, &mut r, ty, k, n);
        let x = rand_vec(&mut r, m * k, 1.0);
        let bias_v = rand_vec(&mut r, n, 0.5);
        let bias_w = f32_weight(b, &bias_v);
        // One spare value beyond m·n must stay untouched.
        let mut out = buf(vec![7.0; m * n + 1]);
        let shape = MatmulShape { m, n, k };
        b.matmul(
            &w,
            bias.then_some(&bias_w),
            &buf(x.clone()),
            &mut out,
            shape,
        )
        .expect("matmul");
        let (want, mag) = matmul_f64(&wv, bias.then_some(&bias_v[..]), &x, m, n, k);
        let got = out.as_slice();
        assert_close(
            &format!("{ty} m={m} n={n} k={k}"),
            &got[..m * n],
            &want,
            &tol(&mag),
        );
        assert_eq!(got[m * n], 7.0, "{ty}: wrote past m·n");
    }

    #[test]
    fn every_dequantizable_type_matches_f64() {
        let b = backend(3);
        for (ti, &ty) in GgmlType::DEQUANTIZABLE.iter().enumerate() {
            for &m in &[1, 3, 7] {
                for &n in &[1, 5, 33] {
                    let k = row_len_for(ty, 2);
                    check(&b, (ti * 100 + m * 10 + n) as u64, ty, m, n, k, n == 5);
                }
            }
        }
    }

    #[test]
    fn long_rows_match_f64() {
        let b = backend(2);
        check(&b, 1, GgmlType::Q4_K, 3, 5, 4096, true);
        check(&b, 2, GgmlType::Q8_0, 1, 7, 11008, false);
        check(&b, 3, GgmlType::F16, 2, 3, 14336, false);
    }

    #[test]
    fn bias_is_added_per_output() {
        // Zero weights: the result is exactly the bias, for every token.
        let b = backend(1);
        let (k, n) = (64, 3);
        let zeros = vec![0u8; k * n * 4];
        let dims = [k as u64, n as u64];
        let desc = WeightDesc {
            name: "w",
            ggml_type: GgmlType::F32,
            dims: &dims,
        };
        let w = b.upload_weight(desc, &zeros).expect("upload");
        let bias = f32_weight(&b, &[1.5, -2.0, 0.25]);
        let mut out = buf(vec![0.0; 6]);
        let x = buf(vec![1.0; 2 * k]);
        b.matmul(&w, Some(&bias), &x, &mut out, MatmulShape { m: 2, n, k })
            .expect("matmul");
        assert_eq!(out.as_slice(), &[1.5, -2.0, 0.25, 1.5, -2.0, 0.25]);
    }

    #[test]
    fn results_do_not_depend_on_thread_count() {
        let (b1, b3) = (backend(1), backend(3));
        for &(ty, m, n) in &[
            (GgmlType::Q4_K, 1, 101),
            (GgmlType::Q5_0, 7, 101),
            (GgmlType::F32, 3, 250),
        ] {
            let k = row_len_for(ty, 3);
            let mut r = rng(9);
            let (w1, _) = weight(&b1, &mut r, ty, k, n);
            let x = buf(rand_vec(&mut r, m * k, 1.0));
            let (mut o1, mut o3) = (buf(vec![0.0; m * n]), buf(vec![0.0; m * n]));
            let shape = MatmulShape { m, n, k };
            b1.matmul(&w1, None, &x, &mut o1, shape).expect("1 thread");
            b3.matmul(&w1, None, &x, &mut o3, shape).expect("3 threads");
            assert_eq!(o1, o3, "{ty} m={m}");
        }
    }

    #[test]
    fn types_without_a_fast_kernel_run_exact_on_the_precise_path() {
        let exact = backend(2);
        let fast = CpuBackend::new(CpuConfig {
            threads: 2,
            path: MatmulPath::Precise,
        })
        .expect("backend");
        let mut r = rng(4);
        assert!(!super::fast::supports(GgmlType::Q3_K));
        let (w, _) = weight(&exact, &mut r, GgmlType::Q3_K, 256, 9);
        let x = buf(rand_vec(&mut r, 3 * 256, 1.0));
        let (mut a, mut c) = (buf(vec![0.0; 27]), buf(vec![0.0; 27]));
        let shape = MatmulShape { m: 3, n: 9, k: 256 };
        exact.matmul(&w, None, &x, &mut a, shape).expect("exact");
        fast.matmul(&w, None, &x, &mut c, shape).expect("fast");
        assert_eq!(a, c);
    }

    #[test]
    fn gemv_equals_one_row_of_gemm() {
        let b = backend(2);
        let mut r = rng(5);
        let (w, _) = weight(&b, &mut r, GgmlType::Q3_K, 512, 21);
        let xs = rand_vec(&mut r, 4 * 512, 1.0);
        let mut all = buf(vec![0.0; 4 * 21]);
        b.matmul(
            &w,
            None,
            &buf(xs.clone()),
            &mut all,
            MatmulShape {
                m: 4,
                n: 21,
                k: 512,
            },
        )
        .expect("gemm");
        for t in 0..4 {
            let mut one = buf(vec![0.0; 21]);
            let x = buf(xs[t * 512..(t + 1) * 512].to_vec());
            b.matmul(
                &w,
                None,
                &x,
                &mut one,
                MatmulShape {
                    m: 1,
                    n: 21,
                    k: 512,
                },
            )
            .expect("gemv");
            assert_eq!(one.as_slice(), &all.as_slice()[t * 21..(t + 1) * 21]);
        }
    }

    #[test]
    fn shape_errors() {
        let b = backend(1);
        let mut r = rng(6);
        let (w, _) = weight(&b, &mut r, GgmlType::Q8_0, 64, 5);
        let x = buf(vec![0.0; 2 * 64]);
        let mut out = buf(vec![0.0; 10]);
        let mm =
            |w, bias, x, out: &mut _, m, n, k| b.matmul(w, bias, x, out, MatmulShape { m, n, k });
        assert_shape_err(mm(&w, None, &x, &mut out, 2, 5, 32), "matmul");
        assert_shape_err(mm(&w, None, &x, &mut out, 2, 4, 64), "matmul");
        assert_shape_err(mm(&w, None, &x, &mut out, 3, 5, 64), "matmul");
        let mut short = buf(vec![0.0; 9]);
        assert_shape_err(mm(&w, None, &x, &mut short, 2, 5, 64), "matmul");
        let bad_bias = f32_weight(&b, &[0.0; 4]);
        assert_shape_err(mm(&w, Some(&bad_bias), &x, &mut out, 2, 5, 64), "matmul");
        assert!(mm(&w, None, &x, &mut out, 2, 5, 64).is_ok());
    }

    #[test]
    fn dot_matches_f64_for_odd_lengths() {
        let mut r = rng(7);
        for len in [0, 1, 7, 8, 9, 63, 1001] {
            let a = rand_vec(&mut r, len, 1.0);
            let c = rand_vec(&mut r, len, 1.0);
            let want: f64 = a
                .iter()
                .zip(&c)
                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                .sum();
            let mag: f64 = a
                .iter()
                .zip(&c)
                .map(|(&x, &y)| f64::from(x * y).abs())
                .sum();
            assert_close(&format!("dot {len}"), &[dot(&a, &c)], &[want], &tol(&[mag]));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn random_shapes_match_f64(
            ti in 0usize..GgmlType::DEQUANTIZABLE.len(),
            m in 1usize..9,
            n in 1usize..40,
            blocks in 1usize..4,
            threads in 1usize..4,
            bias: bool,
            seed: u64,
        ) {
            let ty = GgmlType::DEQUANTIZABLE[ti];
            check(&backend(threads), seed, ty, m, n, row_len_for(ty, blocks), bias);
        }
    }

    /// The precise path's glue (token loop, row ranges, transposition, bias) against
    /// the kernel's own per-row dot products: the same arithmetic, so bit-identical.
    #[test]
    fn precise_path_equals_the_kernel_row_by_row() {
        use super::fast;
        for threads in [1, 3] {
            let b = CpuBackend::new(CpuConfig {
                threads,
                path: MatmulPath::Precise,
            })
            .expect("backend");
            for (i, ty) in [
                GgmlType::Q4_0,
                GgmlType::Q4_1,
                GgmlType::Q8_0,
                GgmlType::Q4_K,
                GgmlType::Q6_K,
            ]
            .into_iter()
            .enumerate()
            {
                let (m, n, k) = (3, 37, if ty.block_size() == 256 { 512 } else { 96 });
                let mut r = rng(40 + i as u64);
                let (w, _) = weight(&b, &mut r, ty, k, n);
                let x = rand_vec(&mut r, m * k, 1.0);
                let bias_v = rand_vec(&mut r, n, 0.5);
                let bias = f32_weight(&b, &bias_v);
                for m in [1, m] {
                    let mut out = buf(vec![0.0; m * n]);
                    b.matmul(
                        &w,
                        Some(&bias),
                        &buf(x.clone()),
                        &mut out,
                        MatmulShape { m, n, k },
                    )
                    .expect("matmul");
                    for j in 0..m {
                        let row_x = &x[j * k..(j + 1) * k];
                        let xq = fast::quantize_activations(ty, row_x).expect("xq");
                        for (row, b) in bias_v.iter().enumerate() {
                            let want = fast::dot(ty, w.row(row), &xq).expect("dot") + b;
                            assert_eq!(
                                out.as_slice()[j * n + row],
                                want,
                                "{ty} m={m} token {j} row {row}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// `matmuls` (one quantized input, one pool job) against separate `matmul` calls: the same
    /// arithmetic per row, so bit-identical; mixed types share an input only when their
    /// activation blocks match, and a type without a fast kernel falls back per weight.
    #[test]
    fn fused_matmuls_equal_separate_matmuls() {
        use crate::backend::MatmulOut;
        let sets: [&[GgmlType]; 3] = [
            &[GgmlType::Q4_1, GgmlType::Q4_1, GgmlType::Q8_0],
            &[GgmlType::Q4_K, GgmlType::Q6_K],
            &[GgmlType::Q4_0, GgmlType::Q3_K, GgmlType::Q4_K],
        ];
        for threads in [1, 3] {
            for path in [MatmulPath::Precise, MatmulPath::Exact] {
                let b = CpuBackend::new(CpuConfig { threads, path }).expect("backend");
                for (si, types) in sets.iter().enumerate() {
                    let k = 512;
                    let mut r = rng(70 + si as u64);
                    let ws: Vec<_> = types
                        .iter()
                        .enumerate()
                        .map(|(i, &ty)| weight(&b, &mut r, ty, k, 19 + 40 * i).0)
                        .collect();
                    let ns: Vec<usize> = (0..ws.len()).map(|i| 19 + 40 * i).collect();
                    let bias = f32_weight(&b, &rand_vec(&mut r, ns[0], 0.5));
                    for m in [1, 5] {
                        let x = buf(rand_vec(&mut r, m * k, 1.0));
                        let mut fused: Vec<_> = ns.iter().map(|n| buf(vec![0.0; m * n])).collect();
                        let mut outs: Vec<_> = ws
                            .iter()
                            .zip(fused.iter_mut())
                            .zip(&ns)
                            .enumerate()
                            .map(|(i, ((w, out), &n))| MatmulOut {
                                w,
                                bias: (i == 0).then_some(&bias),
                                out,
                                n,
                            })
                            .collect();
                        b.matmuls(&x, m, k, &mut outs).expect("matmuls");
                        for (i, (w, &n)) in ws.iter().zip(&ns).enumerate() {
                            let mut one = buf(vec![0.0; m * n]);
                            let bias = (i == 0).then_some(&bias);
                            b.matmul(w, bias, &x, &mut one, MatmulShape { m, n, k })
                                .expect("matmul");
                            assert_eq!(one, fused[i], "{types:?} weight {i} m={m} {path:?}");
                        }
                    }
                }
            }
        }
    }
}
