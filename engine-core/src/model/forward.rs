//! The forward pass: embeddings, pre-norm attention and SwiGLU blocks with residuals, final norm,
//! output head. Every op goes through the backend; only the logits come back.

use super::plan::{
    ATTN_NORM, FFN_NORM, K_NORM, POST_ATTN_NORM, POST_FFN_NORM, Q_NORM, WK, WO, WQ, WV, W_DOWN,
    W_GATE, W_UP,
};
use super::session::Scratch;
use super::{Activation, Logits, Model, Session};
use crate::backend::{
    AttentionParams, Backend, CopyRowsParams, MatmulOut, MatmulShape, RmsNormParams, RopeParams,
    RowsParams,
};
use crate::{Error, Result};

/// The logits on the device: one buffer per head slice with its number of columns.
pub(super) type HeadSlices<B> = Vec<(<B as Backend>::Buffer, usize)>;

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
    pub(super) async fn gather(
        &self,
        backend: &B,
        slices: &HeadSlices<B>,
        rows: usize,
    ) -> Result<Vec<f32>> {
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
        let needed = check_room(session, m)?;
        self.check_tokens(tokens)?;
        let dims = self.dims();
        let pos0 = session.pos;
        let mut s = match session.scratch.take() {
            Some(s) if s.tokens == m => s,
            _ => Scratch::new(backend, m, &dims)?,
        };
        let rows = match logits {
            Logits::Last => 1,
            Logits::All => m,
        };
        let attend = |layer: usize, s: &mut Scratch<B>| {
            let rope = |heads| self.rope_params(layer, (m, heads), pos0, session.limit);
            backend.rope(&mut s.q, rope(dims.heads))?;
            backend.rope(&mut s.k, rope(dims.kv_heads))?;
            let append = CopyRowsParams {
                rows: m,
                cols: dims.kv_dim,
                src_row0: 0,
                dst_row0: pos0,
            };
            backend.copy_rows(&s.k, &mut session.k_cache[layer], append)?;
            backend.copy_rows(&s.v, &mut session.v_cache[layer], append)?;
            backend.attention(
                &s.q,
                &session.k_cache[layer],
                &session.v_cache[layer],
                &mut s.att,
                self.attention_params(layer, m, pos0),
            )
        };
        let slices = self.run_layers(backend, &mut s, tokens, rows, attend)?;
        // Only a pass that got this far advances the session.
        session.pos = needed;
        session.scratch = Some(s);
        Ok((slices, rows))
    }

    /// Token ids the embedding table has.
    pub(super) fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        let vocab = self.vocab_size();
        match tokens.iter().find(|&&t| t as usize >= vocab) {
            Some(&bad) => Err(Error::Shape {
                op: "forward",
                detail: format!("token id {bad} ≥ vocabulary {vocab}"),
            }),
            None => Ok(()),
        }
    }

    pub(super) fn dims(&self) -> Dims {
        let hp = &self.hparams;
        let head_dim = hp.key_length as usize;
        let (heads, kv_heads) = (hp.head_count as usize, hp.head_count_kv as usize);
        Dims {
            dim: hp.embedding_length as usize,
            head_dim,
            heads,
            kv_heads,
            q_dim: heads * head_dim,
            kv_dim: kv_heads * head_dim,
            ffn: hp.feed_forward_length as usize,
        }
    }

    /// RoPE for `tokens` rows of `heads` heads at positions `pos0..` of layer `layer`, in a
    /// session of `context` positions (Phi-3's long-context factors depend on it).
    pub(super) fn rope_params(
        &self,
        layer: usize,
        (tokens, heads): (usize, usize),
        pos0: usize,
        context: usize,
    ) -> RopeParams {
        let hp = &self.hparams;
        RopeParams {
            tokens,
            heads,
            head_dim: hp.key_length as usize,
            rope_dim: hp.rope_dimension_count as usize,
            pos0,
            freq_base: self.layer_attention[layer].freq_base,
            freq_scale: 1.0 / hp.rope_scale,
            style: self.arch.rope_style(),
            freq_factors: self.rope.factors(context),
            attn_factor: self.rope.attn_factor,
            yarn: self.rope.yarn,
        }
    }

    pub(super) fn attention_params(
        &self,
        layer: usize,
        tokens: usize,
        pos0: usize,
    ) -> AttentionParams {
        let d = self.dims();
        AttentionParams {
            tokens,
            pos0,
            heads: d.heads,
            kv_heads: d.kv_heads,
            head_dim: d.head_dim,
            scale: 1.0 / (d.head_dim as f32).sqrt(),
            window: self.layer_attention[layer].window,
        }
    }

    /// Embeds `tokens` into `s.x`, runs every block (with `attend(layer, s)` turning `s.q`,
    /// `s.k`, `s.v` into `s.att`: the only part that touches a KV cache), then the head over the
    /// last `rows` rows.
    pub(super) fn run_layers(
        &self,
        backend: &B,
        s: &mut Scratch<B>,
        tokens: &[u32],
        rows: usize,
        mut attend: impl FnMut(usize, &mut Scratch<B>) -> Result<()>,
    ) -> Result<HeadSlices<B>> {
        let m = tokens.len();
        let d = self.dims();
        let (dim, q_dim, kv_dim, ffn) = (d.dim, d.q_dim, d.kv_dim, d.ffn);
        let norm = RmsNormParams {
            rows: m,
            dim,
            eps: self.hparams.rms_norm_eps,
        };
        let shape = |n, k| MatmulShape { m, n, k };

        let mut weights = self.scheduler();
        {
            let embd = weights.acquire(0)?;
            match &self.host_embedding {
                Some(gather) => backend.write(&mut s.x, &gather(tokens)?)?,
                None => backend.embedding(embd.get(0)?, tokens, &mut s.x)?,
            }
            if let Some(factor) = self.arch.embedding_scale(&self.hparams) {
                backend.scale(&mut s.x, factor, m * dim)?;
            }
        }
        let head_norm = |heads: usize| RmsNormParams {
            rows: m * heads,
            dim: d.head_dim,
            eps: self.hparams.rms_norm_eps,
        };
        for (layer, layout) in self.layouts.iter().enumerate() {
            let w = weights.acquire(layer + 1)?;
            let bias = |i: usize| layout.biases[i].map(|p| w.get(p)).transpose();
            backend.rms_norm(&s.x, w.get(ATTN_NORM)?, &mut s.h, norm)?;
            let qkv = &mut [
                matmul_out(w.get(WQ)?, bias(0)?, &mut s.q, q_dim),
                matmul_out(w.get(WK)?, bias(1)?, &mut s.k, kv_dim),
                matmul_out(w.get(WV)?, bias(2)?, &mut s.v, kv_dim),
            ];
            backend.matmuls(&s.h, m, dim, qkv)?;
            if let (Some(qn), Some(kn)) = (layout.norms[Q_NORM], layout.norms[K_NORM]) {
                backend.rms_norm(&s.q, w.get(qn)?, &mut s.qn, head_norm(d.heads))?;
                backend.rms_norm(&s.k, w.get(kn)?, &mut s.kn, head_norm(d.kv_heads))?;
                std::mem::swap(&mut s.q, &mut s.qn);
                std::mem::swap(&mut s.k, &mut s.kn);
            }
            attend(layer, s)?;
            backend.matmul(w.get(WO)?, None, &s.att, &mut s.o, shape(dim, q_dim))?;
            self.residual(
                backend,
                s,
                layout.norms[POST_ATTN_NORM].map(|i| w.get(i)),
                norm,
            )?;

            backend.rms_norm(&s.x, w.get(FFN_NORM)?, &mut s.h, norm)?;
            let gate_up = &mut [
                matmul_out(w.get(W_GATE)?, None, &mut s.gate, ffn),
                matmul_out(w.get(W_UP)?, None, &mut s.up, ffn),
            ];
            backend.matmuls(&s.h, m, dim, gate_up)?;
            match self.arch.activation() {
                Activation::Silu => backend.silu_mul(&s.gate, &s.up, &mut s.act, m * ffn)?,
                Activation::GeluTanh => backend.gelu_mul(&s.gate, &s.up, &mut s.act, m * ffn)?,
            }
            backend.matmul(w.get(W_DOWN)?, None, &s.act, &mut s.o, shape(dim, ffn))?;
            self.residual(
                backend,
                s,
                layout.norms[POST_FFN_NORM].map(|i| w.get(i)),
                norm,
            )?;
        }
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
        Ok(slices)
    }
}

impl<B: Backend> Model<B> {
    /// `x += o`, or `x += rmsnorm(o)·w` where the architecture norms a sub-layer's output.
    fn residual(
        &self,
        backend: &B,
        s: &mut Scratch<B>,
        post_norm: Option<Result<&B::Weight>>,
        norm: RmsNormParams,
    ) -> Result<()> {
        let len = norm.rows * norm.dim;
        match post_norm {
            None => backend.add(&mut s.x, &s.o, len),
            Some(w) => {
                backend.rms_norm(&s.o, w?, &mut s.h, norm)?;
                backend.add(&mut s.x, &s.h, len)
            }
        }
    }
}

/// The model's widths, as the forward pass needs them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dims {
    pub dim: usize,
    pub head_dim: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub q_dim: usize,
    pub kv_dim: usize,
    pub ffn: usize,
}

/// The session's position after `m` more tokens, or `ContextFull`.
pub(super) fn check_room<B: Backend>(session: &Session<B>, m: usize) -> Result<usize> {
    let needed = session.pos + m;
    if needed > session.limit {
        return Err(Error::ContextFull {
            needed,
            limit: session.limit,
        });
    }
    Ok(needed)
}

/// A `Backend::matmuls` entry.
fn matmul_out<'a, W, B>(
    w: &'a W,
    bias: Option<&'a W>,
    out: &'a mut B,
    n: usize,
) -> MatmulOut<'a, W, B> {
    MatmulOut { w, bias, out, n }
}
