//! Several replies generated at once (a server's slots). Each slot keeps its own KV session and
//! the tokens in it, so a new prompt goes to the free slot that already holds the longest prefix
//! of it. Each [`SlotPool::step`] prefills one chunk of one waiting prompt and runs one decode step
//! for every slot that is generating, as one batched forward pass: replies join and leave between
//! steps (continuous batching).

use super::emit::Emitter;
use super::options::{GenerateOptions, TurnStats};
use super::reply::common_prefix;
use super::stop::StopReason;
use super::Engine;
use crate::backend::Backend;
use crate::clock::Instant;
use crate::model::{BatchScratch, Logits, Session};
use crate::sample::{logprobs, Sampler, TokenLogprob};
use crate::{Error, Result};

/// What to generate in a slot.
#[derive(Debug, Clone)]
pub struct SlotRequest {
    /// The whole prompt, tokenized.
    pub prompt: Vec<u32>,
    pub options: GenerateOptions,
    /// Report each emitted token's log-probability and this many alternatives (`None`: none).
    pub logprobs: Option<usize>,
}

/// What a step did for one slot.
#[derive(Debug)]
pub enum SlotEvent {
    /// A token was emitted; `text` is what it let out (empty while a character or a possible
    /// stop string is incomplete).
    Token {
        slot: usize,
        token: u32,
        text: String,
        logprob: Option<TokenLogprob>,
    },
    /// The reply ended: `text` is the last of it (held-back text let out at the end), and
    /// `stats.stop_reason` says why. The slot is free again.
    Done {
        slot: usize,
        text: String,
        stats: TurnStats,
    },
    /// The reply failed; the slot is free again and its cache holds what went in.
    Failed { slot: usize, error: Error },
}

/// A reply in progress in a slot.
struct Job<'e> {
    prompt: Vec<u32>,
    max_tokens: usize,
    prefill_batch: usize,
    logprobs: Option<usize>,
    sampler: Sampler,
    emit: Emitter<'e>,
    /// The token sampled last, fed at the next step (`None` while prefilling).
    pending: Option<u32>,
    stats: TurnStats,
    start: Instant,
    first_token: Option<Instant>,
}

impl Job<'_> {
    /// Whether the token after this step needs the logits read back (else an argmax will do).
    fn needs_logits(&self) -> bool {
        self.logprobs.is_some() || !self.sampler.is_plain_argmax()
    }
}

struct Slot<'e, B: Backend> {
    session: Session<B>,
    /// The tokens whose keys and values are in the session, in order.
    cached: Vec<u32>,
    job: Option<Job<'e>>,
    /// When the slot was last given a reply (the least recent breaks ties in `pick`).
    used: u64,
}

/// A fixed set of slots on one engine.
pub struct SlotPool<'e, B: Backend> {
    engine: &'e Engine<B>,
    slots: Vec<Slot<'e, B>>,
    scratch: BatchScratch<B>,
    clock: u64,
}

impl<'e, B: Backend> SlotPool<'e, B> {
    /// `slots` slots whose sessions each hold `context` positions (at most the model's).
    pub fn new(engine: &'e Engine<B>, slots: usize, context: usize) -> Result<Self> {
        if slots == 0 {
            return Err(Error::Config("a slot pool needs at least one slot".into()));
        }
        let slots = (0..slots)
            .map(|_| {
                Ok(Slot {
                    session: engine.model.session(&engine.backend, context)?,
                    cached: Vec::new(),
                    job: None,
                    used: 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            engine,
            slots,
            scratch: BatchScratch::default(),
            clock: 0,
        })
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Always false: a pool has at least one slot.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Positions each slot's session holds.
    pub fn context(&self) -> usize {
        self.slots[0].session.limit()
    }

    /// Slots generating a reply.
    pub fn active(&self) -> usize {
        self.slots.iter().filter(|s| s.job.is_some()).count()
    }

    /// Whether `slot` is generating a reply.
    pub fn is_busy(&self, slot: usize) -> bool {
        self.slots.get(slot).is_some_and(|s| s.job.is_some())
    }

    /// KV positions filled, over all slots.
    pub fn kv_cells_used(&self) -> usize {
        self.slots.iter().map(|s| s.session.position()).sum()
    }

    /// Bytes of the KV caches of all slots.
    pub fn kv_bytes(&self) -> u64 {
        self.slots.iter().map(|s| s.session.kv_bytes()).sum()
    }

    /// The tokens cached in `slot`.
    pub fn cached_tokens(&self, slot: usize) -> &[u32] {
        self.slots.get(slot).map_or(&[], |s| s.cached.as_slice())
    }

    /// The free slot whose cache shares the longest prefix with `prompt` (the least recently
    /// used among equals); `None` when every slot is busy.
    pub fn pick(&self, prompt: &[u32]) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.job.is_none())
            .min_by_key(|(_, s)| (std::cmp::Reverse(common_prefix(&s.cached, prompt)), s.used))
            .map(|(i, _)| i)
    }

    /// Starts `request` in the free `slot`: its cache is cut back to the longest prefix it shares
    /// with the prompt (at least one token is always run, for the logits). Returns the tokens
    /// reused.
    pub fn start(&mut self, slot: usize, request: SlotRequest) -> Result<usize> {
        let SlotRequest {
            prompt,
            options,
            logprobs,
        } = request;
        let sampler = Sampler::new(options.sampler.clone())?;
        let context = self.context();
        let s = self
            .slots
            .get_mut(slot)
            .ok_or_else(|| Error::Config(format!("no slot {slot}")))?;
        if s.job.is_some() {
            return Err(Error::Config(format!("slot {slot} is busy")));
        }
        if prompt.is_empty() {
            return Err(Error::Config("the prompt has no tokens".into()));
        }
        if prompt.len() > context {
            return Err(Error::ContextOverflow {
                tokens: prompt.len(),
                limit: context,
            });
        }
        let shared = common_prefix(&s.cached, &prompt).min(prompt.len() - 1);
        s.session.rewind(shared);
        s.cached.truncate(shared);
        self.clock += 1;
        s.used = self.clock;
        let mut sampler = sampler;
        // The repetition window sees the whole prompt, as in a fresh session.
        prompt.iter().for_each(|&t| sampler.accept(t));
        s.job = Some(Job {
            stats: TurnStats {
                prompt_tokens: prompt.len(),
                tokens_reused: shared,
                tokens_prefilled: prompt.len() - shared,
                ..TurnStats::default()
            },
            prompt,
            max_tokens: options.max_tokens,
            prefill_batch: options.prefill_batch.max(1),
            logprobs,
            sampler,
            emit: Emitter::new(&self.engine.tokenizer, &options),
            pending: None,
            start: Instant::now(),
            first_token: None,
        });
        Ok(shared)
    }

    /// Ends the reply in `slot` (a client went away): its `Done` event, with `Cancelled`.
    pub fn cancel(&mut self, slot: usize) -> Option<SlotEvent> {
        let s = self.slots.get_mut(slot)?;
        let job = s.job.take()?;
        Some(finish(slot, job, StopReason::Cancelled))
    }

    /// One step: a chunk of the oldest prompt still prefilling, then one token for every slot
    /// already generating, in one batched pass. Returns what happened, slot by slot.
    pub async fn step(&mut self) -> Vec<SlotEvent> {
        let mut events = Vec::new();
        let prefilling = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.job
                    .as_ref()
                    .filter(|j| j.pending.is_none())
                    .map(|j| (i, j.start))
            })
            .min_by_key(|&(_, start)| start)
            .map(|(i, _)| i);
        if let Some(i) = prefilling {
            self.prefill_chunk(i, &mut events).await;
        }
        self.decode(prefilling, &mut events).await;
        events
    }

    /// Feeds the next chunk of slot `i`'s prompt; after the last one, samples its first token.
    async fn prefill_chunk(&mut self, i: usize, events: &mut Vec<SlotEvent>) {
        let engine = self.engine;
        let slot = &mut self.slots[i];
        let Some(job) = slot.job.as_mut() else { return };
        let from = slot.session.position();
        let to = (from + job.prefill_batch).min(job.prompt.len());
        let chunk = &job.prompt[from..to];
        let result = if to < job.prompt.len() {
            engine
                .model
                .forward(&engine.backend, &mut slot.session, chunk, Logits::Last)
                .await
                .map(|_| None)
        } else if job.needs_logits() {
            let logits = engine
                .model
                .forward(&engine.backend, &mut slot.session, chunk, Logits::Last)
                .await;
            logits.and_then(|l| sample(job, &l).map(Some))
        } else {
            let token = engine
                .model
                .forward_argmax(&engine.backend, &mut slot.session, chunk)
                .await;
            token.map(|t| Some((t, None)))
        };
        // A failed pass leaves the session where it was: the cache holds what went in.
        let pos = slot.session.position();
        slot.cached.extend_from_slice(&job.prompt[from..pos]);
        match result {
            Err(error) => {
                slot.job = None;
                events.push(SlotEvent::Failed { slot: i, error });
            }
            Ok(None) => {}
            Ok(Some((token, logprob))) => {
                let now = Instant::now();
                let ttft = now.duration_since(job.start).as_secs_f64();
                job.first_token = Some(now);
                job.stats.ttft_s = ttft;
                job.stats.prefill_tok_s = job.stats.tokens_prefilled as f64 / ttft.max(1e-9);
                self.emit(i, token, logprob, events);
            }
        }
    }

    /// One token for every generating slot but `skip` (which got its first token this step).
    async fn decode(&mut self, skip: Option<usize>, events: &mut Vec<SlotEvent>) {
        let engine = self.engine;
        let mut ids = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            let Some(job) = s.job.as_ref() else { continue };
            if Some(i) == skip || job.pending.is_none() {
                continue;
            }
            if s.session.position() >= s.session.limit() {
                let job = s.job.take().expect("checked above");
                events.push(finish(i, job, StopReason::ContextFull));
                continue;
            }
            ids.push(i);
        }
        if ids.is_empty() {
            return;
        }
        let tokens: Vec<u32> = ids
            .iter()
            .filter_map(|&i| self.slots[i].job.as_ref().and_then(|j| j.pending))
            .collect();
        let logits = ids
            .iter()
            .any(|&i| self.slots[i].job.as_ref().is_some_and(Job::needs_logits));
        let mut sessions: Vec<&mut Session<B>> = self
            .slots
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| ids.contains(i))
            .map(|(_, s)| &mut s.session)
            .collect();
        let (model, backend) = (&engine.model, &engine.backend);
        let result = if logits {
            model
                .forward_batch(backend, &mut self.scratch, &mut sessions, &tokens)
                .await
                .map(Ok)
        } else {
            model
                .forward_batch_argmax(backend, &mut self.scratch, &mut sessions, &tokens)
                .await
                .map(Err)
        };
        drop(sessions);
        let vocab = model.vocab_size();
        match result {
            Err(error) => {
                for &i in &ids {
                    self.slots[i].job = None;
                    let error = Error::Config(format!("the batched step failed: {error}"));
                    events.push(SlotEvent::Failed { slot: i, error });
                }
            }
            Ok(out) => {
                for (row, (&i, &fed)) in ids.iter().zip(&tokens).enumerate() {
                    self.slots[i].cached.push(fed);
                    let Some(job) = self.slots[i].job.as_mut() else {
                        continue;
                    };
                    let next = match &out {
                        Ok(all) => sample(job, &all[row * vocab..(row + 1) * vocab]),
                        Err(argmax) => Ok((argmax[row], None)),
                    };
                    match next {
                        Ok((token, logprob)) => self.emit(i, token, logprob, events),
                        Err(error) => {
                            self.slots[i].job = None;
                            events.push(SlotEvent::Failed { slot: i, error });
                        }
                    }
                }
            }
        }
    }

    /// Takes slot `i`'s sampled token: an event with its text, and the end of the reply when it
    /// is the last.
    fn emit(
        &mut self,
        i: usize,
        token: u32,
        logprob: Option<TokenLogprob>,
        events: &mut Vec<SlotEvent>,
    ) {
        let slot = &mut self.slots[i];
        let Some(job) = slot.job.as_mut() else { return };
        job.sampler.accept(token);
        job.pending = Some(token);
        let (text, reason) = match job.emit.push(token) {
            Ok(pushed) => pushed,
            Err(error) => {
                slot.job = None;
                events.push(SlotEvent::Failed { slot: i, error });
                return;
            }
        };
        if reason != Some(StopReason::EndOfGeneration) {
            events.push(SlotEvent::Token {
                slot: i,
                token,
                text,
                logprob,
            });
        }
        let reason =
            reason.or((job.emit.tokens.len() >= job.max_tokens).then_some(StopReason::MaxTokens));
        if let Some(reason) = reason {
            let job = slot.job.take().expect("checked above");
            events.push(finish(i, job, reason));
        }
    }
}

/// Samples the next token of `job` from one row of logits, with its log-probabilities if asked.
fn sample(job: &mut Job<'_>, logits: &[f32]) -> Result<(u32, Option<TokenLogprob>)> {
    let token = job.sampler.sample(logits)?;
    Ok((token, job.logprobs.map(|top| logprobs(logits, token, top))))
}

/// The `Done` event of a reply ending for `reason`.
fn finish(slot: usize, mut job: Job<'_>, reason: StopReason) -> SlotEvent {
    let text = job.emit.finish(reason);
    let mut stats = job.stats;
    stats.stop_reason = Some(reason);
    stats.generated_tokens = job.emit.tokens.len();
    if let Some(first) = job.first_token {
        let decode = Instant::now().duration_since(first).as_secs_f64();
        stats.decode_tok_s = stats.generated_tokens.saturating_sub(1) as f64 / decode.max(1e-9);
    }
    SlotEvent::Done { slot, text, stats }
}
