//! Every `.cu` file compiles to PTX with NVRTC and defines each kernel it is expected to, so
//! kernel syntax errors are caught without a GPU. Skips with a printed reason where NVRTC cannot be
//! loaded, unless `SLUICE_REQUIRE_NVRTC=1` (set by scripts/test.sh once it has installed NVRTC).

use backend_cuda::kernels;

/// The oldest architecture the kernels target (warp shuffles with masks, f64 atomics not needed):
/// Ampere. A GPU JIT-compiles PTX for a lower virtual architecture too.
const ARCH: &str = "compute_80";

#[test]
fn every_kernel_file_compiles_to_ptx_with_its_entries() {
    if !kernels::nvrtc_present() {
        let reason = "NVRTC (libnvrtc.so.12) cannot be loaded";
        if std::env::var("SLUICE_REQUIRE_NVRTC").as_deref() == Ok("1") {
            panic!("SLUICE_REQUIRE_NVRTC=1 but {reason}");
        }
        println!("skipped: {reason}; scripts/test.sh installs it from the nvidia-cuda-nvrtc-cu12 package");
        return;
    }
    let mut failures = Vec::new();
    for file in kernels::all() {
        match kernels::compile(file, ARCH) {
            Ok(ptx) => {
                let src = ptx.to_src();
                for entry in file.entries {
                    // PTX declares each kernel as `.entry name(`; extern "C" keeps names unmangled.
                    if !src.contains(&format!(".entry {entry}(")) {
                        failures.push(format!("{}.cu: no `.entry {entry}` in its PTX", file.name));
                    }
                }
                println!(
                    "{}.cu: {} bytes of PTX, {} entries",
                    file.name,
                    src.len(),
                    file.entries.len()
                );
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
