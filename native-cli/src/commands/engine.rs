//! Loading a model for generation: resolve, map, upload to the CPU backend, build the tokenizer and
//! chat template. Shared by `run` and `bench`.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use engine_core::backend::cpu::{CpuBackend, CpuConfig, MatmulPath};
use engine_core::chat::ChatTemplate;
use engine_core::model::Model;
use engine_core::source::MmapSource;
use engine_core::store::{StoreConfig, WeightStore};
use engine_core::tokenizer::Tokenizer;
use std::time::{Duration, Instant};

/// Options shared by the commands that run a model.
#[derive(Debug, Args, Clone)]
pub struct EngineArgs {
    /// A GGUF file or a known model name (default: the default model, fetched on first use).
    #[arg(long, short)]
    pub model: Option<String>,
    /// Worker threads (default: all cores).
    #[arg(long, short)]
    pub threads: Option<usize>,
    /// Positions the KV cache holds (capped at the model's context length).
    #[arg(long, default_value_t = 4096)]
    pub ctx: usize,
    /// Matrix product path: `precise` (8-bit activations plus an 8-bit residual pass, SIMD; within
    /// 0.01 of exact), `fast` (8-bit activations only, like llama.cpp: ~35% faster decode, logits
    /// off by up to ~2.5) or `exact` (f32, the reference).
    #[arg(long, value_enum, default_value_t = PathArg::Precise)]
    pub matmul: PathArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PathArg {
    Fast,
    Precise,
    Exact,
}

impl PathArg {
    pub fn name(self) -> &'static str {
        match self {
            PathArg::Fast => "fast",
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

/// A model ready to generate, with what it took to load.
pub struct Engine {
    pub backend: CpuBackend,
    pub model: Model<CpuBackend>,
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
    pub load_time: Duration,
    pub path: std::path::PathBuf,
}

impl Engine {
    /// The backend's name, as benchmarks report it.
    pub fn backend_name(&self) -> String {
        use engine_core::backend::Backend;
        self.backend.name()
    }

    pub fn load(args: &EngineArgs) -> Result<Self> {
        let path = crate::models::resolve(args.model.as_deref())?;
        let start = Instant::now();
        let source =
            MmapSource::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let store = WeightStore::open(source, StoreConfig::default())
            .with_context(|| format!("reading {}", path.display()))?;
        let path_kind = match args.matmul {
            PathArg::Fast => MatmulPath::Fast,
            PathArg::Precise => MatmulPath::Precise,
            PathArg::Exact => MatmulPath::Exact,
        };
        let backend = CpuBackend::new(CpuConfig {
            threads: args.threads(),
            path: path_kind,
        })?;
        let model = Model::load(&backend, &store).context("loading the model")?;
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
        })
    }
}
