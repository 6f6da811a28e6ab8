//! One decode step for several sessions at once: their next tokens go through every matrix product
//! as one batch (the weights are read once for all of them), while rotary embedding, the KV append
//! and attention run per session, each at its own position in its own cache.

use super::forward::{check_room, HeadSlices};
use super::session::Scratch;
use super::{Model, Session};
use crate::backend::{Backend, CopyRowsParams, RowsParams};
use crate::{Error, Result};

/// Buffers reused across batched steps: the batch's activations (reallocated when the number of
/// sessions changes) and one row each of q, k and attention output for the per-session part.
pub struct BatchScratch<B: Backend> {
    rows: Option<Scratch<B>>,
    one: Option<[B::Buffer; 3]>,
}

impl<B: Backend> Default for BatchScratch<B> {
    fn default() -> Self {
        Self {
            rows: None,
            one: None,
        }
    }
}

impl<B: Backend> Model<B> {
    /// Feeds `tokens[i]` to `sessions[i]` at its next position and returns one row of logits per
    /// session (`vocab_size` each, in order). Equal, row for row, to a one-token `forward` of
    /// each session. On error no session advances.
    pub async fn forward_batch(
        &self,
        backend: &B,
        scratch: &mut BatchScratch<B>,
        sessions: &mut [&mut Session<B>],
        tokens: &[u32],
    ) -> Result<Vec<f32>> {
        let slices = self.compute_batch(backend, scratch, sessions, tokens)?;
        self.gather(backend, &slices, tokens.len()).await
    }

    /// As `forward_batch`, returning each row's largest logit's index (on the device when the
    /// head is in one piece).
    pub async fn forward_batch_argmax(
        &self,
        backend: &B,
        scratch: &mut BatchScratch<B>,
        sessions: &mut [&mut Session<B>],
        tokens: &[u32],
    ) -> Result<Vec<u32>> {
        let rows = tokens.len();
        let slices = self.compute_batch(backend, scratch, sessions, tokens)?;
        if let [(only, n)] = slices.as_slice() {
            return backend.argmax(only, RowsParams { rows, cols: *n }).await;
        }
        let logits = self.gather(backend, &slices, rows).await?;
        Ok(logits
            .chunks_exact(self.vocab_size())
            .map(crate::sample::argmax)
            .collect())
    }

    fn compute_batch(
        &self,
        backend: &B,
        scratch: &mut BatchScratch<B>,
        sessions: &mut [&mut Session<B>],
        tokens: &[u32],
    ) -> Result<HeadSlices<B>> {
        let m = tokens.len();
        if m == 0 || m != sessions.len() {
            return Err(Error::Shape {
                op: "forward_batch",
                detail: format!("{m} tokens for {} sessions", sessions.len()),
            });
        }
        for session in sessions.iter() {
            check_room(session, 1)?;
        }
        self.check_tokens(tokens)?;
        let d = self.dims();
        let mut s = match scratch.rows.take() {
            Some(s) if s.tokens == m => s,
            _ => Scratch::new(backend, m, &d)?,
        };
        let [mut q1, mut k1, mut att1] = match scratch.one.take() {
            Some(one) => one,
            None => [
                backend.alloc(d.q_dim)?,
                backend.alloc(d.kv_dim)?,
                backend.alloc(d.q_dim)?,
            ],
        };
        let row = |cols, src_row0, dst_row0| CopyRowsParams {
            rows: 1,
            cols,
            src_row0,
            dst_row0,
        };
        let attend = |layer: usize, s: &mut Scratch<B>| {
            for (i, session) in sessions.iter_mut().enumerate() {
                let pos = session.pos;
                backend.copy_rows(&s.q, &mut q1, row(d.q_dim, i, 0))?;
                backend.copy_rows(&s.k, &mut k1, row(d.kv_dim, i, 0))?;
                let limit = session.limit;
                backend.rope(&mut q1, self.rope_params(layer, (1, d.heads), pos, limit))?;
                backend.rope(
                    &mut k1,
                    self.rope_params(layer, (1, d.kv_heads), pos, limit),
                )?;
                backend.copy_rows(&k1, &mut session.k_cache[layer], row(d.kv_dim, 0, pos))?;
                backend.copy_rows(&s.v, &mut session.v_cache[layer], row(d.kv_dim, i, pos))?;
                backend.attention(
                    &q1,
                    &session.k_cache[layer],
                    &session.v_cache[layer],
                    &mut att1,
                    self.attention_params(layer, 1, pos),
                )?;
                backend.copy_rows(&att1, &mut s.att, row(d.q_dim, 0, i))?;
            }
            Ok(())
        };
        let slices = self.run_layers(backend, &mut s, tokens, m, attend);
        scratch.rows = Some(s);
        scratch.one = Some([q1, k1, att1]);
        let slices = slices?;
        for session in sessions.iter_mut() {
            session.pos += 1;
        }
        Ok(slices)
    }
}
