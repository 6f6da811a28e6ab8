//! The llama-family model: architecture detection, weights uploaded to a backend, and the forward
//! pass over a session's KV cache.

mod arch;
mod batch;
mod forward;
mod generate;
mod session;

pub use arch::{Activation, Arch, LayerAttention};
pub use batch::BatchScratch;
pub use generate::{prefill, sample_after, Generator};
pub use rope::RopeScaling;
pub use session::Session;

mod plan;
mod rope;

#[cfg(test)]
mod arch_tests;
// Memory maps, which wasm does not have.
#[cfg(all(test, not(target_family = "wasm")))]
mod load_tests;

use crate::backend::{Backend, WeightDesc};
use crate::gguf::LlamaHparams;
use crate::prefetch::{Loader, PrefetchStats};
use crate::schedule::{LayerPlan, LayerScheduler, Residency, SchedulerConfig};
use crate::source::ByteSource;
use crate::store::WeightStore;
use crate::{Error, Result};
use plan::{BlockLayout, PlanKind, TensorPart};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

/// Which logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position's (generation).
    Last,
    /// Every position's, row after row (teacher-forced checks).
    All,
}

/// A llama-family model whose weights live on backend `B`, all resident or streamed by a
/// `LayerScheduler` within a device budget.
pub struct Model<B: Backend> {
    pub arch: Arch,
    pub hparams: LlamaHparams,
    /// Each layer's RoPE base and attention window.
    layer_attention: Vec<LayerAttention>,
    /// RoPE scaling beyond `hparams.rope_scale`.
    rope: RopeScaling,
    layouts: Vec<BlockLayout>,
    /// Rows of the head each output step computes.
    head_rows: Vec<Range<u64>>,
    /// Gathers embedding rows on the host when the table is not on the device (streaming).
    host_embedding: Option<HostEmbedding>,
    weights: Mutex<LayerScheduler<B::Weight>>,
}

/// Reads and dequantizes the embedding rows of the given tokens, one row after another.
type HostEmbedding = Arc<dyn Fn(&[u32]) -> Result<Vec<f32>> + Send + Sync>;

impl<B: Backend> Model<B> {
    /// Reads the hyperparameters and uploads every weight of `store` to `backend` now. A host
    /// backend's weights borrow from a memory-resident `store` (keeping it alive), not copy it.
    pub fn load<S: ByteSource + 'static>(backend: &B, store: Arc<WeightStore<S>>) -> Result<Self> {
        let config = read_hparams(&store)?;
        let mp = plan::llama_plan(&store, &config.hparams, config.arch, PlanKind::Resident)?;
        let parts = mp.parts;
        let weights = LayerScheduler::resident(mp.plan, |t| upload(backend, &store, &parts[t]))?;
        Ok(Self::new(config, mp.layouts, mp.head_rows, None, weights))
    }

    /// Loads the model to fit `config.budget` bytes of weights on the device: everything when it
    /// fits, else a pinned set plus layers streamed ahead of use by prefetch workers, which read
    /// `store` and upload through their own handle to `backend`.
    pub fn load_streaming<S: ByteSource + 'static>(
        backend: &B,
        store: Arc<WeightStore<S>>,
        config: SchedulerConfig,
    ) -> Result<Self>
    where
        B: Clone + Send + Sync + 'static,
    {
        let model = read_hparams(&store)?;
        let mp = plan::llama_plan(&store, &model.hparams, model.arch, PlanKind::Streamed)?;
        let parts: Arc<[TensorPart]> = mp.parts.into();
        let embedding = host_embedding(store.clone())?;
        let backend = backend.clone();
        let loader: Loader<usize, B::Weight> =
            Arc::new(move |t| upload(&backend, &store, &parts[t]));
        let weights = LayerScheduler::new(mp.plan, config, loader)?;
        Ok(Self::new(
            model,
            mp.layouts,
            mp.head_rows,
            Some(embedding),
            weights,
        ))
    }

    fn new(
        config: ModelConfig,
        layouts: Vec<BlockLayout>,
        head_rows: Vec<Range<u64>>,
        host_embedding: Option<HostEmbedding>,
        weights: LayerScheduler<B::Weight>,
    ) -> Self {
        let ModelConfig {
            arch,
            hparams,
            layer_attention,
            rope,
        } = config;
        Self {
            arch,
            hparams,
            layer_attention,
            rope,
            layouts,
            head_rows,
            host_embedding,
            weights: Mutex::new(weights),
        }
    }

    fn scheduler(&self) -> MutexGuard<'_, LayerScheduler<B::Weight>> {
        // A panic mid-pass leaves the scheduler's maps consistent; carry on.
        self.weights.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Prefetch and residency statistics so far.
    pub fn prefetch_stats(&self) -> PrefetchStats {
        self.scheduler().stats()
    }

    /// The residency decided at load time.
    pub fn residency(&self) -> Residency {
        self.scheduler().residency().clone()
    }

    /// Bytes of weights on the device (or reserved for fetches under way) now.
    pub fn device_bytes(&self) -> u64 {
        self.scheduler().device_bytes()
    }

    /// Stops and joins the prefetch workers (also done on drop); later passes fail with
    /// `Error::ShutDown` when they need a streamed layer.
    pub fn shutdown(&self) {
        self.scheduler().shutdown();
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

/// What the forward pass needs to know of a model besides its weights.
struct ModelConfig {
    arch: Arch,
    hparams: LlamaHparams,
    layer_attention: Vec<LayerAttention>,
    rope: RopeScaling,
}

/// The architecture, hyperparameters, per-layer attention and RoPE frequency factors of the model
/// in `store`, checked for what the forward pass assumes.
fn read_hparams<S: ByteSource>(store: &WeightStore<S>) -> Result<ModelConfig> {
    let file = store.gguf();
    let arch = Arch::from_name(file.architecture()?)?;
    let hparams = LlamaHparams::from_metadata(&file.metadata)?;
    if hparams.key_length != hparams.value_length {
        return Err(Error::Config(format!(
            "key length {} differs from value length {}",
            hparams.key_length, hparams.value_length
        )));
    }
    // A RoPE scaling the forward pass does not implement would give wrong answers: refuse it.
    let rope = rope::read(store, &hparams, &file.metadata)?;
    let layer_attention = arch::layer_attention(arch, &hparams, &file.metadata)?;
    Ok(ModelConfig {
        arch,
        hparams,
        layer_attention,
        rope,
    })
}

/// The layer plan a streamed load of the model in `store` walks (for `sluice inspect --plan`).
pub fn layer_plan<S: ByteSource>(store: &WeightStore<S>) -> Result<LayerPlan> {
    let config = read_hparams(store)?;
    Ok(plan::llama_plan(store, &config.hparams, config.arch, PlanKind::Streamed)?.plan)
}

/// Reads a planned tensor (or its rows) from `store` and uploads it as stored; a whole tensor goes
/// as `HostBytes`, borrowed from a memory-resident source.
fn upload<B: Backend, S: ByteSource + 'static>(
    backend: &B,
    store: &Arc<WeightStore<S>>,
    part: &TensorPart,
) -> Result<B::Weight> {
    let t = store.tensor(&part.name)?;
    let desc = |dims| WeightDesc {
        name: &part.name,
        ggml_type: t.ggml_type,
        dims,
    };
    match &part.rows {
        None => backend.upload_weight_host(desc(&t.dims), store.tensor_host_bytes(&part.name)?),
        Some(rows) => {
            let range = plan::row_range(store, &part.name, rows)?;
            let mut bytes = vec![0u8; usize_of(range.end - range.start)?];
            store.read_range(range, &mut bytes)?;
            let row_len = t.dims.first().copied().unwrap_or(0);
            let dims = [row_len, rows.end - rows.start];
            backend.upload_weight_owned(desc(&dims), bytes)
        }
    }
}

fn usize_of(n: u64) -> Result<usize> {
    usize::try_from(n).map_err(|_| Error::Config(format!("{n} bytes is too large here")))
}

/// Embedding rows gathered on the host straight from the store (the table stays off the device).
fn host_embedding<S: ByteSource + 'static>(store: Arc<WeightStore<S>>) -> Result<HostEmbedding> {
    let t = store.tensor("token_embd.weight")?;
    let (ty, dim) = (t.ggml_type, usize_of(t.dims.first().copied().unwrap_or(0))?);
    if !ty.can_dequantize() {
        return Err(Error::UnsupportedType {
            ty,
            op: "embedding",
        });
    }
    // Token ids were checked against the vocabulary by the forward pass; `row_range` checks them
    // against the table itself.
    Ok(Arc::new(move |tokens: &[u32]| {
        let mut out = vec![0f32; dim * tokens.len()];
        let mut bytes = Vec::new();
        for (&tok, row) in tokens.iter().zip(out.chunks_mut(dim.max(1))) {
            let range =
                plan::row_range(&store, "token_embd.weight", &(tok as u64..tok as u64 + 1))?;
            bytes.resize(usize_of(range.end - range.start)?, 0);
            store.read_range(range, &mut bytes)?;
            crate::quant::dequantize(ty, &bytes, row)?;
        }
        Ok(out)
    }))
}
