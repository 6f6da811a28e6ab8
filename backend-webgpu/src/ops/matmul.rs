//! Matrix products with the weight's dequantization fused in, whole-weight dequantization, and
//! embedding row gathers.
// Filled in per GGML type; until then these ops say so.

use crate::kernels::Kernel;
use crate::{Driver, GpuBuffer, GpuWeight, WebGpuBackend};
use engine_core::backend::MatmulShape;
use engine_core::{Error, Result};

/// The kernels of this module.
pub(crate) fn kernels() -> Vec<&'static Kernel> {
    Vec::new()
}

pub(crate) fn matmul<D: Driver>(
    _b: &WebGpuBackend<D>,
    w: &GpuWeight<D::Buf>,
    _bias: Option<&GpuWeight<D::Buf>>,
    _x: &GpuBuffer<D::Buf>,
    _out: &mut GpuBuffer<D::Buf>,
    _shape: MatmulShape,
) -> Result<()> {
    Err(Error::UnsupportedType {
        ty: w.ggml_type,
        op: "matmul (webgpu)",
    })
}

pub(crate) fn dequant<D: Driver>(
    _b: &WebGpuBackend<D>,
    w: &GpuWeight<D::Buf>,
    _out: &mut GpuBuffer<D::Buf>,
) -> Result<()> {
    Err(Error::UnsupportedType {
        ty: w.ggml_type,
        op: "dequant (webgpu)",
    })
}

pub(crate) fn embedding<D: Driver>(
    _b: &WebGpuBackend<D>,
    table: &GpuWeight<D::Buf>,
    _ids: &[u32],
    _out: &mut GpuBuffer<D::Buf>,
) -> Result<()> {
    Err(Error::UnsupportedType {
        ty: table.ggml_type,
        op: "embedding (webgpu)",
    })
}
