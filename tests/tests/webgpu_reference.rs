//! The WebGPU backend end to end on the real SmolLM2 against the CPU backend's exact path,
//! resident and streamed (`sluice_tests::parity`). Skips with a printed reason where there is no
//! adapter, unless `SLUICE_REQUIRE_WEBGPU=1`.

use backend_webgpu::WebGpuBackend;
use sluice_tests::models::model_or_skip;
use sluice_tests::parity::matches_cpu_exact_resident_and_streamed;

fn gpu() -> Option<WebGpuBackend> {
    match WebGpuBackend::new() {
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

#[test]
fn webgpu_matches_the_cpu_exact_path_resident_and_streamed() {
    let Some(file) = model_or_skip("smollm2-135m-instruct-q4_1") else {
        return;
    };
    let Some(gpu) = gpu() else {
        return;
    };
    matches_cpu_exact_resident_and_streamed(&gpu, &file);
}
