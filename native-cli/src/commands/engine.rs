//! Loading a model for generation: pick the backend (`auto`: CUDA, then WebGPU, then CPU), resolve
//! and map the file, then engine-core's one loader. Shared by `run`, `chat` and `bench`.

use anyhow::{Context, Result};
use backend_cuda::CudaBackend;
use backend_webgpu::WebGpuBackend;
use clap::{Args, ValueEnum};
use engine_core::backend::cpu::{CpuBackend, CpuConfig, MatmulPath};
use engine_core::backend::Backend;
use engine_core::engine::{Engine as CoreEngine, LoadConfig};
use engine_core::prefetch::PrefetchConfig;
use engine_core::schedule::PrefetchProfile;
use engine_core::source::{
    ByteSource, FileSource, MmapSource, ThrottleConfig, ThrottleStats, ThrottledSource,
};
use engine_core::store::{StoreConfig, WeightStore};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options shared by the commands that run a model.
#[derive(Debug, Args, Clone)]
pub struct EngineArgs {
    /// A GGUF file or a known model name (default: the default model, fetched on first use).
    #[arg(long, short)]
    pub model: Option<String>,
    /// Where the kernels run: `cpu`; `webgpu` (the first WebGPU adapter: a GPU through
    /// Vulkan/Metal/DX12, or a software one such as lavapipe); `cuda` (the first NVIDIA GPU; needs
    /// the driver and NVRTC); or `auto` (CUDA, else WebGPU, else CPU, saying which on stderr).
    #[arg(long, value_enum, default_value_t = BackendArg::Cpu)]
    pub backend: BackendArg,
    /// Worker threads (default: all cores).
    #[arg(long, short)]
    pub threads: Option<usize>,
    /// Positions the KV cache holds (capped at the model's context length).
    #[arg(long, default_value_t = 4096)]
    pub ctx: usize,
    /// Matrix product path: `precise` (16-bit integer activations, one SIMD pass; within
    /// 0.01 of exact) or `exact` (f32, the reference; slow).
    #[arg(long, value_enum, default_value_t = PathArg::Precise)]
    pub matmul: PathArg,
    /// Most bytes of weights on the device (e.g. `64MiB`, `2GB`). A model that fits is loaded
    /// once; a larger one keeps a pinned set and streams the other layers ahead of use. Default:
    /// no limit (everything loaded), except on CUDA, where the default and the cap are the device's
    /// free memory less a reserve for activations and the KV cache.
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
    Cuda,
    Auto,
}

/// What a command does with a loaded engine, whatever its backend.
pub trait EngineTask {
    fn run<B: CliBackend>(self, engine: Engine<B>) -> Result<()>;
}

/// Opens the backend `args` ask for, loads the model onto it and runs `task`. `auto` tries CUDA,
/// then WebGPU, then the CPU, says on stderr which it picked and why, and keeps the device it
/// opened to find out.
pub fn with_engine(args: &EngineArgs, task: impl EngineTask) -> Result<()> {
    match args.backend {
        BackendArg::Cpu => task.run(Engine::load(args, || CpuBackend::create(args))?),
        BackendArg::Webgpu => task.run(Engine::load(args, || WebGpuBackend::create(args))?),
        BackendArg::Cuda => task.run(Engine::load(args, || CudaBackend::create(args))?),
        BackendArg::Auto => {
            let cuda = match CudaBackend::create(args) {
                Ok(b) => {
                    eprintln!("sluice: --backend auto: using {}", b.name());
                    return task.run(Engine::load(args, || Ok(b))?);
                }
                Err(e) => e,
            };
            match WebGpuBackend::create(args) {
                Ok(b) => {
                    eprintln!(
                        "sluice: --backend auto: using {} (no CUDA: {cuda:#})",
                        b.name()
                    );
                    task.run(Engine::load(args, || Ok(b))?)
                }
                Err(webgpu) => {
                    eprintln!(
                        "sluice: --backend auto: using the CPU (no CUDA: {cuda:#}; no WebGPU: \
                         {webgpu:#})"
                    );
                    task.run(Engine::load(args, || CpuBackend::create(args))?)
                }
            }
        }
    }
}

/// A backend the CLI can build from its options.
pub trait CliBackend: Backend + Clone + Send + Sync + 'static {
    fn create(args: &EngineArgs) -> Result<Self>;

    /// How `run --stats` names the device.
    fn describe(&self, _args: &EngineArgs) -> String {
        self.name()
    }

    /// The matmul path, for backends that have a choice (benchmarks report it).
    fn matmul_path(_args: &EngineArgs) -> Option<&'static str> {
        None
    }

    /// Bytes of weights the device can hold, where the backend knows (the default and cap of
    /// `--device-mem`).
    fn device_budget(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// The device's own memory and host-upload bandwidths, measured now, where the backend can
    /// measure them (`bench --roofline` on a GPU).
    fn device_bandwidth(&self) -> Result<Option<DeviceBandwidth>> {
        Ok(None)
    }
}

/// A GPU's measured bandwidths, GB/s.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct DeviceBandwidth {
    /// Bytes of each probe transfer.
    pub probe_bytes: u64,
    /// Device memory (a copy kernel: bytes read plus written per second).
    pub device_gb_s: f64,
    /// Host to device from pinned memory, as layer streaming uploads.
    pub pinned_upload_gb_s: f64,
}

/// Bytes of the GPU bandwidth probes: far past any cache, small beside device memory.
const BANDWIDTH_PROBE_BYTES: usize = 256 << 20;

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

    fn describe(&self, args: &EngineArgs) -> String {
        format!(
            "cpu, {} threads, {} path",
            args.threads(),
            args.matmul.name()
        )
    }

    fn matmul_path(args: &EngineArgs) -> Option<&'static str> {
        Some(args.matmul.name())
    }
}

impl CliBackend for WebGpuBackend {
    fn create(_args: &EngineArgs) -> Result<Self> {
        WebGpuBackend::new().context("starting the WebGPU backend")
    }
}

/// Device memory kept free of weights for activations, the KV cache and kernel scratch: an
/// eighth of what is free, at least 512 MiB.
const CUDA_RESERVE_MIN: u64 = 512 << 20;

impl CliBackend for CudaBackend {
    fn create(_args: &EngineArgs) -> Result<Self> {
        CudaBackend::new(0).context("starting the CUDA backend on device 0")
    }

    fn device_budget(&self) -> Result<Option<u64>> {
        let (free, _total) = self.memory().context("querying CUDA device memory")?;
        Ok(Some(free.saturating_sub((free / 8).max(CUDA_RESERVE_MIN))))
    }

    fn device_bandwidth(&self) -> Result<Option<DeviceBandwidth>> {
        let b = self
            .measure_bandwidth(BANDWIDTH_PROBE_BYTES)
            .context("measuring CUDA bandwidth")?;
        Ok(Some(DeviceBandwidth {
            probe_bytes: b.bytes,
            device_gb_s: b.device_gb_s,
            pinned_upload_gb_s: b.pinned_upload_gb_s,
        }))
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
    /// The backend, model, tokenizer and chat template.
    pub core: CoreEngine<B>,
    pub load_time: Duration,
    pub path: std::path::PathBuf,
    /// What the simulated slow disk has served (with --throttle).
    pub io_stats: Option<Box<dyn Fn() -> ThrottleStats>>,
}

impl<B: CliBackend> Engine<B> {
    /// The backend's name, as benchmarks report it.
    pub fn backend_name(&self) -> String {
        self.core.backend.name()
    }

    /// Opens the model `args` name and loads it onto the backend `open_backend` gives (opened
    /// within the load time the benchmarks report).
    pub fn load(args: &EngineArgs, open_backend: impl FnOnce() -> Result<B>) -> Result<Self> {
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
            let mut engine = Self::build(args, open_backend, path.clone(), store, start)?;
            engine.io_stats = Some(Box::new(move || io.source().stats()));
            return Ok(engine);
        }
        match args.source {
            SourceArg::Mmap => {
                let source = MmapSource::open(&path).map_err(open)?;
                let store = WeightStore::open(source, StoreConfig::default()).map_err(open)?;
                Self::build(args, open_backend, path, Arc::new(store), start)
            }
            SourceArg::File => {
                let source = FileSource::open(&path).map_err(open)?;
                let store = WeightStore::open(source, store_config).map_err(open)?;
                Self::build(args, open_backend, path, Arc::new(store), start)
            }
        }
    }

    fn build<S: ByteSource + 'static>(
        args: &EngineArgs,
        open_backend: impl FnOnce() -> Result<B>,
        path: std::path::PathBuf,
        store: Arc<WeightStore<S>>,
        start: Instant,
    ) -> Result<Self> {
        let backend = open_backend()?;
        let budget = match (args.device_mem, backend.device_budget()?) {
            (Some(asked), Some(usable)) if asked > usable => {
                eprintln!(
                    "sluice: --device-mem {asked} is more than the {usable} bytes {} can hold \
                     for weights now; using {usable}",
                    backend.name()
                );
                Some(usable)
            }
            (asked, usable) => asked.or(usable),
        };
        let config = LoadConfig {
            device_budget: budget,
            profile: args.prefetch,
            prefetch: PrefetchConfig {
                workers: args.prefetch_workers.max(1),
                retries: args.read_retries,
                ..PrefetchConfig::default()
            },
        };
        let core = CoreEngine::load(backend, store, &config).context("loading the model")?;
        Ok(Self {
            core,
            load_time: start.elapsed(),
            path,
            io_stats: None,
        })
    }
}
