//! The host side of each op: shape checks as the CPU backend makes them, parameter packing, and
//! workgroup counts that respect the adapter's per-dimension limit.

pub(crate) mod attention;
pub(crate) mod elementwise;
pub(crate) mod matmul;
pub(crate) mod rope;
pub(crate) mod rows;

use crate::{Driver, GpuWeight, WebGpuBackend, WeightPart};
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
/// matching the dims) and copies the bytes, padded to 4, into storage buffers: one, or where the
/// tensor exceeds the largest weight part, one per run of rows that fits it.
pub(crate) fn upload_weight<D: Driver>(
    b: &WebGpuBackend<D>,
    desc: WeightDesc<'_>,
    bytes: &[u8],
) -> Result<GpuWeight<D::Buf>> {
    let WeightLayout { row_len, rows } = WeightLayout::check(&desc, bytes.len())?;
    let row_bytes = bytes.len().checked_div(rows).unwrap_or(0);
    let rows_per_part = rows_per_part(
        bytes.len() as u64,
        rows,
        row_bytes as u64,
        b.options.max_weight_part,
        b.driver.limits().max_storage_binding,
    )
    .map_err(|short| {
        Error::Config(format!(
            "tensor '{}': one row needs {row_bytes} bytes in one storage binding; the adapter's \
             max_storage_buffer_binding_size is {} ({short} bytes short)",
            desc.name,
            b.driver.limits().max_storage_binding
        ))
    })?;
    let mut parts = Vec::with_capacity(rows.div_ceil(rows_per_part).max(1));
    let mut row0 = 0;
    loop {
        let part_rows = rows_per_part.min(rows - row0);
        let part = &bytes[row0 * row_bytes..(row0 + part_rows) * row_bytes];
        parts.push(WeightPart {
            buf: upload_part(b, desc.name, part)?,
            row0,
            rows: part_rows,
        });
        row0 += part_rows;
        if row0 >= rows {
            break;
        }
    }
    Ok(GpuWeight {
        parts,
        ggml_type: desc.ggml_type,
        dims: desc.dims.to_vec(),
        row_len,
        rows,
    })
}

/// Rows per part of a tensor of `bytes` in `rows` rows of `row_bytes`: all of them when the
/// tensor fits `part_limit`, else as many as fit it, but at least one row when that row fits the
/// adapter's `binding`; `Err` with the bytes a row lacks otherwise.
fn rows_per_part(
    bytes: u64,
    rows: usize,
    row_bytes: u64,
    part_limit: u64,
    binding: u64,
) -> std::result::Result<usize, u64> {
    if bytes.next_multiple_of(4) <= part_limit || row_bytes == 0 {
        return Ok(rows.max(1));
    }
    if row_bytes.next_multiple_of(4) > binding {
        return Err(row_bytes.next_multiple_of(4) - binding);
    }
    Ok(((part_limit / row_bytes) as usize).max(1))
}

/// One storage buffer holding `bytes`, zero-padded to a multiple of 4.
fn upload_part<D: Driver>(b: &WebGpuBackend<D>, name: &str, bytes: &[u8]) -> Result<D::Buf> {
    let padded = (bytes.len() as u64).next_multiple_of(4);
    let buf = b.driver.create_buffer(padded, name)?;
    let whole = bytes.len() / 4 * 4;
    b.driver.write(&buf, 0, &bytes[..whole])?;
    if whole < bytes.len() {
        let mut tail = [0u8; 4];
        tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
        b.driver.write(&buf, whole as u64, &tail)?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::rows_per_part;

    #[test]
    fn parts_hold_whole_rows_within_the_limit() {
        // Fits whole.
        assert_eq!(rows_per_part(1000, 10, 100, 1024, 1 << 20), Ok(10));
        // Three rows of 68 per part of 208.
        assert_eq!(rows_per_part(68 * 70, 70, 68, 208, 1 << 20), Ok(3));
        // A row over the part limit but within a binding takes a part of its own.
        assert_eq!(rows_per_part(300 * 4, 4, 300, 128, 1 << 20), Ok(1));
        // A row over the binding cannot be placed: the bytes it lacks.
        assert_eq!(rows_per_part(300 * 4, 4, 300, 128, 256), Err(44));
        // Empty tensors are one empty part.
        assert_eq!(rows_per_part(0, 0, 0, 128, 256), Ok(1));
    }
}
