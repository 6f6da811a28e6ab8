//! Row-wise ops: `rms_norm`, `softmax` and `argmax` (one workgroup per row), and `copy_rows` (a
//! buffer copy).

use super::{grid, need, params, shape_err, size, u32_of};
use crate::kernels::{ARGMAX, RMS_NORM_F16, RMS_NORM_F32, SOFTMAX};
use crate::{Driver, GpuBuffer, GpuWeight, WebGpuBackend};
use engine_core::backend::{CopyRowsParams, RmsNormParams, RowsParams};
use engine_core::quant::GgmlType;
use engine_core::{Error, Result};
use std::future::Future;

pub(crate) fn rms_norm<D: Driver>(
    b: &WebGpuBackend<D>,
    x: &GpuBuffer<D::Buf>,
    w: &GpuWeight<D::Buf>,
    out: &mut GpuBuffer<D::Buf>,
    p: RmsNormParams,
) -> Result<()> {
    const OP: &str = "rms_norm";
    let RmsNormParams { rows, dim, eps } = p;
    let kernel = match w.ggml_type {
        GgmlType::F32 => &RMS_NORM_F32,
        GgmlType::F16 => &RMS_NORM_F16,
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
    let words = [
        u32_of(OP, "rows", rows)?,
        u32_of(OP, "dim", dim)?,
        eps.to_bits(),
        0,
    ];
    b.driver.dispatch(
        kernel,
        &params(&words),
        &[&x.buf, w.whole(OP)?, &out.buf],
        grid(b, rows as u64)?,
    )
}

pub(crate) fn copy_rows<D: Driver>(
    b: &WebGpuBackend<D>,
    src: &GpuBuffer<D::Buf>,
    dst: &mut GpuBuffer<D::Buf>,
    p: CopyRowsParams,
) -> Result<()> {
    const OP: &str = "copy_rows";
    let CopyRowsParams {
        rows,
        cols,
        src_row0,
        dst_row0,
    } = p;
    let src_end = size(
        OP,
        &[
            src_row0
                .checked_add(rows)
                .ok_or_else(|| shape_err(OP, "rows overflow"))?,
            cols,
        ],
    )?;
    let dst_end = size(
        OP,
        &[
            dst_row0
                .checked_add(rows)
                .ok_or_else(|| shape_err(OP, "rows overflow"))?,
            cols,
        ],
    )?;
    need(OP, "src", src.len, src_end)?;
    need(OP, "dst", dst.len, dst_end)?;
    let len = (rows * cols) as u64 * 4;
    b.driver.copy(
        &src.buf,
        (src_row0 * cols) as u64 * 4,
        &dst.buf,
        (dst_row0 * cols) as u64 * 4,
        len,
    )
}

fn rows_words(op: &'static str, x_len: usize, p: RowsParams) -> Result<[u32; 4]> {
    let len = size(op, &[p.rows, p.cols])?;
    need(op, "x", x_len, len)?;
    Ok([
        u32_of(op, "rows", p.rows)?,
        u32_of(op, "cols", p.cols)?,
        0,
        0,
    ])
}

pub(crate) fn softmax<D: Driver>(
    b: &WebGpuBackend<D>,
    x: &mut GpuBuffer<D::Buf>,
    p: RowsParams,
) -> Result<()> {
    let words = rows_words("softmax", x.len, p)?;
    if p.cols == 0 {
        return Ok(());
    }
    b.driver.dispatch(
        &SOFTMAX,
        &params(&words),
        &[&x.buf],
        grid(b, p.rows as u64)?,
    )
}

pub(crate) fn argmax<D: Driver>(
    b: &WebGpuBackend<D>,
    x: &GpuBuffer<D::Buf>,
    p: RowsParams,
) -> impl Future<Output = Result<Vec<u32>>> + use<D> {
    const OP: &str = "argmax";
    // Only the ids come back, not the logits.
    let started = (|| {
        let words = rows_words(OP, x.len, p)?;
        if p.cols == 0 && p.rows > 0 {
            return Err(shape_err(OP, "rows of zero values have no largest value"));
        }
        let out = b.driver.create_buffer(p.rows as u64 * 4, "argmax")?;
        b.driver.dispatch(
            &ARGMAX,
            &params(&words),
            &[&x.buf, &out],
            grid(b, p.rows as u64)?,
        )?;
        Ok(b.driver.read(&out, 0, p.rows as u64 * 4))
    })();
    async move {
        let bytes = started?.await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}
