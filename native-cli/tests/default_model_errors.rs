//! Fetching the default model fails clearly, not obscurely, when pip is missing or a model is unknown.

use std::process::Command;

#[test]
fn missing_pip_is_explained_and_suggests_a_local_file() {
    let cache = tempfile::tempdir().unwrap();
    let empty_path = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("inspect")
        .env("SLUICE_CACHE_DIR", cache.path())
        .env("PATH", empty_path.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs Python with pip"), "{err}");
    assert!(err.contains("--model PATH"), "{err}");
    // Nothing half-made is left where a later run would take it for the model.
    let models = cache.path().join("models");
    let leftovers: Vec<_> = std::fs::read_dir(&models)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".gguf") || n.contains(".pip-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_path_that_is_not_a_gguf_file_gets_a_reading_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.gguf");
    std::fs::write(&path, b"these are not weights").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["inspect", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad magic") && err.contains("not a GGUF file"),
        "{err}"
    );
}
