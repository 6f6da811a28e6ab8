//! The llama-family layer plan: the steps of a forward pass (embedding, blocks, output head) and the
//! GGUF tensors each reads, in the order the forward pass indexes them.

use super::Arch;
use crate::gguf::LlamaHparams;
use crate::schedule::{LayerPlan, PlanStep, PlannedTensor};
use crate::source::ByteSource;
use crate::store::{LayerId, WeightStore};
use crate::{Error, Result};
use std::collections::HashMap;
use std::ops::Range;

/// Positions of a block step's tensors.
pub(super) const ATTN_NORM: usize = 0;
pub(super) const WQ: usize = 1;
pub(super) const WK: usize = 2;
pub(super) const WV: usize = 3;
pub(super) const WO: usize = 4;
pub(super) const FFN_NORM: usize = 5;
pub(super) const W_GATE: usize = 6;
pub(super) const W_UP: usize = 7;
pub(super) const W_DOWN: usize = 8;
const BLOCK_WEIGHTS: [&str; 9] = [
    "attn_norm",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_norm",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];
const BLOCK_BIASES: [&str; 3] = ["attn_q", "attn_k", "attn_v"];

/// Positions in `BlockLayout::norms` of the norms some architectures add.
pub(super) const Q_NORM: usize = 0;
pub(super) const K_NORM: usize = 1;
pub(super) const POST_ATTN_NORM: usize = 2;
pub(super) const POST_FFN_NORM: usize = 3;
const BLOCK_NORMS: [&str; 4] = [
    "attn_q_norm",
    "attn_k_norm",
    "post_attention_norm",
    "post_ffw_norm",
];

/// Where a block's optional tensors sit in its step: q/k/v biases (qwen2 has them, llama not) and
/// the extra norms (`BLOCK_NORMS`: per-head q/k norms for qwen3 and gemma3, post-norms for gemma3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct BlockLayout {
    pub biases: [Option<usize>; 3],
    pub norms: [Option<usize>; 4],
}

/// Which of `BLOCK_NORMS` the architecture needs.
fn needed_norms(arch: Arch) -> [bool; 4] {
    let (qk, post) = (arch.qk_norm(), arch.post_norms());
    [qk, qk, post, post]
}

/// What the device holds for a planned tensor: a whole GGUF tensor, or some of its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TensorPart {
    pub name: String,
    /// `None`: the whole tensor.
    pub rows: Option<Range<u64>>,
}

/// A model's plan with what the forward pass needs to walk it.
pub(super) struct ModelPlan {
    pub plan: LayerPlan,
    /// Per planned tensor, what to upload.
    pub parts: Vec<TensorPart>,
    pub layouts: Vec<BlockLayout>,
    /// Rows of the output head each output step computes (one step unless the head is split).
    pub head_rows: Vec<Range<u64>>,
}

/// How the plan is laid out for a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PlanKind {
    /// Everything on the device: the embedding table is step 0's tensor, the head one step.
    Resident,
    /// Streamed: embedding rows are gathered on the host (step 0 holds nothing on the device),
    /// and a head larger than the largest block is split into row slices no larger than it, so
    /// that no single step dominates the streaming window.
    Streamed,
}

/// The plan of a llama-family model in `store`, with each block's layout.
pub(super) fn llama_plan<S: ByteSource>(
    store: &WeightStore<S>,
    hparams: &LlamaHparams,
    arch: Arch,
    kind: PlanKind,
) -> Result<ModelPlan> {
    let mut builder = Builder::default();
    let mut steps = Vec::with_capacity(hparams.block_count as usize + 2);
    let embd_entry = store.tensor("token_embd.weight")?;
    let embd = match kind {
        PlanKind::Resident => vec![builder.tensor(store, "token_embd.weight")?],
        PlanKind::Streamed => Vec::new(),
    };
    steps.push(PlanStep {
        layer: LayerId::Embedding,
        tensors: embd,
    });
    let mut layouts = Vec::with_capacity(hparams.block_count as usize);
    let blocks = u32::try_from(hparams.block_count)
        .map_err(|_| Error::Config(format!("{} blocks is too many", hparams.block_count)))?;
    for i in 0..blocks {
        check_block_shapes(store, hparams, arch, i)?;
        let mut tensors = match fused_block(store, hparams, arch, i)? {
            Some(parts) => parts
                .into_iter()
                .map(|(name, rows)| match rows {
                    None => builder.tensor(store, &name),
                    Some(rows) => builder.rows(store, &name, rows),
                })
                .collect::<Result<Vec<_>>>()?,
            None => BLOCK_WEIGHTS
                .iter()
                .map(|w| builder.tensor(store, &format!("blk.{i}.{w}.weight")))
                .collect::<Result<Vec<_>>>()?,
        };
        let mut layout = BlockLayout::default();
        for (slot, b) in layout.biases.iter_mut().zip(BLOCK_BIASES) {
            let name = format!("blk.{i}.{b}.bias");
            match store.tensor(&name) {
                Ok(_) => {
                    *slot = Some(tensors.len());
                    tensors.push(builder.tensor(store, &name)?);
                }
                Err(Error::TensorNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        // The norms the architecture needs must be there (a missing one names itself).
        for ((slot, n), needed) in layout
            .norms
            .iter_mut()
            .zip(BLOCK_NORMS)
            .zip(needed_norms(arch))
        {
            if needed {
                *slot = Some(tensors.len());
                tensors.push(builder.tensor(store, &format!("blk.{i}.{n}.weight"))?);
            }
        }
        layouts.push(layout);
        steps.push(PlanStep {
            layer: LayerId::Block(i),
            tensors,
        });
    }
    let norm = builder.tensor(store, "output_norm.weight")?;
    // A missing `output.weight` means the head is tied to the embedding table.
    let head = match store.tensor("output.weight") {
        Ok(t) => t,
        Err(Error::TensorNotFound(_)) => embd_entry,
        Err(e) => return Err(e),
    };
    let head_len = head.range.end - head.range.start;
    let head_rows_total: u64 = head.dims.iter().skip(1).product();
    let largest_block = steps
        .iter()
        .skip(1)
        .map(|s| s.tensors.iter().map(|&t| builder.parts[t].1).sum::<u64>())
        .max()
        .unwrap_or(head_len);
    let slice_rows = match kind {
        PlanKind::Streamed if head_len > largest_block && head_rows_total > 0 => {
            let row_bytes = (head_len / head_rows_total).max(1);
            (largest_block / row_bytes).clamp(1, head_rows_total)
        }
        _ => head_rows_total.max(1),
    };
    let mut head_rows = Vec::new();
    let mut row = 0;
    while row < head_rows_total.max(1) {
        let end = (row + slice_rows).min(head_rows_total);
        let part = match (row, end) == (0, head_rows_total) {
            true => builder.tensor(store, &head.name)?,
            false => builder.rows(store, &head.name, row..end)?,
        };
        let tensors = match head_rows.is_empty() {
            true => vec![norm, part],
            false => vec![part],
        };
        steps.push(PlanStep {
            layer: LayerId::Output,
            tensors,
        });
        head_rows.push(row..end);
        if end == row {
            break;
        }
        row = end;
    }
    let (tensors, parts): (Vec<PlannedTensor>, Vec<TensorPart>) = builder
        .parts
        .into_iter()
        .map(|(part, bytes)| {
            let t = PlannedTensor {
                name: match &part.rows {
                    None => part.name.clone(),
                    Some(r) => format!("{}[rows {}..{}]", part.name, r.start, r.end),
                },
                bytes,
            };
            (t, part)
        })
        .unzip();
    Ok(ModelPlan {
        plan: LayerPlan::new(tensors, steps)?,
        parts,
        layouts,
        head_rows,
    })
}

/// Checks that block `i`'s tensors have the shapes the hyperparameters declare (`[row length,
/// rows]`), so a mismatched file fails at load with the tensor's name, not mid-pass.
fn check_block_shapes<S: ByteSource>(
    store: &WeightStore<S>,
    hparams: &LlamaHparams,
    arch: Arch,
    i: u32,
) -> Result<()> {
    let dim = hparams.embedding_length;
    let hd = hparams.key_length;
    let (q, kv) = (hparams.head_count * hd, hparams.head_count_kv * hd);
    let ffn = hparams.feed_forward_length;
    let fused = arch == Arch::Phi3 && store.tensor(&format!("blk.{i}.attn_qkv.weight")).is_ok();
    let mut want: Vec<(&str, Vec<u64>)> = vec![
        ("attn_norm", vec![dim]),
        ("attn_output", vec![q, dim]),
        ("ffn_norm", vec![dim]),
        ("ffn_down", vec![ffn, dim]),
    ];
    if fused {
        want.extend([
            ("attn_qkv", vec![dim, q + 2 * kv]),
            ("ffn_up", vec![dim, 2 * ffn]),
        ]);
    } else {
        want.extend([
            ("attn_q", vec![dim, q]),
            ("attn_k", vec![dim, kv]),
            ("attn_v", vec![dim, kv]),
            ("ffn_gate", vec![dim, ffn]),
            ("ffn_up", vec![dim, ffn]),
        ]);
    }
    if arch.qk_norm() {
        want.extend([("attn_q_norm", vec![hd]), ("attn_k_norm", vec![hd])]);
    }
    if arch.post_norms() {
        want.extend([
            ("post_attention_norm", vec![dim]),
            ("post_ffw_norm", vec![dim]),
        ]);
    }
    for (w, dims) in want {
        let name = format!("blk.{i}.{w}.weight");
        let t = store.tensor(&name)?;
        if t.dims != dims {
            return Err(Error::Shape {
                op: "load",
                detail: format!(
                    "'{name}' is {:?} but the hyperparameters make it {dims:?}",
                    t.dims
                ),
            });
        }
    }
    Ok(())
}

/// A Phi-3 block's `BLOCK_WEIGHTS` as (tensor, rows) when its projections are fused: q, k and v
/// are rows of `attn_qkv` (in that order), gate and up the two halves of `ffn_up`. `None` for an
/// unfused block. Their row counts were checked by `check_block_shapes`, which runs first.
#[allow(clippy::type_complexity)]
fn fused_block<S: ByteSource>(
    store: &WeightStore<S>,
    hparams: &LlamaHparams,
    arch: Arch,
    i: u32,
) -> Result<Option<Vec<(String, Option<Range<u64>>)>>> {
    let qkv = format!("blk.{i}.attn_qkv.weight");
    if arch != Arch::Phi3 || store.tensor(&qkv).is_err() {
        return Ok(None);
    }
    let q = hparams.head_count * hparams.key_length;
    let kv = hparams.head_count_kv * hparams.key_length;
    let ffn = hparams.feed_forward_length;
    let up = format!("blk.{i}.ffn_up.weight");
    let whole = |w: &str| (format!("blk.{i}.{w}.weight"), None);
    let rows = |name: &String, r: Range<u64>| (name.clone(), Some(r));
    Ok(Some(vec![
        whole("attn_norm"),
        rows(&qkv, 0..q),
        rows(&qkv, q..q + kv),
        rows(&qkv, q + kv..q + 2 * kv),
        whole("attn_output"),
        whole("ffn_norm"),
        rows(&up, 0..ffn),
        rows(&up, ffn..2 * ffn),
        whole("ffn_down"),
    ]))
}

#[derive(Default)]
struct Builder {
    parts: Vec<(TensorPart, u64)>,
    by_name: HashMap<String, usize>,
}

impl Builder {
    fn tensor<S: ByteSource>(&mut self, store: &WeightStore<S>, name: &str) -> Result<usize> {
        if let Some(&i) = self.by_name.get(name) {
            return Ok(i);
        }
        let t = store.tensor(name)?;
        let part = TensorPart {
            name: name.to_string(),
            rows: None,
        };
        self.parts.push((part, t.range.end - t.range.start));
        self.by_name.insert(name.to_string(), self.parts.len() - 1);
        Ok(self.parts.len() - 1)
    }

    fn rows<S: ByteSource>(
        &mut self,
        store: &WeightStore<S>,
        name: &str,
        rows: Range<u64>,
    ) -> Result<usize> {
        let bytes = row_range(store, name, &rows)?;
        let part = TensorPart {
            name: name.to_string(),
            rows: Some(rows),
        };
        self.parts.push((part, bytes.end - bytes.start));
        Ok(self.parts.len() - 1)
    }
}

/// The absolute byte range of rows `rows` of a tensor whose rows are `dims[0]` values each.
pub(super) fn row_range<S: ByteSource>(
    store: &WeightStore<S>,
    name: &str,
    rows: &Range<u64>,
) -> Result<Range<u64>> {
    let t = store.tensor(name)?;
    let total: u64 = t.dims.iter().skip(1).product();
    let len = t.range.end - t.range.start;
    if rows.start > rows.end || rows.end > total || total == 0 {
        return Err(Error::Config(format!(
            "rows {}..{} of '{name}', which has {total}",
            rows.start, rows.end
        )));
    }
    let row_bytes = len / total;
    Ok(t.range.start + rows.start * row_bytes..t.range.start + rows.end * row_bytes)
}
