//! Matrix products with the weight's dequantization fused in (GEMV for one token, tiled GEMM for
//! more), whole-weight dequantization, and embedding row gathers. Shapes are checked as the CPU
//! backend checks them, with the same error ops. A weight split into parts takes one dispatch per
//! part, each writing its own rows' outputs.

use super::{grid, need, params, shape_err, size, u32_of};
use crate::kernels::{
    Kernel, DEQUANT, EMBEDDING, MATMUL_GEMM, MATMUL_GEMV, MATMUL_GEMV_SUBGROUP, WEIGHT_TYPES,
};
use crate::{Driver, GpuBuffer, GpuWeight, SubgroupSizes, WebGpuBackend, WeightPart};
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

/// Threads per workgroup of the subgroup GEMV kernel.
const SUBGROUP_GEMV_THREADS: u32 = 256;

/// Whether the subgroup GEMV kernel suits subgroups of these sizes: any power of two up to a
/// workgroup works; subgroups of fewer than 4 lanes would leave most of a row to each lane.
pub(crate) fn subgroups_suit_gemv(s: SubgroupSizes) -> bool {
    s.min >= 4 && s.min <= s.max && s.max <= SUBGROUP_GEMV_THREADS
}

/// The kernels of this module.
pub(crate) fn kernels() -> Vec<&'static Kernel> {
    [
        &MATMUL_GEMV,
        &MATMUL_GEMV_SUBGROUP,
        &MATMUL_GEMM,
        &DEQUANT,
        &EMBEDDING,
    ]
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

/// Kernels index a part's bytes in `u32` arithmetic (upload keeps parts below 4 GiB).
fn byte_indexable<B>(op: &'static str, w: &GpuWeight<B>, part: &WeightPart<B>) -> Result<u32> {
    let bytes = size(op, &[part.rows, w.row_bytes()])?;
    u32_of(op, "weight part bytes", bytes)?;
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
    // Kernels index x and out with u32 products of these.
    u32_of(OP, "m·k", mk)?;
    u32_of(OP, "m·n", mn)?;
    // Without a bias the weight stands in for the binding; the kernel does not read it.
    let bias_buf = match bias {
        Some(bw) => Some(bw.whole(OP)?),
        None => None,
    };
    let subgroup_rows = b
        .driver
        .limits()
        .subgroups
        .filter(|_| b.options.subgroups && m == 1)
        .map(|s| (SUBGROUP_GEMV_THREADS / s.min).max(1) as usize);
    let tiles_m = m.div_ceil(TILE_M);
    for part in &w.parts {
        let row_bytes = byte_indexable(OP, w, part)?;
        let tiles_n = part.rows.div_ceil(TILE_N);
        let wg_rows = subgroup_rows.unwrap_or(GEMV_ROWS);
        let words = [
            u32_of(OP, "m", m)?,
            u32_of(OP, "n", part.rows)?,
            u32_of(OP, "k", k)?,
            row_bytes,
            bias_kind,
            u32_of(OP, "tiles along n", tiles_n)?,
            u32_of(OP, "tiles along m", tiles_m)?,
            u32_of(OP, "row0", part.row0)?,
            u32_of(OP, "n", n)?,
            u32_of(OP, "rows per workgroup", wg_rows)?,
            0,
            0,
        ];
        let (kernel, groups) = match (m, subgroup_rows) {
            (1, Some(_)) => (
                &MATMUL_GEMV_SUBGROUP[ti],
                part.rows.div_ceil(wg_rows) as u64,
            ),
            (1, None) => (&MATMUL_GEMV[ti], part.rows.div_ceil(GEMV_ROWS) as u64),
            _ => (&MATMUL_GEMM[ti], size(OP, &[tiles_n, tiles_m])? as u64),
        };
        b.driver.dispatch(
            kernel,
            &params(&words),
            &[&part.buf, bias_buf.unwrap_or(&part.buf), &x.buf, &out.buf],
            grid(b, groups)?,
        )?;
    }
    Ok(())
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
    // Outputs are indexed as u32 (row·k + i).
    u32_of(OP, "output values", values)?;
    for part in &w.parts {
        let (words, threads) = gather_words(OP, w, part, part.rows)?;
        b.driver.dispatch(
            &DEQUANT[ti],
            &params(&words),
            &[&part.buf, &out.buf],
            grid(b, threads.div_ceil(GATHER_THREADS))?,
        )?;
    }
    Ok(())
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
    // Outputs are indexed as u32 (j·k + i).
    u32_of(OP, "output values", len)?;
    let id_bytes: &[u8] = bytemuck::cast_slice(ids);
    b.check_binding("embedding ids", id_bytes.len() as u64)?;
    let ids_buf = b.driver.create_buffer(id_bytes.len() as u64, "ids")?;
    b.driver.write(&ids_buf, 0, id_bytes)?;
    for part in &table.parts {
        // Every id's row in every part's dispatch: each writes only the rows it holds.
        let (words, threads) = gather_words(OP, table, part, ids.len())?;
        b.driver.dispatch(
            &EMBEDDING[ti],
            &params(&words),
            &[&part.buf, &ids_buf, &out.buf],
            grid(b, threads.div_ceil(GATHER_THREADS))?,
        )?;
    }
    Ok(())
}

/// Parameters of the dequant and embedding kernels over `part` of `w` for `rows` output rows of
/// `k` (> 0) values, and their thread count (one per group of eight values).
fn gather_words<B>(
    op: &'static str,
    w: &GpuWeight<B>,
    part: &WeightPart<B>,
    rows: usize,
) -> Result<([u32; 8], u64)> {
    let k = w.row_len;
    let groups = k.div_ceil(8);
    let threads = size(op, &[rows, groups])?;
    u32_of(op, "threads", threads)?;
    let words = [
        u32_of(op, "rows", rows)?,
        u32_of(op, "k", k)?,
        byte_indexable(op, w, part)?,
        u32_of(op, "groups", groups)?,
        u32_of(op, "row0", part.row0)?,
        u32_of(op, "part rows", part.rows)?,
        0,
        0,
    ];
    Ok((words, threads as u64))
}
