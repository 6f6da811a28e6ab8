//! Generation one token at a time, so that callers (the CLI, the web page) can stream, time and stop
//! each step themselves.

use super::{Logits, Model, Session};
use crate::backend::Backend;
use crate::sample::Sampler;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The model produced an end-of-generation token (not emitted).
    EndOfGeneration,
    /// `max_tokens` were emitted.
    MaxTokens,
    /// The session holds no more positions.
    ContextFull,
}

/// A running generation: the session being extended and the sampler choosing tokens.
pub struct Generator<'a, B: Backend> {
    model: &'a Model<B>,
    backend: &'a B,
    session: &'a mut Session<B>,
    sampler: Sampler,
    /// The token sampled last, fed in at the next step.
    pending: Option<u32>,
}

impl<'a, B: Backend> Generator<'a, B> {
    pub fn new(
        model: &'a Model<B>,
        backend: &'a B,
        session: &'a mut Session<B>,
        sampler: Sampler,
    ) -> Self {
        Self {
            model,
            backend,
            session,
            sampler,
            pending: None,
        }
    }

    /// Feeds the prompt in chunks of at most `batch` tokens and samples the first new token.
    pub async fn prefill(&mut self, prompt: &[u32], batch: usize) -> Result<u32> {
        if prompt.is_empty() {
            return Err(Error::Config("the prompt has no tokens".into()));
        }
        let chunks: Vec<&[u32]> = prompt.chunks(batch.max(1)).collect();
        let (last, rest) = chunks
            .split_last()
            .ok_or_else(|| Error::Config("the prompt has no tokens".into()))?;
        for chunk in rest {
            self.model
                .forward(self.backend, self.session, chunk, Logits::Last)
                .await?;
        }
        prompt.iter().for_each(|&t| self.sampler.accept(t));
        self.next(last).await
    }

    /// Feeds the last sampled token and samples the next one.
    pub async fn step(&mut self) -> Result<u32> {
        let token = self
            .pending
            .ok_or_else(|| Error::Config("step() before prefill()".into()))?;
        self.next(&[token]).await
    }

    /// Runs `tokens` and picks the next token: on the device when the sampler is a plain argmax.
    async fn next(&mut self, tokens: &[u32]) -> Result<u32> {
        let token = if self.sampler.is_plain_argmax() {
            self.model
                .forward_argmax(self.backend, self.session, tokens)
                .await?
        } else {
            let logits = self
                .model
                .forward(self.backend, self.session, tokens, Logits::Last)
                .await?;
            self.sampler.sample(&logits)?
        };
        self.sampler.accept(token);
        self.pending = Some(token);
        Ok(token)
    }

    /// Whether `token`, just sampled after `emitted` tokens were emitted, ends the generation
    /// before it is emitted: an end-of-generation token, or the `max_tokens` budget already spent.
    pub fn stop_before(
        &self,
        tokenizer: &Tokenizer,
        token: u32,
        emitted: usize,
        max_tokens: usize,
    ) -> Option<Stop> {
        if emitted >= max_tokens {
            Some(Stop::MaxTokens)
        } else if tokenizer.is_eog(token) {
            Some(Stop::EndOfGeneration)
        } else {
            None
        }
    }

    /// Whether to stop after emitting the `emitted`-th token rather than [`Generator::step`]
    /// again: checked before the step so that no forward pass runs for a token nobody will see.
    pub fn stop_after(&self, emitted: usize, max_tokens: usize) -> Option<Stop> {
        if emitted >= max_tokens {
            Some(Stop::MaxTokens)
        } else if self.position() >= self.limit() {
            Some(Stop::ContextFull)
        } else {
            None
        }
    }

    /// Positions used so far (prompt and generated tokens fed in).
    pub fn position(&self) -> usize {
        self.session.position()
    }

    /// The most positions the session holds.
    pub fn limit(&self) -> usize {
        self.session.limit()
    }
}
