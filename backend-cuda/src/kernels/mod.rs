//! The CUDA kernels: one `.cu` file per op beside this module, loaded with `include_str!`, with
//! the shared headers (`blocks.cuh`: integer names, f16 widening and the GGML block decoders;
//! `reduce.cuh`; `matmul.cuh`) prepended to make each file's NVRTC program. Kernels are named
//! `{op}_{type}`: `gemv_q4_k`, `rms_norm_f16`, `softmax_f32`.

use crate::CudaError;
use cudarc::nvrtc::{CompileError, CompileOptions, Ptx};
use engine_core::quant::GgmlType;

/// One kernel file: its name (the module cache key), the headers it needs, its source, and the
/// entry points it defines.
#[derive(Debug)]
pub struct KernelFile {
    pub name: &'static str,
    headers: &'static [&'static str],
    source: &'static str,
    pub entries: &'static [&'static str],
}

impl KernelFile {
    /// The NVRTC program: headers, then the file.
    pub fn program(&self) -> String {
        let mut s = String::new();
        for h in self.headers {
            s.push_str(h);
            s.push('\n');
        }
        s.push_str(self.source);
        s
    }

    /// The entry of this per-weight-type file for `ty`, or `UnsupportedType` for `op`.
    pub(crate) fn entry_for(
        &self,
        op: &'static str,
        ty: GgmlType,
    ) -> engine_core::Result<&'static str> {
        WEIGHT_TYPES
            .iter()
            .position(|&t| t == ty)
            .and_then(|i| self.entries.get(i).copied())
            .ok_or(engine_core::Error::UnsupportedType { ty, op })
    }
}

const BLOCKS: &str = include_str!("blocks.cuh");
const REDUCE: &str = include_str!("reduce.cuh");
const MATMUL: &str = include_str!("matmul.cuh");

/// The weight types the gemv, gemm, dequant and embedding kernels decode, in the order of their
/// entries (the `T_*` constants of blocks.cuh match it).
pub const WEIGHT_TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q5_K,
    GgmlType::BF16,
];

/// The entry names of a per-weight-type file, in `WEIGHT_TYPES` order.
macro_rules! per_type {
    ($op:literal) => {
        &[
            concat!($op, "_f32"),
            concat!($op, "_f16"),
            concat!($op, "_q4_0"),
            concat!($op, "_q4_1"),
            concat!($op, "_q8_0"),
            concat!($op, "_q4_k"),
            concat!($op, "_q6_k"),
            concat!($op, "_q5_0"),
            concat!($op, "_q5_1"),
            concat!($op, "_q2_k"),
            concat!($op, "_q3_k"),
            concat!($op, "_q5_k"),
            concat!($op, "_bf16"),
        ]
    };
}

/// Matmul for one token (decode), per weight type.
pub static GEMV: KernelFile = KernelFile {
    name: "gemv",
    headers: &[BLOCKS, MATMUL],
    source: include_str!("gemv.cu"),
    entries: per_type!("gemv"),
};
/// Tiled matmul for several tokens (prefill), per weight type.
pub static GEMM: KernelFile = KernelFile {
    name: "gemm",
    headers: &[BLOCKS, MATMUL],
    source: include_str!("gemm.cu"),
    entries: per_type!("gemm"),
};
pub static DEQUANT: KernelFile = KernelFile {
    name: "dequant",
    headers: &[BLOCKS],
    source: include_str!("dequant.cu"),
    entries: per_type!("dequant"),
};
pub static EMBEDDING: KernelFile = KernelFile {
    name: "embedding",
    headers: &[BLOCKS],
    source: include_str!("embedding.cu"),
    entries: per_type!("embedding"),
};
pub static RMS_NORM: KernelFile = KernelFile {
    name: "rms_norm",
    headers: &[BLOCKS, REDUCE],
    source: include_str!("rms_norm.cu"),
    entries: &["rms_norm_f32", "rms_norm_f16"],
};
pub static ROPE: KernelFile = KernelFile {
    name: "rope",
    headers: &[BLOCKS],
    source: include_str!("rope.cu"),
    entries: &["rope_f32"],
};
pub static ATTENTION: KernelFile = KernelFile {
    name: "attention",
    headers: &[BLOCKS],
    source: include_str!("attention.cu"),
    entries: &["attention_f32", "attention_combine_f32"],
};
pub static SILU_MUL: KernelFile = KernelFile {
    name: "silu_mul",
    headers: &[BLOCKS],
    source: include_str!("silu_mul.cu"),
    entries: &["silu_mul_f32", "gelu_mul_f32"],
};
pub static ADD: KernelFile = KernelFile {
    name: "add",
    headers: &[BLOCKS],
    source: include_str!("add.cu"),
    entries: &["add_f32", "scale_f32"],
};
pub static SOFTMAX: KernelFile = KernelFile {
    name: "softmax",
    headers: &[BLOCKS, REDUCE],
    source: include_str!("softmax.cu"),
    entries: &["softmax_f32"],
};
pub static ARGMAX: KernelFile = KernelFile {
    name: "argmax",
    headers: &[BLOCKS, REDUCE],
    source: include_str!("argmax.cu"),
    entries: &["argmax_f32"],
};

/// The bandwidth probe's device-to-device copy.
pub static COPY: KernelFile = KernelFile {
    name: "copy",
    headers: &[BLOCKS],
    source: include_str!("copy.cu"),
    entries: &["copy_u128"],
};

/// Every kernel file, for the PTX test and warm-up.
pub fn all() -> [&'static KernelFile; 12] {
    [
        &GEMV, &GEMM, &DEQUANT, &EMBEDDING, &RMS_NORM, &ROPE, &ATTENTION, &SILU_MUL, &ADD,
        &SOFTMAX, &ARGMAX, &COPY,
    ]
}

/// Whether the NVRTC library can be loaded (cudarc would panic on first use otherwise).
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to open the library under its candidate names; nothing is called in it.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Compiles `file` to PTX for virtual architecture `arch` (`compute_80`); the caller has checked
/// `nvrtc_present()`.
pub fn compile(file: &'static KernelFile, arch: &str) -> Result<Ptx, CudaError> {
    let opts = CompileOptions {
        // C++17 for `if constexpr` in the block decoders.
        options: vec![format!("--gpu-architecture={arch}"), "--std=c++17".into()],
        name: Some(format!("{}.cu", file.name)),
        ..CompileOptions::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(file.program(), opts).map_err(|e| CudaError::Compile {
        file: file.name,
        arch: arch.to_string(),
        log: match e {
            CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
            other => other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every type engine-core dequantizes has a kernel, once.
    #[test]
    fn weight_types_are_every_dequantizable_type() {
        let mut ours = WEIGHT_TYPES.to_vec();
        let mut all = GgmlType::DEQUANTIZABLE.to_vec();
        ours.sort_by_key(|t| *t as u32);
        all.sort_by_key(|t| *t as u32);
        assert_eq!(ours, all);
    }
}
