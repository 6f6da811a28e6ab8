//! The two bandwidths GPU decode is held against, measured on this device in the same run as the
//! benchmark: device memory (a copy kernel reading and writing every byte) for a resident model,
//! and pinned host-to-device copies (what layer streaming uploads through) for a streamed one.

use crate::kernels::COPY;
use crate::ops::{launch, THREADS};
use crate::{CudaBackend, CudaError};
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaEvent, CudaStream, DevicePtrMut, LaunchConfig};
use std::sync::Arc;

/// Timed repetitions of each transfer after one warm-up; the best is kept.
const REPS: usize = 5;

/// Measured bandwidths, GB/s (10⁹ bytes).
#[derive(Debug, Clone, Copy)]
pub struct Bandwidth {
    /// Bytes of each transfer.
    pub bytes: u64,
    /// Device memory: bytes read plus bytes written per second by the copy kernel.
    pub device_gb_s: f64,
    /// Host to device from page-locked memory, on the copy stream the weight uploads use.
    pub pinned_upload_gb_s: f64,
}

fn timing_event(b: &CudaBackend) -> Result<CudaEvent, CudaError> {
    b.dev()
        .ctx
        .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
        .map_err(CudaError::driver("event creation"))
}

/// The best of `REPS` timings (after a warm-up) of `work` enqueued on `stream`, in seconds.
fn best_time(
    b: &CudaBackend,
    stream: &Arc<CudaStream>,
    mut work: impl FnMut() -> Result<(), CudaError>,
) -> Result<f64, CudaError> {
    let (start, end) = (timing_event(b)?, timing_event(b)?);
    work()?;
    let mut best = f64::INFINITY;
    for _ in 0..REPS {
        start
            .record(stream)
            .map_err(CudaError::driver("event record"))?;
        work()?;
        end.record(stream)
            .map_err(CudaError::driver("event record"))?;
        end.synchronize().map_err(CudaError::driver("event wait"))?;
        let ms = start
            .elapsed_ms(&end)
            .map_err(CudaError::driver("event timing"))?;
        best = best.min(f64::from(ms) / 1e3);
    }
    Ok(best)
}

impl CudaBackend {
    /// Measures device and pinned-upload bandwidth with transfers of `bytes` (rounded down to
    /// 16-byte words; 256 MiB is plenty to leave the caches behind). Allocates `3 · bytes` of
    /// device memory and `bytes` of pinned host memory for the duration.
    pub fn measure_bandwidth(&self, bytes: usize) -> Result<Bandwidth, CudaError> {
        let words = (bytes / 16).max(1);
        let bytes = words * 16;
        let dev = self.dev();
        let src = dev
            .compute
            .alloc_zeros::<u8>(bytes)
            .map_err(|e| dev.alloc_error("the bandwidth probe", bytes as u64, e))?;
        let mut dst = dev
            .compute
            .alloc_zeros::<u8>(bytes)
            .map_err(|e| dev.alloc_error("the bandwidth probe", bytes as u64, e))?;
        let n = words as u64;
        // Enough blocks to fill the device several times over; the kernel strides over the rest.
        let cfg = LaunchConfig {
            grid_dim: (n.div_ceil(u64::from(THREADS)).min(1 << 16) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let copy = best_time(self, &dev.compute, || {
            launch!(self, COPY, "copy_u128", cfg, &n, &src, &mut dst)
        })?;

        // SAFETY: the pinned buffer is only read by the copies below (its contents do not matter).
        let host = unsafe { dev.ctx.alloc_pinned::<u8>(bytes) }
            .map_err(CudaError::driver("pinned allocation"))?;
        let host = host
            .as_slice()
            .map_err(CudaError::driver("pinned access"))?;
        let mut up = dev
            .copy
            .alloc_zeros::<u8>(bytes)
            .map_err(|e| dev.alloc_error("the bandwidth probe", bytes as u64, e))?;
        let timed = best_time(self, &dev.copy, || {
            let (ptr, _record) = up.device_ptr_mut(&dev.copy);
            // SAFETY: `ptr` addresses `bytes` bytes of `up`; `host` outlives the copy, which the
            // timing event after it is waited on before `best_time` returns.
            unsafe { cudarc::driver::result::memcpy_htod_async(ptr, host, dev.copy.cu_stream()) }
                .map_err(CudaError::driver("upload"))
        });
        // Whatever happened, no copy may still read `host` when it is freed.
        let drained = dev
            .copy
            .synchronize()
            .map_err(CudaError::driver("synchronize"));
        let upload = timed?;
        drained?;
        Ok(Bandwidth {
            bytes: bytes as u64,
            device_gb_s: 2.0 * bytes as f64 / copy / 1e9,
            pinned_upload_gb_s: bytes as f64 / upload / 1e9,
        })
    }
}
