//! `sluice inspect`: what a GGUF file holds — architecture, hyperparameters, tokenizer, chat template,
//! the tensor table, and bytes per layer and per type — as text or JSON.
//!
//! The JSON's `metadata` and `tensors` arrays follow the schema of `scripts/inspect_fixture.py`, so
//! they can be compared with what the reference `gguf` Python package reads.

use anyhow::{Context, Result};
use engine_core::gguf::{encode_array, Array, GgufFile, TokenizerSummary, Value};
use engine_core::quant::GgmlType;
use engine_core::source::MmapSource;
use engine_core::store::{StoreConfig, WeightStore};
use serde_json::{json, Map, Value as Json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Elements of an array shown in full; the rest is summarised by length and hash.
const ARRAY_HEAD: usize = 8;

/// Builds the inspection report of the GGUF file at `path`.
pub fn report(path: &Path) -> Result<Json> {
    let source = MmapSource::open(path).with_context(|| format!("opening {}", path.display()))?;
    let store = WeightStore::open(source, StoreConfig::default())
        .with_context(|| format!("reading {}", path.display()))?;
    let file = store.gguf();
    let arch = file
        .metadata
        .get_str("general.architecture")
        .ok()
        .flatten()
        .unwrap_or("");
    let prefix = format!("{arch}.");
    let mut hparams = Map::new();
    for (key, value) in file.metadata.iter() {
        if let Some(short) = key.strip_prefix(&prefix) {
            if !matches!(value, Value::Array(_)) {
                hparams.insert(short.to_string(), scalar_json(value));
            }
        }
    }
    let tokenizer = TokenizerSummary::from_metadata(&file.metadata)
        .context("reading the tokenizer metadata")?;

    let layers: Vec<Json> = store
        .layers()
        .iter()
        .map(|l| json!({ "layer": l.id.to_string(), "tensors": l.tensors.len(), "bytes": l.bytes }))
        .collect();
    let mut by_type: BTreeMap<GgmlType, (u64, u64)> = BTreeMap::new();
    for t in &file.tensors {
        let e = by_type.entry(t.ggml_type).or_default();
        e.0 += 1;
        e.1 += t.n_bytes;
    }
    let types: Vec<Json> = by_type
        .iter()
        .map(|(ty, (n, bytes))| json!({ "type": ty.name(), "tensors": n, "bytes": bytes }))
        .collect();

    Ok(json!({
        "file": path.display().to_string(),
        "file_size": file.file_len,
        "version": file.version,
        "alignment": file.alignment,
        "data_offset": file.data_offset,
        "architecture": arch,
        "hyperparameters": hparams,
        "tokenizer": tokenizer,
        "chat_template": tokenizer.has_chat_template,
        "tensor_bytes": file.tensors.iter().map(|t| t.n_bytes).sum::<u64>(),
        "bytes_per_layer": layers,
        "bytes_per_type": types,
        "metadata": metadata_json(file),
        "tensors": tensors_json(file),
    }))
}

fn metadata_json(file: &GgufFile) -> Vec<Json> {
    file.metadata
        .iter()
        .map(|(key, value)| match value {
            Value::Array(a) => json!({
                "key": key,
                "type": "ARRAY",
                "array_type": a.elem_type().name(),
                "len": a.len(),
                "sha256": array_sha256(a),
                "head": array_head(a),
            }),
            v => json!({ "key": key, "type": v.value_type().name(), "value": scalar_json(v) }),
        })
        .collect()
}

fn tensors_json(file: &GgufFile) -> Vec<Json> {
    file.tensors
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "type": t.ggml_type.name(),
                "shape": t.dims,
                "offset": t.offset,
                "n_elements": t.n_elements,
                "n_bytes": t.n_bytes,
            })
        })
        .collect()
}

fn scalar_json(v: &Value) -> Json {
    let float = |f: f64| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number);
    match v {
        Value::F32(f) => float(f64::from(*f)),
        Value::F64(f) => float(*f),
        Value::Bool(b) => json!(b),
        Value::String(s) => json!(s),
        Value::Array(a) => json!({ "array_type": a.elem_type().name(), "len": a.len() }),
        other => other
            .as_i64()
            .map_or_else(|| json!(other.as_u64()), |i| json!(i)),
    }
}

fn array_head(a: &Array) -> Vec<Json> {
    (0..a.len().min(ARRAY_HEAD))
        .filter_map(|i| a.get(i))
        .map(|v| scalar_json(&v))
        .collect()
}

/// sha256 of the array's GGUF encoding (element type, count, elements).
fn array_sha256(a: &Array) -> String {
    let mut bytes = Vec::new();
    encode_array(a, &mut bytes);
    crate::models::hex(&Sha256::digest(&bytes))
}

/// Renders the report for people.
pub fn render_text(r: &Json) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let mb = |b: &Json| b.as_u64().unwrap_or(0) as f64 / 1e6;
    let _ = writeln!(
        s,
        "file           {} ({:.1} MB)",
        r["file"].as_str().unwrap_or(""),
        mb(&r["file_size"])
    );
    let _ = writeln!(
        s,
        "format         GGUF v{}, alignment {}, data at byte {}, {} tensors ({:.1} MB), {} metadata keys",
        r["version"],
        r["alignment"],
        r["data_offset"],
        r["tensors"].as_array().map_or(0, Vec::len),
        mb(&r["tensor_bytes"]),
        r["metadata"].as_array().map_or(0, Vec::len),
    );
    let _ = writeln!(
        s,
        "architecture   {}",
        r["architecture"].as_str().unwrap_or("(none)")
    );
    let _ = writeln!(s, "hyperparameters");
    if let Some(h) = r["hyperparameters"].as_object() {
        for (k, v) in h {
            let _ = writeln!(s, "  {k:<36} {}", display(v));
        }
    }
    let t = &r["tokenizer"];
    let opt = |v: &Json| {
        if v.is_null() {
            "-".to_string()
        } else {
            v.to_string()
        }
    };
    let _ = writeln!(
        s,
        "tokenizer      {} (pre-tokenizer {}), {} tokens, {} merges, bos {} {}, eos {} {}, add_bos {}",
        t["model"].as_str().unwrap_or("none"),
        t["pre"].as_str().unwrap_or("-"),
        t["n_tokens"],
        t["n_merges"],
        opt(&t["bos_token_id"]),
        opt(&t["bos_token"]),
        opt(&t["eos_token_id"]),
        opt(&t["eos_token"]),
        opt(&t["add_bos_token"]),
    );
    let template = if t["has_chat_template"].as_bool().unwrap_or(false) {
        format!("yes ({} bytes)", t["chat_template_len"])
    } else {
        "no".to_string()
    };
    let _ = writeln!(s, "chat template  {template}");
    let _ = writeln!(
        s,
        "\n{:<40} {:<7} {:<24} {:>12}",
        "tensor", "type", "shape", "bytes"
    );
    for t in r["tensors"].as_array().into_iter().flatten() {
        let shape = t["shape"].as_array().map_or(String::new(), |d| {
            d.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(" x ")
        });
        let _ = writeln!(
            s,
            "{:<40} {:<7} {:<24} {:>12}",
            t["name"].as_str().unwrap_or(""),
            t["type"].as_str().unwrap_or(""),
            shape,
            display(&t["n_bytes"])
        );
    }
    summary_table(&mut s, "layer", &r["bytes_per_layer"]);
    summary_table(&mut s, "type", &r["bytes_per_type"]);
    s
}

/// Appends a "what / tensors / bytes" table of rows keyed by `key`.
fn summary_table(s: &mut String, key: &str, rows: &Json) {
    use std::fmt::Write;
    let _ = writeln!(s, "\n{key:<12} {:>8} {:>14}", "tensors", "bytes");
    for row in rows.as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "{:<12} {:>8} {:>14}",
            display(&row[key]),
            display(&row["tensors"]),
            display(&row["bytes"])
        );
    }
}

/// A JSON value as a person reads it: strings unquoted, f32-exact floats in their short f32 form.
fn display(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f64::from(f as f32) == f => format!("{}", f as f32),
            Some(f) => format!("{f}"),
            None => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// The residency plan of the model at `path` for a device budget: what is pinned, what streams.
pub fn render_plan(
    path: &Path,
    budget: u64,
    profile: engine_core::schedule::PrefetchProfile,
) -> Result<String> {
    use crate::size::format_size;
    use std::fmt::Write;
    let source = engine_core::source::MmapSource::open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let store = engine_core::store::WeightStore::open(source, Default::default())
        .with_context(|| format!("reading {}", path.display()))?;
    let plan = engine_core::model::layer_plan(&store).context("planning the layers")?;
    let distance = profile.distance();
    let r = plan
        .residency(budget, distance)
        .context("planning residency")?;
    let total = plan.total_bytes();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "model: {} of weights in {} steps; device budget {}; profile {profile} (distance {distance})",
        format_size(total),
        plan.steps.len(),
        format_size(budget),
    );
    if r.all_resident {
        let _ = writeln!(out, "fits: every layer is loaded once and never streamed");
        return Ok(out);
    }
    let _ = writeln!(
        out,
        "streaming: {} pinned for the whole run, {} for the window of the next {distance} steps; \
         {} streamed per token",
        format_size(r.pinned_bytes),
        format_size(r.stream_budget()),
        format_size(total - r.pinned_bytes),
    );
    let _ = writeln!(out, "embedding rows are gathered on the host; the output head streams in row slices when larger than a block");
    let _ = writeln!(
        out,
        "{:<8} {:<14} {:>12}  residency",
        "step", "layer", "bytes"
    );
    for (i, step) in plan.steps.iter().enumerate() {
        let bytes: u64 = step.tensors.iter().map(|&t| plan.tensors[t].bytes).sum();
        let pinned = step.tensors.iter().all(|&t| r.pinned[t]);
        let what = match (step.tensors.is_empty(), pinned) {
            (true, _) => "host",
            (false, true) => "pinned",
            (false, false) => "streamed",
        };
        let _ = writeln!(
            out,
            "{i:<8} {:<14} {:>12}  {what}",
            step.layer.to_string(),
            format_size(bytes)
        );
    }
    Ok(out)
}
