//! WebGPU backend: WGSL kernels behind the engine's kernel trait, over a small driver seam
//! (`driver`) with a `wgpu` driver (native Vulkan/Metal/DX12) and a `web-sys` driver (the browser,
//! wasm32 and wasm64); kernels and dispatch logic stay above the seam.
//!
//! ## Design
//! Activations are `f32` storage buffers; weights are uploaded as their GGUF bytes (quantized
//! blocks) and every kernel that reads one decodes the blocks itself. Ops validate shapes on the
//! host and return `Error::Shape` as the CPU backend does. A tensor larger than the adapter's
//! storage binding limit is refused with the limit and the excess named.

pub mod driver;
pub mod kernels;
mod ops;

#[cfg(not(target_family = "wasm"))]
pub use driver::WgpuDriver;
pub use driver::{DefaultDriver, DeviceLimits, Driver};
#[cfg(target_family = "wasm")]
pub use driver::{WebSysBuffer, WebSysDriver};

use engine_core::backend::{
    AttentionParams, Backend, CopyRowsParams, MatmulShape, RmsNormParams, RopeParams, RowsParams,
    WeightDesc,
};
use engine_core::quant::GgmlType;
use engine_core::{Error, Result};
use std::future::Future;

/// `f32` activations on the device: `len` values.
pub struct GpuBuffer<B> {
    buf: B,
    len: usize,
}

impl<B> GpuBuffer<B> {
    /// The number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A tensor on the device as stored in the GGUF.
pub struct GpuWeight<B> {
    buf: B,
    ggml_type: GgmlType,
    dims: Vec<u64>,
    row_len: usize,
    rows: usize,
}

impl<B> GpuWeight<B> {
    pub fn ggml_type(&self) -> GgmlType {
        self.ggml_type
    }

    pub fn dims(&self) -> &[u64] {
        &self.dims
    }

    /// Values per row (`dims[0]`).
    pub fn row_len(&self) -> usize {
        self.row_len
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes of one row (whole blocks).
    pub fn row_bytes(&self) -> usize {
        self.row_len / self.ggml_type.block_size() * self.ggml_type.type_size()
    }
}

/// The WebGPU backend over driver `D`; clones share the device.
#[derive(Clone)]
pub struct WebGpuBackend<D: Driver = DefaultDriver> {
    driver: D,
}

#[cfg(not(target_family = "wasm"))]
impl WebGpuBackend<WgpuDriver> {
    /// The first adapter `wgpu` finds; `Err` saying why when there is none.
    pub fn new() -> Result<Self> {
        Ok(Self::with_driver(pollster::block_on(WgpuDriver::new())?))
    }
}

impl<D: Driver> WebGpuBackend<D> {
    pub fn with_driver(driver: D) -> Self {
        Self { driver }
    }

    pub fn driver(&self) -> &D {
        &self.driver
    }

    /// Checks that `bytes` fit one storage binding of the adapter.
    pub(crate) fn check_binding(&self, what: &str, bytes: u64) -> Result<()> {
        let limit = self.driver.limits().max_storage_binding;
        if bytes > limit {
            return Err(Error::Config(format!(
                "{what} needs {bytes} bytes in one storage binding; the adapter's \
                 max_storage_buffer_binding_size is {limit} ({} bytes short)",
                bytes - limit
            )));
        }
        Ok(())
    }
}

impl<D: Driver> Backend for WebGpuBackend<D> {
    type Buffer = GpuBuffer<D::Buf>;
    type Weight = GpuWeight<D::Buf>;

    fn name(&self) -> String {
        self.driver.name()
    }

    fn upload_weight(&self, desc: WeightDesc<'_>, bytes: &[u8]) -> Result<Self::Weight> {
        ops::upload_weight(self, desc, bytes)
    }

    fn alloc(&self, len: usize) -> Result<Self::Buffer> {
        let bytes = ops::f32_bytes("alloc", len)?;
        self.check_binding("a buffer", bytes)?;
        Ok(GpuBuffer {
            buf: self.driver.create_buffer(bytes, "activations")?,
            len,
        })
    }

    fn write(&self, buf: &mut Self::Buffer, data: &[f32]) -> Result<()> {
        ops::need("write", "buffer", buf.len, data.len())?;
        self.driver.write(&buf.buf, 0, bytemuck::cast_slice(data))
    }

    fn download(&self, buf: &Self::Buffer, len: usize) -> impl Future<Output = Result<Vec<f32>>> {
        let checked = ops::need("download", "buffer", buf.len, len);
        let read = self.driver.read(&buf.buf, 0, len.max(1) as u64 * 4);
        async move {
            checked?;
            let bytes = read.await?;
            Ok(bytemuck::pod_collect_to_vec(&bytes))
        }
    }

    fn matmul(
        &self,
        w: &Self::Weight,
        bias: Option<&Self::Weight>,
        x: &Self::Buffer,
        out: &mut Self::Buffer,
        shape: MatmulShape,
    ) -> Result<()> {
        ops::matmul::matmul(self, w, bias, x, out, shape)
    }

    fn dequant(&self, w: &Self::Weight, out: &mut Self::Buffer) -> Result<()> {
        ops::matmul::dequant(self, w, out)
    }

    fn embedding(&self, table: &Self::Weight, ids: &[u32], out: &mut Self::Buffer) -> Result<()> {
        ops::matmul::embedding(self, table, ids, out)
    }

    fn rms_norm(
        &self,
        x: &Self::Buffer,
        w: &Self::Weight,
        out: &mut Self::Buffer,
        p: RmsNormParams,
    ) -> Result<()> {
        ops::rows::rms_norm(self, x, w, out, p)
    }

    fn rope(&self, x: &mut Self::Buffer, p: RopeParams) -> Result<()> {
        ops::rope::rope(self, x, p)
    }

    fn copy_rows(
        &self,
        src: &Self::Buffer,
        dst: &mut Self::Buffer,
        p: CopyRowsParams,
    ) -> Result<()> {
        ops::rows::copy_rows(self, src, dst, p)
    }

    fn attention(
        &self,
        q: &Self::Buffer,
        k_cache: &Self::Buffer,
        v_cache: &Self::Buffer,
        out: &mut Self::Buffer,
        p: AttentionParams,
    ) -> Result<()> {
        ops::attention::attention(self, q, k_cache, v_cache, out, p)
    }

    fn silu_mul(
        &self,
        gate: &Self::Buffer,
        up: &Self::Buffer,
        out: &mut Self::Buffer,
        len: usize,
    ) -> Result<()> {
        ops::elementwise::silu_mul(self, gate, up, out, len)
    }

    fn add(&self, acc: &mut Self::Buffer, x: &Self::Buffer, len: usize) -> Result<()> {
        ops::elementwise::add(self, acc, x, len)
    }

    fn softmax(&self, x: &mut Self::Buffer, p: RowsParams) -> Result<()> {
        ops::rows::softmax(self, x, p)
    }

    fn argmax(&self, x: &Self::Buffer, p: RowsParams) -> impl Future<Output = Result<Vec<u32>>> {
        ops::rows::argmax(self, x, p)
    }
}
