//! A model's RoPE scaling, read at load: linear (`rope.scaling.factor`), Llama 3.x's per-pair
//! divisors (`rope_freqs.weight`), Phi-3's long-context divisors (`rope_factors_long` /
//! `_short`, chosen by the session's context against the original one, with their magnitude
//! factor) and YaRN. Every scaling ends in the backend-independent angle table
//! (`RopeParams::angle_table`), so all backends rotate alike.

use crate::backend::Yarn;
use crate::gguf::{LlamaHparams, Metadata};
use crate::source::ByteSource;
use crate::store::WeightStore;
use crate::{Error, Result};
use std::sync::Arc;

/// YaRN's defaults where the file does not say (llama.cpp's).
const YARN_BETA_FAST: f32 = 32.0;
const YARN_BETA_SLOW: f32 = 1.0;

/// How a model's RoPE angles are scaled, beyond `rope_scale` (in the hyperparameters).
#[derive(Debug, Clone, Default)]
pub struct RopeScaling {
    /// `rope_freqs.weight`: the same divisors at every context.
    pub freqs: Option<Arc<[f32]>>,
    /// Phi-3: divisors for sessions longer than `original_context`, and for the others.
    pub long: Option<Arc<[f32]>>,
    pub short: Option<Arc<[f32]>>,
    pub original_context: u64,
    /// `rope.scaling.attn_factor` (1 when absent).
    pub attn_factor: f32,
    pub yarn: Option<Yarn>,
}

impl RopeScaling {
    /// The divisors a session of `context` positions rotates with.
    pub fn factors(&self, context: usize) -> Option<Arc<[f32]>> {
        if let Some(f) = &self.freqs {
            return Some(f.clone());
        }
        match context as u64 > self.original_context {
            true => self.long.clone(),
            false => self.short.clone(),
        }
    }
}

/// Reads the scaling of the model in `store`; a scaling it does not know is an error naming it.
pub fn read<S: ByteSource>(
    store: &WeightStore<S>,
    hparams: &LlamaHparams,
    m: &Metadata,
) -> Result<RopeScaling> {
    let key = |k: &str| format!("{}.rope.scaling.{k}", hparams.architecture);
    let kind = m.get_str(&key("type"))?.map(str::to_string);
    let original_context = m.get_u64(&key("original_context_length"))?;
    let attn_factor = m.get_f32(&key("attn_factor"))?.unwrap_or(1.0);
    if !(attn_factor.is_finite() && attn_factor > 0.0) {
        return Err(Error::Config(format!(
            "{} is {attn_factor}: it must be a positive number",
            key("attn_factor")
        )));
    }
    let pairs = hparams.rope_dimension_count / 2;
    let freqs = factors(store, "rope_freqs.weight", pairs)?;
    let long = factors(store, "rope_factors_long.weight", pairs)?;
    let short = factors(store, "rope_factors_short.weight", pairs)?;
    let yarn = match kind.as_deref() {
        None | Some("none") | Some("linear") => None,
        Some("llama3") if freqs.is_none() => {
            return Err(Error::Config(format!(
                "{} is llama3 but the file has no rope_freqs.weight to scale by",
                key("type")
            )))
        }
        Some("llama3") => None,
        Some("yarn") => {
            let orig = original_context.ok_or_else(|| {
                Error::Config(format!("YaRN needs {}", key("original_context_length")))
            })?;
            Some(Yarn {
                original_context: orig as f32,
                beta_fast: m.get_f32(&key("yarn_beta_fast"))?.unwrap_or(YARN_BETA_FAST),
                beta_slow: m.get_f32(&key("yarn_beta_slow"))?.unwrap_or(YARN_BETA_SLOW),
                ext_factor: 1.0,
            })
        }
        Some(other) => {
            return Err(Error::Config(format!(
                "RoPE scaling '{other}' ({}) is not implemented",
                key("type")
            )))
        }
    };
    if long.is_some() != short.is_some() {
        return Err(Error::Config(
            "the file has only one of rope_factors_long.weight and rope_factors_short.weight"
                .into(),
        ));
    }
    let original_context = match (&long, original_context) {
        (Some(_), None) => {
            return Err(Error::Config(format!(
                "long/short RoPE factors need {} to choose between them",
                key("original_context_length")
            )))
        }
        (_, orig) => orig.unwrap_or(hparams.context_length),
    };
    Ok(RopeScaling {
        freqs,
        long,
        short,
        original_context,
        attn_factor,
        yarn,
    })
}

/// A tensor of per-pair RoPE divisors: `pairs` positive F32 values, or `None` when absent.
fn factors<S: ByteSource>(
    store: &WeightStore<S>,
    name: &str,
    pairs: u64,
) -> Result<Option<Arc<[f32]>>> {
    let t = match store.tensor(name) {
        Ok(t) => t,
        Err(Error::TensorNotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let n: u64 = t.dims.iter().product();
    if n != pairs || t.ggml_type != crate::quant::GgmlType::F32 {
        return Err(Error::Shape {
            op: "load",
            detail: format!(
                "'{name}' is {n} values of {}, expected {pairs} of F32 (rope dimension / 2)",
                t.ggml_type
            ),
        });
    }
    let mut bytes = vec![0u8; super::usize_of(t.range.end - t.range.start)?];
    store.read_range(t.range.clone(), &mut bytes)?;
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if let Some(bad) = values.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
        return Err(Error::Config(format!(
            "'{name}' holds {bad}: each factor must be a positive number"
        )));
    }
    Ok(Some(values.into()))
}
