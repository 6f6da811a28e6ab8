//! The WGSL kernels, one `.wgsl` file per op beside this module, and the shared pieces kernels
//! start with: the prelude (byte and f16 reads of GGML blocks), the per-type row decoders
//! (`blocks.wgsl`), and the matmul bindings shared by its GEMV and GEMM kernels.

use engine_core::quant::GgmlType;

/// A compute kernel: a name (its pipeline's cache key) and its WGSL, entry point `main`, with its
/// parameters as a uniform struct at binding 0 and its storage buffers from binding 1.
#[derive(Debug)]
pub struct Kernel {
    pub name: &'static str,
    /// Pieces concatenated in order (a prelude, then the kernel).
    pub parts: &'static [&'static str],
    /// Uses subgroup operations (needs the adapter's subgroups feature).
    pub subgroups: bool,
}

impl Kernel {
    const fn new(name: &'static str, parts: &'static [&'static str]) -> Self {
        Self {
            name,
            parts,
            subgroups: false,
        }
    }

    /// The full WGSL source, as naga takes it.
    pub fn source(&self) -> String {
        self.source_for(false)
    }

    /// The full WGSL source; for a browser's compiler (`browser`) with the `enable` directive and
    /// diagnostic the features it uses need there. Naga rejects `enable subgroups` and does not
    /// need it; a browser requires it, and its uniformity analysis would refuse subgroup
    /// operations under per-subgroup control flow that the kernels use on purpose.
    pub fn source_for(&self, browser: bool) -> String {
        let mut source = String::new();
        if browser && self.subgroups {
            source.push_str("enable subgroups;\ndiagnostic(off, subgroup_uniformity);\n");
        }
        source.push_str(&self.parts.concat());
        source
    }
}

/// Reading GGML blocks out of a `array<u32>` of raw bytes: bytes, f16 halves, signed bytes.
pub const QUANT_PRELUDE: &str = include_str!("quant.wgsl");

pub static ADD: Kernel = Kernel::new("add", &[include_str!("add.wgsl")]);
pub static SILU_MUL: Kernel = Kernel::new(
    "silu_mul",
    &["const GELU: bool = false;\n", include_str!("silu_mul.wgsl")],
);
pub static GELU_MUL: Kernel = Kernel::new(
    "gelu_mul",
    &["const GELU: bool = true;\n", include_str!("silu_mul.wgsl")],
);
pub static SCALE: Kernel = Kernel::new("scale", &[include_str!("scale.wgsl")]);
pub static RMS_NORM_F32: Kernel = Kernel::new(
    "rms_norm_f32",
    &[
        "const WEIGHT_F16: bool = false;\n",
        include_str!("rms_norm.wgsl"),
    ],
);
pub static RMS_NORM_F16: Kernel = Kernel::new(
    "rms_norm_f16",
    &[
        "const WEIGHT_F16: bool = true;\n",
        include_str!("rms_norm.wgsl"),
    ],
);
pub static SOFTMAX: Kernel = Kernel::new("softmax", &[include_str!("softmax.wgsl")]);
pub static ARGMAX: Kernel = Kernel::new("argmax", &[include_str!("argmax.wgsl")]);
pub static ROPE: Kernel = Kernel::new("rope", &[include_str!("rope.wgsl")]);
pub static ATTENTION: Kernel = Kernel::new("attention", &[include_str!("attention.wgsl")]);

/// Decoding weight rows eight values at a time, for the type named by a leading `WTYPE` constant.
pub const BLOCKS: &str = include_str!("blocks.wgsl");

/// The weight types the matmul, dequant and embedding kernels decode, in the order of their
/// per-type kernel arrays (`WTYPE` is the index).
pub const WEIGHT_TYPES: [GgmlType; WEIGHT_TYPE_COUNT] = [
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

/// How many weight types the per-type kernels cover: every type engine-core dequantizes.
pub const WEIGHT_TYPE_COUNT: usize = 13;

/// One kernel per entry of `WEIGHT_TYPES`: `WTYPE`, the prelude and the block decoders, then the
/// op's files. The names must stay in `WEIGHT_TYPES` order (the WGSL `T_*` constants match them).
macro_rules! per_weight_type {
    ($op:literal, $sg:literal, $($file:expr),+) => {
        [
            per_weight_type!(@one $op, $sg, "f32", 0, $($file),+),
            per_weight_type!(@one $op, $sg, "f16", 1, $($file),+),
            per_weight_type!(@one $op, $sg, "q4_0", 2, $($file),+),
            per_weight_type!(@one $op, $sg, "q4_1", 3, $($file),+),
            per_weight_type!(@one $op, $sg, "q8_0", 4, $($file),+),
            per_weight_type!(@one $op, $sg, "q4_k", 5, $($file),+),
            per_weight_type!(@one $op, $sg, "q6_k", 6, $($file),+),
            per_weight_type!(@one $op, $sg, "q5_0", 7, $($file),+),
            per_weight_type!(@one $op, $sg, "q5_1", 8, $($file),+),
            per_weight_type!(@one $op, $sg, "q2_k", 9, $($file),+),
            per_weight_type!(@one $op, $sg, "q3_k", 10, $($file),+),
            per_weight_type!(@one $op, $sg, "q5_k", 11, $($file),+),
            per_weight_type!(@one $op, $sg, "bf16", 12, $($file),+),
        ]
    };
    (@one $op:literal, $sg:literal, $ty:literal, $id:literal, $($file:expr),+) => {
        Kernel {
            name: concat!($op, "_", $ty),
            parts: &[
                concat!("const WTYPE: u32 = ", $id, "u;\n"),
                QUANT_PRELUDE,
                BLOCKS,
                $($file),+
            ],
            subgroups: $sg,
        }
    };
}

const MATMUL: &str = include_str!("matmul.wgsl");

/// Matmul for one token, per weight type (workgroup-memory reduction: every adapter).
pub static MATMUL_GEMV: [Kernel; WEIGHT_TYPE_COUNT] = per_weight_type!(
    "matmul_gemv",
    false,
    MATMUL,
    include_str!("matmul_gemv.wgsl")
);
/// Matmul for one token reduced with subgroup operations, per weight type.
pub static MATMUL_GEMV_SUBGROUP: [Kernel; WEIGHT_TYPE_COUNT] = per_weight_type!(
    "matmul_gemv_subgroup",
    true,
    MATMUL,
    include_str!("matmul_gemv_subgroup.wgsl")
);
/// Matmul for several tokens (tiled), per weight type.
pub static MATMUL_GEMM: [Kernel; WEIGHT_TYPE_COUNT] = per_weight_type!(
    "matmul_gemm",
    false,
    MATMUL,
    include_str!("matmul_gemm.wgsl")
);
/// Whole-weight dequantization, per weight type.
pub static DEQUANT: [Kernel; WEIGHT_TYPE_COUNT] =
    per_weight_type!("dequant", false, include_str!("dequant.wgsl"));
/// Embedding row gathers, per weight type.
pub static EMBEDDING: [Kernel; WEIGHT_TYPE_COUNT] =
    per_weight_type!("embedding", false, include_str!("embedding.wgsl"));

/// Every kernel, for validation and warm-up.
pub fn all() -> Vec<&'static Kernel> {
    let mut v: Vec<&'static Kernel> = vec![
        &ADD,
        &SILU_MUL,
        &GELU_MUL,
        &SCALE,
        &RMS_NORM_F32,
        &RMS_NORM_F16,
        &SOFTMAX,
        &ARGMAX,
        &ROPE,
    ];
    v.extend(crate::ops::matmul::kernels());
    v.extend(crate::ops::attention::kernels());
    v
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
