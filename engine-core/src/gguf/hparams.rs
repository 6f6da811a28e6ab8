//! Typed views of the metadata a llama-family forward pass and a tokenizer need.

use super::value::{Metadata, Value};
use super::GgufError;

/// Hyperparameters of a llama-family model (`llama`, `qwen2`, and relatives with the same keys).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LlamaHparams {
    pub architecture: String,
    pub context_length: u64,
    pub embedding_length: u64,
    pub block_count: u64,
    pub feed_forward_length: u64,
    pub head_count: u64,
    pub head_count_kv: u64,
    /// Per-head key size; `embedding_length / head_count` unless the file says otherwise.
    pub key_length: u64,
    pub value_length: u64,
    pub rms_norm_eps: f32,
    pub rope_freq_base: f32,
    pub rope_dimension_count: u64,
    /// Linear RoPE scaling factor (1.0 when absent).
    pub rope_scale: f32,
    pub vocab_size: u64,
}

impl LlamaHparams {
    /// Reads `{arch}.*` keys; required ones missing give `MissingKey`, wrong types `WrongValueType`.
    pub fn from_metadata(m: &Metadata) -> Result<Self, GgufError> {
        let arch = Metadata::require("general.architecture", m.get_str("general.architecture"))?
            .to_string();
        let key = |k: &str| format!("{arch}.{k}");
        let req = |k: &str| Metadata::require(&key(k), m.get_u64(&key(k)));
        let embedding_length = req("embedding_length")?;
        let head_count = req("attention.head_count")?;
        if head_count == 0 {
            return Err(GgufError::WrongValueType {
                key: key("attention.head_count"),
                expected: "positive integer",
                found: "zero",
            });
        }
        let head_dim = embedding_length / head_count;
        let key_length = m.get_u64(&key("attention.key_length"))?.unwrap_or(head_dim);
        let vocab_size = match m.get_u64(&key("vocab_size"))? {
            Some(v) => v,
            None => m
                .get_array("tokenizer.ggml.tokens")?
                .map_or(0, |a| a.len() as u64),
        };
        let rope_scale = match m.get_f32(&key("rope.scaling.factor"))? {
            Some(f) if f > 0.0 => f,
            _ => 1.0,
        };
        Ok(Self {
            context_length: req("context_length")?,
            block_count: req("block_count")?,
            feed_forward_length: req("feed_forward_length")?,
            head_count_kv: m
                .get_u64(&key("attention.head_count_kv"))?
                .unwrap_or(head_count),
            value_length: m
                .get_u64(&key("attention.value_length"))?
                .unwrap_or(head_dim),
            rms_norm_eps: m
                .get_f32(&key("attention.layer_norm_rms_epsilon"))?
                .unwrap_or(1e-5),
            rope_freq_base: m.get_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            rope_dimension_count: m
                .get_u64(&key("rope.dimension_count"))?
                .unwrap_or(key_length),
            embedding_length,
            head_count,
            key_length,
            rope_scale,
            vocab_size,
            architecture: arch,
        })
    }
}

/// What a tokenizer section holds, in brief.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TokenizerSummary {
    /// `tokenizer.ggml.model`: `gpt2`, `llama`, ...
    pub model: Option<String>,
    /// `tokenizer.ggml.pre`: the pre-tokenizer name.
    pub pre: Option<String>,
    pub n_tokens: u64,
    pub n_merges: u64,
    pub bos_token_id: Option<u64>,
    pub eos_token_id: Option<u64>,
    pub unknown_token_id: Option<u64>,
    pub padding_token_id: Option<u64>,
    pub add_bos_token: Option<bool>,
    pub add_eos_token: Option<bool>,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub has_chat_template: bool,
    pub chat_template_len: u64,
}

impl TokenizerSummary {
    pub fn from_metadata(m: &Metadata) -> Result<Self, GgufError> {
        let tokens = m.get_array("tokenizer.ggml.tokens")?;
        let token_text = |id: Option<u64>| -> Option<String> {
            let tokens = tokens?;
            match tokens.get(usize::try_from(id?).ok()?)? {
                Value::String(s) => Some(s),
                _ => None,
            }
        };
        let bos_token_id = m.get_u64("tokenizer.ggml.bos_token_id")?;
        let eos_token_id = m.get_u64("tokenizer.ggml.eos_token_id")?;
        let template = m.get_str("tokenizer.chat_template")?;
        Ok(Self {
            model: m.get_str("tokenizer.ggml.model")?.map(str::to_string),
            pre: m.get_str("tokenizer.ggml.pre")?.map(str::to_string),
            n_tokens: tokens.map_or(0, |a| a.len() as u64),
            n_merges: m
                .get_array("tokenizer.ggml.merges")?
                .map_or(0, |a| a.len() as u64),
            unknown_token_id: m.get_u64("tokenizer.ggml.unknown_token_id")?,
            padding_token_id: m.get_u64("tokenizer.ggml.padding_token_id")?,
            add_bos_token: m.get_bool("tokenizer.ggml.add_bos_token")?,
            add_eos_token: m.get_bool("tokenizer.ggml.add_eos_token")?,
            bos_token: token_text(bos_token_id),
            eos_token: token_text(eos_token_id),
            bos_token_id,
            eos_token_id,
            has_chat_template: template.is_some(),
            chat_template_len: template.map_or(0, |t| t.len() as u64),
        })
    }
}
