//! The store's index: which pages each tensor spans and which tensors make up each layer.

use crate::gguf::GgufFile;
use crate::quant::GgmlType;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

/// Where a tensor belongs in the forward pass. Orders as the pass runs: embeddings, blocks, head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LayerId {
    Embedding,
    Block(u32),
    Output,
    /// Tensors outside the llama-family naming (e.g. `rope_freqs.weight`).
    Other,
}

impl LayerId {
    /// Classifies a GGUF tensor name (`token_embd.weight`, `blk.3.ffn_up.weight`, `output_norm.weight`).
    pub fn of_tensor(name: &str) -> Self {
        if let Some(rest) = name.strip_prefix("blk.") {
            if let Some(n) = rest.split('.').next().and_then(|n| n.parse().ok()) {
                return LayerId::Block(n);
            }
        }
        match name.split('.').next() {
            Some("token_embd") => LayerId::Embedding,
            Some("output" | "output_norm") => LayerId::Output,
            _ => LayerId::Other,
        }
    }
}

impl fmt::Display for LayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerId::Embedding => f.write_str("embedding"),
            LayerId::Block(n) => write!(f, "blk.{n}"),
            LayerId::Output => f.write_str("output"),
            LayerId::Other => f.write_str("other"),
        }
    }
}

/// One tensor: where its bytes are and which pages hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    pub name: String,
    pub ggml_type: GgmlType,
    pub dims: Vec<u64>,
    /// Absolute byte range in the source.
    pub range: Range<u64>,
    /// Pages (of the data section) the range touches.
    pub pages: Range<u64>,
    pub layer: LayerId,
}

/// One layer: its tensors, their bytes, and the pages to fetch to make it resident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    pub id: LayerId,
    /// Indices into `WeightStore::tensors`.
    pub tensors: Vec<usize>,
    /// Sum of the tensors' bytes.
    pub bytes: u64,
    /// Disjoint, sorted page ranges covering the tensors.
    pub pages: Vec<Range<u64>>,
}

pub(super) fn tensor_entries(file: &GgufFile, page_size: u64) -> Vec<TensorEntry> {
    file.tensors
        .iter()
        .map(|t| {
            let range = file.data_range(t);
            let first = t.offset / page_size;
            let end = if t.n_bytes == 0 {
                first
            } else {
                (t.offset + t.n_bytes).div_ceil(page_size)
            };
            TensorEntry {
                name: t.name.clone(),
                ggml_type: t.ggml_type,
                dims: t.dims.clone(),
                range,
                pages: first..end,
                layer: LayerId::of_tensor(&t.name),
            }
        })
        .collect()
}

pub(super) fn layer_entries(tensors: &[TensorEntry]) -> Vec<LayerEntry> {
    let mut by_layer: BTreeMap<LayerId, Vec<usize>> = BTreeMap::new();
    for (i, t) in tensors.iter().enumerate() {
        by_layer.entry(t.layer).or_default().push(i);
    }
    by_layer
        .into_iter()
        .map(|(id, idx)| {
            let bytes = idx
                .iter()
                .map(|&i| tensors[i].range.end - tensors[i].range.start)
                .sum();
            let mut ranges: Vec<Range<u64>> = idx
                .iter()
                .map(|&i| tensors[i].pages.clone())
                .filter(|r| !r.is_empty())
                .collect();
            ranges.sort_by_key(|r| r.start);
            let mut pages: Vec<Range<u64>> = Vec::new();
            for r in ranges {
                match pages.last_mut() {
                    Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                    _ => pages.push(r),
                }
            }
            LayerEntry {
                id,
                tensors: idx,
                bytes,
                pages,
            }
        })
        .collect()
}
