//! `sluice synth`: writes a random-weight llama-family GGUF of any shape, streaming to disk.

use anyhow::{Context, Result};
use clap::Args;
use engine_core::quant::GgmlType;
use engine_core::synth::{self, SynthArch, SynthConfig};
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

/// Options of `sluice synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output GGUF file.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Start from a named shape (`tiny`, `7b`); the other flags override it.
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    #[arg(long)]
    pub layers: Option<u32>,
    #[arg(long)]
    pub dim: Option<u64>,
    #[arg(long)]
    pub ffn: Option<u64>,
    #[arg(long)]
    pub heads: Option<u64>,
    #[arg(long)]
    pub kv_heads: Option<u64>,
    #[arg(long)]
    pub vocab: Option<u64>,
    #[arg(long)]
    pub context: Option<u64>,
    /// Weight type of the matrices: F32, F16, Q8_0, Q4_0, Q4_1, Q4_K or Q6_K.
    #[arg(long = "type", value_parser = parse_type)]
    pub weight_type: Option<GgmlType>,
    /// Architecture: llama; qwen2 (q/k/v biases); qwen3 (per-head q/k norms); gemma3 (q/k norms,
    /// post-norms, GeGLU, √dim embedding scale, sliding-window layers); phi3 (fused qkv and
    /// gate/up tensors).
    #[arg(long, value_parser = parse_arch)]
    pub arch: Option<SynthArch>,
    /// Keys a gemma3 sliding-window layer sees (five layers of every six are such layers).
    #[arg(long)]
    pub sliding_window: Option<u64>,
    /// Add Llama 3.x RoPE scaling (`rope_freqs.weight`, with Llama 3.2's factors).
    #[arg(long)]
    pub llama3_rope: bool,
    /// Add YaRN RoPE scaling by this factor (over an original context of 32).
    #[arg(long)]
    pub yarn: Option<f32>,
    /// Add Phi-3's long-context RoPE factors (long and short, over an original context of 32).
    #[arg(long)]
    pub long_rope: bool,
    /// Tie the output head to the embeddings (no output.weight).
    #[arg(long)]
    pub tied: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

fn parse_arch(s: &str) -> Result<SynthArch, String> {
    SynthArch::from_name(s).ok_or_else(|| {
        format!("unknown architecture '{s}' (known: llama, qwen2, qwen3, gemma3, phi3)")
    })
}

fn parse_type(s: &str) -> Result<GgmlType, String> {
    GgmlType::from_name(s).ok_or_else(|| format!("unknown type '{s}'"))
}

impl SynthArgs {
    /// The configuration these flags describe.
    pub fn config(&self) -> Result<SynthConfig> {
        let base = match self.preset.to_ascii_lowercase().as_str() {
            "tiny" => SynthConfig::default(),
            "7b" => SynthConfig::llama_7b(GgmlType::Q4_0),
            other => anyhow::bail!("unknown preset '{other}' (known: tiny, 7b)"),
        };
        Ok(SynthConfig {
            layers: self.layers.unwrap_or(base.layers),
            dim: self.dim.unwrap_or(base.dim),
            ffn: self.ffn.unwrap_or(base.ffn),
            heads: self.heads.unwrap_or(base.heads),
            kv_heads: self.kv_heads.unwrap_or(base.kv_heads),
            vocab: self.vocab.unwrap_or(base.vocab),
            context: self.context.unwrap_or(base.context),
            weight_type: self.weight_type.unwrap_or(base.weight_type),
            arch: self.arch.unwrap_or(base.arch),
            tied_output: self.tied || base.tied_output,
            seed: self.seed,
            sliding_window: self.sliding_window.unwrap_or(base.sliding_window),
            llama3_rope: self.llama3_rope,
            yarn_factor: self.yarn,
            long_rope: self.long_rope,
            ..base
        })
    }
}

/// Runs `sluice synth`.
pub fn run(args: &SynthArgs) -> Result<()> {
    let cfg = args.config()?;
    cfg.validate()?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let total = cfg.tensor_bytes()?;
    eprintln!(
        "sluice: writing {} ({} {} layers, dim {}, ffn {}, {}/{} heads, vocab {}, {}, {:.1} MB of tensors, seed {})",
        args.out.display(),
        cfg.arch.name(),
        cfg.layers,
        cfg.dim,
        cfg.ffn,
        cfg.heads,
        cfg.kv_heads,
        cfg.vocab,
        cfg.weight_type,
        total as f64 / 1e6,
        cfg.seed
    );
    // Write beside the target and rename, so an interrupted run never leaves a plausible-looking file.
    let partial = args.out.with_extension("gguf.partial");
    let file = File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template(
            "[{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let start = std::time::Instant::now();
    let written = synth::write(
        &cfg,
        BufWriter::with_capacity(1 << 20, file),
        threads,
        |done, _| bar.set_position(done),
    );
    bar.finish_and_clear();
    let result = written
        .and_then(|w| w.into_inner().map_err(|e| e.into_error().into()))
        .and_then(|f| f.sync_all().map_err(Into::into));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e).with_context(|| format!("writing {}", args.out.display()));
    }
    std::fs::rename(&partial, &args.out)
        .with_context(|| format!("renaming to {}", args.out.display()))?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "sluice: wrote {} in {secs:.1} s ({:.0} MB/s)",
        args.out.display(),
        total as f64 / 1e6 / secs
    );
    Ok(())
}
