//! The `sluice` command line.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use sluice_cli::commands::{bench, chat, inspect, run, synth};
use sluice_cli::models;

#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "Run quantized GGUF language models, even ones larger than the GPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate text from a prompt, printing tokens as they come.
    Run(run::RunArgs),
    /// Chat with a model: the KV cache is kept between turns, so each turn prefills only what is
    /// new. Slash commands: /reset, /system, /stats, /save, /load, /exit.
    Chat(chat::ChatArgs),
    /// Serve the model over HTTP with OpenAI's API (chat completions, completions, models, SSE
    /// streaming), several replies at once in batched slots, Prometheus metrics at /metrics.
    Serve(sluice_cli::serve::ServeArgs),
    /// Measure load time, time to first token, prefill and decode speed; prints JSON.
    Bench(bench::BenchArgs),
    /// Show what a GGUF file holds: metadata, tokenizer, tensors, bytes per layer and type.
    Inspect {
        /// A GGUF file or a known model name (default: the default model, fetched on first use).
        model: Option<String>,
        /// The same as the positional MODEL.
        #[arg(long = "model", conflicts_with = "model")]
        model_flag: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Print the residency plan for --device-mem instead: which layers stay on the device
        /// and which stream.
        #[arg(long, requires = "device_mem")]
        plan: bool,
        /// The device budget the plan is for (e.g. `64MiB`).
        #[arg(long, value_parser = sluice_cli::size::parse_size)]
        device_mem: Option<u64>,
        /// The prefetch profile the plan is for.
        #[arg(long, default_value = "default")]
        prefetch: engine_core::schedule::PrefetchProfile,
    },
    /// Write a random-weight llama-family GGUF of any shape (for tests and benchmarks).
    Synth(synth::SynthArgs),
    /// List the models sluice can fetch by name, and where they are cached.
    Models,
    /// Fetch a known model (default: the default model) if it is not cached, and print its path.
    Fetch {
        /// A known model name (see `sluice models`).
        model: Option<String>,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect {
            model,
            model_flag,
            json,
            plan,
            device_mem,
            prefetch,
        } => {
            let path = models::resolve(model.or(model_flag).as_deref())?;
            if let (true, Some(budget)) = (plan, device_mem) {
                print!("{}", inspect::render_plan(&path, budget, prefetch)?);
                return Ok(());
            }
            let report = inspect::report(&path)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", inspect::render_text(&report));
            }
        }
        Command::Synth(args) => synth::run(&args)?,
        Command::Run(args) => run::run(&args)?,
        Command::Chat(args) => chat::run(&args)?,
        Command::Bench(args) => bench::run(&args)?,
        Command::Serve(args) => sluice_cli::serve::run(&args)?,
        Command::Fetch { model } => {
            let name = model.as_deref().unwrap_or(models::DEFAULT_MODEL);
            let known = models::find(name).with_context(|| {
                let names: Vec<&str> = models::MODELS.iter().map(|m| m.name).collect();
                format!(
                    "'{name}' is not a known model (known: {})",
                    names.join(", ")
                )
            })?;
            println!("{}", models::ensure_fetched(known)?.display());
        }
        Command::Models => {
            let dir = models::cache_dir()?.join("models");
            println!("cache: {}", dir.display());
            for m in models::MODELS {
                let cached = if dir.join(m.file_name).exists() {
                    "cached"
                } else {
                    "not fetched"
                };
                let default = if m.name == models::DEFAULT_MODEL {
                    " (default)"
                } else {
                    ""
                };
                println!(
                    "{:<28} {:>7.1} MB  {:<12} {}{default}",
                    m.name,
                    m.size as f64 / 1e6,
                    cached,
                    m.description
                );
            }
        }
    }
    Ok(())
}
