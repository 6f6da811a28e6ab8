//! The host side of each op: shape checks as the CPU backend makes them, parameter packing, and
//! workgroup counts that respect the adapter's per-dimension limit.

pub(crate) mod attention;
pub(crate) mod elementwise;
pub(crate) mod matmul;
pub(crate) mod rope;
pub(crate) mod rows;

use crate::{Driver, GpuWeight, WebGpuBackend};
use engine_core::backend::{WeightDesc, WeightLayout};
use engine_core::{Error, Result};

/// Threads per workgroup of the 1-D kernels.
pub(crate) const THREADS: u32 = 256;

pub(crate) use engine_core::backend::checks::{need, shape_err, size};

/// Bytes of `len` f32 values.
pub(crate) fn f32_bytes(op: &'static str, len: usize) -> Result<u64> {
    Ok(size(op, &[len, 4])? as u64)
}

/// A `u32` kernel parameter, or `Error::Shape` when it does not fit.
pub(crate) fn u32_of(op: &'static str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| shape_err(op, format!("{what} = {v} exceeds u32")))
}

/// Packs kernel parameters (u32 words; f32 go in as their bits).
pub(crate) fn params(words: &[u32]) -> Vec<u8> {
    bytemuck::cast_slice(words).to_vec()
}

/// Workgroups covering `groups` in x, spilling into y past the adapter's per-dimension limit;
/// kernels index `x + y * num_workgroups.x`.
pub(crate) fn grid<D: Driver>(b: &WebGpuBackend<D>, groups: u64) -> Result<[u32; 3]> {
    let max = u64::from(b.driver.limits().max_workgroups_per_dim.max(1));
    let x = groups.min(max);
    let y = groups.div_ceil(max.max(1)).max(1);
    if y > max {
        return Err(Error::Config(format!(
            "{groups} workgroups exceed the adapter's {max} x {max}"
        )));
    }
    Ok([x as u32, y as u32, 1])
}

/// Workgroups for `n` items at `THREADS` per group.
pub(crate) fn grid_items<D: Driver>(b: &WebGpuBackend<D>, n: usize) -> Result<[u32; 3]> {
    grid(b, (n as u64).div_ceil(u64::from(THREADS)))
}

/// Validates an upload as the CPU backend does (a decodable type, whole blocks per row, bytes
/// matching the dims) and copies the bytes, padded to 4, into a storage buffer.
pub(crate) fn upload_weight<D: Driver>(
    b: &WebGpuBackend<D>,
    desc: WeightDesc<'_>,
    bytes: &[u8],
) -> Result<GpuWeight<D::Buf>> {
    let WeightLayout { row_len, rows } = WeightLayout::check(&desc, bytes.len())?;
    let padded = (bytes.len() as u64).next_multiple_of(4);
    b.check_binding(&format!("tensor '{}'", desc.name), padded)?;
    let buf = b.driver.create_buffer(padded, desc.name)?;
    let whole = bytes.len() / 4 * 4;
    b.driver.write(&buf, 0, &bytes[..whole])?;
    if whole < bytes.len() {
        let mut tail = [0u8; 4];
        tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
        b.driver.write(&buf, whole as u64, &tail)?;
    }
    Ok(GpuWeight {
        buf,
        ggml_type: desc.ggml_type,
        dims: desc.dims.to_vec(),
        row_len,
        rows,
    })
}
