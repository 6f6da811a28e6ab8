//! Files the forward pass cannot run correctly stop at load with an error naming what is wrong:
//! an unknown architecture or RoPE scaling, a missing or misshapen tensor, a missing key.

use super::*;
use crate::backend::cpu::{CpuBackend, CpuConfig, MatmulPath};
use crate::gguf::{GgufWriter, Metadata, TensorSpec, Value};
use crate::quant::GgmlType;
use crate::source::MemorySource;
use crate::store::StoreConfig;
use crate::synth::{SynthArch, SynthConfig};

fn config(arch: SynthArch) -> SynthConfig {
    SynthConfig {
        arch,
        ..SynthConfig::default()
    }
}

/// `cfg`'s model with its metadata and tensor directory edited; F32 tensors hold ones, the
/// others zeros.
fn edited(
    cfg: &SynthConfig,
    meta: impl FnOnce(&mut Metadata),
    specs: impl FnOnce(&mut Vec<TensorSpec>),
) -> Vec<u8> {
    let mut m = cfg.metadata().unwrap();
    meta(&mut m);
    let mut t = cfg.tensor_specs();
    specs(&mut t);
    let data: Vec<Vec<u8>> = t
        .iter()
        .map(|s| match s.ggml_type {
            GgmlType::F32 => 1f32.to_le_bytes().repeat(s.n_bytes().unwrap() as usize / 4),
            _ => vec![0u8; s.n_bytes().unwrap() as usize],
        })
        .collect();
    let mut w = GgufWriter::new(Vec::new(), &m, t).unwrap();
    for bytes in data {
        w.write_tensor_data(&bytes).unwrap();
    }
    w.finish().unwrap()
}

/// Loading `bytes` on the CPU: the error's text.
fn load_error(bytes: Vec<u8>) -> String {
    let store = WeightStore::open(MemorySource::new(bytes), StoreConfig::default()).unwrap();
    let b = CpuBackend::new(CpuConfig {
        threads: 1,
        path: MatmulPath::Exact,
    })
    .unwrap();
    match Model::load(&b, Arc::new(store)) {
        Ok(_) => panic!("the model loaded"),
        Err(e) => e.to_string(),
    }
}

fn assert_names(err: &str, what: &str) {
    assert!(err.contains(what), "error {err:?} does not name {what:?}");
}

#[test]
fn every_synth_architecture_loads() {
    for arch in SynthArch::ALL {
        let bytes = crate::synth::write(&config(arch), Vec::new(), 1, |_, _| {}).unwrap();
        let store = WeightStore::open(MemorySource::new(bytes), StoreConfig::default()).unwrap();
        let b = CpuBackend::new(CpuConfig::default()).unwrap();
        let model = Model::load(&b, Arc::new(store)).unwrap();
        assert_eq!(model.arch, Arch::from_name(arch.name()).unwrap());
    }
}

#[test]
fn an_unknown_architecture_is_named() {
    let bytes = edited(
        &config(SynthArch::Llama),
        |m| m.set("general.architecture", Value::String("mamba".into())),
        |_| {},
    );
    assert_names(&load_error(bytes), "mamba");
}

#[test]
fn an_unknown_rope_scaling_is_named() {
    let bytes = edited(
        &config(SynthArch::Llama),
        |m| m.set("llama.rope.scaling.type", Value::String("dynamic".into())),
        |_| {},
    );
    assert_names(&load_error(bytes), "dynamic");
    // YaRN needs the context it extends.
    let bytes = edited(
        &config(SynthArch::Llama),
        |m| m.set("llama.rope.scaling.type", Value::String("yarn".into())),
        |_| {},
    );
    assert_names(&load_error(bytes), "original_context_length");
    // llama3 scaling needs its factors.
    let bytes = edited(
        &config(SynthArch::Llama),
        |m| m.set("llama.rope.scaling.type", Value::String("llama3".into())),
        |_| {},
    );
    assert_names(&load_error(bytes), "rope_freqs.weight");
}

#[test]
fn long_context_rope_factors_come_in_pairs_with_their_context() {
    let half = SynthConfig::default().dim / SynthConfig::default().heads / 2;
    let bytes = edited(
        &config(SynthArch::Phi3),
        |_| {},
        |t| {
            t.push(TensorSpec::new(
                "rope_factors_long.weight",
                &[half],
                GgmlType::F32,
            ))
        },
    );
    assert_names(&load_error(bytes), "rope_factors_short.weight");
    let bytes = edited(
        &config(SynthArch::Phi3),
        |_| {},
        |t| {
            for name in ["rope_factors_long.weight", "rope_factors_short.weight"] {
                t.push(TensorSpec::new(name, &[half], GgmlType::F32));
            }
        },
    );
    assert_names(&load_error(bytes), "original_context_length");
}

#[test]
fn phi3_picks_its_short_factors_for_short_sessions() {
    // A session within the original context (32) rotates with the short factors: the same
    // logits as a copy of the model whose long factors are the short ones, in a long session.
    let cfg = SynthConfig {
        long_rope: true,
        ..config(SynthArch::Phi3)
    };
    let bytes = crate::synth::write(&cfg, Vec::new(), 1, |_, _| {}).unwrap();
    let store =
        Arc::new(WeightStore::open(MemorySource::new(bytes), StoreConfig::default()).unwrap());
    let b = CpuBackend::new(CpuConfig::default()).unwrap();
    let model = Model::load(&b, store).unwrap();
    let run = |model: &Model<CpuBackend>, context| {
        let mut s = model.session(&b, context).unwrap();
        pollster::block_on(model.forward(&b, &mut s, &[3, 9, 27], Logits::All)).unwrap()
    };
    let (short, long) = (run(&model, 32), run(&model, 33));
    assert_ne!(short, long);
    let mut swapped = model.rope.clone();
    swapped.long = swapped.short.clone();
    let same = Model {
        rope: swapped,
        ..model
    };
    assert_eq!(run(&same, 33), short);
}

#[test]
fn a_missing_norm_is_named() {
    for (arch, norm) in [
        (SynthArch::Qwen3, "blk.1.attn_k_norm.weight"),
        (SynthArch::Gemma3, "blk.0.post_ffw_norm.weight"),
    ] {
        let bytes = edited(&config(arch), |_| {}, |t| t.retain(|s| s.name != norm));
        assert_names(&load_error(bytes), norm);
    }
}

#[test]
fn a_misshapen_tensor_is_named_with_both_shapes() {
    // A per-head norm as long as the model width, and a fused qkv missing a head's rows.
    let cfg = config(SynthArch::Gemma3);
    let bytes = edited(
        &cfg,
        |_| {},
        |t| {
            let s = t.iter_mut().find(|s| s.name == "blk.0.attn_q_norm.weight");
            s.unwrap().dims = vec![cfg.dim];
        },
    );
    let err = load_error(bytes);
    assert_names(&err, "blk.0.attn_q_norm.weight");
    assert_names(&err, "[256]");
    assert_names(&err, "[64]");
    let cfg = config(SynthArch::Phi3);
    let bytes = edited(
        &cfg,
        |_| {},
        |t| {
            let s = t.iter_mut().find(|s| s.name == "blk.1.attn_qkv.weight");
            s.unwrap().dims = vec![cfg.dim, cfg.dim];
        },
    );
    assert_names(&load_error(bytes), "blk.1.attn_qkv.weight");
}

#[test]
fn rope_factors_of_the_wrong_length_or_type_are_named() {
    let cfg = SynthConfig {
        llama3_rope: true,
        ..config(SynthArch::Llama)
    };
    let bytes = edited(
        &cfg,
        |_| {},
        |t| {
            let s = t.iter_mut().find(|s| s.name == "rope_freqs.weight");
            s.unwrap().dims = vec![31];
        },
    );
    assert_names(&load_error(bytes), "rope_freqs.weight");
    // Factors must be F32.
    let bytes = edited(
        &cfg,
        |_| {},
        |t| {
            let s = t.iter_mut().find(|s| s.name == "rope_freqs.weight");
            s.unwrap().ggml_type = GgmlType::F16;
        },
    );
    assert_names(&load_error(bytes), "of F32");
}

#[test]
fn gemma3_without_its_window_is_named() {
    let cfg = config(SynthArch::Gemma3);
    let key = "gemma3.attention.sliding_window";
    let bytes = edited(
        &cfg,
        |meta| {
            let mut kept = Metadata::new();
            for (k, v) in meta.iter().filter(|(k, _)| *k != key) {
                kept.set(k, v.clone());
            }
            *meta = kept;
        },
        |_| {},
    );
    assert_names(&load_error(bytes), key);
}
