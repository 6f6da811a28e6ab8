//! The settings of one generation, the same for every caller (run, bench, chat, the page, the
//! server), and what the engine reports about each turn.

use super::stop::StopReason;
use crate::sample::SamplerConfig;

/// Tokens fed per forward pass while prefilling, unless a caller says otherwise.
pub const DEFAULT_PREFILL_BATCH: usize = 512;

/// How to generate a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    pub sampler: SamplerConfig,
    /// Most tokens to emit.
    pub max_tokens: usize,
    /// The reply ends before the first of these texts (which is not emitted).
    pub stop: Vec<String>,
    /// Tokens per forward pass while prefilling.
    pub prefill_batch: usize,
    /// When the conversation outgrows the context: drop its oldest turns (keeping the system
    /// message) instead of failing with `Error::ContextOverflow`.
    pub context_shift: bool,
    /// Keep generating through end-of-generation tokens (benchmarks).
    pub ignore_eog: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            sampler: SamplerConfig::default(),
            max_tokens: 256,
            stop: Vec::new(),
            prefill_batch: DEFAULT_PREFILL_BATCH,
            context_shift: false,
            ignore_eog: false,
        }
    }
}

impl GenerateOptions {
    /// Greedy decoding of at most `max_tokens`.
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            sampler: SamplerConfig::greedy(),
            max_tokens,
            ..Self::default()
        }
    }

    /// Positions kept free for the reply when a context shift makes room: `max_tokens`, but at
    /// most half the context, so a long budget cannot drop the whole history.
    pub(crate) fn reply_reserve(&self, limit: usize) -> usize {
        self.max_tokens.clamp(1, (limit / 2).max(1))
    }
}

/// What one turn did: how much of the prompt came from the KV cache, how much was computed,
/// and how fast.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TurnStats {
    /// Tokens of the prompt (the whole history, rendered).
    pub prompt_tokens: usize,
    /// Of those, tokens whose keys and values were already in the cache.
    pub tokens_reused: usize,
    /// Tokens run through the model to prefill (`prompt_tokens - tokens_reused`).
    pub tokens_prefilled: usize,
    /// Tokens emitted.
    pub generated_tokens: usize,
    /// Messages dropped by a context shift to fit this turn (0 without one).
    pub dropped_messages: usize,
    /// Seconds from the start of the turn to its first token (the prefill).
    pub ttft_s: f64,
    /// Prefilled tokens per second.
    pub prefill_tok_s: f64,
    /// Generated tokens per second after the first.
    pub decode_tok_s: f64,
    /// Why it ended (`None` while running, or when it failed).
    pub stop_reason: Option<StopReason>,
}
