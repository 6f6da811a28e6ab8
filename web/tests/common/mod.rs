//! What every browser test file shares: whether a missing WebGPU adapter is a failure, and opening
//! the page's adapter or saying why the test skips.

use backend_webgpu::{WebGpuBackend, WebSysDriver};
use engine_core::backend::Backend;
use wasm_bindgen_test::console_log;

pub type Gpu = WebGpuBackend<WebSysDriver>;

/// Read at compile time: a page cannot see the environment the tests were started from.
pub fn require_webgpu() -> bool {
    option_env!("SLUICE_REQUIRE_WEBGPU") == Some("1")
}

/// The page's WebGPU backend, or `None` with the reason printed (a panic when required).
pub async fn webgpu_or_skip() -> Option<Gpu> {
    match sluice_web::webgpu().await {
        Ok(g) => {
            console_log!("adapter: {}", g.name());
            Some(g)
        }
        Err(e) if require_webgpu() => {
            panic!("SLUICE_REQUIRE_WEBGPU=1 but the page has no WebGPU adapter: {e}")
        }
        Err(e) => {
            console_log!("skipped: {e}");
            None
        }
    }
}
