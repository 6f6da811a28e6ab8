//! `add` and `silu_mul` (one thread per value), and `copy_rows` (a device-to-device copy on the
//! compute stream).

use super::{grid_items, launch, need, shape_err, size};
use crate::kernels::{ADD, SILU_MUL};
use crate::{CudaBackend, CudaBuffer, CudaError};
use engine_core::backend::CopyRowsParams;
use engine_core::Result;

pub(crate) fn add(b: &CudaBackend, acc: &mut CudaBuffer, x: &CudaBuffer, len: usize) -> Result<()> {
    const OP: &str = "add";
    need(OP, "acc", acc.len, len)?;
    need(OP, "x", x.len, len)?;
    if len == 0 {
        return Ok(());
    }
    let n = len as u64;
    launch!(
        b,
        ADD,
        "add_f32",
        grid_items(OP, len)?,
        &n,
        &mut acc.data,
        &x.data
    )
}

pub(crate) fn silu_mul(
    b: &CudaBackend,
    gate: &CudaBuffer,
    up: &CudaBuffer,
    out: &mut CudaBuffer,
    len: usize,
) -> Result<()> {
    const OP: &str = "silu_mul";
    need(OP, "gate", gate.len, len)?;
    need(OP, "up", up.len, len)?;
    need(OP, "out", out.len, len)?;
    if len == 0 {
        return Ok(());
    }
    let n = len as u64;
    launch!(
        b,
        SILU_MUL,
        "silu_mul_f32",
        grid_items(OP, len)?,
        &n,
        &gate.data,
        &up.data,
        &mut out.data
    )
}

pub(crate) fn copy_rows(
    b: &CudaBackend,
    src: &CudaBuffer,
    dst: &mut CudaBuffer,
    p: CopyRowsParams,
) -> Result<()> {
    const OP: &str = "copy_rows";
    let CopyRowsParams {
        rows,
        cols,
        src_row0,
        dst_row0,
    } = p;
    let end = |row0: usize| {
        let last = row0
            .checked_add(rows)
            .ok_or_else(|| shape_err(OP, "rows overflow"))?;
        size(OP, &[last, cols])
    };
    need(OP, "src", src.len, end(src_row0)?)?;
    need(OP, "dst", dst.len, end(dst_row0)?)?;
    let len = rows * cols;
    if len == 0 {
        return Ok(());
    }
    let (s0, d0) = (src_row0 * cols, dst_row0 * cols);
    b.dev()
        .compute
        .memcpy_dtod(
            &src.data.slice(s0..s0 + len),
            &mut dst.data.slice_mut(d0..d0 + len),
        )
        .map_err(CudaError::driver("copy_rows"))?;
    Ok(())
}
