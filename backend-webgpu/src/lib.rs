//! WebGPU backend: WGSL kernels behind the engine's kernel trait, over a small driver seam with a
//! `wgpu` driver (native and wasm32) and a `web-sys` driver (wasm64). It fills in after the CPU
//! reference engine defines the kernel trait, so it holds no code yet.
