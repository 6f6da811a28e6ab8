//! A generation session: the KV cache of every block, the position reached, and scratch buffers
//! reused across steps of the same width.

use crate::backend::Backend;
use crate::gguf::LlamaHparams;
use crate::{Error, Result};

/// Per-width activation buffers, reallocated only when the number of tokens per step changes.
pub(super) struct Scratch<B: Backend> {
    pub tokens: usize,
    pub x: B::Buffer,
    pub h: B::Buffer,
    pub q: B::Buffer,
    pub k: B::Buffer,
    pub v: B::Buffer,
    /// Where per-head norms write q and k (then swapped with them).
    pub qn: B::Buffer,
    pub kn: B::Buffer,
    pub att: B::Buffer,
    pub o: B::Buffer,
    pub gate: B::Buffer,
    pub up: B::Buffer,
    pub act: B::Buffer,
}

impl<B: Backend> Scratch<B> {
    /// Buffers for steps of `m` tokens.
    pub fn new(backend: &B, m: usize, d: &super::forward::Dims) -> Result<Self> {
        Ok(Self {
            tokens: m,
            x: backend.alloc(m * d.dim)?,
            h: backend.alloc(m * d.dim)?,
            q: backend.alloc(m * d.q_dim)?,
            k: backend.alloc(m * d.kv_dim)?,
            v: backend.alloc(m * d.kv_dim)?,
            qn: backend.alloc(m * d.q_dim)?,
            kn: backend.alloc(m * d.kv_dim)?,
            att: backend.alloc(m * d.q_dim)?,
            o: backend.alloc(m * d.dim)?,
            gate: backend.alloc(m * d.ffn)?,
            up: backend.alloc(m * d.ffn)?,
            act: backend.alloc(m * d.ffn)?,
        })
    }
}

/// One conversation's state on the backend.
pub struct Session<B: Backend> {
    pub(super) k_cache: Vec<B::Buffer>,
    pub(super) v_cache: Vec<B::Buffer>,
    pub(super) pos: usize,
    pub(super) limit: usize,
    /// Floats per position in each layer's K (and V) cache.
    kv_dim: usize,
    pub(super) scratch: Option<Scratch<B>>,
}

impl<B: Backend> Session<B> {
    pub(super) fn new(backend: &B, hp: &LlamaHparams, limit: usize) -> Result<Self> {
        let kv_dim = (hp.head_count_kv * hp.key_length) as usize;
        let len = limit
            .checked_mul(kv_dim)
            .ok_or_else(|| Error::Config(format!("a {limit}-position KV cache is too large")))?;
        let mut k_cache = Vec::with_capacity(hp.block_count as usize);
        let mut v_cache = Vec::with_capacity(hp.block_count as usize);
        for _ in 0..hp.block_count {
            k_cache.push(backend.alloc(len)?);
            v_cache.push(backend.alloc(len)?);
        }
        Ok(Self {
            k_cache,
            v_cache,
            pos: 0,
            limit,
            kv_dim,
            scratch: None,
        })
    }

    /// Positions already in the cache.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The most positions this session can hold.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes of the K and V caches (allocated whole, for `limit` positions, at creation).
    pub fn kv_bytes(&self) -> u64 {
        let per_layer = (self.limit * self.kv_dim * std::mem::size_of::<f32>()) as u64;
        per_layer * (self.k_cache.len() + self.v_cache.len()) as u64
    }

    /// Forgets everything after position `pos` (e.g. to start over with `rewind(0)`).
    pub fn rewind(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
    }
}
