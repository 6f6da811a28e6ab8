//! Row-wise ops, one block per row: `rms_norm`, `softmax`, and `argmax`, whose ids alone come back
//! to the host.

use super::{grid, launch, need, shape_err, size, u32_of, THREADS};
use crate::kernels::{ARGMAX, RMS_NORM, SOFTMAX};
use crate::{CudaBackend, CudaBuffer, CudaError, CudaWeight};
use cudarc::driver::DeviceRepr;
use engine_core::backend::{RmsNormParams, RowsParams};
use engine_core::quant::GgmlType;
use engine_core::{Error, Result};

/// `RmsNormParams` in rms_norm.cu.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct NormParams {
    rows: u32,
    dim: u32,
    eps: f32,
    _pad: u32,
}

/// `RowsParams` in softmax.cu and argmax.cu.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct RowParams {
    rows: u32,
    cols: u32,
}

// SAFETY: plain old data, laid out as the CUDA structs.
unsafe impl DeviceRepr for NormParams {}
// SAFETY: as above.
unsafe impl DeviceRepr for RowParams {}

pub(crate) fn rms_norm(
    b: &CudaBackend,
    x: &CudaBuffer,
    w: &CudaWeight,
    out: &mut CudaBuffer,
    p: RmsNormParams,
) -> Result<()> {
    const OP: &str = "rms_norm";
    let RmsNormParams { rows, dim, eps } = p;
    let entry = match w.ggml_type {
        GgmlType::F32 => "rms_norm_f32",
        GgmlType::F16 => "rms_norm_f16",
        ty => return Err(Error::UnsupportedType { ty, op: OP }),
    };
    if w.row_len * w.rows != dim {
        return Err(shape_err(
            OP,
            format!("weight has {} values, dim is {dim}", w.row_len * w.rows),
        ));
    }
    let len = size(OP, &[rows, dim])?;
    need(OP, "x", x.len, len)?;
    need(OP, "out", out.len, len)?;
    if len == 0 {
        return Ok(());
    }
    let params = NormParams {
        rows: u32_of(OP, "rows", rows)?,
        dim: u32_of(OP, "dim", dim)?,
        eps,
        _pad: 0,
    };
    b.ready(w)?;
    let cfg = grid(OP, rows as u64, THREADS)?;
    launch!(
        b,
        RMS_NORM,
        entry,
        cfg,
        &params,
        &x.data,
        &w.data,
        &mut out.data
    )
}

fn row_params(op: &'static str, x_len: usize, p: RowsParams) -> Result<RowParams> {
    need(op, "x", x_len, size(op, &[p.rows, p.cols])?)?;
    Ok(RowParams {
        rows: u32_of(op, "rows", p.rows)?,
        cols: u32_of(op, "cols", p.cols)?,
    })
}

pub(crate) fn softmax(b: &CudaBackend, x: &mut CudaBuffer, p: RowsParams) -> Result<()> {
    const OP: &str = "softmax";
    let params = row_params(OP, x.len, p)?;
    if p.cols == 0 || p.rows == 0 {
        return Ok(());
    }
    let cfg = grid(OP, p.rows as u64, THREADS)?;
    launch!(b, SOFTMAX, "softmax_f32", cfg, &params, &mut x.data)
}

pub(crate) fn argmax(b: &CudaBackend, x: &CudaBuffer, p: RowsParams) -> Result<Vec<u32>> {
    const OP: &str = "argmax";
    let params = row_params(OP, x.len, p)?;
    if p.cols == 0 && p.rows > 0 {
        return Err(shape_err(OP, "rows of zero values have no largest value"));
    }
    if p.rows == 0 {
        return Ok(Vec::new());
    }
    let stream = &b.dev().compute;
    let mut ids = stream
        .alloc_zeros::<u32>(p.rows)
        .map_err(|e| b.dev().alloc_error("argmax ids", p.rows as u64 * 4, e))?;
    let cfg = grid(OP, p.rows as u64, THREADS)?;
    let launched: Result<()> = launch!(b, ARGMAX, "argmax_f32", cfg, &params, &x.data, &mut ids);
    launched?;
    let out = stream
        .clone_dtoh(&ids)
        .map_err(CudaError::driver("argmax read-back"))?;
    stream
        .synchronize()
        .map_err(CudaError::driver("synchronize"))?;
    Ok(out)
}
