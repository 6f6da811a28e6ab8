//! Matrix products with the weight's dequantization fused in: GEMV for one token (decode, a warp
//! per weight row) and a tiled GEMM for more (prefill). Shapes are checked as the CPU backend
//! checks them, with the same error ops.

use super::{grid, launch, need, shape_err, size, u32_of, THREADS};
use crate::kernels::{GEMM, GEMV};
use crate::{CudaBackend, CudaBuffer, CudaWeight};
use cudarc::driver::{DeviceRepr, LaunchConfig};
use engine_core::backend::MatmulShape;
use engine_core::quant::GgmlType;
use engine_core::{Error, Result};

/// Weight rows per GEMV block (`GEMV_ROWS` in gemv.cu): one per warp of the 256 threads.
const GEMV_ROWS: usize = 8;
/// Weight rows and tokens per GEMM block (`TILE_N`, `TILE_M` in gemm.cu).
const TILE_N: usize = 64;
const TILE_M: usize = 16;
/// The largest grid y dimension (GEMM tiles along m).
const MAX_GRID_Y: usize = 65535;

/// `MatmulParams` in matmul.cuh.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    bias_kind: u32,
    row_bytes: u64,
}

// SAFETY: plain old data, laid out as the CUDA struct.
unsafe impl DeviceRepr for MatmulParams {}

pub(crate) fn matmul(
    b: &CudaBackend,
    w: &CudaWeight,
    bias: Option<&CudaWeight>,
    x: &CudaBuffer,
    out: &mut CudaBuffer,
    shape: MatmulShape,
) -> Result<()> {
    const OP: &str = "matmul";
    let MatmulShape { m, n, k } = shape;
    let (gemv, gemm) = (
        GEMV.entry_for(OP, w.ggml_type)?,
        GEMM.entry_for(OP, w.ggml_type)?,
    );
    if w.row_len != k || w.rows != n {
        return Err(shape_err(
            OP,
            format!(
                "weight has {} rows of {} (dims {:?}), the shape asks for n={n} rows of k={k}",
                w.rows, w.row_len, w.dims
            ),
        ));
    }
    need(OP, "x", x.len, size(OP, &[m, k])?)?;
    need(OP, "out", out.len, size(OP, &[m, n])?)?;
    let bias_kind = match bias {
        None => 0,
        Some(bw) => {
            let kind = match bw.ggml_type {
                GgmlType::F32 => 1,
                GgmlType::F16 => 2,
                ty => return Err(Error::UnsupportedType { ty, op: OP }),
            };
            let values = bw.row_len * bw.rows;
            if values != n {
                return Err(shape_err(OP, format!("bias has {values} values, n is {n}")));
            }
            kind
        }
    };
    if m == 0 || n == 0 {
        return Ok(());
    }
    let p = MatmulParams {
        m: u32_of(OP, "m", m)?,
        n: u32_of(OP, "n", n)?,
        k: u32_of(OP, "k", k)?,
        bias_kind,
        row_bytes: w.row_bytes() as u64,
    };
    b.ready(w)?;
    // Without a bias the weight stands in for the argument; the kernel does not read it.
    let bias_data = match bias {
        Some(bw) => {
            b.ready(bw)?;
            &bw.data
        }
        None => &w.data,
    };
    if m == 1 {
        let cfg = grid(OP, n.div_ceil(GEMV_ROWS) as u64, THREADS)?;
        return launch!(
            b,
            GEMV,
            gemv,
            cfg,
            &p,
            &w.data,
            bias_data,
            &x.data,
            &mut out.data
        );
    }
    let tiles_m = m.div_ceil(TILE_M);
    if tiles_m > MAX_GRID_Y {
        return Err(shape_err(
            OP,
            format!(
                "m = {m} tokens exceed the {} of one call",
                MAX_GRID_Y * TILE_M
            ),
        ));
    }
    let cfg = LaunchConfig {
        grid_dim: (
            u32_of(OP, "tiles along n", n.div_ceil(TILE_N))?,
            tiles_m as u32,
            1,
        ),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    launch!(
        b,
        GEMM,
        gemm,
        cfg,
        &p,
        &w.data,
        bias_data,
        &x.data,
        &mut out.data
    )
}
