//! Fast quantized matrix-vector products: the activation row is quantized once per matmul to
//! 16-bit integer blocks, then each weight row is dotted against it with integer arithmetic.
//!
//! ## Design
//! - Activations: Q4_0, Q4_1, Q5_0 and Q8_0 weights pair with blocks of 32 i16 values and an f32
//!   scale; Q4_K and Q6_K weights with blocks of 256. Both keep the sum of the values of every 32
//!   (the min and offset terms). Values are `d·q` with `d = amax/32767`, `q = round(x/d)`, so each
//!   differs from `x` by at most half a step: about 16-bit precision in one pass (8 bits alone
//!   drift by up to 2.5 in SmolLM2's logits over 30 layers).
//! - Weights are widened to i16 and multiplied pairwise into i32 (`madd`): one product per value.
//! - Kernels: `scalar.rs` is the portable reference (other CPUs, wasm without SIMD); `wasm.rs`
//!   has SIMD128 versions of the 32-value blocks' kernels; `x86.rs` has AVX2+FMA+F16C
//!   versions and AVX-512 VNNI ones (the same body; Q4_K on 512-bit vectors), the best picked at
//!   run time. Integer block sums are exact everywhere (each bound is stated where the sum is
//!   formed; Q6_K totals go through i64), and every path combines them with the same f32
//!   operations in the same order, so all give bit-identical results: 32-blocks add block `b` into
//!   lane `b % 8` of eight f32 lanes (the AVX2 path does eight blocks per vector) and sum the lanes
//!   in a fixed tree; Q4_K keeps sixteen lanes of value pairs and eight of mins (`Q4kLanes`), so
//!   no path sums horizontally per super-block; Q6_K adds one term per super-block.
//! - The result equals `dot(dequantized w, dequantized activations)` up to f32 rounding; its
//!   distance to the exact `dot(w, x)` is at most `0.5 · Σ_j |w_j| · amax_block(x)/32767` (plus
//!   rounding), the bound the tests check.
//! - Non-finite activations give unspecified (possibly NaN) results, never a panic.

mod activations;
mod conformance;
mod scalar;
#[cfg(test)]
mod tests;
#[cfg(all(target_family = "wasm", target_feature = "simd128"))]
mod wasm;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::quant::{GgmlType, QK_K};
use crate::{Error, Result};
use std::ops::Range;

/// Values per activation sum (`QuantizedActivations::sums`).
const SUM_BLOCK: usize = 32;

/// The largest activation magnitude: i16 without -32768, which bounds every product sum.
const QMAX: f32 = 32767.0;

/// Activations are zero-padded to a multiple of this many values, so SIMD kernels can treat the
/// last 32-value blocks of a row as a full group of eight (zero activations add nothing).
const PAD: usize = 8 * SUM_BLOCK;

pub use conformance::check_against_scalar;

/// Types with a fast kernel.
pub fn supports(ty: GgmlType) -> bool {
    activation_block(ty).is_some()
}

/// The activation block size the weight type pairs with, `None` for types without a fast kernel.
pub fn activation_block(ty: GgmlType) -> Option<usize> {
    use GgmlType::*;
    match ty {
        Q4_0 | Q4_1 | Q5_0 | Q8_0 => Some(32),
        Q4_K | Q6_K => Some(QK_K),
        _ => None,
    }
}

/// The activation row `x` (length k) quantized for dot products against weights of type `ty`.
#[derive(Debug, Clone)]
pub struct QuantizedActivations {
    /// The weight type it was made for (any type with the same `block` may use it too).
    ty: GgmlType,
    /// Values per scale: 32 or 256.
    block: usize,
    /// Number of values (k).
    k: usize,
    /// The k quantized values, in [-32767, 32767], then zeros up to a multiple of `PAD` values.
    qs: Vec<i16>,
    /// One scale per `block` values of `qs` (padding included, with scale 0).
    d: Vec<f32>,
    /// Sum of the quantized values of every 32 of `qs` (at most 32·32767 in magnitude).
    sums: Vec<i32>,
    /// `qs` in the interleaved layout of the x86 GEMM (empty until `interleave`): in each group
    /// of eight 32-blocks, vector `v` (16 values) lane pair `l` is value pair
    /// `8·(v % 8 / 4) + v % 4 + 4·(l / 4)` of block `4·(v / 8) + l % 4` of the group.
    interleaved: Vec<i16>,
}

impl QuantizedActivations {
    /// Number of values (k).
    pub fn len(&self) -> usize {
        self.k
    }

    /// Whether k is 0.
    pub fn is_empty(&self) -> bool {
        self.k == 0
    }

    /// The weight type these activations were quantized for.
    pub fn weight_type(&self) -> GgmlType {
        self.ty
    }

    /// Adds the layout in which this CPU's GEMM over several activation rows needs no horizontal
    /// sums (x86 with AVX2, 32-value blocks); elsewhere a no-op. Worth it only when the rows are
    /// dotted with many weight rows together, as in `gemm_rows`.
    pub fn interleave(&mut self) {
        if cfg!(target_arch = "x86_64")
            && self.block == SUM_BLOCK
            && self.interleaved.is_empty()
            && detected_isa() != Isa::Scalar
        {
            self.interleaved = activations::interleaved(&self.qs);
        }
    }

    /// Whether `interleave` has added its layout.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn has_interleaved(&self) -> bool {
        !self.interleaved.is_empty()
    }
}

/// Quantizes `x` (a whole number of activation blocks) for weights of type `ty`.
pub fn quantize_activations(ty: GgmlType, x: &[f32]) -> Result<QuantizedActivations> {
    let block = activation_block(ty).ok_or(Error::UnsupportedType {
        ty,
        op: "fast::quantize_activations",
    })?;
    if !x.len().is_multiple_of(block) {
        return Err(Error::BlockMisaligned {
            what: "fast::quantize_activations input".into(),
            len: x.len(),
            block,
            ty,
        });
    }
    Ok(activations::quantize(ty, block, x))
}

/// dot(w_row, x) for one weight row (k elements of `ty`, raw GGUF bytes).
pub fn dot(ty: GgmlType, w_row: &[u8], xq: &QuantizedActivations) -> Result<f32> {
    let row_bytes = check_pairing(ty, xq, "fast::dot")?;
    if w_row.len() != row_bytes {
        return Err(Error::SizeMismatch {
            what: format!("fast::dot weight row ({} elements of {ty})", xq.len()),
            expected: row_bytes as u64,
            actual: w_row.len() as u64,
        });
    }
    let mut out = [0.0];
    kernels(ty).gemv(w_row, row_bytes, xq, &mut out);
    Ok(out[0])
}

/// out[i] = dot(row i of w, x) for rows `rows` of a weight whose rows have `k` elements; this is the
/// hot loop (the caller splits rows across threads).
///
/// `w` holds whole rows (row `r` at byte `r · row_bytes`); `out` has one value per row of `rows`
/// (`out[i - rows.start]`).
pub fn gemv_rows(
    ty: GgmlType,
    w: &[u8],
    k: usize,
    xq: &QuantizedActivations,
    rows: Range<usize>,
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "fast::gemv_rows";
    let row_bytes = check_pairing(ty, xq, OP)?;
    if k != xq.len() {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "rows have k = {k} elements but the activations have {}",
                xq.len()
            ),
        });
    }
    if row_bytes == 0 {
        // k = 0: every row is empty and every dot product is 0.
        if !w.is_empty() || out.len() != rows.len() {
            return Err(Error::Shape {
                op: OP,
                detail: format!("k = 0 needs an empty weight and {} outputs", rows.len()),
            });
        }
        out.fill(0.0);
        return Ok(());
    }
    if !w.len().is_multiple_of(row_bytes) {
        return Err(Error::SizeMismatch {
            what: format!("{OP} weight (whole rows of {row_bytes} bytes, k = {k} of {ty})"),
            expected: (w.len() - w.len() % row_bytes) as u64,
            actual: w.len() as u64,
        });
    }
    let n = w.len() / row_bytes;
    if rows.start > rows.end || rows.end > n {
        return Err(Error::Shape {
            op: OP,
            detail: format!("rows {rows:?} out of a weight with {n} rows"),
        });
    }
    if out.len() != rows.len() {
        return Err(Error::SizeMismatch {
            what: format!("{OP} output (rows {rows:?})"),
            expected: rows.len() as u64,
            actual: out.len() as u64,
        });
    }
    let w = &w[rows.start * row_bytes..rows.end * row_bytes];
    kernels(ty).gemv(w, row_bytes, xq, out);
    Ok(())
}

/// Most activation rows one `gemm_rows` call takes.
pub const GEMM_MAX_X: usize = 16;

/// `out[i · xs.len() + j] = dot(row rows.start + i of w, xs[j])`: `gemv_rows` for several
/// activation rows at once (bit-identical to it), unpacking each weight block once for all of them.
pub fn gemm_rows(
    ty: GgmlType,
    w: &[u8],
    k: usize,
    xs: &[&QuantizedActivations],
    rows: Range<usize>,
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "fast::gemm_rows";
    let nx = xs.len();
    if nx == 0 || nx > GEMM_MAX_X || out.len() != rows.len() * nx {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "{nx} activation rows (1..={GEMM_MAX_X}) for {} outputs over rows {rows:?}",
                out.len()
            ),
        });
    }
    let Some(first) = xs.first() else {
        return Ok(());
    };
    for xq in xs {
        check_pairing(ty, xq, OP)?;
        if xq.len() != k {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "rows have k = {k} elements but activations have {}",
                    xq.len()
                ),
            });
        }
    }
    let row_bytes = check_pairing(ty, first, OP)?;
    if row_bytes == 0 || !w.len().is_multiple_of(row_bytes) || rows.end > w.len() / row_bytes {
        // k = 0 or a shape gemv_rows explains: one row of activations at a time.
        let mut result = Ok(());
        per_activation(xs, out, |xq, one| {
            if result.is_ok() {
                result = gemv_rows(ty, w, k, xq, rows.clone(), one);
            }
        });
        return result;
    }
    let w = &w[rows.start * row_bytes..rows.end * row_bytes];
    kernels(ty).gemm(w, row_bytes, xs, out);
    Ok(())
}

/// `gemm`'s layout from one activation row at a time: `one(xs[j], column)` fills a column of
/// `out.len() / xs.len()` values, which lands at `out[r · xs.len() + j]`.
fn per_activation(
    xs: &[&QuantizedActivations],
    out: &mut [f32],
    mut one: impl FnMut(&QuantizedActivations, &mut [f32]),
) {
    let nx = xs.len().max(1);
    let mut column = vec![0f32; out.len() / nx];
    for (j, xq) in xs.iter().enumerate() {
        one(xq, &mut column);
        for (r, v) in column.iter().enumerate() {
            out[r * nx + j] = *v;
        }
    }
}

/// Checks that `ty` has a kernel and `xq` has its activation layout; returns the bytes of one row.
fn check_pairing(ty: GgmlType, xq: &QuantizedActivations, op: &'static str) -> Result<usize> {
    let block = activation_block(ty).ok_or(Error::UnsupportedType { ty, op })?;
    if block != xq.block {
        return Err(Error::Shape {
            op,
            detail: format!(
                "activations quantized for {} (blocks of {}) cannot pair with {ty} weights (blocks of {block})",
                xq.ty, xq.block
            ),
        });
    }
    // `xq.len()` is a multiple of `block`, which is a multiple of the weight block size.
    Ok(xq.len() / ty.block_size() * ty.type_size())
}

/// Which implementation runs the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    /// Portable Rust; the reference.
    Scalar,
    /// AVX2 + FMA + F16C intrinsics (x86_64 only).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// `Avx2` with AVX-512 VNNI's i16 multiply-accumulate (on 256-bit vectors, and 512-bit ones
    /// with AVX-512 BW for Q4_K) (x86_64 only).
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
    /// WebAssembly SIMD128 (wasm builds with `+simd128` only; no run-time detection exists there).
    #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
    Simd128,
}

/// The implementations this CPU can run, best last (the scalar one always).
fn available_isas() -> Vec<Isa> {
    #[allow(unused_mut)]
    let mut isas = vec![Isa::Scalar];
    #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
    isas.push(Isa::Simd128);
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
        {
            isas.push(Isa::Avx2);
            if is_x86_feature_detected!("avx512vnni")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
            {
                isas.push(Isa::Avx512Vnni);
            }
        }
    }
    isas
}

/// The best implementation this CPU supports, detected once.
fn detected_isa() -> Isa {
    static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| available_isas().last().copied().unwrap_or(Isa::Scalar))
}

/// The kernels of one weight type on one implementation.
#[derive(Debug, Clone, Copy)]
struct Kernels {
    ty: GgmlType,
    isa: Isa,
}

fn kernels(ty: GgmlType) -> Kernels {
    Kernels {
        ty,
        isa: detected_isa(),
    }
}

impl Kernels {
    /// `out[r · xs.len() + j] = dot(row r of w, xs[j])` (shapes checked by the caller).
    fn gemm(self, w: &[u8], row_bytes: usize, xs: &[&QuantizedActivations], out: &mut [f32]) {
        match self.isa {
            Isa::Scalar => per_activation(xs, out, |xq, one| {
                scalar::gemv(self.ty, w, row_bytes, xq, one)
            }),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2` is only chosen when AVX2, FMA and F16C were detected at run time
            // (`available_isas`).
            Isa::Avx2 => unsafe { x86::gemm(self.ty, w, row_bytes, xs, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx512Vnni` is only chosen when AVX-512 F, BW, VL and VNNI were
            // detected too.
            Isa::Avx512Vnni => unsafe { x86::gemm_vnni(self.ty, w, row_bytes, xs, out) },
            #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
            Isa::Simd128 => wasm::gemm(self.ty, w, row_bytes, xs, out),
        }
    }

    /// `out[r] = dot(row r of w, xq)`; `w` holds `out.len()` rows of `row_bytes` (checked by the caller).
    fn gemv(self, w: &[u8], row_bytes: usize, xq: &QuantizedActivations, out: &mut [f32]) {
        if row_bytes == 0 {
            // k = 0: empty rows.
            out.fill(0.0);
            return;
        }
        self.gemm(w, row_bytes, &[xq], out);
    }
}
