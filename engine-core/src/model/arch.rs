//! The architectures the forward pass implements and what sets each apart from llama: RoPE
//! pairing, per-head q/k norms, norms after the attention and MLP outputs, the MLP's gate
//! activation, the embedding scale, sliding-window layers with their own RoPE base, and fused
//! projection tensors (read as row ranges of one GGUF tensor).

use crate::backend::RopeStyle;
use crate::gguf::{LlamaHparams, Metadata};
use crate::{Error, Result};

/// The architectures the forward pass implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
    Gemma3,
    /// Phi-3: fused `attn_qkv` and `ffn_up` (gate then up) tensors, NeoX RoPE.
    Phi3,
}

/// The gate activation of the MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SwiGLU: `silu(gate) · up`.
    Silu,
    /// GeGLU with GELU's tanh form: `gelu(gate) · up`.
    GeluTanh,
}

impl Arch {
    /// From `general.architecture`; anything else is `UnsupportedArchitecture`, naming it.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "llama" => Ok(Arch::Llama),
            "qwen2" => Ok(Arch::Qwen2),
            "qwen3" => Ok(Arch::Qwen3),
            "gemma3" => Ok(Arch::Gemma3),
            "phi3" => Ok(Arch::Phi3),
            other => Err(Error::UnsupportedArchitecture(other.to_string())),
        }
    }

    /// llama's converter permutes q/k for adjacent-pair RoPE; the others keep the NeoX halves.
    pub fn rope_style(self) -> RopeStyle {
        match self {
            Arch::Llama => RopeStyle::Normal,
            Arch::Qwen2 | Arch::Qwen3 | Arch::Gemma3 | Arch::Phi3 => RopeStyle::Neox,
        }
    }

    /// Whether q and k are RMS-normed per head (`attn_q_norm`, `attn_k_norm`) before RoPE.
    pub fn qk_norm(self) -> bool {
        matches!(self, Arch::Qwen3 | Arch::Gemma3)
    }

    /// Whether the attention and MLP outputs are RMS-normed (`post_attention_norm`,
    /// `post_ffw_norm`) before they join the residual stream.
    pub fn post_norms(self) -> bool {
        self == Arch::Gemma3
    }

    pub fn activation(self) -> Activation {
        match self {
            Arch::Gemma3 => Activation::GeluTanh,
            _ => Activation::Silu,
        }
    }

    /// What the embedding rows are multiplied by (Gemma: √dim, in f32 as llama.cpp does).
    pub fn embedding_scale(self, hparams: &LlamaHparams) -> Option<f32> {
        (self == Arch::Gemma3).then(|| (hparams.embedding_length as f32).sqrt())
    }
}

/// How one layer attends: its RoPE base and its window (0: every earlier position).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerAttention {
    pub freq_base: f32,
    pub window: usize,
}

/// Gemma 3's defaults where the file does not say (llama.cpp's): five sliding-window layers,
/// then one global, and a RoPE base of 10 000 on the sliding ones.
const GEMMA3_PATTERN: u64 = 6;
const GEMMA3_SWA_FREQ_BASE: f32 = 10_000.0;

/// Each layer's attention, from the hyperparameters and the architecture's own keys.
pub fn layer_attention(
    arch: Arch,
    hparams: &LlamaHparams,
    m: &Metadata,
) -> Result<Vec<LayerAttention>> {
    let global = LayerAttention {
        freq_base: hparams.rope_freq_base,
        window: 0,
    };
    let layers = hparams.block_count as usize;
    if arch != Arch::Gemma3 {
        return Ok(vec![global; layers]);
    }
    let key = |k: &str| format!("{}.{k}", hparams.architecture);
    let window = m
        .get_u64(&key("attention.sliding_window"))?
        .ok_or_else(|| {
            Error::Config(format!("gemma3 needs {}", key("attention.sliding_window")))
        })?;
    let window = usize::try_from(window)
        .ok()
        .filter(|&w| w > 0)
        .ok_or_else(|| Error::Config(format!("sliding window {window} is not a positive size")))?;
    let pattern = m
        .get_u64(&key("attention.sliding_window_pattern"))?
        .unwrap_or(GEMMA3_PATTERN)
        .max(1);
    let swa_base = m
        .get_f32(&key("rope.freq_base_swa"))?
        .unwrap_or(GEMMA3_SWA_FREQ_BASE);
    Ok((0..layers as u64)
        .map(|i| match i % pattern < pattern - 1 {
            true => LayerAttention {
                freq_base: swa_base,
                window,
            },
            false => global,
        })
        .collect())
}
