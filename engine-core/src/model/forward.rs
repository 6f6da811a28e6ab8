//! The forward pass: embeddings, pre-norm attention and SwiGLU blocks with residuals, final norm,
//! output head. Every op goes through the backend; only the logits come back.

use super::session::Scratch;
use super::{Logits, Model, Session};
use crate::backend::{
    AttentionParams, Backend, CopyRowsParams, MatmulShape, RmsNormParams, RopeParams,
};
use crate::{Error, Result};

impl<B: Backend> Model<B> {
    /// Runs `tokens` at the session's next positions and returns their logits (`Logits::Last`: one
    /// row; `Logits::All`: one row per token), each row `vocab_size` long.
    pub async fn forward(
        &self,
        backend: &B,
        session: &mut Session<B>,
        tokens: &[u32],
        logits: Logits,
    ) -> Result<Vec<f32>> {
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

        backend.embedding(&self.embedding, tokens, &mut s.x)?;
        for (layer, w) in self.blocks.iter().enumerate() {
            backend.rms_norm(&s.x, &w.attn_norm, &mut s.h, norm)?;
            backend.matmul(&w.wq, w.bq.as_ref(), &s.h, &mut s.q, shape(q_dim, dim))?;
            backend.matmul(&w.wk, w.bk.as_ref(), &s.h, &mut s.k, shape(kv_dim, dim))?;
            backend.matmul(&w.wv, w.bv.as_ref(), &s.h, &mut s.v, shape(kv_dim, dim))?;
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
            backend.matmul(&w.wo, None, &s.att, &mut s.o, shape(dim, q_dim))?;
            backend.add(&mut s.x, &s.o, m * dim)?;

            backend.rms_norm(&s.x, &w.ffn_norm, &mut s.h, norm)?;
            backend.matmul(&w.w_gate, None, &s.h, &mut s.gate, shape(ffn, dim))?;
            backend.matmul(&w.w_up, None, &s.h, &mut s.up, shape(ffn, dim))?;
            backend.silu_mul(&s.gate, &s.up, &mut s.act, m * ffn)?;
            backend.matmul(&w.w_down, None, &s.act, &mut s.o, shape(dim, ffn))?;
            backend.add(&mut s.x, &s.o, m * dim)?;
        }
        session.pos = needed;

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
        backend.rms_norm(
            &last,
            &self.output_norm,
            &mut normed,
            RmsNormParams { rows, ..norm },
        )?;
        let mut out = backend.alloc(rows * vocab)?;
        let head = self.output.as_ref().unwrap_or(&self.embedding);
        backend.matmul(
            head,
            None,
            &normed,
            &mut out,
            MatmulShape {
                m: rows,
                n: vocab,
                k: dim,
            },
        )?;
        session.scratch = Some(s);
        backend.download(&out, rows * vocab).await
    }
}
