//! Unit tests on small synthesized vocabularies; parity with llama.cpp on real models is in
//! `engine-core/tests/tokenizer_parity.rs`.

use super::*;
use crate::gguf::{Array, Value};
use crate::synth::SynthConfig;

fn synth(pre: &str) -> Tokenizer {
    let mut m = SynthConfig {
        vocab: 1000,
        ..SynthConfig::default()
    }
    .metadata()
    .unwrap();
    m.set("tokenizer.ggml.pre", Value::String(pre.into()));
    Tokenizer::from_metadata(&m).unwrap()
}

/// A tiny SentencePiece vocabulary: specials, byte tokens, and a few scored pieces.
fn spm_metadata() -> Metadata {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
    let mut types = vec![2, 3, 3];
    let mut scores = vec![0.0f32; 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    for (i, t) in [
        "▁", "h", "e", "l", "o", "he", "ll", "llo", "hello", "▁hello", "▁w",
    ]
    .iter()
    .enumerate()
    {
        tokens.push(t.to_string());
        types.push(1);
        scores.push(-(i as f32));
    }
    let mut m = Metadata::new();
    m.set("tokenizer.ggml.model", Value::String("llama".into()));
    m.set("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)));
    m.set("tokenizer.ggml.scores", Value::Array(Array::F32(scores)));
    m.set("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
    m
}

#[test]
fn bpe_round_trips_and_merges_words() {
    let t = synth("default");
    let ids = t.encode("hello world", false, true).unwrap();
    // "hello" and " world" are each one merged token of the synthesized vocabulary or a few.
    assert!(ids.len() < 11, "{ids:?}");
    for s in ["hello world", "", " ", "Ünïcödé 😀 <|im_end|>", "a\n\n b  "] {
        let ids = t.encode(s, false, true).unwrap();
        assert_eq!(t.decode(&ids).unwrap(), s);
    }
}

#[test]
fn special_tokens_are_parsed_only_when_asked() {
    let t = synth("llama-bpe");
    let im_end = t.token_id("<|im_end|>").unwrap();
    let parsed = t.encode("a<|im_end|>b", false, true).unwrap();
    assert!(parsed.contains(&im_end));
    let raw = t.encode("a<|im_end|>b", false, false).unwrap();
    assert!(!raw.contains(&im_end));
    assert_eq!(t.decode(&raw).unwrap(), "a<|im_end|>b");
    assert!(t.is_eog(im_end) && t.is_eog(t.token_id("<|endoftext|>").unwrap()));
    assert!(!t.is_eog(t.token_id("<|im_start|>").unwrap()));
}

#[test]
fn add_special_follows_metadata() {
    let mut m = SynthConfig::default().metadata().unwrap();
    m.set("tokenizer.ggml.add_bos_token", Value::Bool(true));
    m.set("tokenizer.ggml.add_eos_token", Value::Bool(true));
    let t = Tokenizer::from_metadata(&m).unwrap();
    let ids = t.encode("hi", true, false).unwrap();
    assert_eq!(ids.first(), t.bos().as_ref());
    assert_eq!(ids.last(), t.eos().as_ref());
    assert_eq!(t.encode("hi", false, false).unwrap().len(), ids.len() - 2);
}

#[test]
fn errors_are_typed_and_never_panics() {
    let t = synth("qwen2");
    let n = t.vocab_size() as u32;
    assert!(matches!(
        t.decode(&[0, n]),
        Err(TokenizerError::TokenOutOfRange { id, .. }) if id == n
    ));
    assert!(t.token_text(n).is_err() && t.token_to_piece(u32::MAX).is_err());

    let mut m = SynthConfig::default().metadata().unwrap();
    m.set("tokenizer.ggml.pre", Value::String("klingon".into()));
    let err = Tokenizer::from_metadata(&m).unwrap_err();
    assert!(err.to_string().contains("'klingon'") && err.to_string().contains("qwen2"));
    m.set("tokenizer.ggml.model", Value::String("t5".into()));
    assert!(matches!(
        Tokenizer::from_metadata(&m),
        Err(TokenizerError::UnsupportedModel(_))
    ));
    m.set("tokenizer.ggml.model", Value::String("gpt2".into()));
    m.set("tokenizer.ggml.tokens", Value::Array(Array::U8(vec![1])));
    assert!(matches!(
        Tokenizer::from_metadata(&m),
        Err(TokenizerError::InvalidVocab { .. })
    ));
}

#[test]
fn spm_merges_by_score_and_falls_back_to_bytes() {
    let t = Tokenizer::from_metadata(&spm_metadata()).unwrap();
    assert_eq!(t.model_type(), ModelType::Spm);
    let ids = t.encode("hello", false, false).unwrap();
    assert_eq!(ids, [t.token_id("▁hello").unwrap()]);
    let ids = t.encode("hello hé", true, false).unwrap();
    assert_eq!(ids[0], 1, "BOS by default for SentencePiece");
    // "é" is not a token: its two UTF-8 bytes come out as byte tokens.
    assert!(ids.ends_with(&[3 + 0xC3, 3 + 0xA9]));
    // The space prefix added for encoding is dropped again by decoding.
    assert_eq!(t.decode(&ids[1..]).unwrap(), "hello hé");
}

#[test]
fn streaming_decoder_waits_for_whole_characters() {
    let t = Tokenizer::from_metadata(&spm_metadata()).unwrap();
    let ids = t.encode("é😀", false, false).unwrap();
    let mut d = Decoder::new(&t);
    let mut out = String::new();
    for &id in &ids {
        let s = d.push(id).unwrap();
        assert!(s.is_empty() || s == "é" || s == "😀", "{s:?}");
        out += &s;
    }
    out += &d.finish();
    assert_eq!(out, "é😀");
    // A dangling lead byte becomes U+FFFD at the end, as in `decode`.
    let lead = t.token_id("<0xF0>").unwrap();
    let mut d = Decoder::new(&t);
    assert_eq!(d.push(lead).unwrap(), "");
    assert_eq!(d.finish(), "\u{FFFD}");
    assert_eq!(t.decode(&[lead]).unwrap(), "\u{FFFD}");
}

#[test]
fn detokenize_mirrors_llama_cpp_flags() {
    let t = synth("default");
    let ids = t.encode("Hello , world <|im_end|>", false, true).unwrap();
    let plain = t.detokenize(&ids, DetokenizeOptions::default()).unwrap();
    assert_eq!(String::from_utf8(plain).unwrap(), "Hello, world ");
    let all = t
        .detokenize(
            &ids,
            DetokenizeOptions {
                unparse_special: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(String::from_utf8(all).unwrap(), "Hello, world <|im_end|>");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_text_round_trips_through_every_pre_tokenizer(s in any::<String>()) {
            for pre in ["default", "gpt-2", "llama-bpe", "smollm", "qwen2", "qwen35"] {
                let t = synth(pre);
                for parse_special in [false, true] {
                    let ids = t.encode(&s, false, parse_special).unwrap();
                    prop_assert_eq!(t.decode(&ids).unwrap(), s.clone(), "pre {}", pre);
                }
            }
            let spm = Tokenizer::from_metadata(&spm_metadata()).unwrap();
            let ids = spm.encode(&s, false, false).unwrap();
            prop_assert_eq!(spm.decode(&ids).unwrap(), s.replace('▁', " "));
        }

        #[test]
        fn any_ids_stream_like_they_decode(ids in proptest::collection::vec(0u32..300, 0..40)) {
            for t in [synth("default"), Tokenizer::from_metadata(&spm_metadata()).unwrap()] {
                let n = t.vocab_size() as u32;
                let ids: Vec<u32> = ids.iter().map(|&i| i % n).collect();
                let mut d = Decoder::new(&t);
                let mut streamed = String::new();
                for &id in &ids {
                    streamed += &d.push(id).unwrap();
                }
                streamed += &d.finish();
                prop_assert_eq!(streamed, t.decode(&ids).unwrap());
                prop_assert!(t.detokenize(&ids, DetokenizeOptions::default()).is_ok());
            }
        }
    }
}
