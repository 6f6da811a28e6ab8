//! The CUDA backend end to end on the real SmolLM2 against the CPU backend's exact path, resident
//! and streamed through the copy stream (`sluice_tests::parity`). Skips with a printed reason where
//! there is no CUDA driver, device or NVRTC, unless `SLUICE_REQUIRE_CUDA=1`.

use backend_cuda::CudaBackend;
use sluice_tests::models::model_or_skip;
use sluice_tests::parity::{
    matches_cpu_exact_resident_and_streamed, synth_architectures_match_cpu_exact,
};

/// The device, or `None` with the reason printed (a panic under `SLUICE_REQUIRE_CUDA=1`).
fn cuda_or_skip() -> Option<CudaBackend> {
    match CudaBackend::new(0) {
        Ok(b) => Some(b),
        Err(e) if std::env::var("SLUICE_REQUIRE_CUDA").as_deref() == Ok("1") => {
            panic!("SLUICE_REQUIRE_CUDA=1 but CUDA is unavailable: {e}")
        }
        Err(e) => {
            println!("skipped: {e}");
            None
        }
    }
}

/// Every architecture (llama, qwen2, qwen3, gemma3) on its synthesized model.
#[test]
fn cuda_matches_the_cpu_exact_path_on_every_architecture() {
    let Some(gpu) = cuda_or_skip() else {
        return;
    };
    synth_architectures_match_cpu_exact(&gpu);
}

#[test]
fn cuda_matches_the_cpu_exact_path_resident_and_streamed() {
    // The device first: without one there is no need to fetch the model.
    let Some(gpu) = cuda_or_skip() else {
        return;
    };
    let Some(file) = model_or_skip("smollm2-135m-instruct-q4_1") else {
        return;
    };
    matches_cpu_exact_resident_and_streamed(&gpu, &file, &[]);
}
