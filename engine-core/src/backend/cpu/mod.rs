//! The CPU reference backend: the oracle every other backend is compared with.
//!
//! ## Design
//! Buffers are plain `Vec<f32>`; weights keep their GGUF bytes (quantized) and are dequantized row
//! by row inside each kernel. Those bytes are `HostBytes`: a view into the mapped file when the
//! weight store's source is memory-resident (no copy: a resident model costs about its file), else
//! the buffer a streamed read produced. Every op validates its lengths up front and returns
//! `Error::Shape` rather than panicking. Buffers may be larger than an op needs (scratch sized for
//! the longest batch): ops read and write only the prefix they need. Kernels run on a dedicated
//! thread pool (`threads.rs`), split over output rows; each output value is computed by one worker
//! in a fixed order, so results are bit-identical for any thread count.

mod attention;
mod elementwise;
mod embedding;
pub mod fast;
mod matmul;
mod norm;
mod rope;
mod softmax;
mod threads;

#[cfg(test)]
mod reference;

use super::{
    AttentionParams, Backend, CopyRowsParams, MatmulOut, MatmulShape, RmsNormParams, RopeParams,
    RowsParams, WeightDesc, WeightLayout,
};
use crate::quant::GgmlType;
use crate::store::HostBytes;
use crate::{Error, Result};
use std::future::Future;
use threads::Pool;

/// `f32` activations in host memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuBuffer(Vec<f32>);

impl CpuBuffer {
    /// The number of values.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the buffer holds no values.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values.
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// The values, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.0
    }

    /// Takes the values out.
    pub fn into_vec(self) -> Vec<f32> {
        self.0
    }
}

impl From<Vec<f32>> for CpuBuffer {
    fn from(v: Vec<f32>) -> Self {
        Self(v)
    }
}

/// A tensor as stored in the GGUF: its type, dims (`dims[0]` is the row length) and raw blocks,
/// borrowed from the mapped file where it can be. Equal when type, dims and bytes are.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuWeight {
    ggml_type: GgmlType,
    dims: Vec<u64>,
    bytes: HostBytes,
    row_len: usize,
    rows: usize,
}

impl CpuWeight {
    /// The stored element type.
    pub fn ggml_type(&self) -> GgmlType {
        self.ggml_type
    }

    /// The dims as in the GGUF (`dims[0]` is the row length).
    pub fn dims(&self) -> &[u64] {
        &self.dims
    }

    /// The raw (possibly quantized) bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// Values per row (`dims[0]`).
    pub fn row_len(&self) -> usize {
        self.row_len
    }

    /// Number of rows (the product of the remaining dims).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of values (`row_len * rows`).
    pub fn elements(&self) -> usize {
        self.row_len * self.rows
    }

    /// Bytes per row (whole blocks, since `row_len` is a multiple of the block size).
    pub(crate) fn row_bytes(&self) -> usize {
        self.row_len / self.ggml_type.block_size() * self.ggml_type.type_size()
    }

    /// The raw bytes of row `r` (checked by the caller: `r < rows`).
    pub(crate) fn row(&self, r: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.bytes.as_slice()[r * rb..(r + 1) * rb]
    }
}

/// How `matmul` computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatmulPath {
    /// Dequantize weight rows to `f32` and accumulate in `f32`: the reference.
    #[default]
    Exact,
    /// Activations quantized to 16-bit integer blocks, with integer SIMD dot products (`fast`)
    /// for the types it supports; the others take the exact path.
    Precise,
}

/// How to build a `CpuBackend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuConfig {
    /// Worker threads (at least 1); ignored on wasm, which runs single-threaded.
    pub threads: usize,
    pub path: MatmulPath,
}

impl Default for CpuConfig {
    /// All available cores, exact matmul.
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            threads,
            path: MatmulPath::Exact,
        }
    }
}

/// The CPU backend: host buffers, a persistent thread pool. Clones share the pool (prefetch
/// workers hold one to upload weights).
#[derive(Clone)]
pub struct CpuBackend {
    config: CpuConfig,
    pool: std::sync::Arc<Pool>,
}

impl std::fmt::Debug for CpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuBackend")
            .field("config", &self.config)
            .field("threads", &self.pool.threads())
            .finish()
    }
}

impl CpuBackend {
    /// Starts the thread pool; `Error::Config` for 0 threads or when threads cannot be spawned.
    pub fn new(config: CpuConfig) -> Result<Self> {
        Ok(Self {
            pool: std::sync::Arc::new(Pool::new(config.threads)?),
            config,
        })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> CpuConfig {
        self.config
    }

    /// Worker threads actually running (1 on wasm).
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }
}

pub(crate) use super::checks::{check_ids, need, shape_err, size};

/// Checks that weight `w` can be dequantized by the CPU kernels of `op`.
pub(crate) fn check_dequantizable(op: &'static str, w: &CpuWeight) -> Result<()> {
    if !w.ggml_type.can_dequantize() {
        return Err(Error::UnsupportedType {
            ty: w.ggml_type,
            op,
        });
    }
    Ok(())
}

/// Validates an upload of `len` bytes (a type the CPU can dequantize, rows of whole blocks, bytes
/// matching the dims), then takes the bytes `bytes` gives.
fn make_weight(
    desc: WeightDesc<'_>,
    len: usize,
    bytes: impl FnOnce() -> HostBytes,
) -> Result<CpuWeight> {
    let WeightLayout { row_len, rows } = WeightLayout::check(&desc, len)?;
    Ok(CpuWeight {
        ggml_type: desc.ggml_type,
        dims: desc.dims.to_vec(),
        bytes: bytes(),
        row_len,
        rows,
    })
}

impl Backend for CpuBackend {
    type Buffer = CpuBuffer;
    type Weight = CpuWeight;

    fn name(&self) -> String {
        "cpu".into()
    }

    fn upload_weight(&self, desc: WeightDesc<'_>, bytes: &[u8]) -> Result<CpuWeight> {
        make_weight(desc, bytes.len(), || bytes.to_vec().into())
    }

    fn upload_weight_owned(&self, desc: WeightDesc<'_>, bytes: Vec<u8>) -> Result<CpuWeight> {
        make_weight(desc, bytes.len(), || bytes.into())
    }

    fn upload_weight_host(&self, desc: WeightDesc<'_>, bytes: HostBytes) -> Result<CpuWeight> {
        make_weight(desc, bytes.len(), || bytes)
    }

    fn alloc(&self, len: usize) -> Result<CpuBuffer> {
        // Zeroed by the allocator: the OS hands out zero pages lazily, so a KV cache costs RAM
        // only as positions fill. Fails with an error rather than aborting when it cannot be had.
        let v = bytemuck::allocation::try_zeroed_vec::<f32>(len)
            .map_err(|()| shape_err("alloc", format!("cannot allocate {len} values")))?;
        Ok(CpuBuffer(v))
    }

    fn write(&self, buf: &mut CpuBuffer, data: &[f32]) -> Result<()> {
        need("write", "buffer", buf.len(), data.len())?;
        buf.0[..data.len()].copy_from_slice(data);
        Ok(())
    }

    fn download(&self, buf: &CpuBuffer, len: usize) -> impl Future<Output = Result<Vec<f32>>> {
        let r = need("download", "buffer", buf.len(), len).map(|()| buf.0[..len].to_vec());
        std::future::ready(r)
    }

    fn matmul(
        &self,
        w: &CpuWeight,
        bias: Option<&CpuWeight>,
        x: &CpuBuffer,
        out: &mut CpuBuffer,
        shape: MatmulShape,
    ) -> Result<()> {
        matmul::matmul(
            self.config.path,
            &self.pool,
            w,
            bias,
            &x.0,
            &mut out.0,
            shape,
        )
    }

    fn matmuls(
        &self,
        x: &CpuBuffer,
        m: usize,
        k: usize,
        outs: &mut [MatmulOut<'_, CpuWeight, CpuBuffer>],
    ) -> Result<()> {
        let mut outs: Vec<MatmulOut<'_, CpuWeight, [f32]>> = outs
            .iter_mut()
            .map(|o| MatmulOut {
                w: o.w,
                bias: o.bias,
                out: &mut o.out.0[..],
                n: o.n,
            })
            .collect();
        matmul::matmuls(self.config.path, &self.pool, &x.0, m, k, &mut outs)
    }

    fn dequant(&self, w: &CpuWeight, out: &mut CpuBuffer) -> Result<()> {
        embedding::dequant(&self.pool, w, &mut out.0)
    }

    fn embedding(&self, table: &CpuWeight, ids: &[u32], out: &mut CpuBuffer) -> Result<()> {
        embedding::embedding(&self.pool, table, ids, &mut out.0)
    }

    fn rms_norm(
        &self,
        x: &CpuBuffer,
        w: &CpuWeight,
        out: &mut CpuBuffer,
        p: RmsNormParams,
    ) -> Result<()> {
        norm::rms_norm(&self.pool, &x.0, w, &mut out.0, p)
    }

    fn rope(&self, x: &mut CpuBuffer, p: RopeParams) -> Result<()> {
        rope::rope(&self.pool, &mut x.0, p)
    }

    fn copy_rows(&self, src: &CpuBuffer, dst: &mut CpuBuffer, p: CopyRowsParams) -> Result<()> {
        elementwise::copy_rows(&src.0, &mut dst.0, p)
    }

    fn attention(
        &self,
        q: &CpuBuffer,
        k_cache: &CpuBuffer,
        v_cache: &CpuBuffer,
        out: &mut CpuBuffer,
        p: AttentionParams,
    ) -> Result<()> {
        attention::attention(&self.pool, &q.0, &k_cache.0, &v_cache.0, &mut out.0, p)
    }

    fn silu_mul(
        &self,
        gate: &CpuBuffer,
        up: &CpuBuffer,
        out: &mut CpuBuffer,
        len: usize,
    ) -> Result<()> {
        elementwise::silu_mul(&self.pool, &gate.0, &up.0, &mut out.0, len)
    }

    fn gelu_mul(
        &self,
        gate: &CpuBuffer,
        up: &CpuBuffer,
        out: &mut CpuBuffer,
        len: usize,
    ) -> Result<()> {
        elementwise::gelu_mul(&self.pool, &gate.0, &up.0, &mut out.0, len)
    }

    fn scale(&self, x: &mut CpuBuffer, factor: f32, len: usize) -> Result<()> {
        elementwise::scale(&self.pool, &mut x.0, factor, len)
    }

    fn add(&self, acc: &mut CpuBuffer, x: &CpuBuffer, len: usize) -> Result<()> {
        elementwise::add(&self.pool, &mut acc.0, &x.0, len)
    }

    fn softmax(&self, x: &mut CpuBuffer, p: RowsParams) -> Result<()> {
        softmax::softmax(&self.pool, &mut x.0, p)
    }

    fn argmax(&self, x: &CpuBuffer, p: RowsParams) -> impl Future<Output = Result<Vec<u32>>> {
        std::future::ready(softmax::argmax(&x.0, p))
    }
}

#[cfg(test)]
mod tests {
    use super::reference::*;
    use super::*;

    #[test]
    fn buffers_round_trip() {
        let b = backend(2);
        assert_eq!(b.name(), "cpu");
        assert_eq!(b.threads(), 2);
        let mut buf = b.alloc(5).expect("alloc");
        assert_eq!(buf.as_slice(), &[0.0; 5]);
        b.write(&mut buf, &[1.0, 2.0, 3.0]).expect("write");
        assert_eq!(download(&b, &buf, 4), vec![1.0, 2.0, 3.0, 0.0]);
        assert_shape_err(b.write(&mut buf, &[0.0; 6]), "write");
        assert_shape_err(block_on(b.download(&buf, 6)), "download");
    }

    #[test]
    fn zero_threads_is_a_config_error() {
        let r = CpuBackend::new(CpuConfig {
            threads: 0,
            path: MatmulPath::Exact,
        });
        assert!(matches!(r, Err(Error::Config(_))), "{r:?}");
    }

    #[test]
    fn upload_validates_type_dims_and_bytes() {
        let b = backend(1);
        let up = |ty, dims: &[u64], len| {
            let desc = WeightDesc {
                name: "t",
                ggml_type: ty,
                dims,
            };
            b.upload_weight(desc, &vec![0u8; len])
        };
        let w = up(GgmlType::Q4_K, &[512, 3], 2 * 144 * 3).expect("valid");
        assert_eq!((w.row_len(), w.rows(), w.elements()), (512, 3, 1536));
        assert_eq!(w.dims(), &[512, 3]);
        assert_eq!(w.bytes().len(), 864);
        assert_shape_err(
            up(GgmlType::Q4_K, &[512, 3], 2 * 144 * 3 - 1),
            "upload_weight",
        );
        assert_shape_err(up(GgmlType::Q4_K, &[100, 3], 144 * 3), "upload_weight");
        assert_shape_err(up(GgmlType::F32, &[], 0), "upload_weight");
        assert_shape_err(up(GgmlType::F32, &[u64::MAX, 2], 8), "upload_weight");
        assert!(matches!(
            up(GgmlType::IQ2_XXS, &[256], 66),
            Err(Error::UnsupportedType { .. })
        ));
        // Three dims: rows are the product of the outer two.
        let w = up(GgmlType::F16, &[4, 2, 3], 4 * 2 * 3 * 2).expect("3-d");
        assert_eq!((w.row_len(), w.rows()), (4, 6));
    }

    #[test]
    fn owned_and_host_uploads_keep_the_bytes_they_are_given() {
        let b = backend(1);
        let desc = WeightDesc {
            name: "t",
            ggml_type: GgmlType::F32,
            dims: &[4, 2],
        };
        let v = vec![1u8; 32];
        let ptr = v.as_ptr();
        let owned = b.upload_weight_owned(desc, v).expect("owned");
        assert_eq!(owned.bytes().as_ptr(), ptr);
        let host = HostBytes::from(vec![1u8; 32]);
        let ptr = host.as_ptr();
        let kept = b.upload_weight_host(desc, host).expect("host");
        assert_eq!(kept.bytes().as_ptr(), ptr);
        assert_eq!((kept.row(1), &kept), (&[1u8; 16][..], &owned));
        let short = HostBytes::from(vec![0u8; 31]);
        assert_shape_err(b.upload_weight_host(desc, short), "upload_weight");
    }
}
