//! `add` and `silu_mul`: one thread per value.

use super::{f32_bytes, grid_items, need, params, u32_of};
use crate::kernels::{ADD, SILU_MUL};
use crate::{Driver, GpuBuffer, WebGpuBackend};
use engine_core::Result;

pub(crate) fn add<D: Driver>(
    b: &WebGpuBackend<D>,
    acc: &mut GpuBuffer<D::Buf>,
    x: &GpuBuffer<D::Buf>,
    len: usize,
) -> Result<()> {
    const OP: &str = "add";
    need(OP, "acc", acc.len, len)?;
    need(OP, "x", x.len, len)?;
    f32_bytes(OP, len)?;
    let n = u32_of(OP, "len", len)?;
    b.driver.dispatch(
        &ADD,
        &params(&[n, 0, 0, 0]),
        &[&acc.buf, &x.buf],
        grid_items(b, len)?,
    )
}

pub(crate) fn silu_mul<D: Driver>(
    b: &WebGpuBackend<D>,
    gate: &GpuBuffer<D::Buf>,
    up: &GpuBuffer<D::Buf>,
    out: &mut GpuBuffer<D::Buf>,
    len: usize,
) -> Result<()> {
    const OP: &str = "silu_mul";
    need(OP, "gate", gate.len, len)?;
    need(OP, "up", up.len, len)?;
    need(OP, "out", out.len, len)?;
    let n = u32_of(OP, "len", len)?;
    b.driver.dispatch(
        &SILU_MUL,
        &params(&[n, 0, 0, 0]),
        &[&gate.buf, &up.buf, &out.buf],
        grid_items(b, len)?,
    )
}
