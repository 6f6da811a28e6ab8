//! synth → inspect → read back, through the `sluice` binary, for every type the writer supports:
//! the file's tensor table is what was asked for, and every dequantized value is within its format's
//! error bound of the value synth generated.

use engine_core::quant::{self, GgmlType};
use engine_core::source::MmapSource;
use engine_core::store::{StoreConfig, WeightStore};
use engine_core::synth::{self, SynthConfig};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sluice(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("running sluice");
    assert!(
        out.status.success(),
        "sluice {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A shape every writer type can hold (rows are multiples of 256) with GQA and an untied head.
fn config(ty: GgmlType) -> SynthConfig {
    SynthConfig {
        layers: 2,
        dim: 256,
        ffn: 512,
        heads: 4,
        kv_heads: 2,
        vocab: 300,
        context: 128,
        weight_type: ty,
        seed: 11,
        ..SynthConfig::default()
    }
}

fn synth_file(dir: &Path, cfg: &SynthConfig) -> PathBuf {
    let path = dir.join(format!("{}.gguf", cfg.weight_type));
    let n = |v: u64| v.to_string();
    let args = [
        ("--type", cfg.weight_type.name().to_string()),
        ("--layers", cfg.layers.to_string()),
        ("--dim", n(cfg.dim)),
        ("--ffn", n(cfg.ffn)),
        ("--heads", n(cfg.heads)),
        ("--kv-heads", n(cfg.kv_heads)),
        ("--vocab", n(cfg.vocab)),
        ("--context", n(cfg.context)),
        ("--seed", n(cfg.seed)),
    ];
    let mut argv = vec![
        "synth".to_string(),
        "--out".into(),
        path.display().to_string(),
    ];
    for (flag, value) in args {
        argv.push(flag.into());
        argv.push(value);
    }
    sluice(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    path
}

#[test]
fn every_writer_type_survives_synth_inspect_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    for ty in GgmlType::QUANTIZABLE {
        let cfg = config(ty);
        let path = synth_file(dir.path(), &cfg);

        let out = sluice(&["inspect", "--json", path.to_str().unwrap()]);
        let report: Json = serde_json::from_slice(&out.stdout).unwrap();
        let specs = cfg.tensor_specs();
        let tensors = report["tensors"].as_array().unwrap();
        assert_eq!(tensors.len(), specs.len(), "{ty}");
        for (t, spec) in tensors.iter().zip(&specs) {
            assert_eq!(t["name"], spec.name.as_str());
            assert_eq!(t["type"], spec.ggml_type.name(), "{}", spec.name);
            assert_eq!(t["shape"], serde_json::json!(spec.dims));
            assert_eq!(t["n_bytes"], spec.n_bytes().unwrap());
        }
        assert_eq!(report["architecture"], "llama");
        assert_eq!(report["hyperparameters"]["block_count"], 2);
        assert_eq!(report["hyperparameters"]["attention.head_count_kv"], 2);
        assert_eq!(report["tokenizer"]["n_tokens"], 300);
        assert_eq!(report["chat_template"], true);

        let store =
            WeightStore::open(MmapSource::open(&path).unwrap(), StoreConfig::default()).unwrap();
        for spec in &specs {
            let bytes = store.tensor_bytes(&spec.name).unwrap();
            let got = quant::dequantize_to_vec(spec.ggml_type, &bytes).unwrap();
            let want = synth::source_values(&cfg, &spec.name).unwrap();
            assert_eq!(got.len(), want.len());
            let block = spec.ggml_type.block_size();
            for (b, (g, w)) in got.chunks(block).zip(want.chunks(block)).enumerate() {
                let bound = quant::error_bound(spec.ggml_type, w);
                let worst = g
                    .iter()
                    .zip(w)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst <= bound,
                    "{ty} {} block {b}: error {worst} > bound {bound}",
                    spec.name
                );
            }
        }
    }
}

#[test]
fn synth_refuses_bad_shapes_with_a_message_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.gguf");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "synth",
            "--out",
            path.to_str().unwrap(),
            "--type",
            "q4_k",
            "--dim",
            "96",
        ])
        .args(["--heads", "2", "--kv-heads", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dim 96 is not a multiple of the Q4_K block size 256"),
        "{err}"
    );
    assert!(!path.exists() && !path.with_extension("gguf.partial").exists());
}
