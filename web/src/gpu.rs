//! Opening the page's WebGPU device for the engine: the backend over the web-sys driver, and its
//! adapter's name for JavaScript.

use backend_webgpu::{Driver, WebGpuBackend, WebSysDriver};
use engine_core::Result;
use wasm_bindgen::prelude::{wasm_bindgen, JsError};

/// The WebGPU backend on the page's adapter; `Err` saying why when the browser has none.
pub async fn webgpu() -> Result<WebGpuBackend<WebSysDriver>> {
    crate::install_clock();
    Ok(WebGpuBackend::with_driver(WebSysDriver::new().await?))
}

/// The WebGPU adapter the engine would use (`webgpu (…, browser)`), or why there is none.
#[wasm_bindgen(js_name = adapterName)]
pub async fn adapter_name() -> std::result::Result<String, JsError> {
    let backend = webgpu().await.map_err(|e| JsError::new(&e.to_string()))?;
    Ok(backend.driver().name())
}
