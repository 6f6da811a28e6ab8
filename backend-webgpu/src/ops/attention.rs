//! Causal grouped-query attention over the KV cache held on the device: the CPU op's shape checks,
//! then one dispatch of `attention.wgsl` (online softmax over chunks of keys, so any context
//! length that fits the cache works without scratch memory).

use super::{grid, params, size, u32_of};
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
        window,
    } = p;
    let sizes = p.check(q.len, k_cache.len, v_cache.len, out.len)?;
    let (q_len, kv_size) = (sizes.q_len, sizes.kv_len);
    let (q_row, kv_row) = (heads * head_dim, kv_heads * head_dim);
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
        u32_of(OP, "window", window)?,
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
