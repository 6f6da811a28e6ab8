//! The generation options `run` and `chat` share (sampling, length, stop strings, context
//! shift), mapped onto engine-core's one `GenerateOptions`.

use clap::Args;
use engine_core::engine::{GenerateOptions, DEFAULT_PREFILL_BATCH};
use engine_core::sample::SamplerConfig;

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

/// How each reply is generated.
#[derive(Debug, Args, Clone)]
pub struct GenerationArgs {
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Most tokens to generate per reply.
    #[arg(short = 'n', long = "max-tokens", default_value_t = 256)]
    pub max_tokens: usize,
    /// End the reply before this text (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// When the conversation outgrows the context (--ctx), drop its oldest turns (keeping the
    /// system message) and say so on stderr, instead of stopping with an error.
    #[arg(long)]
    pub context_shift: bool,
    /// Tokens per forward pass while prefilling.
    #[arg(long, default_value_t = DEFAULT_PREFILL_BATCH as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Keep generating through end-of-generation tokens.
    #[arg(long)]
    pub ignore_eog: bool,
}

impl GenerationArgs {
    pub fn options(&self) -> GenerateOptions {
        GenerateOptions {
            sampler: self.sampling.config(),
            max_tokens: self.max_tokens,
            stop: self.stop.clone(),
            prefill_batch: usize::try_from(self.batch).unwrap_or(DEFAULT_PREFILL_BATCH),
            context_shift: self.context_shift,
            ignore_eog: self.ignore_eog,
        }
    }
}

/// Writes a reply to `out` as it streams and returns what it produced, saying on stderr when the
/// context filled up or a shift dropped turns.
pub fn stream_reply<B: engine_core::backend::Backend>(
    mut reply: engine_core::engine::Reply<'_, B>,
    out: &mut impl std::io::Write,
) -> anyhow::Result<engine_core::engine::ReplyOutcome> {
    use engine_core::engine::StopReason;
    let dropped = reply.stats().dropped_messages;
    if dropped > 0 {
        eprintln!(
            "sluice: context shift: dropped the {dropped} oldest messages to fit the context"
        );
    }
    while let Some(piece) = pollster::block_on(reply.next())? {
        out.write_all(piece.as_bytes())?;
        out.flush()?;
    }
    let outcome = reply.into_outcome();
    if outcome.stats.stop_reason == Some(StopReason::ContextFull) {
        eprintln!(
            "\nsluice: context full ({} positions); stopping",
            outcome.stats.prompt_tokens + outcome.tokens.len().saturating_sub(1)
        );
    }
    Ok(outcome)
}

/// Adds what to do about an engine error a user can fix from the command line.
pub fn explain(e: engine_core::Error, ctx: usize) -> anyhow::Error {
    use engine_core::engine::PromptError;
    let hint = match &e {
        engine_core::Error::Prompt(PromptError::NoTemplate) => Some("run without --chat".into()),
        engine_core::Error::ContextOverflow { .. } => Some(format!(
            "raise --ctx (now {ctx}, capped at the model's context length) or pass \
             --context-shift to drop the oldest turns"
        )),
        _ => None,
    };
    match hint {
        Some(h) => anyhow::anyhow!("{e}; {h}"),
        None => e.into(),
    }
}
