//! Feeding tokens and choosing the next one: the two steps every generation loop is made of
//! (`engine::Reply` streams a conversation's reply with them; `Generator` wraps them for tests
//! that drive a session by hand).

use super::{Logits, Model, Session};
use crate::backend::Backend;
use crate::sample::Sampler;
use crate::{Error, Result};

/// Feeds `tokens` in chunks of at most `batch` and samples the token after the last one. The
/// sampler sees `tokens` first (its repetition window), then the sampled token.
pub async fn prefill<B: Backend>(
    model: &Model<B>,
    backend: &B,
    session: &mut Session<B>,
    sampler: &mut Sampler,
    tokens: &[u32],
    batch: usize,
) -> Result<u32> {
    let chunks: Vec<&[u32]> = tokens.chunks(batch.max(1)).collect();
    let (last, rest) = chunks
        .split_last()
        .ok_or_else(|| Error::Config("the prompt has no tokens".into()))?;
    for chunk in rest {
        model.forward(backend, session, chunk, Logits::Last).await?;
    }
    tokens.iter().for_each(|&t| sampler.accept(t));
    sample_after(model, backend, session, sampler, last).await
}

/// Runs `tokens` at the session's next positions and samples the next token: on the device when
/// the sampler is a plain argmax, so only one id comes back.
pub async fn sample_after<B: Backend>(
    model: &Model<B>,
    backend: &B,
    session: &mut Session<B>,
    sampler: &mut Sampler,
    tokens: &[u32],
) -> Result<u32> {
    let token = if sampler.is_plain_argmax() {
        model.forward_argmax(backend, session, tokens).await?
    } else {
        let logits = model
            .forward(backend, session, tokens, Logits::Last)
            .await?;
        sampler.sample(&logits)?
    };
    sampler.accept(token);
    Ok(token)
}

/// A session extended one token at a time by hand (no stop rules, no history): for tests and
/// tools that need the raw steps. Conversations go through `engine::Conversation`.
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
        let token = prefill(
            self.model,
            self.backend,
            self.session,
            &mut self.sampler,
            prompt,
            batch,
        )
        .await?;
        self.pending = Some(token);
        Ok(token)
    }

    /// Feeds the last sampled token and samples the next one.
    pub async fn step(&mut self) -> Result<u32> {
        let token = self
            .pending
            .ok_or_else(|| Error::Config("step() before prefill()".into()))?;
        let next = sample_after(
            self.model,
            self.backend,
            self.session,
            &mut self.sampler,
            &[token],
        )
        .await?;
        self.pending = Some(next);
        Ok(next)
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
