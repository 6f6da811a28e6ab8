//! Weight uploads for layer streaming: bytes go through pinned (page-locked) host staging buffers
//! on the dedicated copy stream, so the DMA runs while the compute stream works on earlier layers.
//! After the last chunk an event is recorded on the copy stream; every kernel that reads the weight
//! first makes the compute stream wait on that event (`CudaBackend::ready`), so compute never waits
//! for an upload it does not need, and never reads one that has not landed.
//!
//! Two staging buffers alternate: while the copy engine drains one, the host fills the other. Each
//! has its own event, recorded after its copy, and the host waits on it before refilling the
//! buffer. Where pinned memory cannot be had, uploads fall back to a plain (pageable) copy on the
//! same stream: slower, still correct.

use crate::device::Device;
use crate::CudaError;
use cudarc::driver::{CudaEvent, CudaSlice, DevicePtrMut, PinnedHostSlice};
use std::sync::{Mutex, PoisonError};

/// Bytes per staging buffer: large enough that per-copy overhead is small, small enough that two
/// of them are no burden on host memory.
const STAGING_BYTES: usize = 8 << 20;

struct Slot {
    host: PinnedHostSlice<u8>,
    /// Recorded on the copy stream after the copy out of `host`.
    copied: CudaEvent,
}

impl Drop for Slot {
    /// The last copy out of `host` may still be in flight when the backend goes (the upload only
    /// enqueued it): wait for it before the pinned memory is freed. `PinnedHostSlice`'s own drop
    /// waits only on its internal event, which the raw copies above never record.
    fn drop(&mut self) {
        // A drop has no caller to hand an error to; a failed wait leaves nothing else to do.
        let _ = self.copied.synchronize();
    }
}

/// The staging buffers, allocated on first upload; `None` inside once pinning has failed.
pub(crate) struct Staging {
    slots: Mutex<Option<Option<[Slot; 2]>>>,
}

impl Staging {
    pub(crate) fn new() -> Self {
        Self {
            slots: Mutex::new(None),
        }
    }
}

fn slot(dev: &Device) -> Result<Slot, CudaError> {
    // SAFETY: the memory is written by the host (below) before any copy reads it.
    let host = unsafe { dev.ctx.alloc_pinned::<u8>(STAGING_BYTES) }
        .map_err(CudaError::driver("pinned allocation"))?;
    let copied = dev
        .ctx
        .new_event(None)
        .map_err(CudaError::driver("event creation"))?;
    Ok(Slot { host, copied })
}

/// Copies `bytes` into a new device allocation on the copy stream and returns it with the event
/// that marks its arrival. `what` names the tensor in errors.
pub(crate) fn upload(
    dev: &Device,
    staging: &Staging,
    what: &str,
    bytes: &[u8],
) -> Result<(CudaSlice<u8>, CudaEvent), CudaError> {
    let len = bytes.len().max(1);
    // SAFETY: every byte of the allocation is written by the copies below before a kernel reads it
    // (the kernels wait on the returned event); a zero-length tensor's one byte is never read.
    let mut dst =
        unsafe { dev.copy.alloc::<u8>(len) }.map_err(|e| dev.alloc_error(what, len as u64, e))?;
    // Uploads from several prefetch workers take turns: the copy engine is one queue anyway.
    let mut guard = staging.slots.lock().unwrap_or_else(PoisonError::into_inner);
    if guard.is_none() {
        *guard = Some(slot(dev).and_then(|a| Ok([a, slot(dev)?])).ok());
    }
    match guard.as_mut().and_then(|s| s.as_mut()) {
        Some(slots) => {
            for (i, chunk) in bytes.chunks(STAGING_BYTES).enumerate() {
                let slot = &mut slots[i % 2];
                // The host may refill the buffer only once its previous copy has finished.
                slot.copied
                    .synchronize()
                    .map_err(CudaError::driver("event wait"))?;
                let host = slot
                    .host
                    .as_mut_slice()
                    .map_err(CudaError::driver("pinned access"))?;
                host[..chunk.len()].copy_from_slice(chunk);
                let start = i * STAGING_BYTES;
                let mut view = dst.slice_mut(start..start + chunk.len());
                let (ptr, _record_write) = view.device_ptr_mut(&dev.copy);
                // SAFETY: `ptr` addresses `chunk.len()` bytes of `dst` (the view's range), and
                // the host buffer stays untouched until `copied` (recorded right after) completes.
                unsafe {
                    cudarc::driver::result::memcpy_htod_async(
                        ptr,
                        &host[..chunk.len()],
                        dev.copy.cu_stream(),
                    )
                }
                .map_err(CudaError::driver("upload"))?;
                slot.copied
                    .record(&dev.copy)
                    .map_err(CudaError::driver("event record"))?;
            }
        }
        None => {
            // Pageable memory: the driver stages it itself before returning.
            dev.copy
                .memcpy_htod(bytes, &mut dst.slice_mut(..bytes.len()))
                .map_err(CudaError::driver("upload"))?;
        }
    }
    // Recorded before the lock goes, so that the event does not also cover the next upload's
    // copies (another worker's), which a kernel reading this weight need not wait for.
    let ready = dev
        .ctx
        .new_event(None)
        .map_err(CudaError::driver("event creation"))?;
    ready
        .record(&dev.copy)
        .map_err(CudaError::driver("event record"))?;
    drop(guard);
    Ok((dst, ready))
}
