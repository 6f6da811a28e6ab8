//! The slot pool on a synthesized model: replies generated together in batched steps equal the
//! same replies generated alone, prompts go to the slot with the longest cached prefix, and
//! replies end (stop strings, max tokens, cancel, context) as a conversation's do.

use super::tests::{engine_with, options};
use super::*;
use crate::backend::cpu::MatmulPath;
use crate::model::{BatchScratch, Logits};
use crate::sample::SamplerConfig;
use crate::Error;
use pollster::block_on;
use std::collections::BTreeMap;

type Replies = BTreeMap<usize, (Vec<u32>, String)>;

/// Adds a step's events to each slot's tokens and text, and the ended replies' stats to `done`.
fn record(events: Vec<SlotEvent>, out: &mut Replies, done: &mut Vec<(usize, TurnStats)>) {
    for event in events {
        match event {
            SlotEvent::Token {
                slot, token, text, ..
            } => {
                let e = out.entry(slot).or_default();
                e.0.push(token);
                e.1.push_str(&text);
            }
            SlotEvent::Done { slot, text, stats } => {
                out.entry(slot).or_default().1.push_str(&text);
                done.push((slot, stats));
            }
            SlotEvent::Failed { slot, error } => panic!("slot {slot} failed: {error}"),
        }
    }
}

/// Runs the pool until every slot is idle; the replies that ended, with their stats.
fn drain<B: Backend>(pool: &mut SlotPool<'_, B>, out: &mut Replies) -> Vec<(usize, TurnStats)> {
    let mut done = Vec::new();
    for _ in 0..10_000 {
        if pool.active() == 0 {
            break;
        }
        record(block_on(pool.step()), out, &mut done);
    }
    done
}

fn alone(e: &Engine<impl Backend>, prompt: &[u32], opts: &GenerateOptions) -> ReplyOutcome {
    let mut conv = e.conversation(256).unwrap();
    block_on(
        conv.complete(e, Prompt::Tokens(prompt), opts)
            .unwrap()
            .run(|_| {}),
    )
    .unwrap()
}

#[test]
fn a_batched_step_equals_each_session_stepped_alone() {
    for path in [MatmulPath::Exact, MatmulPath::Precise] {
        let e = engine_with(256, path);
        let (m, b) = (&e.model, &e.backend);
        let prompts: [&[u32]; 3] = [&[3, 4, 5], &[9, 8, 7, 6, 5, 4], &[11]];
        let mut batched: Vec<_> = prompts.iter().map(|_| m.session(b, 64).unwrap()).collect();
        let mut single: Vec<_> = prompts.iter().map(|_| m.session(b, 64).unwrap()).collect();
        for ((p, bs), ss) in prompts.iter().zip(&mut batched).zip(&mut single) {
            block_on(m.forward(b, bs, p, Logits::Last)).unwrap();
            block_on(m.forward(b, ss, p, Logits::Last)).unwrap();
        }
        let mut scratch = BatchScratch::default();
        for step in 0..4u32 {
            let tokens = [20 + step, 30 + step, 40 + step];
            let mut refs: Vec<_> = batched.iter_mut().collect();
            let rows = block_on(m.forward_batch(b, &mut scratch, &mut refs, &tokens)).unwrap();
            let mut refs: Vec<_> = batched.iter_mut().collect();
            // The argmax variant does not advance twice: rewind and rerun the same step.
            refs.iter_mut().for_each(|s| {
                let p = s.position();
                s.rewind(p - 1)
            });
            let ids =
                block_on(m.forward_batch_argmax(b, &mut scratch, &mut refs, &tokens)).unwrap();
            let vocab = m.vocab_size();
            for (i, s) in single.iter_mut().enumerate() {
                let want = block_on(m.forward(b, s, &tokens[i..=i], Logits::Last)).unwrap();
                assert_eq!(
                    &rows[i * vocab..(i + 1) * vocab],
                    &want[..],
                    "{path:?} step {step} row {i}"
                );
                assert_eq!(ids[i], crate::sample::argmax(&want));
                assert_eq!(batched[i].position(), s.position());
            }
        }
    }
}

#[test]
fn replies_generated_together_equal_replies_generated_alone() {
    let e = engine_with(256, MatmulPath::Exact);
    let seeded = GenerateOptions {
        sampler: SamplerConfig {
            seed: 7,
            ..SamplerConfig::default()
        },
        ignore_eog: true,
        max_tokens: 9,
        ..GenerateOptions::default()
    };
    let requests = [
        (vec![3u32, 4, 5, 6, 7, 8, 9, 10, 11, 12], options(7)),
        (vec![5u32, 6], seeded),
        (vec![40u32, 41, 42, 43], options(12)),
    ];
    let mut pool = SlotPool::new(&e, 3, 256).unwrap();
    let mut out = BTreeMap::new();
    // The second and third join while the first is generating; a small prefill batch makes the
    // first prompt take several steps.
    let mut first = requests[0].1.clone();
    first.prefill_batch = 3;
    pool.start(
        0,
        SlotRequest {
            prompt: requests[0].0.clone(),
            options: first,
            logprobs: None,
        },
    )
    .unwrap();
    let mut done = Vec::new();
    for (slot, (prompt, opts)) in requests.iter().enumerate().skip(1) {
        for _ in 0..5 {
            record(block_on(pool.step()), &mut out, &mut done);
        }
        let logprobs = (slot == 1).then_some(2);
        pool.start(
            slot,
            SlotRequest {
                prompt: prompt.clone(),
                options: opts.clone(),
                logprobs,
            },
        )
        .unwrap();
    }
    done.extend(drain(&mut pool, &mut out));
    assert_eq!(done.len(), 3);
    for (slot, (prompt, opts)) in requests.iter().enumerate() {
        let want = alone(&e, prompt, opts);
        assert_eq!(out[&slot].0, want.tokens, "slot {slot}");
        assert_eq!(out[&slot].1, want.text, "slot {slot}");
        let stats = &done.iter().find(|d| d.0 == slot).unwrap().1;
        assert_eq!(stats.stop_reason, Some(StopReason::MaxTokens));
        assert_eq!(stats.generated_tokens, opts.max_tokens);
    }
    assert_eq!(pool.active(), 0);
    assert_eq!(
        pool.kv_cells_used(),
        (0..3).map(|s| pool.cached_tokens(s).len()).sum::<usize>()
    );
}

#[test]
fn a_prompt_goes_to_the_free_slot_with_the_longest_cached_prefix() {
    let e = engine_with(256, MatmulPath::Exact);
    let mut pool = SlotPool::new(&e, 3, 128).unwrap();
    let mut out = BTreeMap::new();
    let a = vec![3u32, 4, 5, 6, 7, 8];
    let b = vec![20u32, 21, 22, 23];
    assert_eq!(pool.pick(&a), Some(0));
    pool.start(
        0,
        SlotRequest {
            prompt: a.clone(),
            options: options(2),
            logprobs: None,
        },
    )
    .unwrap();
    let slot_b = pool.pick(&b).unwrap();
    assert_ne!(slot_b, 0);
    pool.start(
        slot_b,
        SlotRequest {
            prompt: b.clone(),
            options: options(2),
            logprobs: None,
        },
    )
    .unwrap();
    drain(&mut pool, &mut out);
    // a's continuation goes back to slot 0 and reuses all of a; an unrelated prompt takes the
    // least recently used slot.
    let mut a2 = a.clone();
    a2.extend([50, 51]);
    assert_eq!(pool.pick(&a2), Some(0));
    assert_eq!(
        pool.start(
            0,
            SlotRequest {
                prompt: a2.clone(),
                options: options(3),
                logprobs: None
            }
        )
        .unwrap(),
        a.len()
    );
    assert_eq!(
        pool.pick(&[90, 91]).map(|s| s != 0 && s != slot_b),
        Some(true)
    );
    assert!(pool
        .start(
            0,
            SlotRequest {
                prompt: b,
                options: options(1),
                logprobs: None
            }
        )
        .is_err());
    let done = drain(&mut pool, &mut out);
    assert_eq!(done[0].1.tokens_reused, a.len());
    assert_eq!(done[0].1.tokens_prefilled, 2);
    assert_eq!(out[&0].0[2..], alone(&e, &a2, &options(3)).tokens[..]);
}

#[test]
fn replies_in_slots_end_on_stop_strings_cancel_and_a_full_context() {
    let e = engine_with(256, MatmulPath::Exact);
    let prompt = vec![3u32, 4, 5];
    let free = alone(&e, &prompt, &options(12));
    let stop = free.text.chars().skip(4).take(2).collect::<String>();
    let mut opts = options(12);
    opts.stop = vec![stop.clone()];
    let mut pool = SlotPool::new(&e, 2, 16).unwrap();
    pool.start(
        0,
        SlotRequest {
            prompt: prompt.clone(),
            options: opts.clone(),
            logprobs: None,
        },
    )
    .unwrap();
    // Slot 1 runs into its 16-position context: 13 prompt tokens leave room for 3 more.
    let long: Vec<u32> = (3..16).collect();
    pool.start(
        1,
        SlotRequest {
            prompt: long,
            options: options(100),
            logprobs: None,
        },
    )
    .unwrap();
    let mut out = BTreeMap::new();
    let done = drain(&mut pool, &mut out);
    let by_slot: BTreeMap<_, _> = done.into_iter().collect();
    assert_eq!(by_slot[&0].stop_reason, Some(StopReason::StopString));
    let alone_stopped = {
        let mut conv = e.conversation(256).unwrap();
        block_on(
            conv.complete(&e, Prompt::Tokens(&prompt), &opts)
                .unwrap()
                .run(|_| {}),
        )
        .unwrap()
    };
    assert_eq!(out[&0].1, alone_stopped.text);
    assert!(!out[&0].1.contains(&stop));
    assert_eq!(by_slot[&1].stop_reason, Some(StopReason::ContextFull));
    assert_eq!(by_slot[&1].generated_tokens, 4);
    // A prompt longer than the context is refused; a cancelled reply frees its slot.
    let too_long: Vec<u32> = (0..17).collect();
    assert!(matches!(
        pool.start(
            0,
            SlotRequest {
                prompt: too_long,
                options: options(1),
                logprobs: None
            }
        ),
        Err(Error::ContextOverflow {
            tokens: 17,
            limit: 16
        })
    ));
    pool.start(
        0,
        SlotRequest {
            prompt,
            options: options(50),
            logprobs: None,
        },
    )
    .unwrap();
    block_on(pool.step());
    match pool.cancel(0) {
        Some(SlotEvent::Done { stats, .. }) => {
            assert_eq!(stats.stop_reason, Some(StopReason::Cancelled))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.active(), 0);
    assert!(pool.cancel(0).is_none());
}
