//! The llama-family model: architecture detection, weights uploaded to a backend, and the forward
//! pass over a session's KV cache.

mod forward;
mod generate;
mod session;

pub use generate::Generator;
pub use session::Session;

use crate::backend::{Backend, RopeStyle, WeightDesc};
use crate::gguf::LlamaHparams;
use crate::source::ByteSource;
use crate::store::WeightStore;
use crate::{Error, Result};

/// The architectures the forward pass implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
}

impl Arch {
    /// From `general.architecture`; anything else is `UnsupportedArchitecture`, naming it.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "llama" => Ok(Arch::Llama),
            "qwen2" => Ok(Arch::Qwen2),
            other => Err(Error::UnsupportedArchitecture(other.to_string())),
        }
    }

    /// llama's converter permutes q/k for adjacent-pair RoPE; qwen2 keeps the NeoX halves.
    pub fn rope_style(self) -> RopeStyle {
        match self {
            Arch::Llama => RopeStyle::Normal,
            Arch::Qwen2 => RopeStyle::Neox,
        }
    }
}

/// Which logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position's (generation).
    Last,
    /// Every position's, row after row (teacher-forced checks).
    All,
}

/// The weights of one transformer block.
pub struct BlockWeights<B: Backend> {
    pub attn_norm: B::Weight,
    pub wq: B::Weight,
    pub wk: B::Weight,
    pub wv: B::Weight,
    pub bq: Option<B::Weight>,
    pub bk: Option<B::Weight>,
    pub bv: Option<B::Weight>,
    pub wo: B::Weight,
    pub ffn_norm: B::Weight,
    pub w_gate: B::Weight,
    pub w_up: B::Weight,
    pub w_down: B::Weight,
}

/// A llama-family model whose weights live on backend `B`.
pub struct Model<B: Backend> {
    pub arch: Arch,
    pub hparams: LlamaHparams,
    embedding: B::Weight,
    blocks: Vec<BlockWeights<B>>,
    output_norm: B::Weight,
    /// `None` when the head is tied to the embeddings.
    output: Option<B::Weight>,
}

impl<B: Backend> Model<B> {
    /// Reads the hyperparameters and uploads every weight of `store` to `backend`.
    pub fn load<S: ByteSource>(backend: &B, store: &WeightStore<S>) -> Result<Self> {
        let file = store.gguf();
        let arch = Arch::from_name(file.architecture()?)?;
        let hparams = LlamaHparams::from_metadata(&file.metadata)?;
        if hparams.key_length != hparams.value_length {
            return Err(Error::Config(format!(
                "key length {} differs from value length {}",
                hparams.key_length, hparams.value_length
            )));
        }
        let upload = |name: &str| -> Result<B::Weight> {
            let t = store.tensor(name)?;
            let bytes = store.tensor_bytes(name)?;
            backend.upload_weight(
                WeightDesc {
                    name,
                    ggml_type: t.ggml_type,
                    dims: &t.dims,
                },
                &bytes,
            )
        };
        let optional = |name: &str| -> Result<Option<B::Weight>> {
            match store.tensor(name) {
                Ok(_) => upload(name).map(Some),
                Err(Error::TensorNotFound(_)) => Ok(None),
                Err(e) => Err(e),
            }
        };
        let mut blocks = Vec::with_capacity(hparams.block_count as usize);
        for i in 0..hparams.block_count {
            let w = |t: &str| upload(&format!("blk.{i}.{t}.weight"));
            let b = |t: &str| optional(&format!("blk.{i}.{t}.bias"));
            blocks.push(BlockWeights {
                attn_norm: w("attn_norm")?,
                wq: w("attn_q")?,
                wk: w("attn_k")?,
                wv: w("attn_v")?,
                bq: b("attn_q")?,
                bk: b("attn_k")?,
                bv: b("attn_v")?,
                wo: w("attn_output")?,
                ffn_norm: w("ffn_norm")?,
                w_gate: w("ffn_gate")?,
                w_up: w("ffn_up")?,
                w_down: w("ffn_down")?,
            });
        }
        Ok(Self {
            arch,
            embedding: upload("token_embd.weight")?,
            output_norm: upload("output_norm.weight")?,
            output: optional("output.weight")?,
            blocks,
            hparams,
        })
    }

    /// A fresh session (empty KV cache) holding up to `context` positions (at most the model's).
    pub fn session(&self, backend: &B, context: usize) -> Result<Session<B>> {
        let limit = context.min(self.hparams.context_length as usize);
        Session::new(backend, &self.hparams, limit)
    }

    pub fn vocab_size(&self) -> usize {
        self.hparams.vocab_size as usize
    }
}
