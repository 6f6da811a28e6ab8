//! WebGPU backend: WGSL kernels behind the engine's kernel trait, over a small driver seam
//! (`driver`) with a `wgpu` driver (native Vulkan/Metal/DX12) and a `web-sys` driver (the browser,
//! wasm32 and wasm64); kernels and dispatch logic stay above the seam.
//!
//! ## Design
//! Activations are `f32` storage buffers; weights are uploaded as their GGUF bytes (quantized
//! blocks) and every kernel that reads one decodes the blocks itself. Ops validate shapes on the
//! host and return `Error::Shape` as the CPU backend does.
//!
//! A weight larger than one storage binding is split by rows into parts that each fit one, and the
//! matmul, dequant and embedding ops run once per part; only a single row larger than a binding
//! is refused, with the limit and the excess named. Where the adapter has subgroups, the decode
//! matmul (GEMV) reduces with them; the workgroup-memory kernels are the fallback.

pub mod driver;
pub mod kernels;
mod ops;

#[cfg(not(target_family = "wasm"))]
pub use driver::WgpuDriver;
pub use driver::{DefaultDriver, DeviceLimits, Driver, SubgroupSizes};
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

/// Rows `row0..row0 + rows` of a weight, in one storage buffer that fits one binding.
pub(crate) struct WeightPart<B> {
    buf: B,
    row0: usize,
    rows: usize,
}

/// A tensor on the device as stored in the GGUF, in one or more row-range parts.
pub struct GpuWeight<B> {
    parts: Vec<WeightPart<B>>,
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

    pub(crate) fn layout(&self) -> engine_core::backend::WeightLayout {
        engine_core::backend::WeightLayout {
            row_len: self.row_len,
            rows: self.rows,
        }
    }

    /// Bytes of one row (whole blocks).
    pub fn row_bytes(&self) -> usize {
        self.row_len / self.ggml_type.block_size() * self.ggml_type.type_size()
    }

    /// How many storage buffers hold the weight (more than one when it exceeds a binding).
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// The one buffer of a weight that an op reads whole (norm weights, biases); `Err` naming the
    /// op when it was split, which only a weight larger than a storage binding is.
    pub(crate) fn whole(&self, op: &'static str) -> Result<&B> {
        match self.parts.as_slice() {
            [one] => Ok(&one.buf),
            parts => Err(Error::Config(format!(
                "{op}: a weight of {} rows is split into {} storage buffers; {op} reads it in one \
                 binding",
                self.rows,
                parts.len()
            ))),
        }
    }
}

/// Kernel choices beyond the baseline WGSL, each used only where the adapter has the feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelOptions {
    /// Reduce the decode matmul (GEMV) with subgroup operations.
    pub subgroups: bool,
    /// Most bytes of one weight part (default and ceiling: the adapter's storage binding limit).
    pub max_weight_part: u64,
}

/// The WebGPU backend over driver `D`; clones share the device.
#[derive(Clone)]
pub struct WebGpuBackend<D: Driver = DefaultDriver> {
    driver: D,
    options: KernelOptions,
}

#[cfg(not(target_family = "wasm"))]
impl WebGpuBackend<WgpuDriver> {
    /// The first adapter `wgpu` finds; `Err` saying why when there is none.
    pub fn new() -> Result<Self> {
        Ok(Self::with_driver(pollster::block_on(WgpuDriver::new())?))
    }
}

impl<D: Driver> WebGpuBackend<D> {
    /// The backend over `driver`, using every feature the adapter has.
    pub fn with_driver(driver: D) -> Self {
        let options = Self::supported(&driver);
        Self { driver, options }
    }

    /// The most the adapter allows: subgroups where it has them and suit the GEMV kernel, and
    /// weight parts as large as a binding (capped so kernels can index their bytes in `u32`).
    fn supported(driver: &D) -> KernelOptions {
        let limits = driver.limits();
        KernelOptions {
            subgroups: limits
                .subgroups
                .is_some_and(ops::matmul::subgroups_suit_gemv),
            max_weight_part: limits.max_storage_binding.min(u64::from(u32::MAX)) & !3,
        }
    }

    /// This backend with `options`, each limited to what the adapter supports: tests run both
    /// kernel paths, and a page may hold parts smaller than its adapter allows.
    pub fn with_options(mut self, options: KernelOptions) -> Self {
        let most = Self::supported(&self.driver);
        self.options = KernelOptions {
            subgroups: options.subgroups && most.subgroups,
            max_weight_part: options.max_weight_part.min(most.max_weight_part) & !3,
        };
        self
    }

    /// The options in force.
    pub fn options(&self) -> KernelOptions {
        self.options
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
        if self.options.subgroups {
            format!("{}, subgroups", self.driver.name())
        } else {
            self.driver.name()
        }
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
        ops::rows::argmax(self, x, p)
    }
}
