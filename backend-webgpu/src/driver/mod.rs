//! The driver seam: the few things the WebGPU backend asks of a GPU API — buffers, writes,
//! compute dispatches of a WGSL kernel, and asynchronous reads. Everything above it (kernels,
//! dispatch shapes, validation) is shared by the `wgpu` driver (native) and the `web-sys` driver
//! (the browser, wasm32 and wasm64).

#[cfg(target_family = "wasm")]
mod web_sys_driver;
#[cfg(not(target_family = "wasm"))]
mod wgpu_driver;

#[cfg(target_family = "wasm")]
pub use web_sys_driver::{WebSysBuffer, WebSysDriver};
#[cfg(not(target_family = "wasm"))]
pub use wgpu_driver::WgpuDriver;

/// The driver this target builds: `wgpu` natively, `web-sys` in the browser.
#[cfg(not(target_family = "wasm"))]
pub type DefaultDriver = WgpuDriver;
/// The driver this target builds: `wgpu` natively, `web-sys` in the browser.
#[cfg(target_family = "wasm")]
pub type DefaultDriver = WebSysDriver;

use crate::kernels::Kernel;
use engine_core::Result;
use std::future::Future;

/// Limits of the adapter that decide how tensors are laid out and split, and which kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceLimits {
    pub max_buffer_size: u64,
    pub max_storage_binding: u64,
    pub max_workgroups_per_dim: u32,
    /// Subgroup sizes, when the device was opened with subgroup operations.
    pub subgroups: Option<SubgroupSizes>,
}

/// The smallest and largest subgroup the adapter may run a kernel with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubgroupSizes {
    pub min: u32,
    pub max: u32,
}

/// A GPU API as the backend uses it. Handles are cheap clones (prefetch workers upload with one).
pub trait Driver: Clone + Send + Sync + 'static {
    /// A storage buffer on the device.
    type Buf: Send + Sync + 'static;

    /// The adapter, for logs and benchmarks (`webgpu (llvmpipe, Vulkan)`).
    fn name(&self) -> String;
    fn limits(&self) -> DeviceLimits;
    /// A zeroed storage buffer of `bytes` (a multiple of 4).
    fn create_buffer(&self, bytes: u64, label: &str) -> Result<Self::Buf>;
    /// Writes `data` (a multiple of 4 bytes) at `offset`, ordered after every dispatch before it.
    fn write(&self, buf: &Self::Buf, offset: u64, data: &[u8]) -> Result<()>;
    /// Runs `kernel` over `workgroups`, with `uniforms` at binding 0 and `buffers` at 1, 2, ...
    /// A kernel that uses subgroups is only dispatched where `limits().subgroups` is set.
    fn dispatch(
        &self,
        kernel: &'static Kernel,
        uniforms: &[u8],
        buffers: &[&Self::Buf],
        workgroups: [u32; 3],
    ) -> Result<()>;
    /// Copies `len` bytes from `src` at `src_offset` to `dst` at `dst_offset` (multiples of 4).
    fn copy(
        &self,
        src: &Self::Buf,
        src_offset: u64,
        dst: &Self::Buf,
        dst_offset: u64,
        len: u64,
    ) -> Result<()>;
    /// Reads `len` bytes at `offset` back, after every dispatch before it.
    /// The future holds no borrow of the driver or the buffer.
    fn read(
        &self,
        buf: &Self::Buf,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = Result<Vec<u8>>> + use<Self>;
}
