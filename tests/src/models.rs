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

/// The native WebGPU backend, or `None` with the reason printed (the caller skips); a panic
/// instead when `SLUICE_REQUIRE_WEBGPU=1` (a Vulkan driver is installed, so an adapter must be).
pub fn webgpu_or_skip() -> Option<backend_webgpu::WebGpuBackend> {
    match backend_webgpu::WebGpuBackend::new() {
        Ok(b) => Some(b),
        Err(e) if std::env::var("SLUICE_REQUIRE_WEBGPU").as_deref() == Ok("1") => {
            panic!("SLUICE_REQUIRE_WEBGPU=1 but there is no WebGPU adapter: {e}")
        }
        Err(e) => {
            println!("skipped: {e}");
            None
        }
    }
}
