//! `Engine`: a GGUF model loaded from bytes onto WebGPU or the CPU, generating with streamed
//! tokens, stoppable, reporting its metrics to JavaScript.

use crate::options::{self, BackendChoice, GenerateOptions, LoadOptions, MatmulChoice, Metrics};
use crate::origin::{Origin, Source};
use crate::progress::{Phase, Progress};
use crate::run::Loaded;
use backend_webgpu::{WebGpuBackend, WebSysDriver};
use engine_core::backend::cpu::{CpuBackend, CpuConfig, MatmulPath};
use engine_core::backend::Backend;
use engine_core::chat::ChatTemplate;
use engine_core::clock::Instant;
use engine_core::model::Model;
use engine_core::prefetch::PrefetchConfig;
use engine_core::schedule::{PrefetchProfile, SchedulerConfig};
use engine_core::source::{ByteSource, MemorySource};
use engine_core::store::{StoreConfig, WeightStore};
use engine_core::tokenizer::Tokenizer;
use js_sys::{Function, Promise, Uint8Array};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsError, JsValue};
use wasm_bindgen_futures::future_to_promise;

/// The model on whichever backend was chosen.
enum Device {
    Cpu(Loaded<CpuBackend>),
    Gpu(Loaded<WebGpuBackend<WebSysDriver>>),
}

/// Shared with running generations, which outlive the `&self` of the call that started them.
struct Inner {
    device: Device,
    ctx: usize,
    /// Set by `stop()`, read between tokens.
    stop: Cell<bool>,
    /// One generation at a time: they would share the backend's queue and the metrics.
    busy: Cell<bool>,
    metrics: RefCell<Metrics>,
}

/// A loaded model. `Engine.load(bytes, options)` makes one, as do `Engine.loadUrl` and
/// `Engine.loadFile` (`load.rs`).
#[wasm_bindgen]
pub struct Engine {
    inner: Rc<Inner>,
}

#[wasm_bindgen]
impl Engine {
    /// Parses the GGUF in `bytes` and uploads its weights to the chosen backend. `options`:
    /// `{ backend?: "auto" | "webgpu" | "cpu", ctx?: number, matmul?: "precise" | "exact",
    /// device_mem?: number }`; with `device_mem` (bytes) the backend holds at most that much of
    /// the weights and streams the other layers from wasm memory on every pass.
    pub async fn load(bytes: Uint8Array, options: JsValue) -> Result<Engine, JsError> {
        crate::install_clock();
        let opts: LoadOptions = options::parse("load options", options)?;
        // The one copy of the file in wasm memory; the JavaScript array is not kept.
        let mut vec = Vec::new();
        crate::stream::reserve(&mut vec, u64::from(bytes.length()), "the model's bytes")?;
        vec.resize(bytes.length() as usize, 0);
        bytes.copy_to(&mut vec);
        drop(bytes);
        let origin = Origin::new(Source::Bytes, None);
        Engine::from_vec(vec, &opts, origin, &mut Progress::new(None)).await
    }

    /// The path every loader ends in: `bytes` (the whole GGUF, now owned by the weight store
    /// without a copy) parsed and uploaded, reporting phase `load`.
    pub(crate) async fn from_vec(
        bytes: Vec<u8>,
        opts: &LoadOptions,
        mut origin: Origin,
        progress: &mut Progress,
    ) -> Result<Engine, JsError> {
        let total = bytes.len() as u64;
        origin.model_bytes = total;
        progress.report(Phase::Load, 0, Some(total));
        // Parsing and uploading block the page: let it paint the progress first.
        crate::run::yield_to_event_loop().await;
        let start = Instant::now();
        let store = Arc::new(WeightStore::open(
            MemorySource::from_vec(bytes),
            StoreConfig::default(),
        )?);
        let (device, backend, fallback_reason) = open_device(opts, &store).await?;
        let metadata = &store.gguf().metadata;
        let parameters = store
            .tensors()
            .iter()
            .map(|t| t.dims.iter().product::<u64>())
            .sum();
        let model_name = metadata.get_str("general.name")?.map(str::to_string);
        let (arch, layers, context) = match &device {
            Device::Cpu(l) => describe(&l.model, opts.ctx),
            Device::Gpu(l) => describe(&l.model, opts.ctx),
        };
        let metrics = Metrics {
            backend,
            fallback_reason,
            model_name,
            architecture: arch,
            parameters,
            layers,
            context,
            load_s: start.elapsed().as_secs_f64(),
            last_prompt_tokens: None,
            last_generated_tokens: None,
            last_prefill_tok_s: None,
            last_decode_tok_s: None,
            wasm: WASM,
            memory_bytes: 0,
            device_bytes: 0,
            prefetch: Default::default(),
            origin,
        };
        progress.report(Phase::Load, total, Some(total));
        Ok(Engine {
            inner: Rc::new(Inner {
                device,
                ctx: opts.ctx,
                stop: Cell::new(false),
                busy: Cell::new(false),
                metrics: RefCell::new(metrics),
            }),
        })
    }

    /// The backend in use: `webgpu (…)` with the adapter's name, or `cpu`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.inner.metrics.borrow().backend.clone()
    }

    /// Why `backend: "auto"` fell back to the CPU (no WebGPU adapter…); `undefined` otherwise.
    #[wasm_bindgen(getter, js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.inner.metrics.borrow().fallback_reason.clone()
    }

    /// Generates from `prompt`, calling `on_token(piece)` as each token is decoded. `options`:
    /// `{ max_tokens?, temperature? (0: greedy), seed?, chat?, system? }`. Resolves to
    /// `{ text, tokens, prompt_tokens, generated_tokens, prefill_tok_s, decode_tok_s,
    /// stop_reason }`; rejects with the engine's error.
    pub fn generate(&self, prompt: String, options: JsValue, on_token: Function) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let opts: GenerateOptions = options::parse("generate options", options)?;
            if inner.busy.replace(true) {
                return Err(JsError::new("a generation is already running on this engine").into());
            }
            inner.stop.set(false);
            let result = match &inner.device {
                Device::Cpu(l) => {
                    l.generate(&prompt, &opts, inner.ctx, &inner.stop, &on_token)
                        .await
                }
                Device::Gpu(l) => {
                    l.generate(&prompt, &opts, inner.ctx, &inner.stop, &on_token)
                        .await
                }
            };
            inner.busy.set(false);
            let result = result?;
            {
                let mut m = inner.metrics.borrow_mut();
                m.last_prompt_tokens = Some(result.prompt_tokens);
                m.last_generated_tokens = Some(result.generated_tokens);
                m.last_prefill_tok_s = Some(result.prefill_tok_s);
                m.last_decode_tok_s = Some(result.decode_tok_s);
            }
            Ok(options::to_js(&result)?)
        })
    }

    /// Ends a running `generate` after its current token (it resolves with what it has).
    pub fn stop(&self) {
        self.inner.stop.set(true);
    }

    /// `{ backend, fallback_reason, model_name, architecture, parameters, layers, context, load_s,
    /// last_prompt_tokens, last_generated_tokens, last_prefill_tok_s, last_decode_tok_s, wasm,
    /// memory_bytes, device_bytes, prefetch, source, url, model_bytes, fetch_s, cache_status,
    /// cache_error }`: `prefetch` is the layer scheduler's statistics (`mode`, `passes`, `hits`,
    /// `stalls`, `bytes_moved`, per-layer totals…), the last six are `origin::Origin`.
    pub fn metrics(&self) -> Result<JsValue, JsError> {
        let mut m = self.inner.metrics.borrow_mut();
        m.memory_bytes = wasm_memory_bytes();
        (m.device_bytes, m.prefetch) = match &self.inner.device {
            Device::Cpu(l) => (l.model.device_bytes(), l.model.prefetch_stats()),
            Device::Gpu(l) => (l.model.device_bytes(), l.model.prefetch_stats()),
        };
        options::to_js(&*m)
    }
}

/// Loads the model on the backend `opts` asks for: `(device, backend name, fallback reason)`.
async fn open_device<S: ByteSource + 'static>(
    opts: &LoadOptions,
    store: &Arc<WeightStore<S>>,
) -> Result<(Device, String, Option<String>), JsError> {
    let gpu = match opts.backend {
        BackendChoice::Cpu => Err("the CPU was asked for".to_string()),
        BackendChoice::Webgpu => Ok(crate::webgpu().await?),
        BackendChoice::Auto => crate::webgpu().await.map_err(|e| e.to_string()),
    };
    match gpu {
        Ok(backend) => {
            let name = backend.name();
            Ok((Device::Gpu(load_on(backend, store, opts)?), name, None))
        }
        Err(reason) => {
            let path = match opts.matmul {
                MatmulChoice::Precise => MatmulPath::Precise,
                MatmulChoice::Exact => MatmulPath::Exact,
            };
            // wasm has no threads here: the kernels run on the calling thread.
            let backend = CpuBackend::new(CpuConfig { threads: 1, path })?;
            let name = backend.name();
            let fallback = (opts.backend == BackendChoice::Auto).then_some(reason);
            Ok((Device::Cpu(load_on(backend, store, opts)?), name, fallback))
        }
    }
}

fn load_on<B, S>(
    backend: B,
    store: &Arc<WeightStore<S>>,
    opts: &LoadOptions,
) -> Result<Loaded<B>, JsError>
where
    B: Backend + Clone + Send + Sync + 'static,
    S: ByteSource + 'static,
{
    let metadata = &store.gguf().metadata;
    let tokenizer = Tokenizer::from_metadata(metadata)?;
    // A model without a usable template still generates; `chat: true` then says so.
    let template = ChatTemplate::from_metadata(metadata).ok();
    let model = match opts.device_mem {
        None => Model::load(&backend, &**store)?,
        Some(budget) => {
            let config = SchedulerConfig {
                budget,
                profile: PrefetchProfile::Default,
                // The page has no threads: a fetch runs when a step needs it, and the GPU
                // queue carries the upload while earlier kernels still run.
                prefetch: PrefetchConfig {
                    workers: 0,
                    ..PrefetchConfig::default()
                },
            };
            Model::load_streaming(&backend, store.clone(), config)?
        }
    };
    Ok(Loaded {
        backend,
        model,
        tokenizer,
        template,
    })
}

/// The build's address width.
const WASM: &str = if cfg!(target_pointer_width = "64") {
    "wasm64"
} else {
    "wasm32"
};

/// The size of this module's linear memory, where the model's bytes live.
fn wasm_memory_bytes() -> u64 {
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .map(|m| {
            let buffer: js_sys::ArrayBuffer = m.buffer().unchecked_into();
            buffer.byte_length() as u64
        })
        .unwrap_or(0)
}

/// Architecture name, layers and the context a session gets.
fn describe<B: Backend>(model: &Model<B>, ctx: usize) -> (String, u32, usize) {
    let hp = &model.hparams;
    (
        hp.architecture.clone(),
        hp.block_count as u32,
        ctx.min(hp.context_length as usize),
    )
}
