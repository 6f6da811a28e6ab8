//! Causal grouped-query attention over the KV cache on the device: the CPU op's shape checks, then
//! attention.cu (online softmax over chunks of 64 keys). Long contexts with few (token, head)
//! pairs, decoding above all, split along the sequence so that more blocks share the keys; a second
//! kernel merges the splits' partial sums.

use super::{grid, launch, size, u32_of};
use crate::kernels::ATTENTION;
use crate::{CudaBackend, CudaBuffer};
use cudarc::driver::DeviceRepr;
use engine_core::backend::AttentionParams;
use engine_core::Result;

/// Threads per attention block and output dims one block covers (`ATT_THREADS`, `ATT_SLICE`).
const THREADS: u32 = 64;
const SLICE: usize = 256;
/// Keys per chunk of the online softmax; split lengths are multiples of it.
const KEY_CHUNK: usize = 64;
/// Below this many (token, head, slice) blocks the GPU has idle multiprocessors: split the keys.
const SPLIT_BELOW_BLOCKS: usize = 512;
/// Each split takes at least this many keys, and there are at most `MAX_SPLITS`.
const MIN_SPLIT_KEYS: usize = 256;
const MAX_SPLITS: usize = 32;
/// Threads of the combining kernel.
const COMBINE_THREADS: u32 = 128;

/// `AttentionParams` in attention.cu.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct AttentionArgs {
    tokens: u32,
    pos0: u32,
    heads: u32,
    group: u32,
    head_dim: u32,
    slices: u32,
    splits: u32,
    chunk: u32,
    scale: f32,
    window: u32,
    q_row: u64,
    kv_row: u64,
}

// SAFETY: plain old data, laid out as the CUDA struct.
unsafe impl DeviceRepr for AttentionArgs {}

/// How many splits for `blocks` blocks over at most `keys` keys, and the keys each takes.
fn splits(blocks: usize, keys: usize) -> (usize, usize) {
    if blocks >= SPLIT_BELOW_BLOCKS || keys < 2 * MIN_SPLIT_KEYS {
        return (1, keys.next_multiple_of(KEY_CHUNK));
    }
    let want = (keys / MIN_SPLIT_KEYS).clamp(1, MAX_SPLITS);
    let chunk = keys.div_ceil(want).next_multiple_of(KEY_CHUNK);
    (keys.div_ceil(chunk), chunk)
}

pub(crate) fn attention(
    b: &CudaBackend,
    q: &CudaBuffer,
    k_cache: &CudaBuffer,
    v_cache: &CudaBuffer,
    out: &mut CudaBuffer,
    p: AttentionParams,
) -> Result<()> {
    // The same name and checks as the CPU op, so both backends refuse the same shapes alike.
    const OP: &str = "attention";
    let AttentionParams {
        tokens,
        pos0,
        heads,
        kv_heads,
        head_dim,
        scale,
        window,
    } = p;
    let sizes = p.check(q.len, k_cache.len, v_cache.len, out.len)?;
    if sizes.q_len == 0 {
        return Ok(());
    }
    // Key indices are u32 in the kernel.
    u32_of(OP, "pos0 + tokens", sizes.kv_rows)?;
    let slices = head_dim.div_ceil(SLICE);
    let pairs = size(OP, &[tokens, heads])?;
    let (splits, chunk) = splits(size(OP, &[pairs, slices])?, sizes.kv_rows);
    let args = AttentionArgs {
        tokens: u32_of(OP, "tokens", tokens)?,
        pos0: u32_of(OP, "pos0", pos0)?,
        heads: u32_of(OP, "heads", heads)?,
        group: u32_of(OP, "group", heads / kv_heads)?,
        head_dim: u32_of(OP, "head_dim", head_dim)?,
        slices: u32_of(OP, "slices", slices)?,
        splits: u32_of(OP, "splits", splits)?,
        chunk: u32_of(OP, "chunk", chunk)?,
        scale,
        window: u32_of(OP, "window", window)?,
        q_row: (heads * head_dim) as u64,
        kv_row: (kv_heads * head_dim) as u64,
    };
    let blocks = size(OP, &[pairs, splits, slices])?;
    let cfg = grid(OP, blocks as u64, THREADS)?;
    let stream = &b.dev().compute;
    // Scratch for the splits' partial sums and (max, sum) pairs; one value each when unsplit
    // (the kernel does not touch them then).
    let (acc_len, ml_len) = if splits > 1 {
        let parts = size(OP, &[pairs, splits])?;
        (size(OP, &[parts, head_dim])?, size(OP, &[parts, 2])?)
    } else {
        (1, 1)
    };
    let alloc = |len: usize| {
        stream
            .alloc_zeros::<f32>(len)
            .map_err(|e| b.dev().alloc_error("attention scratch", len as u64 * 4, e))
    };
    let (part_acc, part_ml) = (alloc(acc_len)?, alloc(ml_len)?);
    let launched: Result<()> = launch!(
        b,
        ATTENTION,
        "attention_f32",
        cfg,
        &args,
        &q.data,
        &k_cache.data,
        &v_cache.data,
        &mut out.data,
        &part_acc,
        &part_ml
    );
    launched?;
    if splits == 1 {
        return Ok(());
    }
    let cfg = grid(OP, pairs as u64, COMBINE_THREADS)?;
    launch!(
        b,
        ATTENTION,
        "attention_combine_f32",
        cfg,
        &args,
        &part_acc,
        &part_ml,
        &mut out.data
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_only_long_contexts_with_few_blocks() {
        assert_eq!(splits(4096, 100_000).0, 1);
        assert_eq!(splits(9, 300), (1, 320));
        let (n, chunk) = splits(9, 4000);
        assert!(n > 1 && n <= MAX_SPLITS);
        assert_eq!(chunk % KEY_CHUNK, 0);
        assert!(n * chunk >= 4000 && (n - 1) * chunk < 4000);
        let (n, chunk) = splits(1, 1_000_000);
        assert_eq!(n, MAX_SPLITS.min(1_000_000usize.div_ceil(chunk)));
        assert!(n * chunk >= 1_000_000);
    }
}
