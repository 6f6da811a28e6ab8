//! `synth`: writes random-weight llama-family GGUF files of any shape and weight type, seeded and
//! reproducible, streaming to disk so a 7B-shape file needs only a few chunks of memory.
//!
//! Every tensor's values are a pure function of (seed, tensor index, chunk index), so
//! `source_values` can regenerate what a file was quantized from, and the thread count never
//! changes the bytes.

mod vocab;

pub use crate::rng::SplitMix64;
pub use vocab::{byte_to_char, CHAT_TEMPLATE, MIN_VOCAB, SPECIAL_TOKENS};

use crate::gguf::{GgufWriter, Metadata, TensorSpec, Value};
use crate::quant::{self, GgmlType};
use crate::{Error, Result};
use std::io::Write;

/// Rows generated and quantized as one unit of work.
const CHUNK_ELEMENTS: usize = 1 << 20;

/// The architectures synth writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthArch {
    Llama,
    /// q/k/v biases.
    Qwen2,
    /// Per-head q/k norms.
    Qwen3,
    /// Per-head q/k norms, post-attention and post-MLP norms, a sliding window
    /// (`SynthConfig::sliding_window`) on five layers of every six.
    Gemma3,
    /// Fused `attn_qkv` and `ffn_up` (gate then up) tensors.
    Phi3,
}

impl SynthArch {
    pub const ALL: [SynthArch; 5] = [
        SynthArch::Llama,
        SynthArch::Qwen2,
        SynthArch::Qwen3,
        SynthArch::Gemma3,
        SynthArch::Phi3,
    ];

    /// The `general.architecture` value and metadata key prefix.
    pub fn name(self) -> &'static str {
        match self {
            SynthArch::Llama => "llama",
            SynthArch::Qwen2 => "qwen2",
            SynthArch::Qwen3 => "qwen3",
            SynthArch::Gemma3 => "gemma3",
            SynthArch::Phi3 => "phi3",
        }
    }

    /// Parses an architecture name (`ALL`'s names).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

/// The shape and contents of a synthesized model.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    pub layers: u32,
    pub dim: u64,
    pub ffn: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub vocab: u64,
    pub context: u64,
    /// Type of the matrices (embeddings, attention, FFN, output head); norms stay F32.
    pub weight_type: GgmlType,
    /// `llama`, or `qwen2` (adds q/k/v biases; its forward uses NeoX RoPE).
    pub arch: SynthArch,
    /// Share the embedding matrix with the output head (no `output.weight`), as SmolLM2 does.
    pub tied_output: bool,
    pub seed: u64,
    pub rope_freq_base: f32,
    pub rms_norm_eps: f32,
    /// Keys a sliding-window layer sees (gemma3 only, which needs one).
    pub sliding_window: u64,
    /// Write `rope_freqs.weight`: Llama 3.x's RoPE scaling, with Llama 3.2's parameters.
    pub llama3_rope: bool,
    /// YaRN RoPE scaling by this factor over an original context of `SCALED_ORIGINAL_CONTEXT`.
    pub yarn_factor: Option<f32>,
    /// Phi-3's long-context RoPE: `rope_factors_long` / `_short` over an original context of
    /// `SCALED_ORIGINAL_CONTEXT`, with their magnitude factor.
    pub long_rope: bool,
}

/// The original context synth declares for YaRN and long-context RoPE.
pub const SCALED_ORIGINAL_CONTEXT: u64 = 32;

/// Llama 3.2's RoPE scaling: factor, low- and high-frequency factors, original context.
const LLAMA3_ROPE: (f64, f64, f64, f64) = (32.0, 1.0, 4.0, 8192.0);

/// The per-pair divisors the converter writes as `rope_freqs.weight` for Llama 3.x: 1 for
/// wavelengths under `original / high`, `factor` over `original / low`, smoothly between.
pub fn llama3_rope_factors(freq_base: f32, rope_dim: u64) -> Vec<f32> {
    let (factor, low, high, original) = LLAMA3_ROPE;
    (0..rope_dim / 2)
        .map(|i| {
            let freq = f64::from(freq_base).powf(-2.0 * i as f64 / rope_dim as f64);
            let wavelen = 2.0 * std::f64::consts::PI / freq;
            if wavelen < original / high {
                1.0
            } else if wavelen > original / low {
                factor as f32
            } else {
                let smooth = (original / wavelen - low) / (high - low);
                (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
            }
        })
        .collect()
}

impl Default for SynthConfig {
    /// A small but real shape: runs in milliseconds, exercises GQA and K-quant block sizes.
    fn default() -> Self {
        Self {
            layers: 2,
            dim: 256,
            ffn: 512,
            heads: 4,
            kv_heads: 2,
            vocab: 512,
            context: 256,
            weight_type: GgmlType::Q8_0,
            arch: SynthArch::Llama,
            tied_output: false,
            seed: 0,
            rope_freq_base: 10_000.0,
            rms_norm_eps: 1e-5,
            sliding_window: 512,
            llama3_rope: false,
            yarn_factor: None,
            long_rope: false,
        }
    }
}

impl SynthConfig {
    /// The Llama-2-7B shape (32 layers, dim 4096, ffn 11008, 32 heads, vocab 32000).
    pub fn llama_7b(weight_type: GgmlType) -> Self {
        Self {
            layers: 32,
            dim: 4096,
            ffn: 11008,
            heads: 32,
            kv_heads: 32,
            vocab: 32000,
            context: 4096,
            weight_type,
            ..Self::default()
        }
    }

    /// Checks the shape is a valid llama-family model in this weight type.
    pub fn validate(&self) -> Result<()> {
        let fail = |msg: String| Err(Error::Config(msg));
        if self.layers == 0
            || self.dim == 0
            || self.ffn == 0
            || self.heads == 0
            || self.kv_heads == 0
        {
            return fail("layers, dim, ffn, heads and kv_heads must all be positive".into());
        }
        if !self.dim.is_multiple_of(self.heads) {
            return fail(format!(
                "dim {} is not a multiple of heads {}",
                self.dim, self.heads
            ));
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return fail(format!(
                "heads {} is not a multiple of kv_heads {}",
                self.heads, self.kv_heads
            ));
        }
        if !(self.dim / self.heads).is_multiple_of(2) {
            return fail(format!(
                "head size {} must be even for RoPE",
                self.dim / self.heads
            ));
        }
        if !self.weight_type.can_quantize() {
            let ok: Vec<&str> = GgmlType::QUANTIZABLE.iter().map(|t| t.name()).collect();
            return fail(format!(
                "cannot write {} weights (supported: {})",
                self.weight_type,
                ok.join(", ")
            ));
        }
        let block = self.weight_type.block_size() as u64;
        for (what, n) in [("dim", self.dim), ("ffn", self.ffn)] {
            if n % block != 0 {
                return fail(format!(
                    "{what} {n} is not a multiple of the {} block size {block}",
                    self.weight_type
                ));
            }
        }
        if self.vocab < MIN_VOCAB {
            return fail(format!(
                "vocab {} is below the minimum of {MIN_VOCAB}",
                self.vocab
            ));
        }
        if self.context == 0 {
            return fail("context must be positive".into());
        }
        if self.arch == SynthArch::Gemma3 && self.sliding_window == 0 {
            return fail("gemma3 needs a positive sliding window".into());
        }
        Ok(())
    }

    fn head_dim(&self) -> u64 {
        self.dim / self.heads
    }

    /// The tensor directory, in file order.
    pub fn tensor_specs(&self) -> Vec<TensorSpec> {
        let w = self.weight_type;
        let kv = self.kv_heads * self.head_dim();
        let mut specs = vec![TensorSpec::new(
            "token_embd.weight",
            &[self.dim, self.vocab],
            w,
        )];
        if self.llama3_rope {
            specs.push(TensorSpec::new(
                "rope_freqs.weight",
                &[self.head_dim() / 2],
                GgmlType::F32,
            ));
        }
        if self.long_rope {
            for name in ["rope_factors_long.weight", "rope_factors_short.weight"] {
                specs.push(TensorSpec::new(name, &[self.head_dim() / 2], GgmlType::F32));
            }
        }
        for i in 0..self.layers {
            let name = |t: &str| format!("blk.{i}.{t}.weight");
            if self.arch == SynthArch::Phi3 {
                specs.extend([
                    TensorSpec::new(name("attn_norm"), &[self.dim], GgmlType::F32),
                    TensorSpec::new(name("attn_qkv"), &[self.dim, self.dim + 2 * kv], w),
                    TensorSpec::new(name("attn_output"), &[self.dim, self.dim], w),
                    TensorSpec::new(name("ffn_norm"), &[self.dim], GgmlType::F32),
                    TensorSpec::new(name("ffn_up"), &[self.dim, 2 * self.ffn], w),
                    TensorSpec::new(name("ffn_down"), &[self.ffn, self.dim], w),
                ]);
                continue;
            }
            specs.extend([
                TensorSpec::new(name("attn_norm"), &[self.dim], GgmlType::F32),
                TensorSpec::new(name("attn_q"), &[self.dim, self.dim], w),
                TensorSpec::new(name("attn_k"), &[self.dim, kv], w),
                TensorSpec::new(name("attn_v"), &[self.dim, kv], w),
                TensorSpec::new(name("attn_output"), &[self.dim, self.dim], w),
                TensorSpec::new(name("ffn_norm"), &[self.dim], GgmlType::F32),
                TensorSpec::new(name("ffn_gate"), &[self.dim, self.ffn], w),
                TensorSpec::new(name("ffn_up"), &[self.dim, self.ffn], w),
                TensorSpec::new(name("ffn_down"), &[self.ffn, self.dim], w),
            ]);
            if matches!(self.arch, SynthArch::Qwen3 | SynthArch::Gemma3) {
                let hd = self.head_dim();
                specs.extend([
                    TensorSpec::new(name("attn_q_norm"), &[hd], GgmlType::F32),
                    TensorSpec::new(name("attn_k_norm"), &[hd], GgmlType::F32),
                ]);
            }
            if self.arch == SynthArch::Gemma3 {
                specs.extend([
                    TensorSpec::new(name("post_attention_norm"), &[self.dim], GgmlType::F32),
                    TensorSpec::new(name("post_ffw_norm"), &[self.dim], GgmlType::F32),
                ]);
            }
            if self.arch == SynthArch::Qwen2 {
                let bias = |t: &str| format!("blk.{i}.{t}.bias");
                specs.extend([
                    TensorSpec::new(bias("attn_q"), &[self.dim], GgmlType::F32),
                    TensorSpec::new(bias("attn_k"), &[kv], GgmlType::F32),
                    TensorSpec::new(bias("attn_v"), &[kv], GgmlType::F32),
                ]);
            }
        }
        specs.push(TensorSpec::new(
            "output_norm.weight",
            &[self.dim],
            GgmlType::F32,
        ));
        if !self.tied_output {
            specs.push(TensorSpec::new("output.weight", &[self.dim, self.vocab], w));
        }
        specs
    }

    /// The metadata: llama hyperparameters, a GPT-2-style tokenizer, a chat template, the seed.
    pub fn metadata(&self) -> Result<Metadata> {
        let mut m = Metadata::new();
        let s = |v: &str| Value::String(v.to_string());
        let u32_of = |what: &str, v: u64| {
            u32::try_from(v)
                .map(Value::U32)
                .map_err(|_| Error::Config(format!("{what} {v} exceeds u32")))
        };
        m.set("general.architecture", s(self.arch.name()));
        let arch = self.arch.name();
        m.set(
            "general.name",
            s(&format!(
                "sluice-synth-{arch}-{}l-{}d-{}",
                self.layers, self.dim, self.weight_type
            )),
        );
        m.set("general.alignment", Value::U32(32));
        m.set(
            format!("{arch}.context_length"),
            u32_of("context", self.context)?,
        );
        m.set(format!("{arch}.embedding_length"), u32_of("dim", self.dim)?);
        m.set(format!("{arch}.block_count"), Value::U32(self.layers));
        m.set(
            format!("{arch}.feed_forward_length"),
            u32_of("ffn", self.ffn)?,
        );
        m.set(
            format!("{arch}.attention.head_count"),
            u32_of("heads", self.heads)?,
        );
        m.set(
            format!("{arch}.attention.head_count_kv"),
            u32_of("kv_heads", self.kv_heads)?,
        );
        m.set(
            format!("{arch}.rope.freq_base"),
            Value::F32(self.rope_freq_base),
        );
        m.set(
            format!("{arch}.rope.dimension_count"),
            u32_of("head size", self.head_dim())?,
        );
        m.set(
            format!("{arch}.attention.layer_norm_rms_epsilon"),
            Value::F32(self.rms_norm_eps),
        );
        m.set(format!("{arch}.vocab_size"), u32_of("vocab", self.vocab)?);
        if let Some(factor) = self.yarn_factor {
            m.set(format!("{arch}.rope.scaling.type"), s("yarn"));
            m.set(format!("{arch}.rope.scaling.factor"), Value::F32(factor));
        }
        if self.yarn_factor.is_some() || self.long_rope {
            m.set(
                format!("{arch}.rope.scaling.original_context_length"),
                Value::U32(SCALED_ORIGINAL_CONTEXT as u32),
            );
        }
        if self.long_rope {
            // Phi-3's converter: √(1 + ln(scale) / ln(original)) for scale = context / original.
            let orig = SCALED_ORIGINAL_CONTEXT as f64;
            let scale = (self.context as f64 / orig).max(1.0);
            let attn = (1.0 + scale.ln() / orig.ln()).sqrt();
            m.set(
                format!("{arch}.rope.scaling.attn_factor"),
                Value::F32(attn as f32),
            );
        }
        if self.arch == SynthArch::Gemma3 {
            m.set(
                format!("{arch}.attention.sliding_window"),
                u32_of("sliding window", self.sliding_window)?,
            );
        }
        m.set("sluice.synth.seed", Value::U64(self.seed));
        vocab::add_tokenizer(&mut m, self.vocab)?;
        Ok(m)
    }

    /// Bytes of tensor data the file will hold.
    pub fn tensor_bytes(&self) -> Result<u64> {
        self.tensor_specs()
            .iter()
            .try_fold(0u64, |acc, t| Ok(acc + t.n_bytes()?))
    }
}

/// Regenerates values `[start, start + out.len())` of tensor `index` (in `tensor_specs` order) as
/// they were before quantization. `start` must be a multiple of the chunk size used by `write`.
fn fill_values(cfg: &SynthConfig, spec: &TensorSpec, index: usize, start: u64, out: &mut [f32]) {
    let chunk = start / CHUNK_ELEMENTS as u64;
    let mut rng = SplitMix64::derive(cfg.seed, index as u64, chunk);
    if spec.name == "rope_freqs.weight" {
        let factors = llama3_rope_factors(cfg.rope_freq_base, cfg.head_dim());
        out.copy_from_slice(&factors[start as usize..start as usize + out.len()]);
    } else if spec.name.starts_with("rope_factors_") {
        // Divisors rising from 1 over the pairs: to 8 for long contexts, to 2 for short ones.
        let top = if spec.name.contains("long") { 7.0 } else { 1.0 };
        let last = (out.len().max(2) - 1) as f32;
        for (i, x) in out.iter_mut().enumerate() {
            *x = 1.0 + top * i as f32 / last;
        }
    } else if spec.name.ends_with(".bias") {
        out.iter_mut()
            .for_each(|x| *x = 0.1 * rng.next_signed_unit());
    } else if spec.dims.len() == 1 {
        // Norm weights: near one, as trained models have them.
        out.iter_mut()
            .for_each(|x| *x = 1.0 + 0.1 * rng.next_signed_unit());
    } else {
        // Uniform with variance 1/fan_in keeps activations at unit scale through the layers.
        let scale = (3.0 / spec.dims[0] as f32).sqrt();
        out.iter_mut()
            .for_each(|x| *x = scale * rng.next_signed_unit());
    }
}

/// The values tensor `name` of a model written with `cfg` was quantized from.
pub fn source_values(cfg: &SynthConfig, name: &str) -> Result<Vec<f32>> {
    let specs = cfg.tensor_specs();
    let (index, spec) = specs
        .iter()
        .enumerate()
        .find(|(_, s)| s.name == name)
        .ok_or_else(|| Error::TensorNotFound(name.to_string()))?;
    let n: u64 = spec.dims.iter().product();
    let mut out = vec![0f32; n as usize];
    for (c, part) in out.chunks_mut(CHUNK_ELEMENTS).enumerate() {
        fill_values(cfg, spec, index, (c * CHUNK_ELEMENTS) as u64, part);
    }
    Ok(out)
}

/// Writes the model to `out`, calling `progress(bytes_written, total_bytes)` as data goes out.
/// Work is spread over `threads` threads; the output does not depend on their number.
pub fn write<W: Write>(
    cfg: &SynthConfig,
    out: W,
    threads: usize,
    mut progress: impl FnMut(u64, u64),
) -> Result<W> {
    cfg.validate()?;
    let specs = cfg.tensor_specs();
    let total = cfg.tensor_bytes()?;
    let mut writer = GgufWriter::new(out, &cfg.metadata()?, specs.clone())?;
    let threads = threads.max(1);
    let mut done = 0u64;
    for (index, spec) in specs.iter().enumerate() {
        let n: u64 = spec.dims.iter().product();
        let ty = if spec.dims.len() == 1 {
            GgmlType::F32
        } else {
            cfg.weight_type
        };
        let chunks: Vec<u64> = (0..n.div_ceil(CHUNK_ELEMENTS as u64)).collect();
        // A batch of chunks is generated in parallel, then written in order: memory stays at
        // `threads` chunks whatever the tensor size.
        for batch in chunks.chunks(threads) {
            let encode = |c: u64| encode_chunk(cfg, spec, index, n, ty, c);
            // One thread encodes inline: no thread is spawned, which wasm cannot do.
            let encoded: Vec<Result<Vec<u8>>> = if threads == 1 {
                batch.iter().map(|&c| encode(c)).collect()
            } else {
                std::thread::scope(|scope| {
                    let handles: Vec<_> = batch
                        .iter()
                        .map(|&c| scope.spawn(move || encode(c)))
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| {
                            h.join().unwrap_or_else(|_| {
                                Err(Error::Config("a synth worker panicked".into()))
                            })
                        })
                        .collect()
                })
            };
            for bytes in encoded {
                let bytes = bytes?;
                writer.write_tensor_data(&bytes)?;
                done += bytes.len() as u64;
                progress(done, total);
            }
        }
    }
    writer.finish()
}

/// Generates and quantizes chunk `c` of tensor `index` (`n` elements in all) as `ty`.
fn encode_chunk(
    cfg: &SynthConfig,
    spec: &TensorSpec,
    index: usize,
    n: u64,
    ty: GgmlType,
    c: u64,
) -> Result<Vec<u8>> {
    let start = c * CHUNK_ELEMENTS as u64;
    let len = (n - start).min(CHUNK_ELEMENTS as u64) as usize;
    let mut values = vec![0f32; len];
    fill_values(cfg, spec, index, start, &mut values);
    let mut bytes = Vec::new();
    quant::quantize(ty, &values, &mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_reproducible_and_independent_of_thread_count() {
        let cfg = SynthConfig {
            seed: 7,
            ..SynthConfig::default()
        };
        let a = write(&cfg, Vec::new(), 1, |_, _| {}).unwrap();
        let b = write(&cfg, Vec::new(), 3, |_, _| {}).unwrap();
        assert_eq!(a, b);
        let c = write(&SynthConfig { seed: 8, ..cfg }, Vec::new(), 1, |_, _| {}).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn invalid_shapes_are_config_errors() {
        let base = SynthConfig::default();
        let bad = [
            SynthConfig {
                heads: 3,
                ..base.clone()
            },
            SynthConfig {
                kv_heads: 3,
                ..base.clone()
            },
            SynthConfig {
                dim: 96,
                heads: 1,
                kv_heads: 1,
                weight_type: GgmlType::Q4_K,
                ..base.clone()
            },
            SynthConfig {
                weight_type: GgmlType::Q5_K,
                ..base.clone()
            },
            SynthConfig {
                vocab: 10,
                ..base.clone()
            },
            SynthConfig {
                layers: 0,
                ..base.clone()
            },
            SynthConfig {
                dim: 258,
                heads: 86,
                kv_heads: 86,
                weight_type: GgmlType::F32,
                ..base
            },
        ];
        for cfg in bad {
            let err = write(&cfg, Vec::new(), 1, |_, _| {}).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{cfg:?}: {err}");
        }
    }
}
