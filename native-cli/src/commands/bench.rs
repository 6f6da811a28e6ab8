//! `sluice bench`: load time, time to first token, prefill and decode tokens/s and peak memory, as
//! JSON. Measured like `scripts/llamacpp_bench.py` so the two can stand side by side.

use super::engine::{with_engine, CliBackend, Engine, EngineArgs, EngineTask};
use anyhow::Result;
use clap::Args;
use engine_core::model::Generator;
use engine_core::sample::{Sampler, SamplerConfig};
use serde_json::json;
use std::time::Instant;

/// Options of `sluice bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Prompt length (token ids 1000.. cycling).
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens to decode after the prompt (greedy, end-of-generation ignored).
    #[arg(long, default_value_t = 64)]
    pub gen_tokens: usize,
    /// Repetitions; the medians are reported.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Include the per-layer timeline of the last passes in the JSON.
    #[arg(long)]
    pub timeline: bool,
}

/// Runs `sluice bench` and prints JSON.
pub fn run(args: &BenchArgs) -> Result<()> {
    with_engine(&args.engine, args)
}

impl EngineTask for &BenchArgs {
    fn run<B: CliBackend>(self, engine: Engine<B>) -> Result<()> {
        run_on(engine, self)
    }
}

fn run_on<B: CliBackend>(engine: Engine<B>, args: &BenchArgs) -> Result<()> {
    let vocab = engine.model.vocab_size() as u32;
    let prompt: Vec<u32> = (0..args.prompt_tokens as u32)
        .map(|i| (1000 + i % 1000) % vocab)
        .collect();
    let mut runs = Vec::new();
    let mut overlap = Vec::new();
    for _ in 0..args.reps.max(1) {
        let mut session = engine
            .model
            .session(&engine.backend, args.prompt_tokens + args.gen_tokens + 1)?;
        let mut generator = Generator::new(
            &engine.model,
            &engine.backend,
            &mut session,
            Sampler::new(SamplerConfig::greedy())?,
        );
        let start = Instant::now();
        pollster::block_on(generator.prefill(&prompt, 512))?;
        let ttft = start.elapsed().as_secs_f64();
        let before = engine.model.prefetch_stats();
        let io_before = engine.io_stats.as_ref().map(|f| f());
        let start = Instant::now();
        for _ in 0..args.gen_tokens {
            pollster::block_on(generator.step())?;
        }
        let decode = start.elapsed().as_secs_f64();
        // Decode only. I/O time: wall time with a fetch running (reads, copies, uploads); the
        // simulated disk's own busy time is reported beside it. Compute: wall minus stalls.
        let after = engine.model.prefetch_stats();
        let stall = (after.stall_time - before.stall_time).as_secs_f64();
        let io = match (io_before, engine.io_stats.as_ref().map(|f| f())) {
            (Some(a), Some(b)) => Some((b.busy - a.busy).as_secs_f64()),
            _ => None,
        };
        let compute = decode - stall;
        let fetch = (after.fetch_busy_time - before.fetch_busy_time).as_secs_f64();
        overlap.push(json!({
            "wall_s": round(decode),
            "stall_s": round(stall),
            "compute_s": round(compute),
            "disk_busy_s": io.map(round),
            "fetch_busy_s": round(fetch),
            "overlap_efficiency": round(fetch.max(compute) / decode),
            "overlap_efficiency_disk": io.map(|io| round(io.max(compute) / decode)),
            "sync_loads": after.sync_loads - before.sync_loads,
            "stalls": after.stalls - before.stalls,
            "hits": after.hits - before.hits,
        }));
        runs.push((
            ttft,
            args.prompt_tokens as f64 / ttft,
            args.gen_tokens as f64 / decode,
        ));
    }
    let median = |f: fn(&(f64, f64, f64)) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut prefetch = engine.model.prefetch_stats();
    // The timeline is for `--timeline`; the JSON stays readable without it.
    if !args.timeline {
        prefetch.timeline.clear();
    }
    let report = json!({
        "engine": "sluice",
        "version": env!("CARGO_PKG_VERSION"),
        "model": engine.path.display().to_string(),
        "backend": engine.backend_name(),
        "matmul": B::matmul_path(&args.engine),
        "threads": args.engine.threads(),
        "prompt_tokens": args.prompt_tokens,
        "gen_tokens": args.gen_tokens,
        "reps": runs.len(),
        "load_s": round(engine.load_time.as_secs_f64()),
        "ttft_s": round(median(|r| r.0)),
        "prefill_tok_s": round(median(|r| r.1)),
        "decode_tok_s": round(median(|r| r.2)),
        "peak_rss_bytes": peak_rss_bytes(),
        "device_mem": args.engine.device_mem,
        "prefetch_profile": args.engine.prefetch.to_string(),
        "throttle_bytes_per_s": args.engine.throttle,
        "decode_streaming": overlap,
        "io": engine.io_stats.as_ref().map(|f| f()),
        "prefetch": prefetch,
        "runs": runs.iter().map(|r| json!({"ttft_s": round(r.0), "prefill_tok_s": round(r.1), "decode_tok_s": round(r.2)})).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn round(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// The process's peak resident set (Linux `VmHWM`); `None` elsewhere.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
