//! Whole-weight dequantization and embedding row gathers: one thread per group of eight values.
//! Every id is checked before anything runs, so a bad id leaves `out` untouched (as on the CPU).

use super::{grid_items, launch, need, shape_err, size, u32_of};
use crate::kernels::{DEQUANT, EMBEDDING};
use crate::{CudaBackend, CudaBuffer, CudaWeight};
use cudarc::driver::DeviceRepr;
use engine_core::Result;

/// `GatherParams` in dequant.cu and embedding.cu.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct GatherParams {
    rows: u32,
    k: u32,
    groups: u32,
    _pad: u32,
    row_bytes: u64,
}

// SAFETY: plain old data, laid out as the CUDA struct.
unsafe impl DeviceRepr for GatherParams {}

/// Parameters for `rows` output rows of `k` (> 0) values of `w`, and the thread count.
fn params(op: &'static str, w: &CudaWeight, rows: usize) -> Result<(GatherParams, usize)> {
    let groups = w.row_len.div_ceil(8);
    let threads = size(op, &[rows, groups])?;
    let p = GatherParams {
        rows: u32_of(op, "rows", rows)?,
        k: u32_of(op, "k", w.row_len)?,
        groups: u32_of(op, "groups", groups)?,
        _pad: 0,
        row_bytes: w.row_bytes() as u64,
    };
    Ok((p, threads))
}

pub(crate) fn dequant(b: &CudaBackend, w: &CudaWeight, out: &mut CudaBuffer) -> Result<()> {
    const OP: &str = "dequant";
    let entry = DEQUANT.entry_for(OP, w.ggml_type)?;
    need(OP, "out", out.len, size(OP, &[w.rows, w.row_len])?)?;
    if w.row_len == 0 || w.rows == 0 {
        return Ok(());
    }
    let (p, threads) = params(OP, w, w.rows)?;
    b.ready(w)?;
    launch!(
        b,
        DEQUANT,
        entry,
        grid_items(OP, threads)?,
        &p,
        &w.data,
        &mut out.data
    )
}

pub(crate) fn embedding(
    b: &CudaBackend,
    table: &CudaWeight,
    ids: &[u32],
    out: &mut CudaBuffer,
) -> Result<()> {
    const OP: &str = "embedding";
    let entry = EMBEDDING.entry_for(OP, table.ggml_type)?;
    need(OP, "out", out.len, size(OP, &[ids.len(), table.row_len])?)?;
    if let Some((i, &id)) = ids
        .iter()
        .enumerate()
        .find(|(_, &id)| id as usize >= table.rows)
    {
        return Err(shape_err(
            OP,
            format!(
                "token id {id} (position {i}) is out of range: the table has {} rows",
                table.rows
            ),
        ));
    }
    if table.row_len == 0 || ids.is_empty() {
        return Ok(());
    }
    let (p, threads) = params(OP, table, ids.len())?;
    let stream = &b.dev().compute;
    let ids_dev = stream.clone_htod(ids).map_err(|e| {
        b.dev()
            .alloc_error("embedding ids", ids.len() as u64 * 4, e)
    })?;
    b.ready(table)?;
    launch!(
        b,
        EMBEDDING,
        entry,
        grid_items(OP, threads)?,
        &p,
        &table.data,
        &ids_dev,
        &mut out.data
    )
}
