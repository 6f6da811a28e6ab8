//! Causal grouped-query attention over the KV cache held on the device.
// Filled in by the attention kernel; until then the op says so.

use crate::kernels::Kernel;
use crate::{Driver, GpuBuffer, WebGpuBackend};
use engine_core::backend::AttentionParams;
use engine_core::{Error, Result};

/// The kernels of this module.
pub(crate) fn kernels() -> Vec<&'static Kernel> {
    Vec::new()
}

pub(crate) fn attention<D: Driver>(
    _b: &WebGpuBackend<D>,
    _q: &GpuBuffer<D::Buf>,
    _k_cache: &GpuBuffer<D::Buf>,
    _v_cache: &GpuBuffer<D::Buf>,
    _out: &mut GpuBuffer<D::Buf>,
    _p: AttentionParams,
) -> Result<()> {
    Err(Error::Config(
        "attention is not implemented on webgpu yet".into(),
    ))
}
