//! Real models for tests: `SLUICE_TEST_MODEL_<NAME>` if set, else fetched into the sluice cache.

use std::path::PathBuf;

/// The file of known model `name` (e.g. `smollm2-135m-instruct-q4_1`). When it cannot be had and
/// `SLUICE_OFFLINE=1` is set, prints why and returns `None` (the caller skips); otherwise panics.
pub fn model_or_skip(name: &str) -> Option<PathBuf> {
    let short = name.split('-').next().unwrap_or(name).to_ascii_uppercase();
    if let Some(path) = std::env::var_os(format!("SLUICE_TEST_MODEL_{short}")) {
        return Some(PathBuf::from(path));
    }
    match sluice_cli::models::resolve(Some(name)) {
        Ok(path) => Some(path),
        Err(e) if std::env::var("SLUICE_OFFLINE").as_deref() == Ok("1") => {
            println!("skipped: {name} unavailable with SLUICE_OFFLINE=1: {e:#}");
            None
        }
        Err(e) => panic!("cannot get {name}: {e:#} (set SLUICE_OFFLINE=1 to skip)"),
    }
}
