//! One CUDA device as the backend holds it: the context, a compute stream and a dedicated copy
//! stream, the device's name and architecture, and the compiled kernels (one NVRTC module per
//! kernel file, compiled on first use and cached, functions cached by entry name).

use crate::kernels::{self, KernelFile};
use crate::CudaError;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream, DriverError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Whether the CUDA driver library can be loaded; cudarc panics on first use when it cannot.
pub fn driver_present() -> bool {
    // SAFETY: only tries to open the library under its candidate names; nothing is called in it.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// The number of CUDA devices, or why there are none.
pub fn device_count() -> Result<usize, CudaError> {
    if !driver_present() {
        return Err(CudaError::NoDriver(
            "libcuda.so not found on the library path".into(),
        ));
    }
    let n = CudaContext::device_count().map_err(|e| CudaError::NoDriver(e.to_string()))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

pub(crate) struct Device {
    pub(crate) ctx: Arc<CudaContext>,
    /// Every kernel, and activation uploads and downloads.
    pub(crate) compute: Arc<CudaStream>,
    /// Weight uploads, so that they overlap the kernels of the layers before.
    pub(crate) copy: Arc<CudaStream>,
    pub(crate) name: String,
    /// NVRTC's virtual architecture for this device: `compute_90`.
    pub(crate) arch: String,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<&'static str, CudaFunction>>,
}

impl Device {
    pub(crate) fn open(index: usize) -> Result<Self, CudaError> {
        let count = device_count()?;
        if index >= count {
            return Err(CudaError::NoDevice { index, count });
        }
        if !kernels::nvrtc_present() {
            return Err(CudaError::NoNvrtc);
        }
        let ctx = CudaContext::new(index).map_err(CudaError::driver("context creation"))?;
        let compute = ctx
            .new_stream()
            .map_err(CudaError::driver("stream creation"))?;
        let copy = ctx
            .new_stream()
            .map_err(CudaError::driver("stream creation"))?;
        let name = ctx.name().map_err(CudaError::driver("device name"))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(CudaError::driver("compute capability"))?;
        Ok(Self {
            ctx,
            compute,
            copy,
            name,
            arch: format!("compute_{major}{minor}"),
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
        })
    }

    /// The kernel `entry` of `file`, compiling the file on first use.
    pub(crate) fn function(
        &self,
        file: &'static KernelFile,
        entry: &'static str,
    ) -> Result<CudaFunction, CudaError> {
        // A panic elsewhere while a lock was held leaves the maps consistent (inserts are whole).
        let mut functions = self
            .functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = functions.get(entry) {
            return Ok(f.clone());
        }
        let module = {
            let mut modules = self.modules.lock().unwrap_or_else(PoisonError::into_inner);
            match modules.get(file.name) {
                Some(m) => m.clone(),
                None => {
                    let ptx = kernels::compile(file, &self.arch)?;
                    let m = self
                        .ctx
                        .load_module(ptx)
                        .map_err(CudaError::driver("module load"))?;
                    modules.insert(file.name, m.clone());
                    m
                }
            }
        };
        let f = module
            .load_function(entry)
            .map_err(CudaError::driver("kernel lookup"))?;
        functions.insert(entry, f.clone());
        Ok(f)
    }

    /// `(free, total)` bytes of device memory.
    pub(crate) fn memory(&self) -> Result<(u64, u64), CudaError> {
        let (free, total) = self
            .ctx
            .mem_get_info()
            .map_err(CudaError::driver("memory query"))?;
        Ok((free as u64, total as u64))
    }

    /// Maps a failed allocation of `bytes` for `what` to `OutOfMemory` when the device is full.
    pub(crate) fn alloc_error(&self, what: &str, bytes: u64, e: DriverError) -> CudaError {
        if CudaError::is_oom(&e) {
            let (free, total) = self.memory().unwrap_or((0, 0));
            return CudaError::OutOfMemory {
                what: what.to_string(),
                bytes,
                free,
                total,
            };
        }
        CudaError::Driver {
            op: "allocation",
            source: e,
        }
    }
}
