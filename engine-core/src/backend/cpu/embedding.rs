//! Embedding lookup (dequantized rows of a table) and whole-weight dequantization.

use super::threads::Pool;
use super::{check_dequantizable, check_ids, need, size, CpuWeight};
use crate::quant::dequantize;
use crate::Result;

/// Rows per task at least: a row is a cheap dequantization.
const MIN_ROWS: usize = 8;

/// `out[i] = dequant(table[ids[i]])`; `out` holds at least `ids.len()·row_len` values.
pub(crate) fn embedding(
    pool: &Pool,
    table: &CpuWeight,
    ids: &[u32],
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "embedding";
    check_dequantizable(OP, table)?;
    let k = table.row_len();
    let len = size(OP, &[ids.len(), k])?;
    need(OP, "out", out.len(), len)?;
    check_ids(OP, ids, table.rows())?;
    if k == 0 {
        return Ok(());
    }
    let ty = table.ggml_type();
    let per_task = pool.chunk_items(ids.len(), MIN_ROWS);
    pool.try_chunks_mut(&mut out[..len], per_task * k, |ci, chunk| {
        for (r, dst) in chunk.chunks_exact_mut(k).enumerate() {
            dequantize(ty, table.row(ids[ci * per_task + r] as usize), dst)?;
        }
        Ok(())
    })
}

/// The whole weight into the first `elements()` values of `out`.
pub(crate) fn dequant(pool: &Pool, w: &CpuWeight, out: &mut [f32]) -> Result<()> {
    const OP: &str = "dequant";
    check_dequantizable(OP, w)?;
    need(OP, "out", out.len(), w.elements())?;
    let k = w.row_len();
    if k == 0 || w.rows() == 0 {
        return Ok(());
    }
    let ty = w.ggml_type();
    let per_task = pool.chunk_items(w.rows(), MIN_ROWS);
    pool.try_chunks_mut(&mut out[..w.elements()], per_task * k, |ci, chunk| {
        for (r, dst) in chunk.chunks_exact_mut(k).enumerate() {
            dequantize(ty, w.row(ci * per_task + r), dst)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::super::reference::*;
    use crate::backend::Backend;
    use crate::quant::GgmlType;

    /// Dequantization is the crate's own `quant::dequantize`, so rows must match it bit for bit.
    #[test]
    fn every_type_gathers_exact_rows() {
        let b = backend(3);
        for (ti, &ty) in GgmlType::DEQUANTIZABLE.iter().enumerate() {
            let k = row_len_for(ty, 1);
            let rows = 11;
            let mut r = rng(ti as u64);
            let (table, values) = weight(&b, &mut r, ty, k, rows);
            let ids = [3u32, 0, 10, 3, 7];
            let mut out = buf(vec![9.0; ids.len() * k + 1]);
            b.embedding(&table, &ids, &mut out).expect("embedding");
            for (i, &id) in ids.iter().enumerate() {
                let id = id as usize;
                assert_eq!(
                    &out.as_slice()[i * k..(i + 1) * k],
                    &values[id * k..(id + 1) * k],
                    "{ty} id {id}"
                );
            }
            assert_eq!(
                out.as_slice()[ids.len() * k],
                9.0,
                "{ty}: wrote past the end"
            );
        }
    }

    #[test]
    fn many_ids_match_over_threads() {
        let (b1, b3) = (backend(1), backend(3));
        let mut r = rng(1);
        let (table, _) = weight(&b1, &mut r, GgmlType::Q4_0, 64, 50);
        let ids: Vec<u32> = (0..97).map(|i| (i * 7 % 50) as u32).collect();
        let (mut o1, mut o3) = (buf(vec![0.0; 97 * 64]), buf(vec![0.0; 97 * 64]));
        b1.embedding(&table, &ids, &mut o1).expect("1 thread");
        b3.embedding(&table, &ids, &mut o3).expect("3 threads");
        assert_eq!(o1, o3);
    }

    #[test]
    fn out_of_range_id_and_short_output_are_shape_errors() {
        let b = backend(1);
        let mut r = rng(2);
        let (table, _) = weight(&b, &mut r, GgmlType::F16, 8, 4);
        let mut out = buf(vec![0.0; 16]);
        assert_shape_err(b.embedding(&table, &[1, 4], &mut out), "embedding");
        assert_shape_err(b.embedding(&table, &[1, u32::MAX], &mut out), "embedding");
        assert_shape_err(b.embedding(&table, &[0, 1, 2], &mut out), "embedding");
        assert!(b.embedding(&table, &[3, 0], &mut out).is_ok());
    }

    #[test]
    fn dequant_writes_the_whole_weight() {
        let b = backend(2);
        for (ti, &ty) in GgmlType::DEQUANTIZABLE.iter().enumerate() {
            let mut r = rng(10 + ti as u64);
            let k = row_len_for(ty, 2);
            let (w, values) = weight(&b, &mut r, ty, k, 13);
            let mut out = buf(vec![0.0; values.len()]);
            b.dequant(&w, &mut out).expect("dequant");
            assert_eq!(out.as_slice(), &values[..], "{ty}");
            let mut short = buf(vec![0.0; values.len() - 1]);
            assert_shape_err(b.dequant(&w, &mut short), "dequant");
        }
    }
}
