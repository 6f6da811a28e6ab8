//! `sluice run`: generate text from a prompt (plain, or through the model's chat template), printing
//! tokens as they are produced.

use super::engine::{with_engine, CliBackend, Engine, EngineArgs, EngineTask};
use anyhow::{anyhow, Result};
use clap::Args;
use engine_core::model::{Generator, Prompt, PromptError, Stop};
use engine_core::sample::{Sampler, SamplerConfig};
use engine_core::tokenizer::Decoder;
use std::io::Write;
use std::time::Instant;

/// Sampling options.
#[derive(Debug, Args, Clone)]
pub struct SamplingArgs {
    /// Temperature; 0 means greedy.
    #[arg(long = "temp", default_value_t = 0.8)]
    pub temperature: f32,
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Random seed (default: from the clock; printed with --stats).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    pub fn config(&self) -> SamplerConfig {
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        SamplerConfig {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            seed,
        }
    }
}

/// Options of `sluice run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The prompt (with --chat: the user message).
    pub prompt: String,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Wrap the prompt in the model's chat template as a user message.
    #[arg(long)]
    pub chat: bool,
    /// A system message (with --chat).
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    /// Most tokens to generate.
    #[arg(short = 'n', long = "max-tokens", default_value_t = 256)]
    pub max_tokens: usize,
    /// Print timings to stderr at the end.
    #[arg(long)]
    pub stats: bool,
}

/// Runs `sluice run`, streaming text to stdout.
pub fn run(args: &RunArgs) -> Result<()> {
    with_engine(&args.engine, args)
}

impl EngineTask for &RunArgs {
    fn run<B: CliBackend>(self, engine: Engine<B>) -> Result<()> {
        run_on(engine, self)
    }
}

fn run_on<B: CliBackend>(engine: Engine<B>, args: &RunArgs) -> Result<()> {
    let request = Prompt {
        text: &args.prompt,
        chat: args.chat,
        system: args.system.as_deref(),
    };
    let prompt = request
        .tokens(&engine.tokenizer, engine.template.as_ref())
        .map_err(|e| match e {
            PromptError::NoTemplate => anyhow!("{e}; run without --chat"),
            e => e.into(),
        })?;
    let sampler_config = args.sampling.config();
    let seed = sampler_config.seed;
    let mut session = engine.model.session(&engine.backend, args.engine.ctx)?;
    let mut generator = Generator::new(
        &engine.model,
        &engine.backend,
        &mut session,
        Sampler::new(sampler_config)?,
    );
    let mut decoder = Decoder::new(&engine.tokenizer);
    let mut out = std::io::stdout().lock();

    let start = Instant::now();
    let mut token = pollster::block_on(generator.prefill(&prompt, 512))?;
    let ttft = start.elapsed();
    let mut generated = 0;
    while generator
        .stop_before(&engine.tokenizer, token, generated, args.max_tokens)
        .is_none()
    {
        out.write_all(decoder.push(token)?.as_bytes())?;
        out.flush()?;
        generated += 1;
        match generator.stop_after(generated, args.max_tokens) {
            Some(Stop::ContextFull) => {
                eprintln!(
                    "\nsluice: context full ({} positions); stopping",
                    generator.position()
                );
                break;
            }
            Some(_) => break,
            None => token = pollster::block_on(generator.step())?,
        }
    }
    out.write_all(decoder.finish().as_bytes())?;
    writeln!(out)?;
    if args.stats {
        let total = start.elapsed();
        let decode = total.saturating_sub(ttft);
        let device = engine.backend.describe(&args.engine);
        eprintln!(
            "sluice: load {:.2} s | prompt {} tokens, first token after {:.3} s ({:.1} tok/s) | {} generated, {:.1} tok/s | seed {seed} | {device}",
            engine.load_time.as_secs_f64(),
            prompt.len(),
            ttft.as_secs_f64(),
            prompt.len() as f64 / ttft.as_secs_f64(),
            generated,
            generated.saturating_sub(1) as f64 / decode.as_secs_f64().max(1e-9),
        );
        eprint!("{}", render_prefetch(&engine.model.prefetch_stats()));
    }
    Ok(())
}

/// A short text report of residency and streaming for `--stats`.
pub fn render_prefetch(s: &engine_core::prefetch::PrefetchStats) -> String {
    use crate::size::format_size;
    use std::fmt::Write;
    let mut out = String::new();
    if s.mode == "resident" {
        let _ = writeln!(
            out,
            "sluice: weights resident ({} on the device, loaded once)",
            format_size(s.pinned_bytes)
        );
        return out;
    }
    let _ = writeln!(
        out,
        "sluice: streaming within {} ({} pinned), profile {} at distance {} | hits {} stalls {} \
         sync loads {} ({} after the first pass) | hit rate {:.1}% | stall {:.3} s | moved {} | \
         peak on device {} | queue high-water {}/{} | peak in flight {} | failed reads {} (retried {})",
        format_size(s.budget_bytes),
        format_size(s.pinned_bytes),
        s.profile,
        s.distance,
        s.hits,
        s.stalls,
        s.sync_loads,
        s.sync_loads_after_first_pass,
        100.0 * s.hit_rate(),
        s.stall_time.as_secs_f64(),
        format_size(s.bytes_moved),
        format_size(s.peak_device_bytes),
        s.queue_high_water,
        s.queue_bound,
        s.peak_in_flight,
        s.failed_fetches,
        s.retried_fetches,
    );
    let _ = writeln!(
        out,
        "  layer        bytes     pinned  hits  stalls  sync  wait(ms)  fetched"
    );
    for l in &s.layers {
        let _ = writeln!(
            out,
            "  {:<10} {:>10}  {:<6} {:>5} {:>7} {:>5} {:>9.2}  {}",
            l.layer,
            format_size(l.bytes),
            if l.pinned { "yes" } else { "no" },
            l.hits,
            l.stalls,
            l.sync_loads,
            l.wait_time.as_secs_f64() * 1e3,
            format_size(l.bytes_fetched),
        );
    }
    out
}
