//! The host side of each op: shape checks as the CPU backend makes them (the shared
//! `engine_core::backend::checks`), parameter structs matching the kernels' (`#[repr(C)]`), grid
//! sizes, and the launch on the compute stream. Buffers: allocation, writes and read-back.

pub(crate) mod attention;
pub(crate) mod elementwise;
pub(crate) mod gather;
pub(crate) mod matmul;
pub(crate) mod rope;
pub(crate) mod rows;

use crate::{CudaBackend, CudaBuffer, CudaError};
use cudarc::driver::LaunchConfig;
use engine_core::Result;

pub(crate) use engine_core::backend::checks::{need, shape_err, size};

/// Threads per block of the one-value-per-thread and row kernels (`ROW_THREADS` in reduce.cuh).
pub(crate) const THREADS: u32 = 256;
/// The largest grid x dimension.
const MAX_GRID_X: u64 = (1 << 31) - 1;

/// A `u32` kernel parameter, or `Error::Shape` when it does not fit.
pub(crate) fn u32_of(op: &'static str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| shape_err(op, format!("{what} = {v} exceeds u32")))
}

/// `blocks` blocks of `threads` along x, or `Error::Shape` past the grid limit.
pub(crate) fn grid(op: &'static str, blocks: u64, threads: u32) -> Result<LaunchConfig> {
    if blocks > MAX_GRID_X {
        return Err(shape_err(
            op,
            format!("{blocks} blocks exceed the grid limit {MAX_GRID_X}"),
        ));
    }
    Ok(LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// One thread per item, `THREADS` per block.
pub(crate) fn grid_items(op: &'static str, items: usize) -> Result<LaunchConfig> {
    grid(op, (items as u64).div_ceil(u64::from(THREADS)), THREADS)
}

/// A buffer of `len` zeros (at least one value is allocated, so that every buffer has an address).
pub(crate) fn alloc(b: &CudaBackend, len: usize) -> Result<CudaBuffer> {
    let bytes = size("alloc", &[len.max(1), 4])? as u64;
    let data = b
        .dev()
        .compute
        .alloc_zeros::<f32>(len.max(1))
        .map_err(|e| b.dev().alloc_error("an activation buffer", bytes, e))?;
    Ok(CudaBuffer { data, len })
}

pub(crate) fn write(b: &CudaBackend, buf: &mut CudaBuffer, data: &[f32]) -> Result<()> {
    need("write", "buffer", buf.len, data.len())?;
    if data.is_empty() {
        return Ok(());
    }
    // Pageable memory: the driver has copied `data` out before this returns.
    b.dev()
        .compute
        .memcpy_htod(data, &mut buf.data.slice_mut(..data.len()))
        .map_err(CudaError::driver("write"))?;
    Ok(())
}

/// Waits for the compute stream, then reads the first `len` values.
pub(crate) fn download(b: &CudaBackend, buf: &CudaBuffer, len: usize) -> Result<Vec<f32>> {
    need("download", "buffer", buf.len, len)?;
    if len == 0 {
        return Ok(Vec::new());
    }
    let stream = &b.dev().compute;
    let v = stream
        .clone_dtoh(&buf.data.slice(..len))
        .map_err(CudaError::driver("download"))?;
    stream
        .synchronize()
        .map_err(CudaError::driver("synchronize"))?;
    Ok(v)
}

/// Launches a kernel: `$args` are pushed in order (weights, buffers, the params struct).
macro_rules! launch {
    ($b:expr, $file:expr, $entry:expr, $cfg:expr, $($arg:expr),+ $(,)?) => {{
        let f = $b.dev().function(&$file, $entry)?;
        let mut l = $b.dev().compute.launch_builder(&f);
        use cudarc::driver::PushKernelArg as _;
        $( l.arg($arg); )+
        // SAFETY: the arguments match the kernel's parameters in number, order and type (the
        // params structs are `#[repr(C)]` copies of the CUDA structs), and the host checked every
        // buffer against the sizes the kernel indexes.
        unsafe { l.launch($cfg) }.map_err($crate::CudaError::driver($entry))?;
        Ok(())
    }};
}
pub(crate) use launch;
