//! `sluice run`: generate text from a prompt (plain, or through the model's chat template, after
//! an optional saved conversation), printing tokens as they are produced.

use super::engine::{with_engine, CliBackend, Engine, EngineArgs, EngineTask};
use super::generation::{explain, stream_reply, GenerationArgs};
use anyhow::{Context, Result};
use clap::Args;
use engine_core::engine::{parse_messages, Prompt};
use std::io::Write;
use std::path::PathBuf;

/// Options of `sluice run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The prompt (with --chat: the user message).
    pub prompt: String,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub generation: GenerationArgs,
    /// Wrap the prompt in the model's chat template as a user message.
    #[arg(long)]
    pub chat: bool,
    /// A system message (with --chat).
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    /// Earlier turns to reply after: a conversation saved by `sluice chat`'s `/save` (with --chat).
    #[arg(long, requires = "chat")]
    pub history: Option<PathBuf>,
    /// Print timings to stderr at the end.
    #[arg(long)]
    pub stats: bool,
}

/// Runs `sluice run`, streaming text to stdout.
pub fn run(args: &RunArgs) -> Result<()> {
    with_engine(&args.engine, args)
}

impl EngineTask for &RunArgs {
    fn run<B: CliBackend>(self, engine: Engine<B>) -> Result<()> {
        run_on(engine, self)
    }
}

fn run_on<B: CliBackend>(engine: Engine<B>, args: &RunArgs) -> Result<()> {
    let core = &engine.core;
    let options = args.generation.options();
    let seed = options.sampler.seed;
    let mut conversation = core.conversation(args.engine.ctx)?;
    if let Some(path) = &args.history {
        conversation.set_messages(read_history(path)?);
    }
    if let Some(system) = &args.system {
        conversation.set_system(Some(system));
    }
    let reply = if args.chat {
        conversation.say(core, &args.prompt, &options)
    } else {
        conversation.complete(core, Prompt::Text(&args.prompt), &options)
    }
    .map_err(|e| explain(e, args.engine.ctx))?;
    let mut out = std::io::stdout().lock();
    let outcome = stream_reply(reply, &mut out)?;
    writeln!(out)?;
    if args.stats {
        let s = &outcome.stats;
        let device = core.backend.describe(&args.engine);
        eprintln!(
            "sluice: load {:.2} s | prompt {} tokens ({} prefilled), first token after {:.3} s ({:.1} tok/s) | {} generated, {:.1} tok/s | seed {seed} | {device}",
            engine.load_time.as_secs_f64(),
            s.prompt_tokens,
            s.tokens_prefilled,
            s.ttft_s,
            s.prefill_tok_s,
            s.generated_tokens,
            s.decode_tok_s,
        );
        eprint!("{}", render_prefetch(&core.model.prefetch_stats()));
    }
    Ok(())
}

/// The messages of a conversation file written by `sluice chat`'s `/save`.
pub fn read_history(path: &std::path::Path) -> Result<Vec<engine_core::chat::ChatMessage>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_messages(&text).with_context(|| format!("loading {}", path.display()))
}
/// A short text report of residency and streaming for `--stats`.
pub fn render_prefetch(s: &engine_core::prefetch::PrefetchStats) -> String {
    use crate::size::format_size;
    use std::fmt::Write;
    let mut out = String::new();
    if s.mode == "resident" {
        let _ = writeln!(
            out,
            "sluice: weights resident ({} on the device, loaded once)",
            format_size(s.pinned_bytes)
        );
        return out;
    }
    let _ = writeln!(
        out,
        "sluice: streaming within {} ({} pinned), profile {} at distance {} | hits {} stalls {} \
         sync loads {} ({} after the first pass) | hit rate {:.1}% | stall {:.3} s | moved {} | \
         peak on device {} | queue high-water {}/{} | peak in flight {} | failed reads {} (retried {})",
        format_size(s.budget_bytes),
        format_size(s.pinned_bytes),
        s.profile,
        s.distance,
        s.hits,
        s.stalls,
        s.sync_loads,
        s.sync_loads_after_first_pass,
        100.0 * s.hit_rate(),
        s.stall_time.as_secs_f64(),
        format_size(s.bytes_moved),
        format_size(s.peak_device_bytes),
        s.queue_high_water,
        s.queue_bound,
        s.peak_in_flight,
        s.failed_fetches,
        s.retried_fetches,
    );
    let _ = writeln!(
        out,
        "  layer        bytes     pinned  hits  stalls  sync  wait(ms)  fetched"
    );
    for l in &s.layers {
        let _ = writeln!(
            out,
            "  {:<10} {:>10}  {:<6} {:>5} {:>7} {:>5} {:>9.2}  {}",
            l.layer,
            format_size(l.bytes),
            if l.pinned { "yes" } else { "no" },
            l.hits,
            l.stalls,
            l.sync_loads,
            l.wait_time.as_secs_f64() * 1e3,
            format_size(l.bytes_fetched),
        );
    }
    out
}
