//! Matrix products with the weight's dequantization fused in (GEMV for one token, tiled GEMM for
//! more), whole-weight dequantization, and embedding row gathers. Shapes are checked as the CPU
//! backend checks them, with the same error ops.

use super::{grid, need, params, shape_err, size, u32_of};
use crate::kernels::{Kernel, DEQUANT, EMBEDDING, MATMUL_GEMM, MATMUL_GEMV, WEIGHT_TYPES};
use crate::{Driver, GpuBuffer, GpuWeight, WebGpuBackend};
use engine_core::backend::MatmulShape;
use engine_core::quant::GgmlType;
use engine_core::{Error, Result};

/// Rows per GEMV workgroup (`GEMV_ROWS` in matmul_gemv.wgsl).
const GEMV_ROWS: usize = 4;
/// Weight rows and tokens per GEMM workgroup (`TILE_N`, `TILE_M` in matmul_gemm.wgsl).
const TILE_N: usize = 64;
const TILE_M: usize = 16;
/// Threads per workgroup of the dequant and embedding kernels, each decoding eight values.
const GATHER_THREADS: u64 = 256;

/// The kernels of this module.
pub(crate) fn kernels() -> Vec<&'static Kernel> {
    [&MATMUL_GEMV, &MATMUL_GEMM, &DEQUANT, &EMBEDDING]
        .into_iter()
        .flat_map(|set| set.iter())
        .collect()
}

/// The index of `ty` in the per-type kernel arrays, or `UnsupportedType` for `op`.
fn type_index(op: &'static str, ty: GgmlType) -> Result<usize> {
    WEIGHT_TYPES
        .iter()
        .position(|&t| t == ty)
        .ok_or(Error::UnsupportedType { ty, op })
}

/// Kernels index weights by byte in `u32` arithmetic: the whole tensor must stay below 4 GiB
/// (a storage binding that large is beyond today's adapters anyway).
fn byte_indexable<B>(op: &'static str, w: &GpuWeight<B>) -> Result<u32> {
    let bytes = size(op, &[w.rows, w.row_bytes()])?;
    u32_of(op, "weight bytes", bytes)?;
    u32_of(op, "weight row bytes", w.row_bytes())
}

pub(crate) fn matmul<D: Driver>(
    b: &WebGpuBackend<D>,
    w: &GpuWeight<D::Buf>,
    bias: Option<&GpuWeight<D::Buf>>,
    x: &GpuBuffer<D::Buf>,
    out: &mut GpuBuffer<D::Buf>,
    shape: MatmulShape,
) -> Result<()> {
    const OP: &str = "matmul";
    let MatmulShape { m, n, k } = shape;
    let ti = type_index(OP, w.ggml_type)?;
    if w.row_len != k || w.rows != n {
        return Err(shape_err(
            OP,
            format!(
                "weight has {} rows of {} (dims {:?}), the shape asks for n={n} rows of k={k}",
                w.rows, w.row_len, w.dims
            ),
        ));
    }
    let mk = size(OP, &[m, k])?;
    let mn = size(OP, &[m, n])?;
    need(OP, "x", x.len, mk)?;
    need(OP, "out", out.len, mn)?;
    let bias_kind = match bias {
        None => 0,
        Some(bw) => {
            let kind = match bw.ggml_type {
                GgmlType::F32 => 1,
                GgmlType::F16 => 2,
                ty => return Err(Error::UnsupportedType { ty, op: OP }),
            };
            let values = bw.row_len * bw.rows;
            if values != n {
                return Err(shape_err(OP, format!("bias has {values} values, n is {n}")));
            }
            kind
        }
    };
    if mn == 0 {
        return Ok(());
    }
    let row_bytes = byte_indexable(OP, w)?;
    // Kernels index x and out with u32 products of these.
    u32_of(OP, "m·k", mk)?;
    u32_of(OP, "m·n", mn)?;
    let (tiles_n, tiles_m) = (n.div_ceil(TILE_N), m.div_ceil(TILE_M));
    let words = [
        u32_of(OP, "m", m)?,
        u32_of(OP, "n", n)?,
        u32_of(OP, "k", k)?,
        row_bytes,
        bias_kind,
        u32_of(OP, "tiles along n", tiles_n)?,
        u32_of(OP, "tiles along m", tiles_m)?,
        0,
    ];
    let (kernel, groups) = if m == 1 {
        (&MATMUL_GEMV[ti], n.div_ceil(GEMV_ROWS) as u64)
    } else {
        let tiles = size(OP, &[tiles_n, tiles_m])?;
        (&MATMUL_GEMM[ti], tiles as u64)
    };
    // Without a bias the weight stands in for the binding; the kernel does not read it.
    let bias_buf = bias.map_or(&w.buf, |bw| &bw.buf);
    b.driver.dispatch(
        kernel,
        &params(&words),
        &[&w.buf, bias_buf, &x.buf, &out.buf],
        grid(b, groups)?,
    )
}

pub(crate) fn dequant<D: Driver>(
    b: &WebGpuBackend<D>,
    w: &GpuWeight<D::Buf>,
    out: &mut GpuBuffer<D::Buf>,
) -> Result<()> {
    const OP: &str = "dequant";
    let ti = type_index(OP, w.ggml_type)?;
    let values = size(OP, &[w.rows, w.row_len])?;
    need(OP, "out", out.len, values)?;
    let k = w.row_len;
    if k == 0 || w.rows == 0 {
        return Ok(());
    }
    let row_bytes = byte_indexable(OP, w)?;
    let (words, threads) = gather_words(OP, w.rows, k, row_bytes)?;
    b.driver.dispatch(
        &DEQUANT[ti],
        &params(&words),
        &[&w.buf, &out.buf],
        grid(b, threads.div_ceil(GATHER_THREADS))?,
    )
}

pub(crate) fn embedding<D: Driver>(
    b: &WebGpuBackend<D>,
    table: &GpuWeight<D::Buf>,
    ids: &[u32],
    out: &mut GpuBuffer<D::Buf>,
) -> Result<()> {
    const OP: &str = "embedding";
    let ti = type_index(OP, table.ggml_type)?;
    let k = table.row_len;
    let len = size(OP, &[ids.len(), k])?;
    need(OP, "out", out.len, len)?;
    // Every id is checked before anything runs, so a bad id leaves `out` untouched (as on the CPU).
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
    if k == 0 || ids.is_empty() {
        return Ok(());
    }
    let row_bytes = byte_indexable(OP, table)?;
    let (words, threads) = gather_words(OP, ids.len(), k, row_bytes)?;
    let id_bytes: &[u8] = bytemuck::cast_slice(ids);
    b.check_binding("embedding ids", id_bytes.len() as u64)?;
    let ids_buf = b.driver.create_buffer(id_bytes.len() as u64, "ids")?;
    b.driver.write(&ids_buf, 0, id_bytes)?;
    b.driver.dispatch(
        &EMBEDDING[ti],
        &params(&words),
        &[&table.buf, &ids_buf, &out.buf],
        grid(b, threads.div_ceil(GATHER_THREADS))?,
    )
}

/// Parameters of the dequant and embedding kernels for `rows` output rows of `k` (> 0) values,
/// and their thread count (one per group of eight values).
fn gather_words(
    op: &'static str,
    rows: usize,
    k: usize,
    row_bytes: u32,
) -> Result<([u32; 4], u64)> {
    let groups = k.div_ceil(8);
    let threads = size(op, &[rows, groups])?;
    // Outputs are indexed as u32 (row·k + i), thread ids too.
    u32_of(op, "output values", size(op, &[rows, k])?)?;
    u32_of(op, "threads", threads)?;
    let words = [
        u32_of(op, "rows", rows)?,
        u32_of(op, "k", k)?,
        row_bytes,
        u32_of(op, "groups", groups)?,
    ];
    Ok((words, threads as u64))
}
