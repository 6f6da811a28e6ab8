//! The WebGPU backend end to end on the real SmolLM2 against the CPU backend's exact path,
//! resident and streamed (`sluice_tests::parity`), with the subgroup GEMV where the adapter has
//! subgroups; and a variant with only the baseline kernels and every weight split into parts of
//! at most 4 MiB, the path of tensors larger than a storage binding (the 29 MiB embedding table
//! becomes 8 parts). Skips with a printed reason where there is no adapter, unless
//! `SLUICE_REQUIRE_WEBGPU=1`.

use backend_webgpu::KernelOptions;
use sluice_tests::models::{model_or_skip, webgpu_or_skip};
use sluice_tests::parity::matches_cpu_exact_resident_and_streamed;

#[test]
fn webgpu_matches_the_cpu_exact_path_resident_and_streamed() {
    let Some(file) = model_or_skip("smollm2-135m-instruct-q4_1") else {
        return;
    };
    let Some(gpu) = webgpu_or_skip() else {
        return;
    };
    let split = gpu.clone().with_options(KernelOptions {
        subgroups: false,
        max_weight_part: 4 << 20,
    });
    matches_cpu_exact_resident_and_streamed(&gpu, &file, &[("split", split)]);
}
