//! Shape checks every backend makes before running an op, in one place so that all backends
//! refuse the same inputs with the same errors.

use super::{AttentionParams, RopeParams, WeightDesc};
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
        let len = size(OP, &[self.tokens, self.heads, head_dim])?;
        need(OP, "x", x_len, len)?;
        self.pos0
            .checked_add(self.tokens)
            .ok_or_else(|| shape_err(OP, "pos0 + tokens overflows"))?;
        Ok(len)
    }
}
