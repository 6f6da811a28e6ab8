//! The WebGPU backend end to end on the real SmolLM2 against the CPU backend's exact path,
//! resident and streamed (`sluice_tests::parity`), with the subgroup GEMV where the adapter has
//! subgroups; and a variant with only the baseline kernels and every weight split into parts of
//! at most 4 MiB, the path of tensors larger than a storage binding (the 29 MiB embedding table
//! becomes 8 parts). Skips with a printed reason where there is no adapter, unless
//! `SLUICE_REQUIRE_WEBGPU=1`.

use backend_webgpu::KernelOptions;
use sluice_tests::models::{model_or_skip, webgpu_or_skip};
use sluice_tests::parity::{
    matches_cpu_exact_resident_and_streamed, real_model_matches_cpu_exact,
    synth_architectures_match_cpu_exact,
};

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

/// Every architecture (llama, qwen2, qwen3, gemma3) on its synthesized model: no download.
#[test]
fn webgpu_matches_the_cpu_exact_path_on_every_architecture() {
    let Some(gpu) = webgpu_or_skip() else {
        return;
    };
    synth_architectures_match_cpu_exact(&gpu);
}

/// Gemma 3 270M (Q5_0, Q8_0, Q4_K and Q6_K weights): one prompt, since its 262 144-row head is
/// slow on a software adapter.
#[test]
fn webgpu_matches_the_cpu_exact_path_on_gemma3() {
    let Some(file) = model_or_skip("gemma3-270m-q4_k_m") else {
        return;
    };
    let Some(gpu) = webgpu_or_skip() else {
        return;
    };
    real_model_matches_cpu_exact(&gpu, &file, "gemma3", 1);
}
