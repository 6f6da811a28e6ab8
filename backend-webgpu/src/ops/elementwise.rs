//! `add`, `scale`, `silu_mul` and `gelu_mul`: one thread per value.

use super::{f32_bytes, grid_items, need, params, u32_of};
use crate::kernels::{Kernel, ADD, GELU_MUL, SCALE, SILU_MUL};
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

pub(crate) fn scale<D: Driver>(
    b: &WebGpuBackend<D>,
    x: &mut GpuBuffer<D::Buf>,
    factor: f32,
    len: usize,
) -> Result<()> {
    const OP: &str = "scale";
    need(OP, "x", x.len, len)?;
    let n = u32_of(OP, "len", len)?;
    b.driver.dispatch(
        &SCALE,
        &params(&[n, factor.to_bits(), 0, 0]),
        &[&x.buf],
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
    gated(b, ("silu_mul", &SILU_MUL), gate, up, out, len)
}

pub(crate) fn gelu_mul<D: Driver>(
    b: &WebGpuBackend<D>,
    gate: &GpuBuffer<D::Buf>,
    up: &GpuBuffer<D::Buf>,
    out: &mut GpuBuffer<D::Buf>,
    len: usize,
) -> Result<()> {
    gated(b, ("gelu_mul", &GELU_MUL), gate, up, out, len)
}

/// `out = act(gate) · up` with the kernel of the activation.
fn gated<D: Driver>(
    b: &WebGpuBackend<D>,
    (op, kernel): (&'static str, &'static Kernel),
    gate: &GpuBuffer<D::Buf>,
    up: &GpuBuffer<D::Buf>,
    out: &mut GpuBuffer<D::Buf>,
    len: usize,
) -> Result<()> {
    need(op, "gate", gate.len, len)?;
    need(op, "up", up.len, len)?;
    need(op, "out", out.len, len)?;
    let n = u32_of(op, "len", len)?;
    b.driver.dispatch(
        kernel,
        &params(&[n, 0, 0, 0]),
        &[&gate.buf, &up.buf, &out.buf],
        grid_items(b, len)?,
    )
}
