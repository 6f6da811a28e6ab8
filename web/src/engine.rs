//! `Engine`: a GGUF model loaded from bytes onto WebGPU or the CPU through engine-core's loader,
//! keeping one conversation whose KV cache later calls reuse, generating with streamed tokens,
//! stoppable, reporting its metrics to JavaScript.

use crate::options::{self, BackendChoice, GenerateOptions, LoadOptions, MatmulChoice, Metrics};
use crate::origin::{Origin, Source};
use crate::progress::{Phase, Progress};
use crate::run::{Loaded, Request};
use backend_webgpu::{WebGpuBackend, WebSysDriver};
use engine_core::backend::cpu::{CpuBackend, CpuConfig, MatmulPath};
use engine_core::backend::Backend;
use engine_core::clock::Instant;
use engine_core::engine::{CancelHandle, Engine as CoreEngine, LoadConfig};
use engine_core::model::Model;
use engine_core::prefetch::PrefetchConfig;
use engine_core::source::{ByteSource, MemorySource};
use engine_core::store::{StoreConfig, WeightStore};
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
    /// Flipped by `stop()`; the running reply ends after its current token.
    cancel: CancelHandle,
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
        let (arch, layers, context, cancel) = match &device {
            Device::Cpu(l) => describe(l),
            Device::Gpu(l) => describe(l),
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
            last_tokens_reused: None,
            last_tokens_prefilled: None,
            conversation_messages: 0,
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
                cancel,
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

    /// Generates from `prompt` alone (not the kept conversation), calling `on_token(piece)` as
    /// each token is decoded; the KV cache still serves whatever prefix it shares with earlier
    /// calls. `options`: `{ max_tokens?, temperature? (0: greedy), top_k?, top_p?, min_p?, seed?,
    /// chat?, system?, stop?: string[], context_shift? }`. Resolves to `{ text, tokens,
    /// prompt_tokens, tokens_reused, tokens_prefilled, dropped_messages, generated_tokens, ttft_s,
    /// prefill_tok_s, decode_tok_s, stop_reason }`; rejects with the engine's error.
    pub fn generate(&self, prompt: String, options: JsValue, on_token: Function) -> Promise {
        self.run(options, on_token, Request::Once(prompt))
    }

    /// Sends `message` as the next user turn of the conversation the engine keeps (its history
    /// goes to the model through the chat template; only what the KV cache lacks is computed)
    /// and streams the reply as `generate` does. `options` as for `generate`; `system` sets the
    /// conversation's system message.
    pub fn chat(&self, message: String, options: JsValue, on_token: Function) -> Promise {
        self.run(options, on_token, Request::Turn(message))
    }

    /// Forgets the kept conversation's turns (its system message stays).
    #[wasm_bindgen(js_name = resetChat)]
    pub fn reset_chat(&self) -> Result<(), JsError> {
        if self.inner.busy.get() {
            return Err(JsError::new("a generation is running on this engine"));
        }
        match &self.inner.device {
            Device::Cpu(l) => l.conversation.borrow_mut().reset(),
            Device::Gpu(l) => l.conversation.borrow_mut().reset(),
        }
        Ok(())
    }

    /// The kept conversation: `[{ role, content }]`, system message first where there is one.
    pub fn messages(&self) -> Result<JsValue, JsError> {
        let messages = match &self.inner.device {
            Device::Cpu(l) => l.messages(),
            Device::Gpu(l) => l.messages(),
        }
        .ok_or_else(|| {
            JsError::new("a generation is running on this engine: messages() answers when it ends")
        })?;
        let plain: Vec<MessageJs> = messages
            .into_iter()
            .map(|m| MessageJs {
                role: m.role,
                content: m.content,
            })
            .collect();
        options::to_js(&plain)
    }

    /// One call at a time: parses the options, replies to `request`, records its numbers in the
    /// metrics.
    fn run(&self, options: JsValue, on_token: Function, request: Request) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let opts: GenerateOptions = options::parse("generate options", options)?;
            if inner.busy.replace(true) {
                return Err(JsError::new("a generation is already running on this engine").into());
            }
            let result = match &inner.device {
                Device::Cpu(l) => l.reply(&request, &opts, &on_token).await,
                Device::Gpu(l) => l.reply(&request, &opts, &on_token).await,
            };
            inner.busy.set(false);
            let result = result?;
            {
                let mut m = inner.metrics.borrow_mut();
                m.last_prompt_tokens = Some(result.prompt_tokens);
                m.last_generated_tokens = Some(result.generated_tokens);
                m.last_prefill_tok_s = Some(result.prefill_tok_s);
                m.last_decode_tok_s = Some(result.decode_tok_s);
                m.last_tokens_reused = Some(result.tokens_reused);
                m.last_tokens_prefilled = Some(result.tokens_prefilled);
            }
            Ok(options::to_js(&result)?)
        })
    }

    /// Ends a running `generate` or `chat` after its current token (it resolves with what it
    /// has; in `chat` the partial reply stays in the conversation).
    pub fn stop(&self) {
        self.inner.cancel.cancel();
    }

    /// `{ backend, fallback_reason, model_name, architecture, parameters, layers, context, load_s,
    /// last_prompt_tokens, last_generated_tokens, last_prefill_tok_s, last_decode_tok_s, wasm,
    /// memory_bytes, device_bytes, prefetch, source, url, model_bytes, fetch_s, cache_status,
    /// cache_error }`: `prefetch` is the layer scheduler's statistics (`mode`, `passes`, `hits`,
    /// `stalls`, `bytes_moved`, per-layer totals…), the last six are `origin::Origin`.
    pub fn metrics(&self) -> Result<JsValue, JsError> {
        let mut m = self.inner.metrics.borrow_mut();
        m.memory_bytes = wasm_memory_bytes();
        let kept;
        (m.device_bytes, m.prefetch, kept) = match &self.inner.device {
            Device::Cpu(l) => usage(l),
            Device::Gpu(l) => usage(l),
        };
        // While a reply streams the conversation is busy: the count stays the last one seen.
        m.conversation_messages = kept.unwrap_or(m.conversation_messages);
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
    let config = LoadConfig {
        device_budget: opts.device_mem,
        // The page has no threads: a fetch runs when a step needs it, and the GPU queue
        // carries the upload while earlier kernels still run.
        prefetch: PrefetchConfig {
            workers: 0,
            ..PrefetchConfig::default()
        },
        ..LoadConfig::default()
    };
    let engine = CoreEngine::load(backend, store.clone(), &config)?;
    let conversation = RefCell::new(engine.conversation(opts.ctx)?);
    Ok(Loaded {
        engine,
        conversation,
    })
}

/// A message as `messages()` returns it.
#[derive(serde::Serialize)]
struct MessageJs {
    role: String,
    content: String,
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

/// Architecture name, layers, the context the conversation holds and its cancel handle.
fn describe<B: Backend>(l: &Loaded<B>) -> (String, u32, usize, CancelHandle) {
    let hp = &l.engine.model.hparams;
    let conversation = l.conversation.borrow();
    (
        hp.architecture.clone(),
        hp.block_count as u32,
        conversation.limit(),
        conversation.cancel_handle(),
    )
}

/// Device bytes, scheduler statistics and the kept conversation's length (`None` while a reply
/// holds it).
fn usage<B: Backend>(l: &Loaded<B>) -> (u64, engine_core::prefetch::PrefetchStats, Option<usize>) {
    let model: &Model<B> = &l.engine.model;
    (
        model.device_bytes(),
        model.prefetch_stats(),
        l.conversation.try_borrow().ok().map(|c| c.messages().len()),
    )
}
