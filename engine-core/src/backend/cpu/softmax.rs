//! Row-wise softmax (in place) and argmax.
//!
//! Softmax subtracts the row maximum, takes `exp` in `f32` and sums in `f64` (a vocabulary row has
//! ~150k terms). A row containing NaN or +inf, or only -inf, comes out all NaN.
//! Argmax returns the first index of the largest value; NaN values are skipped, and a row of only
//! NaN gives index 0.

use super::threads::Pool;
use super::{need, shape_err, size};
use crate::backend::RowsParams;
use crate::Result;

/// Values per task at least: one value is one `exp`.
const MIN_VALUES: usize = 1 << 14;

/// Softmax of the first `rows` rows of `cols` values of `x`.
pub(crate) fn softmax(pool: &Pool, x: &mut [f32], p: RowsParams) -> Result<()> {
    const OP: &str = "softmax";
    let RowsParams { rows, cols } = p;
    let len = size(OP, &[rows, cols])?;
    need(OP, "x", x.len(), len)?;
    if len == 0 {
        return Ok(());
    }
    let per_task = pool.chunk_items(rows, MIN_VALUES.div_ceil(cols));
    pool.try_chunks_mut(&mut x[..len], per_task * cols, |_, chunk| {
        for row in chunk.chunks_exact_mut(cols) {
            softmax_row(row);
        }
        Ok(())
    })
}

fn softmax_row(row: &mut [f32]) {
    // `fold` with `f32::max` would skip NaN; propagate it instead so a NaN row is visibly NaN.
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| {
        if a.is_nan() || b.is_nan() {
            f32::NAN
        } else {
            a.max(b)
        }
    });
    let mut sum = 0f64;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let inv = (1.0 / sum) as f32;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// Index of the largest value of each of `rows` rows of `cols` values.
pub(crate) fn argmax(x: &[f32], p: RowsParams) -> Result<Vec<u32>> {
    const OP: &str = "argmax";
    let RowsParams { rows, cols } = p;
    let len = size(OP, &[rows, cols])?;
    need(OP, "x", x.len(), len)?;
    if rows > 0 && cols == 0 {
        return Err(shape_err(OP, "rows of 0 columns have no largest value"));
    }
    if u32::try_from(cols).is_err() {
        return Err(shape_err(
            OP,
            format!("{cols} columns do not fit a u32 index"),
        ));
    }
    Ok(x[..len]
        .chunks_exact(cols.max(1))
        .map(|row| {
            let mut best: Option<(usize, f32)> = None;
            for (i, &v) in row.iter().enumerate() {
                // Strictly greater: the first of equal values wins.
                if !v.is_nan() && best.is_none_or(|(_, b)| v > b) {
                    best = Some((i, v));
                }
            }
            best.map_or(0, |(i, _)| i as u32)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::reference::*;
    use crate::backend::{Backend, RowsParams};

    /// Outputs are in [0, 1]; `exp` in f32 and one f32 product per value: ~1e-7 relative.
    fn tol(want: &[f64]) -> Vec<f64> {
        want.iter().map(|w| 1e-6 * w + 1e-9).collect()
    }

    #[test]
    fn matches_f64_and_sums_to_one() {
        let b = backend(3);
        for (rows, cols, scale) in [
            (1, 1, 1.0),
            (3, 37, 5.0),
            (7, 1001, 30.0),
            (2, 70_001, 10.0),
        ] {
            let mut r = rng(cols as u64);
            let mut x = rand_vec(&mut r, rows * cols, scale);
            // A huge offset must not overflow `exp` (the max is subtracted first).
            x[0] += 1000.0;
            let want = softmax_f64(&x, rows, cols);
            let mut xb = buf(x);
            b.softmax(&mut xb, RowsParams { rows, cols })
                .expect("softmax");
            assert_close(&format!("{rows}x{cols}"), xb.as_slice(), &want, &tol(&want));
            for row in xb.as_slice().chunks(cols) {
                let s: f64 = row.iter().map(|&v| f64::from(v)).sum();
                assert!((s - 1.0).abs() < 1e-5, "row sums to {s}");
            }
        }
    }

    #[test]
    fn softmax_shape_error_and_nan_rows() {
        let b = backend(1);
        let mut x = buf(vec![0.0; 5]);
        assert_shape_err(
            b.softmax(&mut x, RowsParams { rows: 2, cols: 3 }),
            "softmax",
        );
        let mut x = buf(vec![1.0, f32::NAN, 2.0]);
        b.softmax(&mut x, RowsParams { rows: 1, cols: 3 })
            .expect("softmax");
        assert!(x.as_slice().iter().all(|v| v.is_nan()));
    }

    fn argmax(x: Vec<f32>, rows: usize, cols: usize) -> crate::Result<Vec<u32>> {
        block_on(backend(1).argmax(&buf(x), RowsParams { rows, cols }))
    }

    #[test]
    fn argmax_first_on_ties_and_skips_nan() {
        let x = vec![
            1.0,
            3.0,
            3.0,
            2.0, // tie: first
            f32::NAN,
            -1.0,
            -5.0,
            -1.0, // NaN skipped
            f32::NAN,
            f32::NAN,
            f32::NAN,
            f32::NAN, // all NaN: 0
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            -1e30, // -inf below all
            0.0,
            f32::INFINITY,
            f32::INFINITY,
            1.0, // inf wins, first of two
        ];
        assert_eq!(argmax(x, 5, 4).expect("argmax"), vec![1, 1, 0, 3, 1]);
    }

    #[test]
    fn argmax_random_rows_and_errors() {
        let mut r = rng(5);
        let (rows, cols) = (3, 32_003);
        let x = rand_vec(&mut r, rows * cols, 1.0);
        let want: Vec<u32> = x
            .chunks(cols)
            .map(|row| {
                let mut best = 0;
                for (i, &v) in row.iter().enumerate() {
                    if v > row[best] {
                        best = i;
                    }
                }
                best as u32
            })
            .collect();
        assert_eq!(argmax(x, rows, cols).expect("argmax"), want);
        assert_shape_err(argmax(vec![0.0; 5], 2, 3), "argmax");
        assert_shape_err(argmax(vec![], 1, 0), "argmax");
        assert_eq!(argmax(vec![], 0, 4).expect("no rows"), Vec::<u32>::new());
    }
}
