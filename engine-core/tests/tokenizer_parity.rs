//! Token ids identical to llama.cpp's for every corpus string and model, and text that round-trips.
//!
//! The expected ids are fixtures/tokenizer/MODEL.json, written by `scripts/tokenizer_fixture.py`
//! with llama-cpp-python (see its header for how). Models:
//! * `smollm2`, `gemma3`: the real GGUFs, found through `SLUICE_TEST_MODEL_SMOLLM2` and
//!   `SLUICE_TEST_MODEL_GEMMA3`; without the variable the model is skipped with a printed reason;
//! * `synth-PRE`: the vocabulary `engine_core::synth` writes for `SYNTH_VOCAB` tokens with
//!   `tokenizer.ggml.pre = PRE`, rebuilt here from the same parameters the script used.

use engine_core::gguf::{GgufFile, Metadata, Value};
use engine_core::source::MmapSource;
use engine_core::synth::SynthConfig;
use engine_core::tokenizer::{Decoder, DetokenizeOptions, ModelType, Tokenizer};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Must match SYNTH_VOCAB and SYNTH_SEED in scripts/tokenizer_fixture.py.
const SYNTH_VOCAB: u64 = 4096;
const SYNTH_SEED: u64 = 0;
const SYNTH_PRES: [&str; 6] = ["default", "gpt-2", "llama-bpe", "qwen2", "qwen35", "smollm"];

#[derive(Deserialize)]
struct Fixture {
    model: String,
    llama_cpp_python: String,
    corpus_sha256: String,
    vocab: VocabFacts,
    synth: Option<SynthFacts>,
    ids: Vec<Vec<u32>>,
    ids_add_special: BTreeMap<String, Vec<u32>>,
    ids_no_parse_special: BTreeMap<String, Vec<u32>>,
    detok: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct VocabFacts {
    n_tokens: usize,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    eog: Vec<u32>,
}

#[derive(Deserialize)]
struct SynthFacts {
    vocab: u64,
    seed: u64,
    pre: String,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tokenizer")
}

fn corpus() -> (Vec<String>, String) {
    let bytes = std::fs::read(fixture_dir().join("corpus.json")).unwrap();
    let sha = sha256_hex(&bytes);
    (serde_json::from_slice(&bytes).unwrap(), sha)
}

fn load_fixture(name: &str) -> Fixture {
    let path = fixture_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn synth_metadata(pre: &str) -> Metadata {
    let mut m = SynthConfig {
        vocab: SYNTH_VOCAB,
        seed: SYNTH_SEED,
        ..SynthConfig::default()
    }
    .metadata()
    .unwrap();
    m.set("tokenizer.ggml.pre", Value::String(pre.to_string()));
    m
}

/// The real model's metadata, or `None` with the reason printed.
fn real_metadata(var: &str) -> Option<Metadata> {
    let Some(path) = std::env::var_os(var) else {
        println!(
            "SKIP: {var} is not set; set it to the model's GGUF path to compare with llama.cpp"
        );
        return None;
    };
    let src = MmapSource::open(&path).unwrap_or_else(|e| panic!("{var}={path:?}: {e}"));
    Some(GgufFile::read(&src).unwrap().metadata)
}

/// What `decode(encode(s))` gives back: `s`, except that SentencePiece escapes spaces as U+2581
/// (`▁`) before merging, so a `▁` in the input is indistinguishable from a space and decodes as
/// one (llama.cpp's detokenization, checked against the fixture too, does the same).
fn round_trip(tok: &Tokenizer, s: &str) -> String {
    match tok.model_type() {
        ModelType::Spm => s.replace('▁', " "),
        ModelType::Bpe => s.to_string(),
    }
}

/// Compares one model with its fixture; returns the number of strings compared.
fn check_model(name: &str, m: &Metadata) -> usize {
    let (corpus, corpus_sha) = corpus();
    let fx = load_fixture(name);
    assert_eq!(fx.model, name);
    assert_eq!(
        fx.corpus_sha256, corpus_sha,
        "{name}: fixture made from another corpus"
    );
    assert_eq!(fx.ids.len(), corpus.len());
    let tok = Tokenizer::from_metadata(m).unwrap();

    // Vocabulary facts.
    let v = &fx.vocab;
    assert_eq!(tok.vocab_size(), v.n_tokens, "{name}: vocabulary size");
    assert_eq!(tok.bos(), v.bos, "{name}: BOS");
    assert_eq!(tok.eos(), v.eos, "{name}: EOS");
    assert_eq!(tok.add_bos(), v.add_bos, "{name}: add_bos");
    assert_eq!(tok.add_eos(), v.add_eos, "{name}: add_eos");
    let eog: Vec<u32> = (0..tok.vocab_size() as u32)
        .filter(|&i| tok.is_eog(i))
        .collect();
    assert_eq!(eog, v.eog, "{name}: end-of-generation set");
    if tok.eot() != v.eot {
        // llama.cpp picks among several EOT candidates in hash-map order; both are EOG.
        println!(
            "{name}: EOT {:?} ({:?}), llama.cpp chose {:?}",
            tok.eot(),
            tok.eot().map(|i| tok.token_text(i).unwrap()),
            v.eot
        );
        assert!(tok.eot().is_some_and(|i| tok.is_eog(i)));
    }

    let mut failures = Vec::new();
    let mut fail = |what: &str, i: usize, got: String, want: String| {
        failures.push(format!(
            "{name} [{i}] {what} {:?}\n   got  {got}\n   want {want}",
            corpus[i]
        ));
    };
    let detok_opts = DetokenizeOptions {
        remove_special: false,
        unparse_special: true,
    };
    for (i, s) in corpus.iter().enumerate() {
        let ids = tok.encode(s, false, true).unwrap();
        if ids != fx.ids[i] {
            fail("ids", i, format!("{ids:?}"), format!("{:?}", fx.ids[i]));
        }
        if let Some(want) = fx.ids_add_special.get(&i.to_string()) {
            let got = tok.encode(s, true, true).unwrap();
            if &got != want {
                fail(
                    "ids(add_special)",
                    i,
                    format!("{got:?}"),
                    format!("{want:?}"),
                );
            }
        }
        let raw = tok.encode(s, false, false).unwrap();
        if let Some(want) = fx.ids_no_parse_special.get(&i.to_string()) {
            if &raw != want {
                fail(
                    "ids(no parse_special)",
                    i,
                    format!("{raw:?}"),
                    format!("{want:?}"),
                );
            }
        }
        // llama.cpp's own detokenization of its ids.
        let det = tok.detokenize(&fx.ids[i], detok_opts).unwrap();
        let want_det = match &fx.detok[i] {
            serde_json::Value::String(t) => t.as_bytes().to_vec(),
            other => hex_decode(other["hex"].as_str().unwrap()),
        };
        if det != want_det {
            fail(
                "detokenize",
                i,
                String::from_utf8_lossy(&det).into(),
                String::from_utf8_lossy(&want_det).into(),
            );
        }
        // Round trips, with and without special-token parsing.
        let expected = round_trip(&tok, s);
        for (what, ids) in [("decode", &ids), ("decode(no parse_special)", &raw)] {
            let back = tok.decode(ids).unwrap();
            if back != expected {
                fail(what, i, format!("{back:?}"), format!("{expected:?}"));
            }
            // Streaming: token by token, only whole characters, same text.
            let mut dec = Decoder::new(&tok);
            let mut streamed = String::new();
            for &id in ids {
                streamed += &dec.push(id).unwrap();
            }
            if !dec.pending().is_empty() {
                fail(
                    "stream pending",
                    i,
                    format!("{:?}", dec.pending()),
                    "[]".into(),
                );
            }
            streamed += &dec.finish();
            if streamed != back {
                fail("stream", i, format!("{streamed:?}"), format!("{back:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches with llama.cpp (llama-cpp-python {}):\n{}",
        failures.len(),
        fx.llama_cpp_python,
        failures.join("\n")
    );
    corpus.len()
}

#[test]
fn synthesized_bpe_vocabularies_match_llama_cpp() {
    for pre in SYNTH_PRES {
        let name = format!("synth-{pre}");
        let fx = load_fixture(&name);
        let s = fx.synth.as_ref().expect("synth parameters recorded");
        assert_eq!(
            (s.vocab, s.seed, s.pre.as_str()),
            (SYNTH_VOCAB, SYNTH_SEED, pre)
        );
        let n = check_model(&name, &synth_metadata(pre));
        println!("{name}: {n} strings identical to llama.cpp");
    }
}

#[test]
fn smollm2_matches_llama_cpp() {
    if let Some(m) = real_metadata("SLUICE_TEST_MODEL_SMOLLM2") {
        let n = check_model("smollm2", &m);
        println!("smollm2: {n} strings identical to llama.cpp");
    }
}

#[test]
fn gemma3_matches_llama_cpp() {
    if let Some(m) = real_metadata("SLUICE_TEST_MODEL_GEMMA3") {
        let n = check_model("gemma3", &m);
        println!("gemma3: {n} strings identical to llama.cpp");
    }
}

/// Encoding throughput on a long text (printed; run with `--nocapture` to see it).
#[test]
fn encode_speed() {
    let (corpus, _) = corpus();
    let text: String = corpus.join("\n").repeat(20);
    let mut models = vec![("synth-llama-bpe".to_string(), synth_metadata("llama-bpe"))];
    for (name, var) in [
        ("smollm2", "SLUICE_TEST_MODEL_SMOLLM2"),
        ("gemma3", "SLUICE_TEST_MODEL_GEMMA3"),
    ] {
        if let Some(m) = real_metadata(var) {
            models.push((name.to_string(), m));
        }
    }
    for (name, m) in models {
        let t0 = Instant::now();
        let tok = Tokenizer::from_metadata(&m).unwrap();
        let load = t0.elapsed();
        let t1 = Instant::now();
        let ids = tok.encode(&text, false, true).unwrap();
        let dt = t1.elapsed().as_secs_f64();
        assert_eq!(tok.decode(&ids).unwrap(), round_trip(&tok, &text));
        println!(
            "{name}: built in {:.0} ms; encoded {} bytes into {} tokens in {:.1} ms: {:.0} tokens/s, {:.1} MB/s",
            load.as_secs_f64() * 1e3,
            text.len(),
            ids.len(),
            dt * 1e3,
            ids.len() as f64 / dt,
            text.len() as f64 / dt / 1e6
        );
    }
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
