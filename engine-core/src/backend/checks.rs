//! Shape checks every backend makes before running an op, in one place so that all backends
//! refuse the same inputs with the same errors.

use super::{AttentionParams, CopyRowsParams, MatmulShape, RmsNormParams, RopeParams, WeightDesc};
use crate::quant::GgmlType;
use crate::{Error, Result};

/// `Error::Shape` for `op`.
pub fn shape_err(op: &'static str, detail: impl Into<String>) -> Error {
    Error::Shape {
        op,
        detail: detail.into(),
    }
}

/// The product of `factors`, or `Error::Shape` when it overflows `usize`.
pub fn size(op: &'static str, factors: &[usize]) -> Result<usize> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .ok_or_else(|| shape_err(op, format!("size {factors:?} overflows")))
}

/// Checks that buffer `what` holds at least `needed` values.
pub fn need(op: &'static str, what: &str, have: usize, needed: usize) -> Result<()> {
    if have < needed {
        return Err(shape_err(
            op,
            format!("{what} holds {have} values, {needed} needed"),
        ));
    }
    Ok(())
}

/// Rows and row length of a tensor to upload, checked against its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightLayout {
    /// Values per row (`dims[0]`), a whole number of blocks.
    pub row_len: usize,
    /// The product of the other dims.
    pub rows: usize,
}

impl WeightLayout {
    /// A type the CPU can decode (every backend decodes the same set), rows of whole blocks, and
    /// exactly the bytes the dims call for.
    pub fn check(desc: &WeightDesc<'_>, byte_len: usize) -> Result<Self> {
        const OP: &str = "upload_weight";
        let ty = desc.ggml_type;
        if !ty.can_dequantize() {
            return Err(Error::UnsupportedType { ty, op: OP });
        }
        let to_usize = |d: u64| {
            usize::try_from(d)
                .map_err(|_| shape_err(OP, format!("'{}': dim {d} too large", desc.name)))
        };
        let (&first, rest) = desc
            .dims
            .split_first()
            .ok_or_else(|| shape_err(OP, format!("'{}' has no dims", desc.name)))?;
        let row_len = to_usize(first)?;
        let rest = rest
            .iter()
            .map(|&d| to_usize(d))
            .collect::<Result<Vec<_>>>()?;
        let rows = size(OP, &rest)?;
        // Callers multiply these; make sure it cannot overflow.
        size(OP, &[row_len, rows])?;
        let block = ty.block_size();
        if !row_len.is_multiple_of(block) {
            return Err(shape_err(
                OP,
                format!(
                    "'{}': row length {row_len} is not a multiple of the {ty} block size {block}",
                    desc.name
                ),
            ));
        }
        let expected = size(OP, &[row_len / block, ty.type_size(), rows])?;
        if byte_len != expected {
            return Err(shape_err(
                OP,
                format!(
                    "'{}' ({ty}, dims {:?}) needs {expected} bytes, got {byte_len}",
                    desc.name, desc.dims
                ),
            ));
        }
        Ok(Self { row_len, rows })
    }
}

/// The sizes an attention call reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionSizes {
    /// Values of `q` and of `out`.
    pub q_len: usize,
    /// Cache rows read (`pos0 + tokens`).
    pub kv_rows: usize,
    /// Values of each cache read.
    pub kv_len: usize,
}

impl AttentionParams {
    /// Checks the head ratio and the buffers' lengths.
    pub fn check(&self, q: usize, k: usize, v: usize, out: usize) -> Result<AttentionSizes> {
        const OP: &str = "attention";
        let AttentionParams {
            tokens,
            pos0,
            heads,
            kv_heads,
            head_dim,
            ..
        } = *self;
        if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(shape_err(
                OP,
                format!("heads {heads} must be a multiple of kv_heads {kv_heads} (> 0)"),
            ));
        }
        let kv_rows = pos0
            .checked_add(tokens)
            .ok_or_else(|| shape_err(OP, "pos0 + tokens overflows"))?;
        let q_len = size(OP, &[tokens, heads, head_dim])?;
        let kv_len = size(OP, &[kv_rows, kv_heads, head_dim])?;
        need(OP, "q", q, q_len)?;
        need(OP, "out", out, q_len)?;
        need(OP, "k_cache", k, kv_len)?;
        need(OP, "v_cache", v, kv_len)?;
        Ok(AttentionSizes {
            q_len,
            kv_rows,
            kv_len,
        })
    }
}

impl RopeParams {
    /// Checks `rope_dim` and the buffer; returns the values rotated over (`tokens·heads·head_dim`).
    pub fn check(&self, x_len: usize) -> Result<usize> {
        const OP: &str = "rope";
        let (rope_dim, head_dim) = (self.rope_dim, self.head_dim);
        if rope_dim > head_dim || !rope_dim.is_multiple_of(2) {
            return Err(shape_err(
                OP,
                format!("rope_dim {rope_dim} must be even and at most head_dim {head_dim}"),
            ));
        }
        if let Some(f) = &self.freq_factors {
            if f.len() != rope_dim / 2 {
                return Err(shape_err(
                    OP,
                    format!(
                        "{} frequency factors for {} rotated pairs",
                        f.len(),
                        rope_dim / 2
                    ),
                ));
            }
        }
        let len = size(OP, &[self.tokens, self.heads, head_dim])?;
        need(OP, "x", x_len, len)?;
        self.pos0
            .checked_add(self.tokens)
            .ok_or_else(|| shape_err(OP, "pos0 + tokens overflows"))?;
        Ok(len)
    }
}

/// The sizes a matmul reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulSizes {
    /// Values of `x` read (`m·k`).
    pub mk: usize,
    /// Values of `out` written (`m·n`).
    pub mn: usize,
}

impl MatmulShape {
    /// Checks the weight (`w`, with `dims` for the message) against the shape, a bias of
    /// `bias_values` values, and the buffers' lengths.
    pub fn check(
        &self,
        w: WeightLayout,
        dims: &[u64],
        bias_values: Option<usize>,
        x_len: usize,
        out_len: usize,
    ) -> Result<MatmulSizes> {
        const OP: &str = "matmul";
        let MatmulShape { m, n, k } = *self;
        if w.row_len != k || w.rows != n {
            return Err(shape_err(
                OP,
                format!(
                    "weight has {} rows of {} (dims {dims:?}), the shape asks for n={n} rows of \
                     k={k}",
                    w.rows, w.row_len
                ),
            ));
        }
        let mk = size(OP, &[m, k])?;
        let mn = size(OP, &[m, n])?;
        need(OP, "x", x_len, mk)?;
        need(OP, "out", out_len, mn)?;
        if let Some(values) = bias_values.filter(|&v| v != n) {
            return Err(shape_err(OP, format!("bias has {values} values, n is {n}")));
        }
        Ok(MatmulSizes { mk, mn })
    }
}

impl RmsNormParams {
    /// Checks the weight's length and the buffers; returns the values normalised (`rows·dim`).
    pub fn check(&self, weight_values: usize, x_len: usize, out_len: usize) -> Result<usize> {
        const OP: &str = "rms_norm";
        let dim = self.dim;
        if weight_values != dim {
            return Err(shape_err(
                OP,
                format!("weight has {weight_values} values, dim is {dim}"),
            ));
        }
        let len = size(OP, &[self.rows, dim])?;
        need(OP, "x", x_len, len)?;
        need(OP, "out", out_len, len)?;
        Ok(len)
    }
}

impl CopyRowsParams {
    /// Checks both buffers hold their rows; returns the values copied (`rows·cols`).
    pub fn check(&self, src_len: usize, dst_len: usize) -> Result<usize> {
        const OP: &str = "copy_rows";
        let end = |row0: usize| {
            let last = row0
                .checked_add(self.rows)
                .ok_or_else(|| shape_err(OP, "rows overflow"))?;
            size(OP, &[last, self.cols])
        };
        need(OP, "src", src_len, end(self.src_row0)?)?;
        need(OP, "dst", dst_len, end(self.dst_row0)?)?;
        size(OP, &[self.rows, self.cols])
    }
}

/// Checks every token id against a table of `rows` rows, before anything is written, so a bad id
/// leaves the output untouched.
pub fn check_ids(op: &'static str, ids: &[u32], rows: usize) -> Result<()> {
    match ids.iter().enumerate().find(|(_, &id)| id as usize >= rows) {
        Some((i, &id)) => Err(shape_err(
            op,
            format!("token id {id} (position {i}) is out of range: the table has {rows} rows"),
        )),
        None => Ok(()),
    }
}

/// The code GPU kernels take for a float weight read whole (a bias, a norm weight): 1 for F32,
/// 2 for F16; other types are refused for `op`.
pub fn float_type_code(op: &'static str, ty: GgmlType) -> Result<u32> {
    match ty {
        GgmlType::F32 => Ok(1),
        GgmlType::F16 => Ok(2),
        ty => Err(Error::UnsupportedType { ty, op }),
    }
}

impl RopeParams {
    /// `[cos, sin]` of each token's angle for each rotated pair, token-major, in f64: the table
    /// GPU kernels read, so every backend rotates by the same correctly rounded angles. Call after
    /// [`RopeParams::check`]. As ggml's `rope_yarn`: pair `i`'s original angle is
    /// `pos · base^(-2i/rope_dim) / freq_factors[i]`, the interpolated one that times
    /// `freq_scale`; YaRN mixes them by its ramp and raises the magnitude by `0.1·ln(1/freq_scale)`;
    /// both are scaled by `attn_factor`.
    pub fn angle_table(&self) -> Vec<[f64; 2]> {
        let half = self.rope_dim / 2;
        let factor = |i: usize| {
            self.freq_factors
                .as_ref()
                .and_then(|f| f.get(i))
                .map_or(1.0, |&f| f64::from(f))
        };
        let inv_freq: Vec<f64> = (0..half)
            .map(|i| {
                f64::from(self.freq_base).powf(-2.0 * i as f64 / self.rope_dim as f64) / factor(i)
            })
            .collect();
        let scale = f64::from(self.freq_scale);
        let mut mscale = f64::from(self.attn_factor);
        // Per pair, how much of the original (extrapolated) angle YaRN keeps.
        let mix: Vec<f64> = match self.yarn {
            None => vec![0.0; half],
            Some(y) if y.ext_factor == 0.0 => vec![0.0; half],
            Some(y) => {
                let (low, high) = yarn_corr_dims(self.rope_dim, self.freq_base, y);
                mscale *= 1.0 + 0.1 * (1.0 / scale).ln();
                (0..half)
                    .map(|i| {
                        let ramp = (i as f64 - low) / (high - low).max(0.001);
                        (1.0 - ramp.clamp(0.0, 1.0)) * f64::from(y.ext_factor)
                    })
                    .collect()
            }
        };
        (0..self.tokens)
            .flat_map(|t| {
                let pos = (self.pos0 + t) as f64;
                let mix = &mix;
                inv_freq.iter().zip(mix).map(move |(&f, &m)| {
                    let extrap = pos * f;
                    let interp = scale * extrap;
                    let theta = if m == 0.0 {
                        interp
                    } else {
                        interp * (1.0 - m) + extrap * m
                    };
                    let (s, c) = theta.sin_cos();
                    [c * mscale, s * mscale]
                })
            })
            .collect()
    }
}

/// YaRN's correction range of pair indices, as ggml's `ggml_rope_yarn_corr_dims`: the pairs that
/// turn `beta_fast` and `beta_slow` times over the original context, floored and ceiled, clamped to
/// the rotated pairs.
fn yarn_corr_dims(rope_dim: usize, base: f32, y: super::Yarn) -> (f64, f64) {
    let dims = rope_dim as f64;
    let corr = |rotations: f32| {
        dims * (f64::from(y.original_context) / (f64::from(rotations) * 2.0 * std::f64::consts::PI))
            .ln()
            / (2.0 * f64::from(base).ln())
    };
    let low = corr(y.beta_fast).floor().max(0.0);
    let high = corr(y.beta_slow).ceil().min(dims - 1.0);
    (low, high)
}
