//! Typed loaders for the committed correctness oracles.
//!
//! * [`ReferenceFixture`]: `fixtures/reference/NAME.{json,bin}`, written by
//!   `scripts/reference_forward.py` (an independent float64 forward pass): per prompt the token ids,
//!   the greedy continuation with its top-2 margins, the logits at the first positions of
//!   prompt + continuation (top-k and a fixed sample of vocab ids) and the full logits of the first
//!   generation step.
//! * [`LlamaCppFixture`]: `fixtures/llamacpp/NAME.{json,bin}`, written by
//!   `scripts/llamacpp_oracle.py`: llama.cpp's greedy continuation, margins and first-step logits
//!   for the same ids.
//!
//! The loaders panic with a message naming the file on any inconsistency, as tests want.

use engine_core::quant::GgmlType;
use engine_core::synth::{self, SynthArch, SynthConfig};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;

/// `fixtures/` at the repository root: `SLUICE_FIXTURES_DIR` where set (test binaries run from
/// another checkout than the one they were built in, as `scripts/gpu-check.sh` runs them), else
/// the folder beside the crate that was built.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("SLUICE_FIXTURES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("fixtures"),
    }
}

/// How a prompt was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptKind {
    /// Text tokenized as it is.
    Plain,
    /// Messages rendered with the model's chat template, then tokenized.
    Chat,
    /// Raw token ids.
    Ids,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// Why a greedy run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// It produced a stop token (the last token of the continuation).
    StopToken,
    /// It produced the maximum number of tokens.
    Length,
}

#[derive(Debug, Clone, Deserialize)]
struct ArrayDesc {
    offset: usize,
    dtype: String,
    shape: Vec<usize>,
}

impl ArrayDesc {
    fn len(&self) -> usize {
        self.shape.iter().product()
    }

    fn elem_size(&self) -> usize {
        match self.dtype.as_str() {
            "f32" | "u32" => 4,
            "f16" => 2,
            other => panic!("unknown dtype {other}"),
        }
    }

    fn bytes<'a>(&self, blob: &'a [u8], what: &str) -> &'a [u8] {
        let end = self.offset + self.len() * self.elem_size();
        assert!(
            end <= blob.len(),
            "{what}: array [{}, {end}) past the end of the binary ({} bytes)",
            self.offset,
            blob.len()
        );
        &blob[self.offset..end]
    }

    fn f32s(&self, blob: &[u8], what: &str) -> Vec<f32> {
        let bytes = self.bytes(blob, what);
        match self.dtype.as_str() {
            "f32" => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            "f16" => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes(c.try_into().unwrap()).to_f32())
                .collect(),
            other => panic!("{what}: expected a float array, found {other}"),
        }
    }

    fn u32s(&self, blob: &[u8], what: &str) -> Vec<u32> {
        assert_eq!(self.dtype, "u32", "{what}: expected u32");
        self.bytes(blob, what)
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
struct BinaryDesc {
    file: String,
    bytes: usize,
    sha256: String,
}

/// The model a fixture was made from.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelInfo {
    /// File name (no directory).
    pub file: String,
    pub sha256: String,
    pub vocab: usize,
    /// Architecture (`llama`, `qwen2`); absent from llama.cpp fixtures.
    #[serde(default)]
    pub arch: Option<String>,
    /// How the file was made, for synthesized models (a `sluice synth` command line).
    #[serde(default)]
    pub made_by: Option<String>,
}

/// Options of the reference run that tests need.
#[derive(Debug, Clone, Deserialize)]
pub struct ReferenceOptions {
    pub max_new_tokens: usize,
    /// Token ids that end a greedy run.
    pub stop_ids: Vec<u32>,
    /// Positions whose logits are stored (at most).
    pub positions: usize,
    pub top_k: usize,
    pub samples: usize,
    /// Whether llama.cpp's tokenizer added a BOS token (absent for raw-id prompts).
    #[serde(default)]
    pub add_bos: Option<bool>,
}

/// The reference logits at one position of prompt + continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionLogits {
    /// The `top_k` highest-logit ids, highest first (ties: smaller id first).
    pub top_ids: Vec<u32>,
    /// Their logits, descending.
    pub top_logits: Vec<f32>,
    /// The logits at [`ReferenceFixture::sampled_ids`], in that order.
    pub sampled_logits: Vec<f32>,
}

impl PositionLogits {
    /// The top-1 id.
    pub fn argmax(&self) -> u32 {
        self.top_ids[0]
    }

    /// Top-1 minus top-2 logit.
    pub fn margin(&self) -> f32 {
        self.top_logits[0] - self.top_logits[1]
    }
}

/// One prompt of a [`ReferenceFixture`].
#[derive(Debug, Clone)]
pub struct ReferencePrompt {
    pub name: String,
    pub kind: PromptKind,
    /// The text of a plain prompt.
    pub text: Option<String>,
    /// The messages of a chat prompt.
    pub messages: Option<Vec<Message>>,
    /// The text that was tokenized (the chat template's output for chat prompts); None for ids.
    pub rendered: Option<String>,
    /// The prompt's token ids.
    pub ids: Vec<u32>,
    /// The greedy continuation (ending with a stop token when `stop_reason` is `StopToken`).
    pub continuation: Vec<u32>,
    pub continuation_text: Option<String>,
    pub stop_reason: StopReason,
    /// `margins[i]`: top-1 minus top-2 logit at the step that chose `continuation[i]` (float64).
    pub margins: Vec<f64>,
    /// Logits at positions `0..positions.len()` of `ids ++ continuation`.
    pub positions: Vec<PositionLogits>,
    /// Full-vocab logits at the last prompt position (the step choosing `continuation[0]`).
    pub first_step_logits: Vec<f32>,
}

impl ReferencePrompt {
    /// `ids ++ continuation`: the sequence to teacher-force.
    pub fn tokens(&self) -> Vec<u32> {
        self.ids.iter().chain(&self.continuation).copied().collect()
    }

    /// Index of the last prompt position (where `first_step_logits` were taken).
    pub fn first_step_position(&self) -> usize {
        self.ids.len() - 1
    }

    /// The number of leading continuation tokens an engine must reproduce: up to (not including)
    /// the first step whose reference top-2 margin is below `min_margin`.
    pub fn decisive_steps(&self, min_margin: f64) -> usize {
        self.margins
            .iter()
            .position(|&m| m < min_margin)
            .unwrap_or(self.continuation.len())
    }
}

/// An exact-reference fixture: `fixtures/reference/NAME.{json,bin}`.
#[derive(Debug, Clone)]
pub struct ReferenceFixture {
    pub name: String,
    pub model: ModelInfo,
    pub options: ReferenceOptions,
    /// The vocab ids whose logits are stored at every position, ascending.
    pub sampled_ids: Vec<u32>,
    pub prompts: Vec<ReferencePrompt>,
    /// The whole JSON index, for anything not typed here (versions, command, ...).
    pub index: serde_json::Value,
}

#[derive(Deserialize)]
struct RefIndex {
    format: String,
    model: ModelInfo,
    options: ReferenceOptions,
    binary: BinaryDesc,
    sampled_ids: Vec<u32>,
    prompts: Vec<RefPromptRaw>,
}

#[derive(Deserialize)]
struct RefPromptRaw {
    name: String,
    kind: PromptKind,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    rendered: Option<String>,
    ids: Vec<u32>,
    continuation: Vec<u32>,
    #[serde(default)]
    continuation_text: Option<String>,
    stop_reason: StopReason,
    margins: Vec<f64>,
    n_positions: usize,
    first_step_position: usize,
    arrays: HashMap<String, ArrayDesc>,
}

fn read_pair(dir: &str, name: &str) -> (PathBuf, serde_json::Value, Vec<u8>, String) {
    let json_path = fixtures_dir().join(dir).join(format!("{name}.json"));
    let text = std::fs::read_to_string(&json_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", json_path.display()));
    let value: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("parsing {}: {e}", json_path.display()));
    let bin_name = value["binary"]["file"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no binary.file", json_path.display()))
        .to_string();
    let bin_path = json_path.with_file_name(&bin_name);
    let blob =
        std::fs::read(&bin_path).unwrap_or_else(|e| panic!("reading {}: {e}", bin_path.display()));
    (json_path, value, blob, bin_name)
}

fn array<'a>(arrays: &'a HashMap<String, ArrayDesc>, key: &str, what: &str) -> &'a ArrayDesc {
    arrays
        .get(key)
        .unwrap_or_else(|| panic!("{what}: no array {key}"))
}

impl ReferenceFixture {
    /// Loads `fixtures/reference/NAME.json` and its binary (e.g. `smollm2`, `synth-llama`).
    pub fn load(name: &str) -> Self {
        let (path, value, blob, _) = read_pair("reference", name);
        let at = path.display().to_string();
        let idx: RefIndex =
            serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert_eq!(idx.format, "sluice-reference-v1", "{at}: format");
        assert_eq!(idx.binary.bytes, blob.len(), "{at}: binary size");
        let (k, s, vocab) = (idx.options.top_k, idx.sampled_ids.len(), idx.model.vocab);
        assert_eq!(s, idx.options.samples, "{at}: sampled id count");
        let prompts = idx
            .prompts
            .into_iter()
            .map(|p| {
                let what = format!("{at}: prompt {}", p.name);
                assert_eq!(p.first_step_position + 1, p.ids.len(), "{what}");
                assert_eq!(p.margins.len(), p.continuation.len(), "{what}: margins");
                let n = p.n_positions;
                let shape = |key: &str, want: &[usize]| {
                    let a = array(&p.arrays, key, &what);
                    assert_eq!(a.shape, want, "{what}: {key} shape");
                    a
                };
                let top_ids = shape("top_ids", &[n, k]).u32s(&blob, &what);
                let top_logits = shape("top_logits", &[n, k]).f32s(&blob, &what);
                let sampled = shape("sampled_logits", &[n, s]).f32s(&blob, &what);
                let first = shape("first_step_logits", &[vocab]).f32s(&blob, &what);
                let positions = (0..n)
                    .map(|i| PositionLogits {
                        top_ids: top_ids[i * k..(i + 1) * k].to_vec(),
                        top_logits: top_logits[i * k..(i + 1) * k].to_vec(),
                        sampled_logits: sampled[i * s..(i + 1) * s].to_vec(),
                    })
                    .collect();
                ReferencePrompt {
                    name: p.name,
                    kind: p.kind,
                    text: p.text,
                    messages: p.messages,
                    rendered: p.rendered,
                    ids: p.ids,
                    continuation: p.continuation,
                    continuation_text: p.continuation_text,
                    stop_reason: p.stop_reason,
                    margins: p.margins,
                    positions,
                    first_step_logits: first,
                }
            })
            .collect();
        Self {
            name: name.to_string(),
            model: idx.model,
            options: idx.options,
            sampled_ids: idx.sampled_ids,
            prompts,
            index: value,
        }
    }

    /// The prompt called `name`.
    pub fn prompt(&self, name: &str) -> &ReferencePrompt {
        self.prompts
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("fixture {} has no prompt {name}", self.name))
    }

    /// SHA-256 (hex) the fixture records for its binary.
    pub fn binary_sha256(&self) -> &str {
        self.index["binary"]["sha256"].as_str().unwrap_or("")
    }

    /// For a fixture made on a synthesized model: the configuration its `sluice synth` command
    /// line describes (`engine_core::synth::write` with it regenerates the model, whose SHA-256 is
    /// `model.sha256`). None for a real model.
    pub fn synth_config(&self) -> Option<SynthConfig> {
        self.model.made_by.as_deref().map(parse_synth_command)
    }

    /// The synthesized model this fixture was made on, regenerated in memory (GGUF bytes), checked
    /// against the recorded SHA-256. Panics for a real model.
    pub fn synth_model_bytes(&self) -> Vec<u8> {
        let cfg = self
            .synth_config()
            .unwrap_or_else(|| panic!("fixture {} is not on a synthesized model", self.name));
        let bytes = synth::write(&cfg, Vec::new(), 1, |_, _| {})
            .unwrap_or_else(|e| panic!("fixture {}: synth failed: {e}", self.name));
        let sha = sha256_hex(&bytes);
        assert_eq!(
            sha,
            self.model.sha256,
            "fixture {}: `{}` no longer writes the model the fixture was made on",
            self.name,
            self.model.made_by.as_deref().unwrap_or("")
        );
        bytes
    }
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The reference fixtures on synthesized models: one per architecture and RoPE scaling.
pub const SYNTH_FIXTURES: [&str; 8] = [
    "synth-llama",
    "synth-llama3",
    "synth-qwen2",
    "synth-qwen3",
    "synth-gemma3",
    "synth-phi3",
    "synth-phi3-long",
    "synth-yarn",
];

/// Parses a recorded `sluice synth ...` command line into the configuration it describes, with the
/// CLI's defaults and flag meanings (`--out` and `--threads` do not change the bytes, and are ignored).
pub fn parse_synth_command(command: &str) -> SynthConfig {
    let words: Vec<&str> = command.split_whitespace().collect();
    assert!(
        words.len() >= 2 && words[0] == "sluice" && words[1] == "synth",
        "not a sluice synth command: {command}"
    );
    let mut flags: HashMap<&str, &str> = HashMap::new();
    let mut tied = false;
    let mut llama3_rope = false;
    let mut long_rope = false;
    let mut rest = words[2..].iter();
    while let Some(&w) = rest.next() {
        match w {
            "--tied" => tied = true,
            "--llama3-rope" => llama3_rope = true,
            "--long-rope" => long_rope = true,
            "-o" | "--out" | "--threads" | "--preset" | "--layers" | "--dim" | "--ffn"
            | "--heads" | "--kv-heads" | "--vocab" | "--context" | "--type" | "--arch"
            | "--seed" | "--sliding-window" | "--yarn" => {
                let v = rest
                    .next()
                    .unwrap_or_else(|| panic!("{command}: {w} needs a value"));
                flags.insert(w, v);
            }
            other => panic!("{command}: unknown synth flag {other}"),
        }
    }
    let base = match flags
        .get("--preset")
        .map(|p| p.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("tiny") => SynthConfig::default(),
        Some("7b") => SynthConfig::llama_7b(GgmlType::Q4_0),
        Some(other) => panic!("{command}: unknown preset {other}"),
    };
    fn num<T: std::str::FromStr>(flags: &HashMap<&str, &str>, key: &str, default: T) -> T {
        flags.get(key).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("bad value {v} for {key}"))
        })
    }
    SynthConfig {
        layers: num(&flags, "--layers", base.layers),
        dim: num(&flags, "--dim", base.dim),
        ffn: num(&flags, "--ffn", base.ffn),
        heads: num(&flags, "--heads", base.heads),
        kv_heads: num(&flags, "--kv-heads", base.kv_heads),
        vocab: num(&flags, "--vocab", base.vocab),
        context: num(&flags, "--context", base.context),
        weight_type: flags.get("--type").map_or(base.weight_type, |t| {
            GgmlType::from_name(t).unwrap_or_else(|| panic!("{command}: unknown type {t}"))
        }),
        arch: flags.get("--arch").map_or(base.arch, |a| {
            SynthArch::from_name(a).unwrap_or_else(|| panic!("{command}: unknown arch {a}"))
        }),
        tied_output: tied || base.tied_output,
        seed: num(&flags, "--seed", 0),
        sliding_window: num(&flags, "--sliding-window", base.sliding_window),
        llama3_rope,
        long_rope,
        yarn_factor: flags.get("--yarn").map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{command}: bad value {v} for --yarn"))
        }),
        ..base
    }
}

/// llama.cpp's run of one prompt, compared with the reference by the script that made it.
#[derive(Debug, Clone, Deserialize)]
pub struct VsReference {
    pub first_step_correlation: f64,
    pub first_step_max_abs_diff: f64,
    pub first_step_top1_agrees: bool,
    pub first_step_margin: f64,
    pub greedy_agreement: usize,
    pub reference_continuation_len: usize,
}

/// One prompt of a [`LlamaCppFixture`].
#[derive(Debug, Clone)]
pub struct LlamaCppPrompt {
    pub name: String,
    pub kind: PromptKind,
    /// The prompt ids (the reference fixture's).
    pub ids: Vec<u32>,
    /// llama.cpp's greedy continuation.
    pub continuation: Vec<u32>,
    pub continuation_text: String,
    pub stop_reason: StopReason,
    /// `margins[i]`: llama.cpp's top-1 minus top-2 logit at the step that chose `continuation[i]`.
    pub margins: Vec<f64>,
    /// llama.cpp's full-vocab logits after the prompt (stored as f16).
    pub first_step_logits: Vec<f32>,
    pub vs_reference: VsReference,
}

/// A llama.cpp fixture: `fixtures/llamacpp/NAME.{json,bin}`.
#[derive(Debug, Clone)]
pub struct LlamaCppFixture {
    pub name: String,
    pub model: ModelInfo,
    /// The `llama_cpp_python` version that made it.
    pub llama_cpp_python: String,
    pub stop_ids: Vec<u32>,
    pub prompts: Vec<LlamaCppPrompt>,
    /// The whole JSON index.
    pub index: serde_json::Value,
}

#[derive(Deserialize)]
struct LcppIndex {
    format: String,
    model: ModelInfo,
    binary: BinaryDesc,
    versions: LcppVersions,
    options: LcppOptions,
    prompts: Vec<LcppPromptRaw>,
}

#[derive(Deserialize)]
struct LcppVersions {
    llama_cpp_python: String,
}

#[derive(Deserialize)]
struct LcppOptions {
    stop_ids: Vec<u32>,
}

#[derive(Deserialize)]
struct LcppPromptRaw {
    name: String,
    kind: PromptKind,
    ids: Vec<u32>,
    continuation: Vec<u32>,
    continuation_text: String,
    stop_reason: StopReason,
    margins: Vec<f64>,
    vs_reference: VsReference,
    arrays: HashMap<String, ArrayDesc>,
}

impl LlamaCppFixture {
    /// Loads `fixtures/llamacpp/NAME.json` and its binary (e.g. `smollm2`).
    pub fn load(name: &str) -> Self {
        let (path, value, blob, _) = read_pair("llamacpp", name);
        let at = path.display().to_string();
        let idx: LcppIndex =
            serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert_eq!(idx.format, "sluice-llamacpp-v1", "{at}: format");
        assert_eq!(idx.binary.bytes, blob.len(), "{at}: binary size");
        let _ = &idx.binary.file;
        let _ = &idx.binary.sha256;
        let vocab = idx.model.vocab;
        let prompts = idx
            .prompts
            .into_iter()
            .map(|p| {
                let what = format!("{at}: prompt {}", p.name);
                assert_eq!(p.margins.len(), p.continuation.len(), "{what}: margins");
                let a = array(&p.arrays, "first_step_logits", &what);
                assert_eq!(a.shape, [vocab], "{what}: first_step_logits shape");
                LlamaCppPrompt {
                    first_step_logits: a.f32s(&blob, &what),
                    name: p.name,
                    kind: p.kind,
                    ids: p.ids,
                    continuation: p.continuation,
                    continuation_text: p.continuation_text,
                    stop_reason: p.stop_reason,
                    margins: p.margins,
                    vs_reference: p.vs_reference,
                }
            })
            .collect();
        Self {
            name: name.to_string(),
            model: idx.model,
            llama_cpp_python: idx.versions.llama_cpp_python,
            stop_ids: idx.options.stop_ids,
            prompts,
            index: value,
        }
    }

    /// The prompt called `name`.
    pub fn prompt(&self, name: &str) -> &LlamaCppPrompt {
        self.prompts
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("fixture {} has no prompt {name}", self.name))
    }

    /// SHA-256 (hex) the fixture records for its binary.
    pub fn binary_sha256(&self) -> &str {
        self.index["binary"]["sha256"].as_str().unwrap_or("")
    }
}

/// Pearson correlation of two equally long vectors, in f64.
pub fn correlation(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let n = a.len() as f64;
    let ma = a.iter().map(|&x| x as f64).sum::<f64>() / n;
    let mb = b.iter().map(|&x| x as f64).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    sab / (saa * sbb).sqrt()
}

/// Largest |a - b|.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn binary_of(dir: &str, index: &serde_json::Value) -> Vec<u8> {
        let file = index["binary"]["file"].as_str().unwrap();
        std::fs::read(fixtures_dir().join(dir).join(file)).unwrap()
    }

    /// Checks everything a reference fixture promises about itself.
    fn check_reference(f: &ReferenceFixture) {
        let blob = binary_of("reference", &f.index);
        assert_eq!(
            sha256_hex(&blob),
            f.binary_sha256(),
            "{}: binary sha256",
            f.name
        );
        let vocab = f.model.vocab;
        let k = f.options.top_k;
        assert!(k >= 2 && k <= vocab);
        assert_eq!(f.sampled_ids.len(), f.options.samples);
        assert!(
            f.sampled_ids.windows(2).all(|w| w[0] < w[1]),
            "sampled ids ascending"
        );
        assert!(f.sampled_ids.iter().all(|&i| (i as usize) < vocab));
        let stops: HashSet<u32> = f.options.stop_ids.iter().copied().collect();
        for p in &f.prompts {
            let what = format!("{}/{}", f.name, p.name);
            assert!(!p.ids.is_empty(), "{what}");
            assert!(p.ids.iter().all(|&i| (i as usize) < vocab), "{what}: ids");
            assert!(!p.continuation.is_empty(), "{what}");
            assert!(p.continuation.len() <= f.options.max_new_tokens, "{what}");
            let body = &p.continuation[..p.continuation.len() - 1];
            assert!(
                body.iter().all(|t| !stops.contains(t)),
                "{what}: stop token inside"
            );
            match p.stop_reason {
                StopReason::StopToken => {
                    assert!(stops.contains(p.continuation.last().unwrap()), "{what}")
                }
                StopReason::Length => assert_eq!(p.continuation.len(), f.options.max_new_tokens),
            }
            assert!(p.margins.iter().all(|&m| m >= 0.0), "{what}: margins");
            let tokens = p.tokens();
            assert_eq!(
                p.positions.len(),
                f.options.positions.min(tokens.len()),
                "{what}: positions"
            );
            for (pos, row) in p.positions.iter().enumerate() {
                let at = format!("{what} @{pos}");
                assert_eq!(row.top_ids.len(), k, "{at}");
                assert_eq!(row.sampled_logits.len(), f.sampled_ids.len(), "{at}");
                assert!(row.top_logits.iter().all(|x| x.is_finite()), "{at}");
                assert!(row.sampled_logits.iter().all(|x| x.is_finite()), "{at}");
                assert!(
                    row.top_logits.windows(2).all(|w| w[0] >= w[1]),
                    "{at}: sorted"
                );
                let top: HashMap<u32, f32> = row
                    .top_ids
                    .iter()
                    .copied()
                    .zip(row.top_logits.iter().copied())
                    .collect();
                assert_eq!(top.len(), k, "{at}: distinct top ids");
                assert!(top.keys().all(|&i| (i as usize) < vocab), "{at}");
                let kth = row.top_logits[k - 1];
                for (&id, &logit) in f.sampled_ids.iter().zip(&row.sampled_logits) {
                    match top.get(&id) {
                        // Both were rounded from the same float64 value.
                        Some(&t) => assert_eq!(t, logit, "{at}: id {id} top vs sampled"),
                        None => assert!(logit <= kth, "{at}: id {id} beats the top-{k}"),
                    }
                }
                // Teacher forcing on the greedy continuation: each position's argmax is the next token.
                if pos + 1 >= p.ids.len() && pos + 1 < tokens.len() {
                    let step = pos + 1 - p.ids.len();
                    assert_eq!(row.argmax(), tokens[pos + 1], "{at}: greedy");
                    let m = row.margin() as f64;
                    assert!(
                        (m - p.margins[step]).abs() < 1e-4 * (1.0 + m.abs()),
                        "{at}: margin"
                    );
                }
            }
            let first = &p.first_step_logits;
            assert_eq!(first.len(), vocab);
            assert!(first.iter().all(|x| x.is_finite()), "{what}");
            let argmax = (0..vocab).fold(0, |b, i| if first[i] > first[b] { i } else { b });
            assert_eq!(
                argmax as u32, p.continuation[0],
                "{what}: first-step argmax"
            );
            if let Some(row) = p.positions.get(p.first_step_position()) {
                for (&id, &logit) in row.top_ids.iter().zip(&row.top_logits) {
                    assert_eq!(first[id as usize], logit, "{what}: first step vs position");
                }
            }
            assert!(p.decisive_steps(0.02) <= p.continuation.len());
        }
    }

    #[test]
    fn smollm2_reference_fixture() {
        let f = ReferenceFixture::load("smollm2");
        check_reference(&f);
        assert_eq!(f.model.arch.as_deref(), Some("llama"));
        assert_eq!(f.model.vocab, 49152);
        assert_eq!(f.options.add_bos, Some(false));
        let count = |kind| f.prompts.iter().filter(|p| p.kind == kind).count();
        assert!(count(PromptKind::Plain) >= 6 && count(PromptKind::Chat) >= 6);
        for p in &f.prompts {
            match p.kind {
                PromptKind::Plain => assert_eq!(p.rendered, p.text, "{}", p.name),
                PromptKind::Chat => {
                    let r = p.rendered.as_deref().unwrap();
                    assert!(r.starts_with("<|im_start|>system\n"), "{}", p.name);
                    assert!(r.ends_with("<|im_start|>assistant\n"), "{}", p.name);
                    let m = p.messages.as_ref().unwrap();
                    assert!(m.iter().all(|m| r.contains(&m.content)), "{}", p.name);
                    // <|im_start|> was parsed as the special token, not spelled out.
                    assert_eq!(p.ids[0], 1, "{}", p.name);
                }
                PromptKind::Ids => panic!("smollm2 prompts are text"),
            }
            assert!(p.continuation_text.is_some());
        }
        assert!(f.prompts.iter().all(|p| p.positions.len() >= 32));
    }

    #[test]
    fn synth_reference_fixtures() {
        let mut seen = 0;
        for name in ["synth-llama", "synth-qwen2"] {
            if !fixtures_dir()
                .join("reference")
                .join(format!("{name}.json"))
                .exists()
            {
                assert_ne!(name, "synth-llama", "synth-llama must be committed");
                continue;
            }
            let f = ReferenceFixture::load(name);
            check_reference(&f);
            seen += 1;
            let made_by = f.model.made_by.as_deref().unwrap();
            assert!(made_by.starts_with("sluice synth "), "{made_by}");
            assert!(f
                .prompts
                .iter()
                .all(|p| p.kind == PromptKind::Ids && p.rendered.is_none()));
            // One prompt is longer than the stored positions.
            assert!(f.prompts.iter().any(|p| p.ids.len() > f.options.positions));
            // engine_core::synth regenerates the very file the fixture was made on.
            let cfg = f.synth_config().unwrap();
            assert_eq!(Some(cfg.arch.name()), f.model.arch.as_deref());
            assert_eq!(cfg.vocab as usize, f.model.vocab);
            let bytes = f.synth_model_bytes();
            assert_eq!(sha256_hex(&bytes), f.model.sha256);
        }
        assert!(seen >= 1);
    }

    #[test]
    fn synth_command_lines_parse_like_the_cli() {
        let c = parse_synth_command(
            "sluice synth --out x.gguf --arch qwen2 --layers 3 --type Q4_K --tied --seed 9 --threads 4",
        );
        let want = SynthConfig {
            layers: 3,
            weight_type: GgmlType::Q4_K,
            arch: SynthArch::Qwen2,
            tied_output: true,
            seed: 9,
            ..SynthConfig::default()
        };
        assert_eq!(c, want);
        assert_eq!(
            parse_synth_command("sluice synth -o y.gguf"),
            SynthConfig::default()
        );
        let b = parse_synth_command("sluice synth --out z.gguf --preset 7b --layers 1");
        assert_eq!(b.dim, 4096);
        assert_eq!(b.layers, 1);
    }

    #[test]
    fn smollm2_llamacpp_fixture() {
        let l = LlamaCppFixture::load("smollm2");
        let r = ReferenceFixture::load("smollm2");
        let blob = binary_of("llamacpp", &l.index);
        assert_eq!(sha256_hex(&blob), l.binary_sha256());
        assert_eq!(l.llama_cpp_python, "0.3.36");
        assert_eq!(l.model.sha256, r.model.sha256);
        assert_eq!(l.model.vocab, r.model.vocab);
        assert_eq!(l.prompts.len(), r.prompts.len());
        let stops: HashSet<u32> = l.stop_ids.iter().copied().collect();
        for (lp, rp) in l.prompts.iter().zip(&r.prompts) {
            let what = format!("llamacpp/{}", lp.name);
            assert_eq!(lp.name, rp.name);
            assert_eq!(lp.kind, rp.kind);
            assert_eq!(lp.ids, rp.ids, "{what}: same prompt ids");
            assert_eq!(lp.margins.len(), lp.continuation.len());
            assert!(lp.continuation.len() <= r.options.max_new_tokens);
            let body = &lp.continuation[..lp.continuation.len() - 1];
            assert!(body.iter().all(|t| !stops.contains(t)), "{what}");
            let first = &lp.first_step_logits;
            assert!(first.iter().all(|x| x.is_finite()), "{what}");
            // f16 storage moves logits by at most ~0.008 at |x| < 16, 0.016 below 32.
            if lp.margins[0] > 0.05 {
                let argmax =
                    (0..first.len()).fold(0, |b, i| if first[i] > first[b] { i } else { b });
                assert_eq!(
                    argmax as u32, lp.continuation[0],
                    "{what}: first-step argmax"
                );
            }
            // The recorded comparison is what the stored logits give (up to f16 rounding).
            let v = &lp.vs_reference;
            let corr = correlation(first, &rp.first_step_logits);
            assert!(
                (corr - v.first_step_correlation).abs() < 1e-4,
                "{what}: {corr}"
            );
            let d = max_abs_diff(first, &rp.first_step_logits) as f64;
            assert!((d - v.first_step_max_abs_diff).abs() < 0.02, "{what}: {d}");
            let agree = lp
                .continuation
                .iter()
                .zip(&rp.continuation)
                .take_while(|(a, b)| a == b)
                .count();
            assert_eq!(agree, v.greedy_agreement, "{what}");
        }
    }
}
