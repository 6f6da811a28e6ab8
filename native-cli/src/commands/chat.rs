//! `sluice chat`: an interactive conversation that keeps its KV cache between turns. On a
//! terminal: line editing and history, slash commands, Ctrl-C stops a reply, Ctrl-D leaves. With
//! stdin not a terminal, each line is one user turn and each reply one line of stdout.

use super::engine::{with_engine, CliBackend, Engine, EngineArgs, EngineTask};
use super::generation::{explain, stream_reply, GenerationArgs};
use super::run::read_history;
use anyhow::{Context, Result};
use clap::Args;
use engine_core::backend::Backend;
use engine_core::engine::{Conversation, Engine as CoreEngine, GenerateOptions};
use rustyline::error::ReadlineError;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Options of `sluice chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub generation: GenerationArgs,
    /// The system message to start with (`/system` changes it).
    #[arg(long)]
    pub system: Option<String>,
    /// Start from a conversation saved with `/save`.
    #[arg(long)]
    pub history: Option<PathBuf>,
}

const HELP: &str = "commands: /reset (forget the turns, keep the system message), /system TEXT \
(set it; /system alone shows it), /stats (the last turn), /save FILE, /load FILE, /exit; \
Ctrl-C stops a reply, Ctrl-D exits";

/// Runs `sluice chat`.
pub fn run(args: &ChatArgs) -> Result<()> {
    with_engine(&args.engine, args)
}

impl EngineTask for &ChatArgs {
    fn run<B: CliBackend>(self, engine: Engine<B>) -> Result<()> {
        let mut chat = Chat::new(&engine.core, self)?;
        if std::io::stdin().is_terminal() {
            chat.interactive(&engine)
        } else {
            chat.scripted()
        }
    }
}

/// What one input line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command<'a> {
    Say(&'a str),
    Reset,
    System(Option<&'a str>),
    Stats,
    Save(&'a str),
    Load(&'a str),
    Exit,
    Help,
    Unknown(&'a str),
}

fn parse(line: &str) -> Command<'_> {
    let Some(rest) = line.trim_end().strip_prefix('/') else {
        return Command::Say(line);
    };
    let (name, arg) = rest.split_once(' ').unwrap_or((rest, ""));
    let arg = arg.trim();
    match name {
        "reset" | "clear" => Command::Reset,
        "system" => Command::System((!arg.is_empty()).then_some(arg)),
        "stats" => Command::Stats,
        "save" => Command::Save(arg),
        "load" => Command::Load(arg),
        "exit" | "quit" => Command::Exit,
        "help" | "?" => Command::Help,
        _ => Command::Unknown(name),
    }
}

/// The conversation and what the REPL needs around it.
struct Chat<'e, B: Backend> {
    core: &'e CoreEngine<B>,
    conversation: Conversation<B>,
    options: GenerateOptions,
    ctx: usize,
    /// Set while a reply runs: Ctrl-C then stops it instead of ending the process.
    replying: Arc<AtomicBool>,
}

impl<'e, B: Backend> Chat<'e, B> {
    fn new(core: &'e CoreEngine<B>, args: &ChatArgs) -> Result<Self> {
        let mut conversation = core.conversation(args.engine.ctx)?;
        if let Some(path) = &args.history {
            conversation.set_messages(read_history(path)?);
        }
        if let Some(system) = &args.system {
            conversation.set_system(Some(system));
        }
        let replying = Arc::new(AtomicBool::new(false));
        let (flag, cancel) = (replying.clone(), conversation.cancel_handle());
        ctrlc::set_handler(move || {
            if flag.load(Ordering::SeqCst) {
                cancel.cancel();
            } else {
                std::process::exit(130);
            }
        })
        .context("installing the Ctrl-C handler")?;
        Ok(Self {
            core,
            conversation,
            options: args.generation.options(),
            ctx: args.engine.ctx,
            replying,
        })
    }

    /// The REPL on a terminal.
    fn interactive(&mut self, engine: &Engine<B>) -> Result<()> {
        let mut editor = rustyline::DefaultEditor::new().context("starting the line editor")?;
        eprintln!(
            "sluice chat: {} on {} (load {:.2} s). {HELP}",
            engine.path.display(),
            self.core.backend.name(),
            engine.load_time.as_secs_f64()
        );
        loop {
            let line = match editor.readline("> ") {
                Ok(line) => line,
                // Ctrl-C at the prompt clears the line, as in a shell.
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => return Ok(()),
                Err(e) => return Err(e).context("reading a line"),
            };
            if line.trim().is_empty() {
                continue;
            }
            let _ = editor.add_history_entry(line.as_str());
            if !self.handle(&line, true) {
                return Ok(());
            }
        }
    }

    /// Lines from a pipe or file: each a turn (or a command), replies on stdout.
    fn scripted(&mut self) -> Result<()> {
        for line in std::io::stdin().lock().lines() {
            let line = line.context("reading stdin")?;
            if line.trim().is_empty() {
                continue;
            }
            if !self.handle(&line, false) {
                break;
            }
        }
        Ok(())
    }

    /// Carries out one line; `false` to leave. Errors are reported and the REPL goes on.
    fn handle(&mut self, line: &str, terminal: bool) -> bool {
        let result = match parse(line) {
            Command::Exit => return false,
            Command::Say(text) => self.say(text, terminal),
            Command::Reset => {
                self.conversation.reset();
                note("conversation cleared (system message kept)");
                Ok(())
            }
            Command::System(Some(text)) => {
                self.conversation.set_system(Some(text));
                note("system message set");
                Ok(())
            }
            Command::System(None) => {
                match self.conversation.system() {
                    Some(s) => note(&format!("system message: {s}")),
                    None => note("no system message"),
                }
                Ok(())
            }
            Command::Stats => {
                note(&self.stats());
                Ok(())
            }
            Command::Save(path) => self.save(path),
            Command::Load(path) => self.load(path),
            Command::Help => {
                note(HELP);
                Ok(())
            }
            Command::Unknown(name) => Err(anyhow::anyhow!("unknown command /{name}; {HELP}")),
        };
        if let Err(e) = result {
            eprintln!("error: {e:#}");
        }
        true
    }

    fn say(&mut self, text: &str, terminal: bool) -> Result<()> {
        let reply = self
            .conversation
            .say(self.core, text, &self.options)
            .map_err(|e| explain(e, self.ctx))?;
        self.replying.store(true, Ordering::SeqCst);
        let mut out = std::io::stdout().lock();
        let outcome = stream_reply(reply, &mut out);
        self.replying.store(false, Ordering::SeqCst);
        writeln!(out)?;
        let outcome = outcome?;
        if terminal && outcome.stats.stop_reason == Some(engine_core::engine::StopReason::Cancelled)
        {
            note("stopped (the partial reply stays in the conversation)");
        }
        Ok(())
    }

    fn stats(&self) -> String {
        let cached = self.conversation.cached_tokens().len();
        let limit = self.conversation.limit();
        match self.conversation.last_turn() {
            None => format!("no turn yet | cache {cached}/{limit} positions"),
            Some(s) => format!(
                "last turn: prompt {} tokens, {} reused from the cache, {} prefilled | first token \
                 after {:.3} s ({:.1} tok/s prefill) | {} generated, {:.1} tok/s | stop: {} | \
                 dropped by context shift: {} | cache {cached}/{limit} positions | {} messages",
                s.prompt_tokens,
                s.tokens_reused,
                s.tokens_prefilled,
                s.ttft_s,
                s.prefill_tok_s,
                s.generated_tokens,
                s.decode_tok_s,
                s.stop_reason.map_or("none", |r| r.name()),
                s.dropped_messages,
                self.conversation.messages().len(),
            ),
        }
    }

    fn save(&self, path: &str) -> Result<()> {
        anyhow::ensure!(!path.is_empty(), "/save needs a file name");
        std::fs::write(path, self.conversation.to_json() + "\n")
            .with_context(|| format!("writing {path}"))?;
        note(&format!(
            "saved {} messages to {path}",
            self.conversation.messages().len()
        ));
        Ok(())
    }

    fn load(&mut self, path: &str) -> Result<()> {
        anyhow::ensure!(!path.is_empty(), "/load needs a file name");
        let messages = read_history(std::path::Path::new(path))?;
        let n = messages.len();
        self.conversation.set_messages(messages);
        note(&format!("loaded {n} messages from {path}"));
        Ok(())
    }
}

/// A status line: on stderr, so stdout carries only replies.
fn note(text: &str) {
    eprintln!("[{text}]");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_into_commands() {
        assert_eq!(parse("hello /there"), Command::Say("hello /there"));
        assert_eq!(parse("/reset"), Command::Reset);
        assert_eq!(
            parse("/system Be brief. "),
            Command::System(Some("Be brief."))
        );
        assert_eq!(parse("/system"), Command::System(None));
        assert_eq!(parse("/save a b.json"), Command::Save("a b.json"));
        assert_eq!(parse("/load x"), Command::Load("x"));
        assert_eq!(parse("/quit"), Command::Exit);
        assert_eq!(parse("/nope 1"), Command::Unknown("nope"));
    }
}
