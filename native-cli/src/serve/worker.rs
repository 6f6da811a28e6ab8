//! The engine thread: it loads the model, then takes requests from the bounded queue whenever a
//! slot is free, and steps every active slot together until the queue's senders are gone.
//! Handlers hear back through each request's own channel; a request whose channel closed (its
//! client went away) is cancelled before the next step.

use super::metrics::Metrics;
use crate::commands::engine::{CliBackend, Engine, EngineTask};
use anyhow::Result;
use engine_core::chat::ChatTemplate;
use engine_core::engine::{GenerateOptions, SlotEvent, SlotPool, SlotRequest, TurnStats};
use engine_core::sample::TokenLogprob;
use engine_core::tokenizer::Tokenizer;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// What handlers need of the loaded model.
pub struct ModelInfo {
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
    pub template_error: Option<String>,
    /// Positions each slot holds.
    pub context: usize,
    pub slots: usize,
    /// Unix seconds at which the model was loaded.
    pub created: u64,
}

/// State the engine thread and the handlers share.
pub struct Shared {
    pub info: OnceLock<ModelInfo>,
    pub metrics: Metrics,
    /// Requests in the queue, not yet in a slot.
    pub queued: AtomicUsize,
    /// Set at shutdown: no new requests.
    pub closing: AtomicBool,
    /// Set when the shutdown timeout runs out: cancel every reply.
    pub cancel_all: AtomicBool,
    /// Told when the engine thread ends (a failed load ends the server).
    pub engine_done: tokio::sync::Notify,
}

impl Shared {
    pub fn new() -> Self {
        Self {
            info: OnceLock::new(),
            metrics: Metrics::new(),
            queued: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            cancel_all: AtomicBool::new(false),
            engine_done: tokio::sync::Notify::new(),
        }
    }
}

/// A generation request on its way to a slot.
pub struct Job {
    pub prompt: Vec<u32>,
    pub options: GenerateOptions,
    pub logprobs: Option<usize>,
    pub arrived: Instant,
    pub events: UnboundedSender<Event>,
}

/// What the engine tells a request's handler.
#[derive(Debug)]
pub enum Event {
    Token {
        text: String,
        logprob: Option<TokenLogprob>,
    },
    Done {
        text: String,
        stats: TurnStats,
    },
    /// The request could not be served (`unavailable`: the server is shutting down).
    Failed {
        message: String,
        unavailable: bool,
    },
}

/// The engine thread's task: serve `jobs` in `parallel` slots.
pub struct SlotWorker {
    pub jobs: Receiver<Job>,
    pub shared: Arc<Shared>,
    pub parallel: usize,
    pub context: usize,
}

/// A request being generated in a slot.
struct Live {
    events: UnboundedSender<Event>,
    arrived: Instant,
    last_token: Option<Instant>,
}

/// How often an idle engine thread looks up from the queue (to notice a shutdown).
const IDLE_POLL: Duration = Duration::from_millis(100);

impl EngineTask for SlotWorker {
    fn run<B: CliBackend>(self, engine: Engine<B>) -> Result<()> {
        let core = &engine.core;
        let pool = SlotPool::new(core, self.parallel, self.context)?;
        let context = pool.context();
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let info = ModelInfo {
            tokenizer: core.tokenizer.clone(),
            template: core.template.clone(),
            template_error: core.template_error.clone(),
            context,
            slots: pool.len(),
            created,
        };
        let m = &self.shared.metrics;
        m.slots_total.set(pool.len() as i64);
        m.kv_cells_total.set((pool.len() * context) as i64);
        let _ = self.shared.info.set(info);
        m.ready.set(1);
        eprintln!(
            "sluice serve: ready: {} on {}, {} slots of {context} positions, loaded in {:.2} s",
            engine.path.display(),
            engine.backend_name(),
            pool.len(),
            engine.load_time.as_secs_f64()
        );
        self.serve(pool, &engine)
    }
}

impl SlotWorker {
    fn serve<B: CliBackend>(&self, mut pool: SlotPool<'_, B>, engine: &Engine<B>) -> Result<()> {
        let mut live: Vec<Option<Live>> = (0..pool.len()).map(|_| None).collect();
        let mut senders_gone = false;
        let m = &self.shared.metrics;
        loop {
            let cancel_all = self.shared.cancel_all.load(Ordering::SeqCst);
            // Take queued requests while a slot is free; wait for one only when idle.
            while !senders_gone && pool.active() < pool.len() {
                let job = if pool.active() == 0 {
                    match self.jobs.recv_timeout(IDLE_POLL) {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => {
                            senders_gone = true;
                            break;
                        }
                    }
                } else {
                    match self.jobs.try_recv() {
                        Ok(job) => job,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            senders_gone = true;
                            break;
                        }
                    }
                };
                let depth = self.shared.queued.fetch_sub(1, Ordering::SeqCst) - 1;
                m.queue_depth.set(depth as i64);
                self.admit(&mut pool, &mut live, job, cancel_all);
            }
            for (slot, entry) in live.iter_mut().enumerate() {
                if entry
                    .as_ref()
                    .is_some_and(|l| cancel_all || l.events.is_closed())
                {
                    let cancelled = pool.cancel(slot);
                    if let (Some(l), Some(SlotEvent::Done { text, stats, .. })) =
                        (entry.take(), cancelled)
                    {
                        let _ = l.events.send(Event::Done { text, stats });
                    }
                }
            }
            if pool.active() == 0 {
                if senders_gone {
                    return Ok(());
                }
                m.slots_active.set(0);
                continue;
            }
            let events = pollster::block_on(pool.step());
            let tokens = events
                .iter()
                .filter(|e| matches!(e, SlotEvent::Token { .. }))
                .count();
            if tokens > 0 {
                m.batch_size.observe(tokens as f64);
            }
            for event in events {
                deliver(&mut live, event, m);
            }
            m.slots_active.set(pool.active() as i64);
            m.kv_cells_used.set(pool.kv_cells_used() as i64);
            m.observe_prefetch(&engine.core.model.prefetch_stats());
        }
    }

    /// Puts `job` in the free slot with the longest cached prefix of its prompt.
    fn admit<B: CliBackend>(
        &self,
        pool: &mut SlotPool<'_, B>,
        live: &mut [Option<Live>],
        job: Job,
        cancel_all: bool,
    ) {
        let m = &self.shared.metrics;
        if cancel_all {
            let _ = job.events.send(Event::Failed {
                message: "the server is shutting down".into(),
                unavailable: true,
            });
            return;
        }
        if job.events.is_closed() {
            return;
        }
        let Some(slot) = pool.pick(&job.prompt) else {
            return;
        };
        m.queue_wait.observe(job.arrived.elapsed().as_secs_f64());
        let prompt_tokens = job.prompt.len();
        let request = SlotRequest {
            prompt: job.prompt,
            options: job.options,
            logprobs: job.logprobs,
        };
        match pool.start(slot, request) {
            Ok(reused) => {
                m.prompt_tokens.inc_by(prompt_tokens as u64);
                m.prompt_tokens_reused.inc_by(reused as u64);
                live[slot] = Some(Live {
                    events: job.events,
                    arrived: job.arrived,
                    last_token: None,
                });
            }
            Err(e) => {
                let _ = job.events.send(Event::Failed {
                    message: e.to_string(),
                    unavailable: false,
                });
            }
        }
    }
}

/// Hands a slot's event to its request, timing tokens as they go.
fn deliver(live: &mut [Option<Live>], event: SlotEvent, m: &Metrics) {
    match event {
        SlotEvent::Token {
            slot,
            text,
            logprob,
            ..
        } => {
            let Some(l) = live.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let now = Instant::now();
            match l.last_token {
                None => m.ttft.observe(now.duration_since(l.arrived).as_secs_f64()),
                Some(last) => m
                    .inter_token
                    .observe(now.duration_since(last).as_secs_f64()),
            }
            l.last_token = Some(now);
            m.generated_tokens.inc();
            let _ = l.events.send(Event::Token { text, logprob });
        }
        SlotEvent::Done { slot, text, stats } => {
            if let Some(l) = live.get_mut(slot).and_then(Option::take) {
                let _ = l.events.send(Event::Done { text, stats });
            }
        }
        SlotEvent::Failed { slot, error } => {
            if let Some(l) = live.get_mut(slot).and_then(Option::take) {
                let _ = l.events.send(Event::Failed {
                    message: error.to_string(),
                    unavailable: false,
                });
            }
        }
    }
}
