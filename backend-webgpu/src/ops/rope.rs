//! RoPE: the angles' cosines and sines are computed on the host in f64, as the CPU reference does,
//! and the kernel rotates the pairs.

use super::{grid_items, params, size, u32_of};
use crate::kernels::ROPE;
use crate::{Driver, GpuBuffer, WebGpuBackend};
use engine_core::backend::{RopeParams, RopeStyle};
use engine_core::Result;

pub(crate) fn rope<D: Driver>(
    b: &WebGpuBackend<D>,
    x: &mut GpuBuffer<D::Buf>,
    p: RopeParams,
) -> Result<()> {
    const OP: &str = "rope";
    let RopeParams {
        tokens,
        heads,
        head_dim,
        rope_dim,
        style,
        ..
    } = p;
    let len = p.check(x.len)?;
    if len == 0 || rope_dim == 0 {
        return Ok(());
    }
    let half = rope_dim / 2;
    // The angles in f64, rounded once to f32 (the CPU rotates in f64).
    let cs: Vec<f32> = p
        .angle_table()
        .into_iter()
        .flat_map(|[c, s]| [c as f32, s as f32])
        .collect();
    let table = b.driver.create_buffer(cs.len() as u64 * 4, "rope table")?;
    b.driver.write(&table, 0, bytemuck::cast_slice(&cs))?;
    let words = [
        u32_of(OP, "tokens", tokens)?,
        u32_of(OP, "heads", heads)?,
        u32_of(OP, "head_dim", head_dim)?,
        u32_of(OP, "half", half)?,
        u32::from(style == RopeStyle::Neox),
        0,
        0,
        0,
    ];
    let pairs = size(OP, &[tokens, heads, half])?;
    b.driver.dispatch(
        &ROPE,
        &params(&words),
        &[&x.buf, &table],
        grid_items(b, pairs)?,
    )
}
