//! `sluice bench`: load time, time to first token, prefill and decode tokens/s and peak memory, as
//! JSON. Measured like `scripts/llamacpp_bench.py` so the two can stand side by side.

use super::engine::{with_engine, CliBackend, Engine, EngineArgs, EngineTask};
use anyhow::Result;
use clap::Args;
use engine_core::engine::{GenerateOptions, Prompt};
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
    /// Untimed runs (the prompt and one token) before the repetitions, so the first one does not
    /// pay for faulting in the mapped weights (llama-bench warms up the same way); 0 for a cold
    /// first repetition.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Also measure a conversation of this many turns (`--prompt-tokens` new tokens and
    /// `--gen-tokens` replied per turn): each turn's time to first token with the KV cache kept
    /// from the turn before and with a fresh one fed the same history.
    #[arg(long)]
    pub turns: Option<usize>,
    /// Also measure decode with this many replies stepped together as one batch (as `sluice
    /// serve --parallel N` runs them): their aggregate tokens/s and its ratio to one reply's.
    #[arg(long)]
    pub parallel: Option<usize>,
    /// Include the per-layer timeline of the last passes in the JSON.
    #[arg(long)]
    pub timeline: bool,
    /// Also measure decode's memory roofline: the weight bytes a token reads and the read
    /// bandwidth over the mapped model with `--threads` threads (about a second), and report
    /// decode as a fraction of it. On CUDA: the device's memory bandwidth (a copy kernel) and its
    /// pinned host-to-device bandwidth, the latter against the bytes a streamed token uploads.
    #[arg(long)]
    pub roofline: bool,
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
    let core = &engine.core;
    let vocab = core.model.vocab_size() as u32;
    let prompt = bench_tokens(0, args.prompt_tokens, vocab);
    // The first token comes with the prefill; `gen_tokens` decode steps follow it.
    let options = GenerateOptions {
        ignore_eog: true,
        ..GenerateOptions::greedy(args.gen_tokens + 1)
    };
    let mut runs = Vec::new();
    let mut overlap = Vec::new();
    // Weight bytes streamed onto the device per decode step, per repetition.
    let mut moved_per_token = Vec::new();
    // The most bytes of KV cache alive at once (one conversation here, two in `--turns`).
    let mut kv_peak = 0;
    for _ in 0..args.warmup {
        let mut conversation = core.conversation(args.prompt_tokens + 2)?;
        let warm = GenerateOptions {
            ignore_eog: true,
            ..GenerateOptions::greedy(2)
        };
        let mut reply = conversation.complete(core, Prompt::Tokens(&prompt), &warm)?;
        while pollster::block_on(reply.next())?.is_some() {}
    }
    for _ in 0..args.reps.max(1) {
        // A fresh cache each time: a repetition must not reuse the last one's prompt.
        let mut conversation = core.conversation(args.prompt_tokens + args.gen_tokens + 1)?;
        kv_peak = kv_peak.max(conversation.kv_bytes());
        let mut reply = conversation.complete(core, Prompt::Tokens(&prompt), &options)?;
        let start = Instant::now();
        pollster::block_on(reply.next())?;
        let ttft = start.elapsed().as_secs_f64();
        let before = core.model.prefetch_stats();
        let io_before = engine.io_stats.as_ref().map(|f| f());
        let start = Instant::now();
        while pollster::block_on(reply.next())?.is_some() {}
        let decode = start.elapsed().as_secs_f64();
        // Decode only. I/O time: wall time with a fetch running (reads, copies, uploads); the
        // simulated disk's own busy time is reported beside it. Compute: wall minus stalls.
        let after = core.model.prefetch_stats();
        let stall = (after.stall_time - before.stall_time).as_secs_f64();
        let io = match (io_before, engine.io_stats.as_ref().map(|f| f())) {
            (Some(a), Some(b)) => Some((b.busy - a.busy).as_secs_f64()),
            _ => None,
        };
        let compute = decode - stall;
        let fetch = (after.fetch_busy_time - before.fetch_busy_time).as_secs_f64();
        let moved = after.bytes_moved - before.bytes_moved;
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
            "bytes_moved": moved,
        }));
        moved_per_token.push(moved as f64 / args.gen_tokens.max(1) as f64);
        runs.push((
            ttft,
            args.prompt_tokens as f64 / ttft,
            args.gen_tokens as f64 / decode,
        ));
    }
    let turns = match args.turns {
        Some(n) => {
            let (rows, kv) = bench_turns(core, args, n)?;
            kv_peak = kv_peak.max(kv);
            Some(rows)
        }
        None => None,
    };
    let batched = match args.parallel {
        Some(n) => {
            let (row, kv) = bench_batched(core, args, n)?;
            kv_peak = kv_peak.max(kv);
            Some(row)
        }
        None => None,
    };
    let median = |f: fn(&(f64, f64, f64)) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut prefetch = core.model.prefetch_stats();
    // The timeline is for `--timeline`; the JSON stays readable without it.
    if !args.timeline {
        prefetch.timeline.clear();
    }
    let roofline = if args.roofline {
        let decode = median(|r| r.2);
        let streamed = moved_per_token.iter().sum::<f64>() / moved_per_token.len().max(1) as f64;
        Some(roofline_json(&engine, args, decode, streamed)?)
    } else {
        None
    };
    let peak_rss = peak_rss_bytes();
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
        "warmup": args.warmup,
        "load_s": round(engine.load_time.as_secs_f64()),
        "ttft_s": round(median(|r| r.0)),
        "prefill_tok_s": round(median(|r| r.1)),
        "decode_tok_s": round(median(|r| r.2)),
        "roofline": roofline,
        "peak_rss_bytes": peak_rss,
        "memory": memory(&engine.path, kv_peak, peak_rss),
        "device_mem": args.engine.device_mem,
        "prefetch_profile": args.engine.prefetch.to_string(),
        "throttle_bytes_per_s": args.engine.throttle,
        "decode_streaming": overlap,
        "io": engine.io_stats.as_ref().map(|f| f()),
        "prefetch": prefetch,
        "runs": runs.iter().map(|r| json!({"ttft_s": round(r.0), "prefill_tok_s": round(r.1), "decode_tok_s": round(r.2)})).collect::<Vec<_>>(),
        "turns": turns,
        "batched": batched.map(|mut b| {
            let one = median(|r| r.2);
            b["ratio_to_one"] = json!(round(b["decode_tok_s"].as_f64().unwrap_or(0.0) / one));
            b
        }),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Decode against what memory allows. On the CPU: the host read bandwidth over the mapped model.
/// On a GPU that can measure it: device memory bandwidth for the weights a token reads, and, when
/// layers stream (`streamed_per_token` bytes uploaded per step), pinned host-to-device bandwidth
/// for those.
fn roofline_json<B: CliBackend>(
    engine: &Engine<B>,
    args: &BenchArgs,
    decode_tok_s: f64,
    streamed_per_token: f64,
) -> Result<serde_json::Value> {
    if let Some(bw) = engine.core.backend.device_bandwidth()? {
        let file_bytes = super::roofline::weight_bytes_per_token(&engine.path)?;
        let device_tok_s = bw.device_gb_s * 1e9 / file_bytes.max(1) as f64;
        let upload = (streamed_per_token > 0.0).then(|| {
            let tok_s = bw.pinned_upload_gb_s * 1e9 / streamed_per_token;
            json!({
                "streamed_bytes_per_token": streamed_per_token.round(),
                "roofline_tok_s": round(tok_s),
                "decode_fraction": round(decode_tok_s / tok_s),
            })
        });
        return Ok(json!({
            "weight_bytes_per_token": file_bytes,
            "probe_bytes": bw.probe_bytes,
            "device_gb_s": round(bw.device_gb_s),
            "pinned_upload_gb_s": round(bw.pinned_upload_gb_s),
            "roofline_tok_s": round(device_tok_s),
            "decode_fraction": round(decode_tok_s / device_tok_s),
            "upload": upload,
        }));
    }
    let r = super::roofline::measure(&engine.path, args.engine.threads())?;
    let mut v = serde_json::to_value(&r)?;
    v["read_gb_s"] = json!(round(r.read_gb_s));
    v["roofline_tok_s"] = json!(round(r.roofline_tok_s));
    v["decode_fraction"] = json!(round(decode_tok_s / r.roofline_tok_s));
    Ok(v)
}

/// `n` tokens of turn `turn`: ids from 1000 on, cycling, each turn starting elsewhere.
fn bench_tokens(turn: usize, n: usize, vocab: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (1000 + (turn as u32 * 97 + i) % 1000) % vocab)
        .collect()
}

/// A conversation of `turns` turns (`prompt_tokens` new tokens each, `gen_tokens` replied): every
/// turn's time to first token with the cache kept from the turn before, and with a fresh cache
/// fed the same history.
fn bench_turns<B: CliBackend>(
    core: &engine_core::engine::Engine<B>,
    args: &BenchArgs,
    turns: usize,
) -> Result<(serde_json::Value, u64)> {
    let vocab = core.model.vocab_size() as u32;
    let context = turns * (args.prompt_tokens + args.gen_tokens) + 1;
    let options = GenerateOptions {
        ignore_eog: true,
        ..GenerateOptions::greedy(args.gen_tokens)
    };
    let first_only = GenerateOptions {
        max_tokens: 1,
        ..options.clone()
    };
    let mut kept = core.conversation(context)?;
    let mut history = Vec::new();
    let mut rows = Vec::new();
    let mut kv_peak = 0;
    for turn in 0..turns {
        history.extend(bench_tokens(turn, args.prompt_tokens, vocab));
        let mut fresh = core.conversation(context)?;
        kv_peak = kv_peak.max(kept.kv_bytes() + fresh.kv_bytes());
        let alone = pollster::block_on(
            fresh
                .complete(core, Prompt::Tokens(&history), &first_only)?
                .run(|_| {}),
        )?;
        drop(fresh);
        let reused = pollster::block_on(
            kept.complete(core, Prompt::Tokens(&history), &options)?
                .run(|_| {}),
        )?;
        history.extend_from_slice(&reused.tokens);
        let (r, f) = (&reused.stats, &alone.stats);
        rows.push(json!({
            "turn": turn + 1,
            "history_tokens": r.prompt_tokens,
            "reuse": {"ttft_s": round(r.ttft_s), "tokens_reused": r.tokens_reused, "tokens_prefilled": r.tokens_prefilled},
            "fresh": {"ttft_s": round(f.ttft_s), "tokens_reused": f.tokens_reused, "tokens_prefilled": f.tokens_prefilled},
            "ttft_ratio": round(r.ttft_s / f.ttft_s.max(1e-9)),
        }));
    }
    Ok((json!(rows), kv_peak))
}

/// `n` replies of `gen_tokens` decoded together in a `SlotPool` after their prompts (distinct,
/// `prompt_tokens` each) are in: aggregate decode tokens/s over the batched steps.
fn bench_batched<B: CliBackend>(
    core: &engine_core::engine::Engine<B>,
    args: &BenchArgs,
    n: usize,
) -> Result<(serde_json::Value, u64)> {
    use engine_core::engine::{SlotEvent, SlotPool, SlotRequest};
    let vocab = core.model.vocab_size() as u32;
    // The prompts go in one per step while the slots already filled decode, so each reply may
    // run `n` tokens past the measured steps.
    let context = args.prompt_tokens + args.gen_tokens + n + 1;
    let mut pool = SlotPool::new(core, n, context)?;
    let options = GenerateOptions {
        ignore_eog: true,
        ..GenerateOptions::greedy(args.gen_tokens + n)
    };
    for slot in 0..n {
        let prompt = bench_tokens(slot, args.prompt_tokens, vocab);
        let request = SlotRequest {
            prompt,
            options: options.clone(),
            logprobs: None,
        };
        pool.start(slot, request)?;
    }
    let step = |pool: &mut SlotPool<'_, B>| -> Result<usize> {
        let events = pollster::block_on(pool.step());
        let mut tokens = 0;
        for event in &events {
            match event {
                SlotEvent::Failed { error, .. } => anyhow::bail!("batched bench: {error}"),
                SlotEvent::Token { .. } => tokens += 1,
                SlotEvent::Done { .. } => {}
            }
        }
        Ok(tokens)
    };
    // Until every slot has its first token: prefills.
    while (0..n).any(|slot| pool.cached_tokens(slot).len() < args.prompt_tokens) {
        step(&mut pool)?;
    }
    let start = Instant::now();
    let mut tokens = 0;
    for _ in 0..args.gen_tokens {
        tokens += step(&mut pool)?;
    }
    let wall = start.elapsed().as_secs_f64();
    let kv = pool.kv_bytes();
    Ok((
        json!({
            "streams": n,
            "steps": args.gen_tokens,
            "tokens": tokens,
            "wall_s": round(wall),
            "step_ms": round(wall * 1e3 / args.gen_tokens.max(1) as f64),
            "decode_tok_s": round(tokens as f64 / wall.max(1e-9)),
        }),
        kv,
    ))
}

/// Where the memory went: the model file, the KV caches, and the peak RSS against the rule a
/// resident CPU model must keep (its file, its KV cache and 64 MiB for everything else: the
/// weights are borrowed from the mapping, never copied).
fn memory(model: &std::path::Path, kv_bytes: u64, peak_rss: Option<u64>) -> serde_json::Value {
    let file = std::fs::metadata(model).map(|m| m.len()).ok();
    let bound = file.map(|f| f + kv_bytes + (64 << 20));
    json!({
        "model_file_bytes": file,
        "kv_cache_bytes": kv_bytes,
        "rss_bound_bytes": bound,
        "within_bound": peak_rss.zip(bound).map(|(rss, b)| rss <= b),
    })
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
