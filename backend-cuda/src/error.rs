//! The CUDA backend's error type: what failed (driver library, device, a driver call, kernel
//! compilation, device memory) with the structure a caller needs, converted into
//! `engine_core::Error::Device` at the kernel-trait boundary.

use cudarc::driver::{sys::CUresult, DriverError};

/// Every way the CUDA backend can fail.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// The driver library (libcuda) could not be loaded: no NVIDIA driver on this machine.
    #[error("no CUDA driver: libcuda could not be loaded ({0})")]
    NoDriver(String),
    /// The NVRTC library could not be loaded, so kernels cannot be compiled.
    #[error(
        "NVRTC (libnvrtc.so.12) could not be loaded: install the CUDA toolkit or the \
         nvidia-cuda-nvrtc-cu12 Python package and put its lib folder on LD_LIBRARY_PATH"
    )]
    NoNvrtc,
    /// The driver loaded but has no device of that index.
    #[error("no CUDA device {index}: the driver reports {count} device(s)")]
    NoDevice { index: usize, count: usize },
    /// A driver call failed.
    #[error("CUDA {op} failed: {source}")]
    Driver {
        op: &'static str,
        #[source]
        source: DriverError,
    },
    /// NVRTC rejected a kernel file.
    #[error("compiling {file} for {arch} with NVRTC failed: {log}")]
    Compile {
        file: &'static str,
        arch: String,
        log: String,
    },
    /// A device allocation failed for want of memory.
    #[error(
        "out of CUDA device memory: {what} needs {bytes} bytes; {free} of {total} bytes are free"
    )]
    OutOfMemory {
        what: String,
        bytes: u64,
        free: u64,
        total: u64,
    },
}

impl CudaError {
    /// Wraps a failed driver call `op`.
    pub(crate) fn driver(op: &'static str) -> impl FnOnce(DriverError) -> Self {
        move |source| CudaError::Driver { op, source }
    }

    /// Whether a driver error means the allocation did not fit.
    pub(crate) fn is_oom(e: &DriverError) -> bool {
        e.0 == CUresult::CUDA_ERROR_OUT_OF_MEMORY
    }
}

impl From<CudaError> for engine_core::Error {
    fn from(e: CudaError) -> Self {
        engine_core::Error::Device {
            backend: "cuda",
            source: Box::new(e),
        }
    }
}
