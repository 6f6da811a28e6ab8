//! The forward pass: embeddings, pre-norm attention and SwiGLU blocks with residuals, final norm,
//! output head. Every op goes through the backend; only the logits come back.

use super::plan::{ATTN_NORM, FFN_NORM, WK, WO, WQ, WV, W_DOWN, W_GATE, W_UP};
use super::session::Scratch;
use super::{Logits, Model, Session};
use crate::backend::{
    AttentionParams, Backend, CopyRowsParams, MatmulShape, RmsNormParams, RopeParams, RowsParams,
};
use crate::{Error, Result};

/// The logits on the device: one buffer per head slice with its number of columns.
type HeadSlices<B> = Vec<(<B as Backend>::Buffer, usize)>;

impl<B: Backend> Model<B> {
    /// Runs `tokens` at the session's next positions and returns their logits (`Logits::Last`: one
    /// row; `Logits::All`: one row per token), each row `vocab_size` long. A layer that fails to
    /// load fails the pass with `Error::LayerLoad`; the session is left as it was.
    pub async fn forward(
        &self,
        backend: &B,
        session: &mut Session<B>,
        tokens: &[u32],
        logits: Logits,
    ) -> Result<Vec<f32>> {
        let (slices, rows) = self.compute(backend, session, tokens, logits)?;
        self.gather(backend, &slices, rows).await
    }

    /// As `forward` with `Logits::Last`, returning only the index of the largest logit. With the
    /// head in one piece the argmax runs on the device and one id comes back, not the logits.
    pub async fn forward_argmax(
        &self,
        backend: &B,
        session: &mut Session<B>,
        tokens: &[u32],
    ) -> Result<u32> {
        let (slices, rows) = self.compute(backend, session, tokens, Logits::Last)?;
        if let [(only, n)] = slices.as_slice() {
            let ids = backend.argmax(only, RowsParams { rows, cols: *n }).await?;
            return ids.first().copied().ok_or_else(|| Error::Shape {
                op: "forward_argmax",
                detail: "no row came back".into(),
            });
        }
        let logits = self.gather(backend, &slices, rows).await?;
        Ok(crate::sample::argmax(&logits))
    }

    /// Reads the logits back, interleaving the slices of a split head.
    async fn gather(&self, backend: &B, slices: &HeadSlices<B>, rows: usize) -> Result<Vec<f32>> {
        let vocab = self.vocab_size();
        if let [(only, _)] = slices.as_slice() {
            return backend.download(only, rows * vocab).await;
        }
        // A split head: each slice holds `rows` rows of its share of the vocabulary.
        let mut out = vec![0f32; rows * vocab];
        for ((buf, n), cols) in slices.iter().zip(&self.head_rows) {
            let part = backend.download(buf, rows * n).await?;
            let start = cols.start as usize;
            for (r, src) in part.chunks(*n).enumerate() {
                out[r * vocab + start..r * vocab + start + n].copy_from_slice(src);
            }
        }
        Ok(out)
    }

    /// The pass up to the logits on the device; synchronous, so no lock is held across an await.
    fn compute(
        &self,
        backend: &B,
        session: &mut Session<B>,
        tokens: &[u32],
        logits: Logits,
    ) -> Result<(HeadSlices<B>, usize)> {
        let m = tokens.len();
        if m == 0 {
            return Err(Error::Shape {
                op: "forward",
                detail: "no tokens".into(),
            });
        }
        let needed = session.pos + m;
        if needed > session.limit {
            return Err(Error::ContextFull {
                needed,
                limit: session.limit,
            });
        }
        let vocab = self.vocab_size();
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::Shape {
                op: "forward",
                detail: format!("token id {bad} ≥ vocabulary {vocab}"),
            });
        }
        let hp = &self.hparams;
        let dim = hp.embedding_length as usize;
        let head_dim = hp.key_length as usize;
        let heads = hp.head_count as usize;
        let kv_heads = hp.head_count_kv as usize;
        let (q_dim, kv_dim, ffn) = (
            heads * head_dim,
            kv_heads * head_dim,
            hp.feed_forward_length as usize,
        );
        let pos0 = session.pos;

        let mut s = match session.scratch.take() {
            Some(s) if s.tokens == m => s,
            _ => Scratch {
                tokens: m,
                x: backend.alloc(m * dim)?,
                h: backend.alloc(m * dim)?,
                q: backend.alloc(m * q_dim)?,
                k: backend.alloc(m * kv_dim)?,
                v: backend.alloc(m * kv_dim)?,
                att: backend.alloc(m * q_dim)?,
                o: backend.alloc(m * dim)?,
                gate: backend.alloc(m * ffn)?,
                up: backend.alloc(m * ffn)?,
                act: backend.alloc(m * ffn)?,
            },
        };
        let norm = RmsNormParams {
            rows: m,
            dim,
            eps: hp.rms_norm_eps,
        };
        let rope = |heads| RopeParams {
            tokens: m,
            heads,
            head_dim,
            rope_dim: hp.rope_dimension_count as usize,
            pos0,
            freq_base: hp.rope_freq_base,
            freq_scale: 1.0 / hp.rope_scale,
            style: self.arch.rope_style(),
        };
        let shape = |n, k| MatmulShape { m, n, k };

        let mut weights = self.scheduler();
        {
            let embd = weights.acquire(0)?;
            match &self.host_embedding {
                Some(gather) => backend.write(&mut s.x, &gather(tokens)?)?,
                None => backend.embedding(embd.get(0)?, tokens, &mut s.x)?,
            }
        }
        for (layer, layout) in self.layouts.iter().enumerate() {
            let w = weights.acquire(layer + 1)?;
            let bias = |i: usize| layout.biases[i].map(|p| w.get(p)).transpose();
            backend.rms_norm(&s.x, w.get(ATTN_NORM)?, &mut s.h, norm)?;
            backend.matmul(w.get(WQ)?, bias(0)?, &s.h, &mut s.q, shape(q_dim, dim))?;
            backend.matmul(w.get(WK)?, bias(1)?, &s.h, &mut s.k, shape(kv_dim, dim))?;
            backend.matmul(w.get(WV)?, bias(2)?, &s.h, &mut s.v, shape(kv_dim, dim))?;
            backend.rope(&mut s.q, rope(heads))?;
            backend.rope(&mut s.k, rope(kv_heads))?;
            let append = CopyRowsParams {
                rows: m,
                cols: kv_dim,
                src_row0: 0,
                dst_row0: pos0,
            };
            backend.copy_rows(&s.k, &mut session.k_cache[layer], append)?;
            backend.copy_rows(&s.v, &mut session.v_cache[layer], append)?;
            let attention = AttentionParams {
                tokens: m,
                pos0,
                heads,
                kv_heads,
                head_dim,
                scale: 1.0 / (head_dim as f32).sqrt(),
            };
            backend.attention(
                &s.q,
                &session.k_cache[layer],
                &session.v_cache[layer],
                &mut s.att,
                attention,
            )?;
            backend.matmul(w.get(WO)?, None, &s.att, &mut s.o, shape(dim, q_dim))?;
            backend.add(&mut s.x, &s.o, m * dim)?;

            backend.rms_norm(&s.x, w.get(FFN_NORM)?, &mut s.h, norm)?;
            backend.matmul(w.get(W_GATE)?, None, &s.h, &mut s.gate, shape(ffn, dim))?;
            backend.matmul(w.get(W_UP)?, None, &s.h, &mut s.up, shape(ffn, dim))?;
            backend.silu_mul(&s.gate, &s.up, &mut s.act, m * ffn)?;
            backend.matmul(w.get(W_DOWN)?, None, &s.act, &mut s.o, shape(dim, ffn))?;
            backend.add(&mut s.x, &s.o, m * dim)?;
        }
        let rows = match logits {
            Logits::Last => 1,
            Logits::All => m,
        };
        let mut last = backend.alloc(rows * dim)?;
        let take = CopyRowsParams {
            rows,
            cols: dim,
            src_row0: m - rows,
            dst_row0: 0,
        };
        backend.copy_rows(&s.x, &mut last, take)?;
        let mut normed = backend.alloc(rows * dim)?;
        let mut slices = Vec::with_capacity(self.head_rows.len());
        for (k, cols) in self.head_rows.iter().enumerate() {
            let head = weights.acquire(self.layouts.len() + 1 + k)?;
            if k == 0 {
                let norm = RmsNormParams { rows, ..norm };
                backend.rms_norm(&last, head.get(0)?, &mut normed, norm)?;
            }
            let n = (cols.end - cols.start) as usize;
            let mut out = backend.alloc(rows * n)?;
            let shape = MatmulShape { m: rows, n, k: dim };
            backend.matmul(
                head.get(usize::from(k == 0))?,
                None,
                &normed,
                &mut out,
                shape,
            )?;
            slices.push((out, n));
        }
        drop(weights);
        // Only a pass that got this far advances the session.
        session.pos = needed;
        session.scratch = Some(s);
        Ok((slices, rows))
    }
}
