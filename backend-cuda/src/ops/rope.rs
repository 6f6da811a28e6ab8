//! RoPE: the angles' cosines and sines are computed on the host in f64, as the CPU reference does,
//! and uploaded as f64; the kernel rotates each pair in f64 and rounds once, so the result matches
//! the CPU's.

use super::{grid_items, launch, size, u32_of};
use crate::kernels::ROPE;
use crate::{CudaBackend, CudaBuffer};
use cudarc::driver::DeviceRepr;
use engine_core::backend::{RopeParams, RopeStyle};
use engine_core::Result;

/// `RopeParams` in rope.cu.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct RopeArgs {
    tokens: u32,
    heads: u32,
    head_dim: u32,
    half: u32,
    neox: u32,
    _pad: u32,
}

// SAFETY: plain old data, laid out as the CUDA struct.
unsafe impl DeviceRepr for RopeArgs {}

pub(crate) fn rope(b: &CudaBackend, x: &mut CudaBuffer, p: RopeParams) -> Result<()> {
    const OP: &str = "rope";
    let RopeParams {
        tokens,
        heads,
        head_dim,
        rope_dim,
        pos0,
        freq_base,
        freq_scale,
        style,
    } = p;
    let len = p.check(x.len)?;
    if len == 0 || rope_dim == 0 {
        return Ok(());
    }
    let half = rope_dim / 2;
    let inv_freq: Vec<f64> = (0..half)
        .map(|i| f64::from(freq_base).powf(-2.0 * i as f64 / rope_dim as f64))
        .collect();
    let mut cs = Vec::with_capacity(size(OP, &[tokens, half, 2])?);
    for t in 0..tokens {
        let pos = (pos0 + t) as f64 * f64::from(freq_scale);
        for &f in &inv_freq {
            let (s, c) = (pos * f).sin_cos();
            cs.push(c);
            cs.push(s);
        }
    }
    let stream = &b.dev().compute;
    let table = stream.clone_htod(&cs).map_err(|e| {
        b.dev()
            .alloc_error("the rope table", cs.len() as u64 * 8, e)
    })?;
    let args = RopeArgs {
        tokens: u32_of(OP, "tokens", tokens)?,
        heads: u32_of(OP, "heads", heads)?,
        head_dim: u32_of(OP, "head_dim", head_dim)?,
        half: u32_of(OP, "half", half)?,
        neox: u32::from(style == RopeStyle::Neox),
        _pad: 0,
    };
    let pairs = size(OP, &[tokens, heads, half])?;
    launch!(
        b,
        ROPE,
        "rope_f32",
        grid_items(OP, pairs)?,
        &args,
        &mut x.data,
        &table
    )
}
