//! The WGSL kernels, one `.wgsl` file per op beside this module, and the shared prelude (GGML
//! block decoding) that kernels reading quantized weights start with.

/// A compute kernel: a name (its pipeline's cache key) and its WGSL, entry point `main`, with its
/// parameters as a uniform struct at binding 0 and its storage buffers from binding 1.
#[derive(Debug)]
pub struct Kernel {
    pub name: &'static str,
    /// Pieces concatenated in order (a prelude, then the kernel).
    pub parts: &'static [&'static str],
}

impl Kernel {
    /// The full WGSL source.
    pub fn source(&self) -> String {
        self.parts.concat()
    }
}

/// Reading GGML blocks out of a `array<u32>` of raw bytes: bytes, f16 halves, signed bytes.
pub const QUANT_PRELUDE: &str = include_str!("quant.wgsl");

pub static ADD: Kernel = Kernel {
    name: "add",
    parts: &[include_str!("add.wgsl")],
};
pub static SILU_MUL: Kernel = Kernel {
    name: "silu_mul",
    parts: &[include_str!("silu_mul.wgsl")],
};
pub static RMS_NORM_F32: Kernel = Kernel {
    name: "rms_norm_f32",
    parts: &[
        "const WEIGHT_F16: bool = false;\n",
        include_str!("rms_norm.wgsl"),
    ],
};
pub static RMS_NORM_F16: Kernel = Kernel {
    name: "rms_norm_f16",
    parts: &[
        "const WEIGHT_F16: bool = true;\n",
        include_str!("rms_norm.wgsl"),
    ],
};
pub static SOFTMAX: Kernel = Kernel {
    name: "softmax",
    parts: &[include_str!("softmax.wgsl")],
};
pub static ARGMAX: Kernel = Kernel {
    name: "argmax",
    parts: &[include_str!("argmax.wgsl")],
};
pub static ROPE: Kernel = Kernel {
    name: "rope",
    parts: &[include_str!("rope.wgsl")],
};
pub static ATTENTION: Kernel = Kernel {
    name: "attention",
    parts: &[include_str!("attention.wgsl")],
};

/// Every kernel, for validation and warm-up.
pub fn all() -> Vec<&'static Kernel> {
    let mut v: Vec<&'static Kernel> = vec![
        &ADD,
        &SILU_MUL,
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
