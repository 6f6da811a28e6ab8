//! Conversations on a synthesized model on the CPU: prefix reuse gives the tokens a fresh
//! session would, stop reasons, cancellation, context overflow and shift.

use super::*;
use crate::backend::cpu::{CpuBackend, CpuConfig, MatmulPath};
use crate::chat::ChatMessage;
use crate::source::MemorySource;
use crate::store::StoreConfig;
use crate::synth::SynthConfig;
use crate::Error;
use pollster::block_on;

fn engine(context: u64) -> Engine<CpuBackend> {
    engine_with(context, MatmulPath::Exact)
}

pub(super) fn engine_with(context: u64, path: MatmulPath) -> Engine<CpuBackend> {
    let cfg = SynthConfig {
        context,
        ..SynthConfig::default()
    };
    let bytes = crate::synth::write(&cfg, Vec::new(), 1, |_, _| {}).unwrap();
    let store = WeightStore::open(MemorySource::from_vec(bytes), StoreConfig::default()).unwrap();
    let backend = CpuBackend::new(CpuConfig { threads: 2, path }).unwrap();
    Engine::load(backend, Arc::new(store), &LoadConfig::default()).unwrap()
}

/// Greedy, through end-of-generation so the synthesized model's replies have a known length.
pub(super) fn options(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        ignore_eog: true,
        ..GenerateOptions::greedy(max_tokens)
    }
}

#[test]
fn turns_reuse_the_cache_and_match_fresh_sessions_fed_the_whole_history() {
    let e = engine(256);
    let mut conv = e.conversation(256).unwrap();
    conv.set_system(Some("Be brief."));
    let opts = options(6);
    let mut previous_cached = 0;
    for (turn, text) in ["Hello there", "tell me more", "and then?"]
        .iter()
        .enumerate()
    {
        let history = conv.history_with(text);
        let expected_prompt = e.tokenize(Prompt::Chat(&history)).unwrap();
        let reply = block_on(conv.say(&e, text, &opts).unwrap().run(|_| {})).unwrap();
        let s = &reply.stats;
        assert_eq!(s.prompt_tokens, expected_prompt.len());
        assert_eq!(s.tokens_reused + s.tokens_prefilled, s.prompt_tokens);
        if turn == 0 {
            assert_eq!(s.tokens_reused, 0);
        } else {
            // Everything the cache held before this turn that the history still starts with.
            assert!(
                s.tokens_reused > 0 && s.tokens_reused <= previous_cached,
                "{s:?}"
            );
            assert!(s.tokens_prefilled < s.prompt_tokens / 2, "{s:?}");
        }
        assert_eq!(reply.tokens.len(), 6);
        assert_eq!(s.stop_reason, Some(StopReason::MaxTokens));
        // A fresh conversation fed the same history gives the same tokens.
        let mut fresh = e.conversation(256).unwrap();
        let alone = block_on(
            fresh
                .complete(&e, Prompt::Chat(&history), &opts)
                .unwrap()
                .run(|_| {}),
        )
        .unwrap();
        assert_eq!(alone.tokens, reply.tokens, "turn {turn}");
        assert_eq!(alone.stats.tokens_reused, 0);
        assert_eq!(conv.messages().last().unwrap().content, reply.text);
        assert_eq!(conv.cached_tokens().len(), s.prompt_tokens + 5);
        previous_cached = conv.cached_tokens().len();
    }
    assert_eq!(conv.messages().len(), 7);
    conv.reset();
    assert_eq!(conv.messages(), [ChatMessage::system("Be brief.")]);
}

#[test]
fn stop_strings_end_the_reply_before_them() {
    let e = engine(256);
    let mut conv = e.conversation(256).unwrap();
    let free = block_on(
        conv.complete(&e, Prompt::Text("abc"), &options(12))
            .unwrap()
            .run(|_| {}),
    )
    .unwrap();
    // Stop at a piece of what the model writes unprompted.
    let stop: String = free.text.chars().skip(3).take(2).collect();
    assert!(!stop.is_empty(), "{:?}", free.text);
    let at = free.text.find(&stop).unwrap();
    let opts = GenerateOptions {
        stop: vec![stop],
        ..options(12)
    };
    let mut streamed = String::new();
    let cut = block_on(
        conv.complete(&e, Prompt::Text("abc"), &opts)
            .unwrap()
            .run(|p| streamed.push_str(p)),
    )
    .unwrap();
    assert_eq!(cut.stats.stop_reason, Some(StopReason::StopString));
    assert_eq!(cut.text, free.text[..at]);
    assert_eq!(streamed, cut.text);
    // The second run reused the whole prompt but its last token.
    assert_eq!(cut.stats.tokens_prefilled, 1);
}

#[test]
fn cancelling_keeps_the_partial_reply_in_the_history() {
    let e = engine(256);
    let mut conv = e.conversation(256).unwrap();
    let handle = conv.cancel_handle();
    let mut reply = conv.say(&e, "Hi", &options(50)).unwrap();
    let mut pieces = 0;
    while let Some(_piece) = block_on(reply.next()).unwrap() {
        pieces += 1;
        if pieces == 3 {
            let h = handle.clone();
            std::thread::spawn(move || h.cancel()).join().unwrap();
        }
    }
    assert_eq!(reply.stop_reason(), Some(StopReason::Cancelled));
    let outcome = reply.into_outcome();
    assert_eq!(outcome.tokens.len(), 3);
    assert_eq!(conv.messages().len(), 2);
    assert_eq!(conv.messages()[1].content, outcome.text);
    // A new reply starts uncancelled.
    let next = block_on(conv.say(&e, "Go on", &options(2)).unwrap().run(|_| {})).unwrap();
    assert_eq!(next.stats.stop_reason, Some(StopReason::MaxTokens));
}

#[test]
fn a_history_past_the_context_is_an_error_or_shifted_as_asked() {
    let e = engine(64);
    let mut conv = e.conversation(64).unwrap();
    conv.set_system(Some("sys"));
    let long = "word ".repeat(4);
    let opts = options(4);
    let mut turns = 0;
    let err = loop {
        match conv.say(&e, &long, &opts) {
            Ok(reply) => {
                block_on(reply.run(|_| {})).unwrap();
                turns += 1;
            }
            Err(err) => break err,
        }
        assert!(turns < 20, "never overflowed");
    };
    let Error::ContextOverflow { tokens, limit } = err else {
        panic!("{err}");
    };
    assert!(tokens > limit && limit == 64, "{tokens} {limit}");
    // The refused message is not in the history; nothing else changed.
    assert_eq!(conv.messages().len(), 1 + 2 * turns);
    let shift = GenerateOptions {
        context_shift: true,
        ..opts.clone()
    };
    let reply = block_on(conv.say(&e, &long, &shift).unwrap().run(|_| {})).unwrap();
    assert!(reply.stats.dropped_messages >= 2, "{:?}", reply.stats);
    assert_eq!(conv.system(), Some("sys"));
    assert!(reply.stats.prompt_tokens + 4 <= 64);
    // Empty messages and bad sampler settings are refused before anything changes.
    let before = conv.messages().to_vec();
    assert!(matches!(
        conv.say(&e, "  ", &opts),
        Err(Error::Prompt(PromptError::EmptyMessage))
    ));
    let mut bad = opts.clone();
    bad.sampler.top_p = 2.0;
    assert!(conv.say(&e, "x", &bad).is_err());
    assert_eq!(conv.messages(), before);
}

#[test]
fn a_plain_prompt_keeps_its_last_tokens_under_a_shift() {
    let e = engine(32);
    let mut conv = e.conversation(32).unwrap();
    let ids: Vec<u32> = (10..60).collect();
    let opts = options(4);
    assert!(matches!(
        conv.complete(&e, Prompt::Tokens(&ids), &opts),
        Err(Error::ContextOverflow {
            tokens: 50,
            limit: 32
        })
    ));
    let shift = GenerateOptions {
        context_shift: true,
        ..opts
    };
    let out = block_on(
        conv.complete(&e, Prompt::Tokens(&ids), &shift)
            .unwrap()
            .run(|_| {}),
    )
    .unwrap();
    assert_eq!(out.stats.prompt_tokens, 28);
    assert_eq!(&conv.cached_tokens()[..28], &ids[22..]);
}

#[test]
fn the_context_filling_up_ends_a_reply() {
    let e = engine(16);
    let mut conv = e.conversation(16).unwrap();
    let ids: Vec<u32> = (10..24).collect();
    let out = block_on(
        conv.complete(&e, Prompt::Tokens(&ids), &options(100))
            .unwrap()
            .run(|_| {}),
    )
    .unwrap();
    assert_eq!(out.stats.stop_reason, Some(StopReason::ContextFull));
    // 14 prompt positions, then 2 fed tokens fill 16; the last sampled token is emitted too.
    assert_eq!(out.tokens.len(), 3);
}

#[test]
fn saved_conversations_load_back() {
    let e = engine(256);
    let mut conv = e.conversation(256).unwrap();
    conv.set_system(Some("s"));
    block_on(conv.say(&e, "Hi", &options(3)).unwrap().run(|_| {})).unwrap();
    let json = conv.to_json();
    let mut other = e.conversation(256).unwrap();
    other.set_messages(parse_messages(&json).unwrap());
    assert_eq!(other.messages(), conv.messages());
}
