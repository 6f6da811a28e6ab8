//! Causal grouped-query attention over the KV cache held on the device: the CPU op's shape checks,
//! then one dispatch of `attention.wgsl` (online softmax over chunks of keys, so any context
//! length that fits the cache works without scratch memory).

use super::{grid, need, params, shape_err, size, u32_of};
use crate::kernels::{Kernel, ATTENTION};
use crate::{Driver, GpuBuffer, WebGpuBackend};
use engine_core::backend::AttentionParams;
use engine_core::Result;

/// Output dims one workgroup covers (`SLICE` in the kernel); longer heads take more workgroups.
const SLICE: usize = 256;

/// The kernels of this module.
pub(crate) fn kernels() -> Vec<&'static Kernel> {
    vec![&ATTENTION]
}

/// `q` and `out` hold at least `tokens·heads·head_dim` values, each cache at least
/// `(pos0+tokens)·kv_heads·head_dim`. Query token `t` sees cache rows `0..=pos0+t`.
pub(crate) fn attention<D: Driver>(
    b: &WebGpuBackend<D>,
    q: &GpuBuffer<D::Buf>,
    k_cache: &GpuBuffer<D::Buf>,
    v_cache: &GpuBuffer<D::Buf>,
    out: &mut GpuBuffer<D::Buf>,
    p: AttentionParams,
) -> Result<()> {
    // The same name and checks as the CPU op, so both backends refuse the same shapes alike.
    const OP: &str = "attention";
    let AttentionParams {
        tokens,
        pos0,
        heads,
        kv_heads,
        head_dim,
        scale,
    } = p;
    if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(shape_err(
            OP,
            format!("heads {heads} must be a multiple of kv_heads {kv_heads} (> 0)"),
        ));
    }
    let kv_len = pos0
        .checked_add(tokens)
        .ok_or_else(|| shape_err(OP, "pos0 + tokens overflows"))?;
    let q_row = size(OP, &[heads, head_dim])?;
    let kv_row = size(OP, &[kv_heads, head_dim])?;
    let q_len = size(OP, &[tokens, q_row])?;
    let kv_size = size(OP, &[kv_len, kv_row])?;
    need(OP, "q", q.len, q_len)?;
    need(OP, "out", out.len, q_len)?;
    need(OP, "k_cache", k_cache.len, kv_size)?;
    need(OP, "v_cache", v_cache.len, kv_size)?;
    if q_len == 0 {
        return Ok(());
    }
    // The kernel indexes with u32: the largest index of each buffer must fit.
    u32_of(OP, "tokens·heads·head_dim", q_len)?;
    u32_of(OP, "(pos0+tokens)·kv_heads·head_dim", kv_size)?;
    let slices = head_dim.div_ceil(SLICE);
    let units = size(OP, &[tokens, heads, slices])?;
    u32_of(OP, "workgroups", units)?;
    let words = [
        u32_of(OP, "tokens", tokens)?,
        u32_of(OP, "pos0", pos0)?,
        u32_of(OP, "heads", heads)?,
        u32_of(OP, "group", heads / kv_heads)?,
        u32_of(OP, "head_dim", head_dim)?,
        u32_of(OP, "q_row", q_row)?,
        u32_of(OP, "kv_row", kv_row)?,
        u32_of(OP, "slices", slices)?,
        scale.to_bits(),
        0,
        0,
        0,
    ];
    b.driver.dispatch(
        &ATTENTION,
        &params(&words),
        &[&q.buf, &k_cache.buf, &v_cache.buf, &out.buf],
        grid(b, units as u64)?,
    )
}
