//! CUDA backend: NVRTC-compiled kernels behind the engine's kernel trait, pinned staging and a copy
//! stream for layer streaming. The kernel trait lands with the CPU reference engine; this crate
//! fills in after it, so it holds no code yet.
