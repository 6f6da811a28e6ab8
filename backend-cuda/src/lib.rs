//! CUDA backend: kernels in `.cu` files compiled at run time with NVRTC, behind the engine's kernel
//! trait; weight uploads through pinned staging buffers on a dedicated copy stream, with events.
//!
//! ## Design
//! cudarc loads the driver and NVRTC dynamically, so this crate builds everywhere; `CudaBackend::new`
//! checks that both libraries load and that the device exists before touching them, and says which
//! is missing. Activations are `f32` device buffers on the compute stream; weights are their GGUF
//! bytes, uploaded on the copy stream, and every kernel that reads one decodes its blocks itself
//! (f32 dequantization and f32 accumulation, the CPU exact path's math). Ops check shapes on the
//! host with the shared checks and return `Error::Shape` as the CPU backend does. Kernels are
//! enqueued without waiting; `download` and `argmax` synchronise the compute stream.

mod bandwidth;
pub mod device;
mod error;
pub mod kernels;
mod ops;
mod upload;

pub use bandwidth::Bandwidth;
pub use device::{device_count, driver_present};
pub use error::CudaError;

use cudarc::driver::{CudaEvent, CudaSlice};
use device::Device;
use engine_core::backend::{
    AttentionParams, Backend, CopyRowsParams, MatmulShape, RmsNormParams, RopeParams, RowsParams,
    WeightDesc, WeightLayout,
};
use engine_core::quant::GgmlType;
use engine_core::Result;
use std::future::Future;
use std::sync::Arc;

/// `f32` activations on the device: `len` values.
pub struct CudaBuffer {
    data: CudaSlice<f32>,
    len: usize,
}

impl CudaBuffer {
    /// The number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A tensor on the device as stored in the GGUF, with the event that marks its upload's end.
pub struct CudaWeight {
    data: CudaSlice<u8>,
    ready: CudaEvent,
    ggml_type: GgmlType,
    dims: Vec<u64>,
    row_len: usize,
    rows: usize,
}

impl CudaWeight {
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

    /// Bytes on the device.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

struct Inner {
    dev: Device,
    staging: upload::Staging,
}

/// The CUDA backend on one device; clones share the device, its streams and its kernels.
#[derive(Clone)]
pub struct CudaBackend {
    inner: Arc<Inner>,
}

impl CudaBackend {
    /// The backend on device `index`: `Err` saying why when the driver or NVRTC cannot be loaded
    /// or there is no such device (never a panic).
    pub fn new(index: usize) -> std::result::Result<Self, CudaError> {
        Ok(Self {
            inner: Arc::new(Inner {
                dev: Device::open(index)?,
                staging: upload::Staging::new(),
            }),
        })
    }

    pub(crate) fn dev(&self) -> &Device {
        &self.inner.dev
    }

    /// The device's name (`NVIDIA H200`).
    pub fn device_name(&self) -> &str {
        &self.inner.dev.name
    }

    /// `(free, total)` bytes of device memory now.
    pub fn memory(&self) -> std::result::Result<(u64, u64), CudaError> {
        self.inner.dev.memory()
    }

    /// Compiles every kernel file now rather than on first use (benchmarks, warm-up).
    pub fn compile_all(&self) -> std::result::Result<(), CudaError> {
        for file in kernels::all() {
            for entry in file.entries {
                self.inner.dev.function(file, entry)?;
            }
        }
        Ok(())
    }

    /// Makes the compute stream wait until `w`'s upload has landed.
    pub(crate) fn ready(&self, w: &CudaWeight) -> std::result::Result<(), CudaError> {
        self.inner
            .dev
            .compute
            .wait(&w.ready)
            .map_err(CudaError::driver("stream wait"))
    }
}

impl Backend for CudaBackend {
    type Buffer = CudaBuffer;
    type Weight = CudaWeight;

    fn name(&self) -> String {
        format!("cuda ({})", self.inner.dev.name)
    }

    fn upload_weight(&self, desc: WeightDesc<'_>, bytes: &[u8]) -> Result<Self::Weight> {
        let WeightLayout { row_len, rows } = WeightLayout::check(&desc, bytes.len())?;
        let what = format!("tensor '{}'", desc.name);
        let (data, ready) = upload::upload(self.dev(), &self.inner.staging, &what, bytes)?;
        Ok(CudaWeight {
            data,
            ready,
            ggml_type: desc.ggml_type,
            dims: desc.dims.to_vec(),
            row_len,
            rows,
        })
    }

    fn alloc(&self, len: usize) -> Result<Self::Buffer> {
        ops::alloc(self, len)
    }

    fn write(&self, buf: &mut Self::Buffer, data: &[f32]) -> Result<()> {
        ops::write(self, buf, data)
    }

    fn download(&self, buf: &Self::Buffer, len: usize) -> impl Future<Output = Result<Vec<f32>>> {
        std::future::ready(ops::download(self, buf, len))
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
        ops::gather::dequant(self, w, out)
    }

    fn embedding(&self, table: &Self::Weight, ids: &[u32], out: &mut Self::Buffer) -> Result<()> {
        ops::gather::embedding(self, table, ids, out)
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
        ops::elementwise::copy_rows(self, src, dst, p)
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

    fn gelu_mul(
        &self,
        gate: &Self::Buffer,
        up: &Self::Buffer,
        out: &mut Self::Buffer,
        len: usize,
    ) -> Result<()> {
        ops::elementwise::gelu_mul(self, gate, up, out, len)
    }

    fn scale(&self, x: &mut Self::Buffer, factor: f32, len: usize) -> Result<()> {
        ops::elementwise::scale(self, x, factor, len)
    }

    fn add(&self, acc: &mut Self::Buffer, x: &Self::Buffer, len: usize) -> Result<()> {
        ops::elementwise::add(self, acc, x, len)
    }

    fn softmax(&self, x: &mut Self::Buffer, p: RowsParams) -> Result<()> {
        ops::rows::softmax(self, x, p)
    }

    fn argmax(&self, x: &Self::Buffer, p: RowsParams) -> impl Future<Output = Result<Vec<u32>>> {
        std::future::ready(ops::rows::argmax(self, x, p))
    }
}
