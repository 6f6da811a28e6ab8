//! `add` and `silu_mul` (one thread per value), and `copy_rows` (a device-to-device copy on the
//! compute stream).

use super::{grid_items, launch, need};
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
    let len = p.check(src.len, dst.len)?;
    if len == 0 {
        return Ok(());
    }
    let (s0, d0) = (p.src_row0 * p.cols, p.dst_row0 * p.cols);
    b.dev()
        .compute
        .memcpy_dtod(
            &src.data.slice(s0..s0 + len),
            &mut dst.data.slice_mut(d0..d0 + len),
        )
        .map_err(CudaError::driver("copy_rows"))?;
    Ok(())
}
