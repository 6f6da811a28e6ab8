//! Loading a model for generation: resolve, map, upload to the CPU backend, build the tokenizer and
//! chat template. Shared by `run` and `bench`.

use anyhow::{Context, Result};
use backend_webgpu::WebGpuBackend;
use clap::{Args, ValueEnum};
use engine_core::backend::cpu::{CpuBackend, CpuConfig, MatmulPath};
use engine_core::backend::Backend;
use engine_core::chat::ChatTemplate;
use engine_core::model::Model;
use engine_core::prefetch::PrefetchConfig;
use engine_core::schedule::{PrefetchProfile, SchedulerConfig};
use engine_core::source::{
    ByteSource, FileSource, MmapSource, ThrottleConfig, ThrottleStats, ThrottledSource,
};
use engine_core::store::{StoreConfig, WeightStore};
use engine_core::tokenizer::Tokenizer;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options shared by the commands that run a model.
#[derive(Debug, Args, Clone)]
pub struct EngineArgs {
    /// A GGUF file or a known model name (default: the default model, fetched on first use).
    #[arg(long, short)]
    pub model: Option<String>,
    /// Where the kernels run: `cpu`, or `webgpu` (the first WebGPU adapter: a GPU through
    /// Vulkan/Metal/DX12, or a software one such as lavapipe).
    #[arg(long, value_enum, default_value_t = BackendArg::Cpu)]
    pub backend: BackendArg,
    /// Worker threads (default: all cores).
    #[arg(long, short)]
    pub threads: Option<usize>,
    /// Positions the KV cache holds (capped at the model's context length).
    #[arg(long, default_value_t = 4096)]
    pub ctx: usize,
    /// Matrix product path: `precise` (8-bit activations plus an 8-bit residual pass, SIMD; within
    /// 0.01 of exact) or `exact` (f32, the reference; slow).
    #[arg(long, value_enum, default_value_t = PathArg::Precise)]
    pub matmul: PathArg,
    /// Most bytes of weights on the device (e.g. `64MiB`, `2GB`). A model that fits is loaded
    /// once; a larger one keeps a pinned set and streams the other layers ahead of use. Default:
    /// no limit (everything loaded).
    #[arg(long, value_parser = crate::size::parse_size)]
    pub device_mem: Option<u64>,
    /// How far ahead to stream when the model does not fit: `debug` (1 layer), `default` (2),
    /// `fast` (4), `heavy` (8), `auto` (adapts to stalls and memory), or a number.
    #[arg(long, default_value = "default")]
    pub prefetch: PrefetchProfile,
    /// Threads reading and uploading layers ahead of use (they mostly wait on reads).
    #[arg(long, default_value_t = 4)]
    pub prefetch_workers: usize,
    /// Attempts to repeat a failed layer read before the pass fails.
    #[arg(long, default_value_t = 1)]
    pub read_retries: u32,
    /// How to read the file: `mmap` (zero-copy map) or `file` (positional reads through a host
    /// page cache held to --host-mem).
    #[arg(long, value_enum, default_value_t = SourceArg::Mmap)]
    pub source: SourceArg,
    /// Host page cache budget for `--source file` (pages read once are kept up to this).
    #[arg(long, value_parser = crate::size::parse_size, default_value = "1GiB")]
    pub host_mem: u64,
    /// Simulate a slow disk (benchmarks): read bandwidth per second, e.g. `500MB`; implies
    /// `--source file`.
    #[arg(long, value_parser = crate::size::parse_size)]
    pub throttle: Option<u64>,
    /// Simulated latency added to every read, in milliseconds (with --throttle).
    #[arg(long, default_value_t = 0.0)]
    pub throttle_latency_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    Cpu,
    Webgpu,
}

/// A backend the CLI can build from its options.
pub trait CliBackend: Backend + Clone + Send + Sync + 'static {
    fn create(args: &EngineArgs) -> Result<Self>;
}

impl CliBackend for CpuBackend {
    fn create(args: &EngineArgs) -> Result<Self> {
        let path = match args.matmul {
            PathArg::Precise => MatmulPath::Precise,
            PathArg::Exact => MatmulPath::Exact,
        };
        Ok(CpuBackend::new(CpuConfig {
            threads: args.threads(),
            path,
        })?)
    }
}

impl CliBackend for WebGpuBackend {
    fn create(_args: &EngineArgs) -> Result<Self> {
        WebGpuBackend::new().context("starting the WebGPU backend")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    Mmap,
    File,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PathArg {
    Precise,
    Exact,
}

impl PathArg {
    pub fn name(self) -> &'static str {
        match self {
            PathArg::Precise => "precise",
            PathArg::Exact => "exact",
        }
    }
}

impl EngineArgs {
    pub fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// A model ready to generate on backend `B`, with what it took to load.
pub struct Engine<B: Backend> {
    pub backend: B,
    pub model: Model<B>,
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
    pub load_time: Duration,
    pub path: std::path::PathBuf,
    /// What the simulated slow disk has served (with --throttle).
    pub io_stats: Option<Box<dyn Fn() -> ThrottleStats>>,
}

impl<B: CliBackend> Engine<B> {
    /// The backend's name, as benchmarks report it.
    pub fn backend_name(&self) -> String {
        self.backend.name()
    }

    pub fn load(args: &EngineArgs) -> Result<Self> {
        let path = crate::models::resolve(args.model.as_deref())?;
        let start = Instant::now();
        let open = |e: engine_core::Error| {
            anyhow::Error::new(e).context(format!("opening {}", path.display()))
        };
        let store_config = StoreConfig {
            host_budget: args.host_mem.max(1 << 20),
            ..StoreConfig::default()
        };
        if let Some(bandwidth) = args.throttle {
            let config = ThrottleConfig {
                bandwidth: Some(bandwidth),
                latency: Duration::from_secs_f64(args.throttle_latency_ms.max(0.0) / 1e3),
                ..ThrottleConfig::default()
            };
            let source = ThrottledSource::new(FileSource::open(&path).map_err(open)?, config)
                .map_err(open)?;
            let store = Arc::new(WeightStore::open(source, store_config).map_err(open)?);
            let io = store.clone();
            let mut engine = Self::build(args, path.clone(), store, start)?;
            engine.io_stats = Some(Box::new(move || io.source().stats()));
            return Ok(engine);
        }
        match args.source {
            SourceArg::Mmap => {
                let source = MmapSource::open(&path).map_err(open)?;
                let store = WeightStore::open(source, StoreConfig::default()).map_err(open)?;
                Self::build(args, path, Arc::new(store), start)
            }
            SourceArg::File => {
                let source = FileSource::open(&path).map_err(open)?;
                let store = WeightStore::open(source, store_config).map_err(open)?;
                Self::build(args, path, Arc::new(store), start)
            }
        }
    }

    fn build<S: ByteSource + 'static>(
        args: &EngineArgs,
        path: std::path::PathBuf,
        store: Arc<WeightStore<S>>,
        start: Instant,
    ) -> Result<Self> {
        let backend = B::create(args)?;
        let model = match args.device_mem {
            None => Model::load(&backend, &*store),
            Some(budget) => {
                let config = SchedulerConfig {
                    budget,
                    profile: args.prefetch,
                    prefetch: PrefetchConfig {
                        workers: args.prefetch_workers.max(1),
                        retries: args.read_retries,
                        ..PrefetchConfig::default()
                    },
                };
                Model::load_streaming(&backend, store.clone(), config)
            }
        }
        .context("loading the model")?;
        let metadata = &store.gguf().metadata;
        let tokenizer = Tokenizer::from_metadata(metadata).context("building the tokenizer")?;
        let template = ChatTemplate::from_metadata(metadata).ok();
        Ok(Self {
            backend,
            model,
            tokenizer,
            template,
            load_time: start.elapsed(),
            path,
            io_stats: None,
        })
    }
}
