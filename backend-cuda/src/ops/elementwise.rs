//! `add`, `scale`, `silu_mul` and `gelu_mul` (one thread per value), and `copy_rows` (a device-to-device copy on the
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

pub(crate) fn scale(b: &CudaBackend, x: &mut CudaBuffer, factor: f32, len: usize) -> Result<()> {
    need("scale", "x", x.len, len)?;
    if len == 0 {
        return Ok(());
    }
    let n = len as u64;
    launch!(
        b,
        ADD,
        "scale_f32",
        grid_items("scale", len)?,
        &n,
        &mut x.data,
        &factor
    )
}

pub(crate) fn silu_mul(
    b: &CudaBackend,
    gate: &CudaBuffer,
    up: &CudaBuffer,
    out: &mut CudaBuffer,
    len: usize,
) -> Result<()> {
    gated(b, ("silu_mul", "silu_mul_f32"), gate, up, out, len)
}

pub(crate) fn gelu_mul(
    b: &CudaBackend,
    gate: &CudaBuffer,
    up: &CudaBuffer,
    out: &mut CudaBuffer,
    len: usize,
) -> Result<()> {
    gated(b, ("gelu_mul", "gelu_mul_f32"), gate, up, out, len)
}

/// `out = act(gate) · up` with the kernel `entry` of silu_mul.cu.
fn gated(
    b: &CudaBackend,
    (op, entry): (&'static str, &'static str),
    gate: &CudaBuffer,
    up: &CudaBuffer,
    out: &mut CudaBuffer,
    len: usize,
) -> Result<()> {
    need(op, "gate", gate.len, len)?;
    need(op, "up", up.len, len)?;
    need(op, "out", out.len, len)?;
    if len == 0 {
        return Ok(());
    }
    let n = len as u64;
    launch!(
        b,
        SILU_MUL,
        entry,
        grid_items(op, len)?,
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
