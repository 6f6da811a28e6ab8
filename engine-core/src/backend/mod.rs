//! The kernel trait every backend implements (CPU here; WebGPU and CUDA in their crates), with one
//! named parameter struct per op.
//!
//! ## Design
//! Weights are uploaded as stored in the GGUF (quantized blocks) and every op that reads them
//! dequantizes inside the kernel. Activations are `f32` buffers on the device. Ops validate their
//! shapes and return `Error::Shape` rather than reading out of bounds. Read-back (`download`,
//! `argmax`) is async so one forward pass serves the browser (where mapping a GPU buffer is a
//! promise) and native callers (who block on it). Static dispatch: a model is generic over `B`.

pub mod checks;
pub mod cpu;

pub use checks::{AttentionSizes, WeightLayout};
pub use cpu::{CpuBackend, CpuBuffer, CpuConfig, CpuWeight, MatmulPath};

use crate::quant::GgmlType;
use crate::store::HostBytes;
use crate::Result;
use std::future::Future;

/// A tensor to upload: its GGUF name, type and dims (`dims[0]` is the row length).
#[derive(Debug, Clone, Copy)]
pub struct WeightDesc<'a> {
    pub name: &'a str,
    pub ggml_type: GgmlType,
    pub dims: &'a [u64],
}

/// `out[m][n] = sum_k x[m][k] * w[n][k] (+ bias[n])`: `m` tokens, `n` weight rows, `k` row length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// RMS normalisation of `rows` rows of `dim` values, scaled by a weight of `dim` values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsNormParams {
    pub rows: usize,
    pub dim: usize,
    pub eps: f32,
}

/// How RoPE pairs the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(2i, 2i+1)`: llama.
    Normal,
    /// Halves `(i, i + rope_dim/2)`: GPT-NeoX, qwen2.
    Neox,
}

/// Rotary position embedding, in place, over `tokens` rows of `heads` heads of `head_dim` values.
/// Token `t` is at position `pos0 + t`. Only the first `rope_dim` values of each head rotate.
/// Not `Copy`: it may carry per-frequency factors (Llama 3.x), shared by reference count.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeParams {
    pub tokens: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub rope_dim: usize,
    pub pos0: usize,
    pub freq_base: f32,
    /// Linear position scaling: the angle uses `pos * freq_scale`.
    pub freq_scale: f32,
    pub style: RopeStyle,
    /// Per-pair divisors of the frequencies (`rope_freqs.weight`, `rope_dim / 2` of them, as
    /// ggml's `freq_factors`): pair `i`'s angle is divided by `freq_factors[i]`.
    pub freq_factors: Option<std::sync::Arc<[f32]>>,
    /// Multiplies the cosines and sines (ggml's `attn_factor`; 1 for none): with YaRN or
    /// Phi-3's long-context factors it scales q and k, so the scores by its square.
    pub attn_factor: f32,
    /// YaRN: pairs blend the interpolated (`freq_scale`) and the original angle by a ramp.
    pub yarn: Option<Yarn>,
}

/// YaRN's parameters, as ggml's `rope_yarn` takes them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Yarn {
    /// The context the model was trained on (`rope.scaling.original_context_length`).
    pub original_context: f32,
    pub beta_fast: f32,
    pub beta_slow: f32,
    /// How much of the ramp applies (1 for YaRN).
    pub ext_factor: f32,
}

/// Copy `rows` rows of `cols` values from row `src_row0` of `src` into `dst` from row `dst_row0`
/// (appending keys and values to a KV cache; taking the last position's hidden state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyRowsParams {
    pub rows: usize,
    pub cols: usize,
    pub src_row0: usize,
    pub dst_row0: usize,
}

/// Causal grouped-query attention of `tokens` queries at positions `pos0..pos0+tokens` over a KV
/// cache holding rows `0..pos0+tokens` of `kv_heads * head_dim` values. Query head `h` reads KV head
/// `h / (heads / kv_heads)`. Output: `tokens` rows of `heads * head_dim`. With a `window` of `w > 0`
/// (sliding-window layers) the query at position `p` sees keys `p+1-w ..= p` only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionParams {
    pub tokens: usize,
    pub pos0: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Multiplies `q·k` before the softmax (usually `1/sqrt(head_dim)`).
    pub scale: f32,
    /// Keys each query sees at most, itself included; 0 for all of them.
    pub window: usize,
}

impl AttentionParams {
    /// The first key row the query token `t` (0-based in the batch) sees.
    pub fn first_key(&self, t: usize) -> usize {
        let keys = self.pos0 + t + 1;
        match self.window {
            0 => 0,
            w => keys.saturating_sub(w),
        }
    }
}

/// `rows` rows of `cols` values (softmax, argmax).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowsParams {
    pub rows: usize,
    pub cols: usize,
}

/// One of several matmuls over the same input (`Backend::matmuls`): `out = x · wᵀ (+ bias)`, with
/// `n` outputs per token.
pub struct MatmulOut<'a, W, B: ?Sized> {
    pub w: &'a W,
    pub bias: Option<&'a W>,
    pub out: &'a mut B,
    pub n: usize,
}

/// The kernels an LLM forward pass needs, on some device.
pub trait Backend {
    /// `f32` activations on the device.
    type Buffer;
    /// A tensor on the device in its stored (possibly quantized) form. Prefetch workers upload
    /// weights and hand them to the forward pass, so they cross threads.
    type Weight: Send + Sync + 'static;

    /// A short name for logs and benchmarks (`cpu`, `webgpu (llvmpipe)`).
    fn name(&self) -> String;

    /// Uploads a tensor's raw GGUF bytes.
    fn upload_weight(&self, desc: WeightDesc<'_>, bytes: &[u8]) -> Result<Self::Weight>;
    /// Uploads bytes the caller no longer needs (a streamed read); a host-memory backend keeps
    /// them instead of copying.
    fn upload_weight_owned(&self, desc: WeightDesc<'_>, bytes: Vec<u8>) -> Result<Self::Weight> {
        self.upload_weight(desc, &bytes)
    }
    /// Uploads bytes shared in host memory (a view into the mapped file); a host-memory backend
    /// keeps the view, so a resident model costs about its file, not a copy of it.
    fn upload_weight_host(&self, desc: WeightDesc<'_>, bytes: HostBytes) -> Result<Self::Weight> {
        self.upload_weight(desc, &bytes)
    }
    /// A zeroed buffer of `len` values.
    fn alloc(&self, len: usize) -> Result<Self::Buffer>;
    /// Writes `data` to the start of `buf`.
    fn write(&self, buf: &mut Self::Buffer, data: &[f32]) -> Result<()>;
    /// Reads the first `len` values of `buf` back to the host.
    fn download(&self, buf: &Self::Buffer, len: usize) -> impl Future<Output = Result<Vec<f32>>>;

    /// Matrix product with the weight's dequantization fused in (GEMV when `m == 1`).
    fn matmul(
        &self,
        w: &Self::Weight,
        bias: Option<&Self::Weight>,
        x: &Self::Buffer,
        out: &mut Self::Buffer,
        shape: MatmulShape,
    ) -> Result<()>;
    /// Several matmuls of one input `x` (`m` tokens of `k` values), such as Q, K and V: a backend
    /// may prepare the input once and dispatch them as one job. Each result equals `matmul`'s.
    fn matmuls(
        &self,
        x: &Self::Buffer,
        m: usize,
        k: usize,
        outs: &mut [MatmulOut<'_, Self::Weight, Self::Buffer>],
    ) -> Result<()> {
        for o in outs {
            self.matmul(o.w, o.bias, x, o.out, MatmulShape { m, n: o.n, k })?;
        }
        Ok(())
    }
    /// Dequantizes a whole weight into `out`.
    fn dequant(&self, w: &Self::Weight, out: &mut Self::Buffer) -> Result<()>;
    /// Gathers rows `ids` of an embedding table (dequantized) into `out`.
    fn embedding(&self, table: &Self::Weight, ids: &[u32], out: &mut Self::Buffer) -> Result<()>;
    /// `out = x / rms(x) * w`, row by row.
    fn rms_norm(
        &self,
        x: &Self::Buffer,
        w: &Self::Weight,
        out: &mut Self::Buffer,
        p: RmsNormParams,
    ) -> Result<()>;
    /// Rotary position embedding, in place.
    fn rope(&self, x: &mut Self::Buffer, p: RopeParams) -> Result<()>;
    /// Copies rows into a larger buffer (KV cache append).
    fn copy_rows(
        &self,
        src: &Self::Buffer,
        dst: &mut Self::Buffer,
        p: CopyRowsParams,
    ) -> Result<()>;
    /// Causal GQA attention over the KV cache.
    fn attention(
        &self,
        q: &Self::Buffer,
        k_cache: &Self::Buffer,
        v_cache: &Self::Buffer,
        out: &mut Self::Buffer,
        p: AttentionParams,
    ) -> Result<()>;
    /// `out = silu(gate) * up` over `len` values.
    fn silu_mul(
        &self,
        gate: &Self::Buffer,
        up: &Self::Buffer,
        out: &mut Self::Buffer,
        len: usize,
    ) -> Result<()>;
    /// `out = gelu(gate) * up` over `len` values, GELU in its tanh form (GeGLU: Gemma).
    fn gelu_mul(
        &self,
        gate: &Self::Buffer,
        up: &Self::Buffer,
        out: &mut Self::Buffer,
        len: usize,
    ) -> Result<()>;
    /// `x *= factor` over `len` values (Gemma's embedding scale).
    fn scale(&self, x: &mut Self::Buffer, factor: f32, len: usize) -> Result<()>;
    /// `acc += x` over `len` values (residual connections).
    fn add(&self, acc: &mut Self::Buffer, x: &Self::Buffer, len: usize) -> Result<()>;
    /// Softmax of each row, in place.
    fn softmax(&self, x: &mut Self::Buffer, p: RowsParams) -> Result<()>;
    /// Index of the largest value of each row (the first one on ties).
    fn argmax(&self, x: &Self::Buffer, p: RowsParams) -> impl Future<Output = Result<Vec<u32>>>;
}
