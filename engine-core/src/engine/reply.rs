//! A reply being generated: prefill of what the cache lacks, then one token per `next`, each
//! decoded to text, until a stop reason.

use super::conversation::Conversation;
use super::emit::Emitter;
use super::options::{GenerateOptions, TurnStats};
use super::stop::StopReason;
use super::Engine;
use crate::backend::Backend;
use crate::chat::ChatMessage;
use crate::clock::Instant;
use crate::model::{prefill, sample_after};
use crate::sample::Sampler;
use crate::Result;

/// What a finished reply produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyOutcome {
    /// The text emitted (without the stop string that ended it).
    pub text: String,
    /// The tokens emitted.
    pub tokens: Vec<u32>,
    pub stats: TurnStats,
}

/// A running reply. Call [`Reply::next`] until it gives `None`; dropping it early (or an error)
/// keeps what was generated, in the cache and, for [`Conversation::say`], in the history.
pub struct Reply<'a, B: Backend> {
    engine: &'a Engine<B>,
    conv: &'a mut Conversation<B>,
    /// The whole prompt; the cache already holds its first `stats.tokens_reused` tokens.
    prompt: Vec<u32>,
    max_tokens: usize,
    prefill_batch: usize,
    sampler: Sampler,
    emit: Emitter<'a>,
    /// Whether the text becomes an assistant message of the history.
    record: bool,
    /// The token sampled last, fed at the next step.
    pending: Option<u32>,
    stats: TurnStats,
    start: Instant,
    first_token: Option<Instant>,
    finished: bool,
}

impl<'a, B: Backend> Reply<'a, B> {
    /// Rewinds the cache to the longest prefix it shares with `prompt` (at least one token is
    /// always run, for the logits) and prepares the rest.
    pub(super) fn start(
        conv: &'a mut Conversation<B>,
        engine: &'a Engine<B>,
        prompt: Vec<u32>,
        options: &GenerateOptions,
        sampler: Sampler,
        record: bool,
        dropped_messages: usize,
    ) -> Self {
        let start = Instant::now();
        let shared = common_prefix(&conv.cached, &prompt).min(prompt.len().saturating_sub(1));
        conv.session.rewind(shared);
        conv.cached.truncate(shared);
        conv.cancel.clear();
        let stats = TurnStats {
            prompt_tokens: prompt.len(),
            tokens_reused: shared,
            tokens_prefilled: prompt.len() - shared,
            dropped_messages,
            ..TurnStats::default()
        };
        Self {
            engine,
            conv,
            prompt,
            max_tokens: options.max_tokens,
            prefill_batch: options.prefill_batch,
            sampler,
            emit: Emitter::new(&engine.tokenizer, options),
            record,
            pending: None,
            stats,
            start,
            first_token: None,
            finished: false,
        }
    }

    /// The next piece of text (possibly empty while a character spans tokens), or `None` once
    /// the reply has ended ([`Reply::stop_reason`] says why).
    pub async fn next(&mut self) -> Result<Option<String>> {
        if self.finished {
            return Ok(None);
        }
        if self.conv.cancel.is_cancelled() {
            return Ok(self.end(StopReason::Cancelled));
        }
        if self.emit.tokens.len() >= self.max_tokens {
            return Ok(self.end(StopReason::MaxTokens));
        }
        let token = match self.pending {
            None => self.prefill().await?,
            Some(prev) => {
                if self.conv.session.position() >= self.conv.session.limit() {
                    return Ok(self.end(StopReason::ContextFull));
                }
                self.step(prev).await?
            }
        };
        self.pending = Some(token);
        match self.emit.push(token)? {
            (_, Some(StopReason::EndOfGeneration)) => Ok(self.end(StopReason::EndOfGeneration)),
            (out, Some(reason)) => {
                self.end(reason);
                Ok(Some(out))
            }
            (out, None) => Ok(Some(out)),
        }
    }

    /// Feeds what the cache lacks and samples the first token.
    async fn prefill(&mut self) -> Result<u32> {
        let sampler = &mut self.sampler;
        let reused = self.stats.tokens_reused;
        // The sampler's repetition window sees the whole prompt, as in a fresh session.
        self.prompt[..reused]
            .iter()
            .for_each(|&t| sampler.accept(t));
        let conv = &mut *self.conv;
        let result = prefill(
            &self.engine.model,
            &self.engine.backend,
            &mut conv.session,
            sampler,
            &self.prompt[reused..],
            self.prefill_batch,
        )
        .await;
        // A failed chunk leaves the session where it was: the cache holds what went in.
        let pos = conv.session.position();
        conv.cached.extend_from_slice(&self.prompt[reused..pos]);
        let token = result?;
        let now = Instant::now();
        self.first_token = Some(now);
        let ttft = now.duration_since(self.start).as_secs_f64();
        self.stats.ttft_s = ttft;
        self.stats.prefill_tok_s = self.stats.tokens_prefilled as f64 / ttft.max(1e-9);
        Ok(token)
    }

    /// Feeds `prev` and samples the token after it.
    async fn step(&mut self, prev: u32) -> Result<u32> {
        let sampler = &mut self.sampler;
        let conv = &mut *self.conv;
        let token = sample_after(
            &self.engine.model,
            &self.engine.backend,
            &mut conv.session,
            sampler,
            &[prev],
        )
        .await?;
        conv.cached.push(prev);
        Ok(token)
    }

    /// Ends the reply: the text still held back (unless a stop string cut it), once.
    fn end(&mut self, reason: StopReason) -> Option<String> {
        self.stats.stop_reason = Some(reason);
        let rest = self.emit.finish(reason);
        self.finish_turn();
        (!rest.is_empty()).then_some(rest)
    }

    /// Records the turn in the conversation (once): its stats, and the reply in the history.
    fn finish_turn(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.stats.generated_tokens = self.emit.tokens.len();
        if let Some(first) = self.first_token {
            let decode = Instant::now().duration_since(first).as_secs_f64();
            self.stats.decode_tok_s =
                self.emit.tokens.len().saturating_sub(1) as f64 / decode.max(1e-9);
        }
        if self.record {
            if self.first_token.is_some() {
                self.conv
                    .messages
                    .push(ChatMessage::assistant(self.emit.text.clone()));
            } else if self.conv.messages.last().is_some_and(|m| m.role == "user") {
                // The turn never started (the prefill failed): it did not happen.
                self.conv.messages.pop();
            }
        }
        self.conv.last = Some(self.stats.clone());
    }

    /// Why the reply ended; `None` while it runs.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stats.stop_reason
    }

    /// The text emitted so far.
    pub fn text(&self) -> &str {
        &self.emit.text
    }

    /// The tokens emitted so far.
    pub fn tokens(&self) -> &[u32] {
        &self.emit.tokens
    }

    /// The turn's numbers so far.
    pub fn stats(&self) -> &TurnStats {
        &self.stats
    }

    /// Runs the reply to its end, handing each piece to `on_piece`.
    pub async fn run(mut self, mut on_piece: impl FnMut(&str)) -> Result<ReplyOutcome> {
        while let Some(piece) = self.next().await? {
            on_piece(&piece);
        }
        Ok(self.into_outcome())
    }

    /// Ends the reply where it is (recording it) and returns what it produced.
    pub fn into_outcome(mut self) -> ReplyOutcome {
        self.finish_turn();
        ReplyOutcome {
            text: std::mem::take(&mut self.emit.text),
            tokens: std::mem::take(&mut self.emit.tokens),
            stats: self.stats.clone(),
        }
    }
}

impl<B: Backend> Drop for Reply<'_, B> {
    fn drop(&mut self) {
        self.finish_turn();
    }
}

/// How many leading tokens `a` and `b` share.
pub(super) fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
