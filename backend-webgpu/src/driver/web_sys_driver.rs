//! The `web-sys` driver: the browser's `navigator.gpu` called directly, on wasm32 and wasm64 alike
//! (wgpu's browser backend exists only on wasm32). Needs `RUSTFLAGS=--cfg=web_sys_unstable_apis`.
//!
//! As in the wgpu driver, dispatches are recorded into one pending command encoder and submitted
//! when a write, a read or a full batch needs them. WebGPU reports validation and out-of-memory
//! errors asynchronously, so the driver keeps one error scope of each open at all times and every
//! read closes them: a failed dispatch becomes the error of the next read-back.

use super::{DeviceLimits, Driver, SubgroupSizes};
use crate::kernels::Kernel;
use engine_core::{Error, Result};
use js_sys::{Object, Reflect, Uint8Array};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{gpu_buffer_usage as usage, GpuErrorFilter};

/// Dispatches recorded before a submit is forced (bounds the encoder's memory).
const MAX_PENDING: usize = 256;

/// A value that may "cross threads". Sound because this target has no threads: without the
/// `atomics` target feature a wasm module runs on exactly one, and the impls vanish with it.
struct Local<T>(T);

// SAFETY: see `Local`: there is no other thread to send to or share with.
#[cfg(not(target_feature = "atomics"))]
unsafe impl<T> Send for Local<T> {}
// SAFETY: as above.
#[cfg(not(target_feature = "atomics"))]
unsafe impl<T> Sync for Local<T> {}

impl<T: Clone> Clone for Local<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

struct Pending {
    encoder: Option<web_sys::GpuCommandEncoder>,
    dispatches: usize,
    /// Buffers dropped while the encoder may use them: destroyed after its submit.
    retired: Vec<web_sys::GpuBuffer>,
}

struct Inner {
    device: web_sys::GpuDevice,
    queue: web_sys::GpuQueue,
    name: String,
    limits: DeviceLimits,
    pipelines: RefCell<HashMap<&'static str, web_sys::GpuComputePipeline>>,
    pending: RefCell<Pending>,
}

/// A browser WebGPU device and queue; clones share them.
#[derive(Clone)]
pub struct WebSysDriver {
    inner: Local<Rc<Inner>>,
}

/// A storage buffer; dropping it destroys the GPU memory once no pending work can use it.
pub struct WebSysBuffer {
    buf: Local<web_sys::GpuBuffer>,
    owner: Local<Rc<Inner>>,
}

impl Drop for WebSysBuffer {
    fn drop(&mut self) {
        let mut p = self.owner.0.pending.borrow_mut();
        if p.encoder.is_some() {
            p.retired.push(self.buf.0.clone());
        } else {
            // Work already submitted keeps the memory alive until it completes.
            self.buf.0.destroy();
        }
    }
}

fn gpu_err(what: impl std::fmt::Display) -> Error {
    Error::Config(format!("webgpu: {what}"))
}

/// A JavaScript exception or rejection, with its message where it has one.
fn js_err(what: &str, e: &JsValue) -> Error {
    let detail = match e.dyn_ref::<js_sys::Error>() {
        Some(err) => String::from(err.message()),
        None => e.as_string().unwrap_or_else(|| format!("{e:?}")),
    };
    gpu_err(format!("{what}: {detail}"))
}

/// `GPUSize64` values are JavaScript numbers: exact up to 2^53, far beyond any buffer.
fn size_u64(v: f64) -> u64 {
    if v.is_finite() && v >= 0.0 {
        v as u64
    } else {
        0
    }
}

impl WebSysDriver {
    /// The page's (or worker's) WebGPU adapter with its largest buffer limits; `Err` naming why
    /// when the browser has no WebGPU or returns no adapter.
    pub async fn new() -> Result<Self> {
        let global = js_sys::global();
        let navigator = Reflect::get(&global, &"navigator".into())
            .map_err(|e| js_err("reading navigator", &e))?;
        let gpu = Reflect::get(&navigator, &"gpu".into())
            .ok()
            .filter(|g| !g.is_undefined() && !g.is_null())
            .ok_or_else(|| gpu_err("this browser has no WebGPU (navigator.gpu is missing)"))?
            .unchecked_into::<web_sys::Gpu>();
        let adapter = JsFuture::from(gpu.request_adapter())
            .await
            .map_err(|e| js_err("requestAdapter", &e))?
            .into_option()
            .ok_or_else(|| gpu_err("no WebGPU adapter (requestAdapter() returned null)"))?;
        let info = adapter.info();
        let name = [info.description(), info.vendor(), info.architecture()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let supported = adapter.limits();
        // Ask for what the adapter has: large models need its largest buffers and bindings.
        let required = Object::new();
        let wanted = [
            ("maxBufferSize", supported.max_buffer_size()),
            (
                "maxStorageBufferBindingSize",
                supported.max_storage_buffer_binding_size(),
            ),
            (
                "maxStorageBuffersPerShaderStage",
                f64::from(supported.max_storage_buffers_per_shader_stage().min(8)),
            ),
            (
                "maxComputeWorkgroupStorageSize",
                f64::from(supported.max_compute_workgroup_storage_size()),
            ),
            (
                "maxComputeInvocationsPerWorkgroup",
                f64::from(supported.max_compute_invocations_per_workgroup()),
            ),
            (
                "maxComputeWorkgroupSizeX",
                f64::from(supported.max_compute_workgroup_size_x()),
            ),
        ];
        for (key, value) in wanted {
            Reflect::set(&required, &key.into(), &value.into())
                .map_err(|e| js_err("building requiredLimits", &e))?;
        }
        let desc = web_sys::GpuDeviceDescriptor::new();
        desc.set_label("sluice");
        desc.set_required_limits(required.unchecked_ref());
        // Subgroups where the adapter has them: the decode matmul reduces with them.
        let subgroups = adapter.features().has("subgroups");
        if subgroups {
            desc.set_required_features(&[js_sys::JsString::from("subgroups")]);
        }
        let device = JsFuture::from(adapter.request_device_with_descriptor(&desc))
            .await
            .map_err(|e| js_err(&format!("opening the adapter '{name}'"), &e))?;
        let granted = device.limits();
        let limits = DeviceLimits {
            max_buffer_size: size_u64(granted.max_buffer_size()),
            max_storage_binding: size_u64(granted.max_storage_buffer_binding_size()),
            max_workgroups_per_dim: granted.max_compute_workgroups_per_dimension(),
            subgroups: subgroups.then(|| SubgroupSizes {
                min: info.subgroup_min_size(),
                max: info.subgroup_max_size(),
            }),
        };
        open_scopes(&device);
        Ok(Self {
            inner: Local(Rc::new(Inner {
                queue: device.queue(),
                device,
                name,
                limits,
                pipelines: RefCell::new(HashMap::new()),
                pending: RefCell::new(Pending {
                    encoder: None,
                    dispatches: 0,
                    retired: Vec::new(),
                }),
            })),
        })
    }

    fn inner(&self) -> &Inner {
        &self.inner.0
    }

    fn pipeline(&self, kernel: &'static Kernel) -> web_sys::GpuComputePipeline {
        let inner = self.inner();
        let mut cache = inner.pipelines.borrow_mut();
        if let Some(p) = cache.get(kernel.name) {
            return p.clone();
        }
        // A WGSL error surfaces in the open validation scope, at the next read.
        let desc = web_sys::GpuShaderModuleDescriptor::new(&kernel.source_for(true));
        desc.set_label(kernel.name);
        let module = inner.device.create_shader_module(&desc);
        let stage = web_sys::GpuProgrammableStage::new(&module);
        stage.set_entry_point("main");
        let desc = web_sys::GpuComputePipelineDescriptor::new_with_gpu_auto_layout_mode(
            web_sys::GpuAutoLayoutMode::Auto,
            &stage,
        );
        desc.set_label(kernel.name);
        let pipeline = inner.device.create_compute_pipeline(&desc);
        cache.insert(kernel.name, pipeline.clone());
        pipeline
    }

    /// Submits the recorded work, then destroys the buffers it was the last user of.
    fn submit_pending(&self, p: &mut Pending) {
        p.dispatches = 0;
        if let Some(encoder) = p.encoder.take() {
            self.inner().queue.submit(&[encoder.finish()]);
        }
        for buf in p.retired.drain(..) {
            buf.destroy();
        }
    }

    /// Records into the pending encoder.
    fn record(&self, f: impl FnOnce(&web_sys::GpuCommandEncoder) -> Result<()>) -> Result<()> {
        let inner = self.inner();
        let mut p = inner.pending.borrow_mut();
        let encoder = p
            .encoder
            .get_or_insert_with(|| inner.device.create_command_encoder());
        f(encoder)?;
        p.dispatches += 1;
        if p.dispatches >= MAX_PENDING {
            self.submit_pending(&mut p);
        }
        Ok(())
    }

    fn raw_buffer(&self, bytes: u64, usage: u32, label: &str) -> Result<web_sys::GpuBuffer> {
        let desc = web_sys::GpuBufferDescriptor::new_with_f64(bytes as f64, usage);
        desc.set_label(label);
        self.inner()
            .device
            .create_buffer(&desc)
            .map_err(|e| js_err(&format!("creating {label} ({bytes} bytes)"), &e))
    }
}

/// Opens the error scopes every read closes (validation innermost).
fn open_scopes(device: &web_sys::GpuDevice) {
    device.push_error_scope(GpuErrorFilter::OutOfMemory);
    device.push_error_scope(GpuErrorFilter::Validation);
}

/// Waits for a closed error scope; its error, if any, as ours.
async fn scope_result(
    scope: js_sys::Promise<js_sys::JsNullable<web_sys::GpuError>>,
    kind: &str,
) -> Result<()> {
    let error = JsFuture::from(scope)
        .await
        .map_err(|e| js_err("popErrorScope", &e))?;
    match error.into_option() {
        Some(e) => Err(gpu_err(format!("{kind} error: {}", e.message()))),
        None => Ok(()),
    }
}

impl Driver for WebSysDriver {
    type Buf = WebSysBuffer;

    fn name(&self) -> String {
        format!("webgpu ({}, browser)", self.inner().name)
    }

    fn limits(&self) -> DeviceLimits {
        self.inner().limits
    }

    fn create_buffer(&self, bytes: u64, label: &str) -> Result<WebSysBuffer> {
        let limits = self.inner().limits;
        if bytes > limits.max_buffer_size {
            return Err(gpu_err(format!(
                "{label}: {bytes} bytes exceed the adapter's max_buffer_size of {}",
                limits.max_buffer_size
            )));
        }
        // WebGPU zero-initializes new buffers.
        let buf = self.raw_buffer(
            bytes.max(4).next_multiple_of(4),
            usage::STORAGE | usage::COPY_SRC | usage::COPY_DST,
            label,
        )?;
        Ok(WebSysBuffer {
            buf: Local(buf),
            owner: self.inner.clone(),
        })
    }

    fn write(&self, buf: &WebSysBuffer, offset: u64, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        // Queue writes land before the next submit's commands: submit what reads the old data.
        self.submit_pending(&mut self.inner().pending.borrow_mut());
        self.inner()
            .queue
            .write_buffer_with_f64_and_u8_slice(&buf.buf.0, offset as f64, data)
            .map_err(|e| js_err("writeBuffer", &e))
    }

    fn dispatch(
        &self,
        kernel: &'static Kernel,
        uniforms: &[u8],
        buffers: &[&WebSysBuffer],
        workgroups: [u32; 3],
    ) -> Result<()> {
        let max = self.inner().limits.max_workgroups_per_dim;
        if workgroups.iter().any(|&w| w > max) {
            return Err(gpu_err(format!(
                "kernel {} needs {workgroups:?} workgroups; the adapter allows {max} per dimension",
                kernel.name
            )));
        }
        if workgroups.contains(&0) {
            return Ok(());
        }
        if kernel.subgroups && self.inner().limits.subgroups.is_none() {
            return Err(gpu_err(format!(
                "kernel {} uses subgroups, which this device was not opened with",
                kernel.name
            )));
        }
        let pipeline = self.pipeline(kernel);
        let mut contents = uniforms.to_vec();
        contents.resize(uniforms.len().next_multiple_of(16).max(16), 0);
        let params = self.raw_buffer(
            contents.len() as u64,
            usage::UNIFORM | usage::COPY_DST,
            "params",
        )?;
        // Lands before the submit that carries this dispatch; nothing else uses `params`.
        self.inner()
            .queue
            .write_buffer_with_f64_and_u8_slice(&params, 0.0, &contents)
            .map_err(|e| js_err("writeBuffer (params)", &e))?;
        let mut entries = vec![web_sys::GpuBindGroupEntry::new_with_gpu_buffer_binding(
            0,
            &web_sys::GpuBufferBinding::new(&params),
        )];
        entries.extend(buffers.iter().enumerate().map(|(i, b)| {
            web_sys::GpuBindGroupEntry::new_with_gpu_buffer_binding(
                i as u32 + 1,
                &web_sys::GpuBufferBinding::new(&b.buf.0),
            )
        }));
        let desc =
            web_sys::GpuBindGroupDescriptor::new(&entries, &pipeline.get_bind_group_layout(0));
        desc.set_label(kernel.name);
        let group = self.inner().device.create_bind_group(&desc);
        self.record(|encoder| {
            let pass = encoder.begin_compute_pass();
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, Some(&group));
            pass.dispatch_workgroups_with_workgroup_count_y_and_workgroup_count_z(
                workgroups[0],
                workgroups[1],
                workgroups[2],
            );
            pass.end();
            Ok(())
        })?;
        self.inner().pending.borrow_mut().retired.push(params);
        Ok(())
    }

    fn copy(
        &self,
        src: &WebSysBuffer,
        src_offset: u64,
        dst: &WebSysBuffer,
        dst_offset: u64,
        len: u64,
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.record(|e| {
            e.copy_buffer_to_buffer_with_f64_and_f64_and_f64(
                &src.buf.0,
                src_offset as f64,
                &dst.buf.0,
                dst_offset as f64,
                len as f64,
            )
            .map_err(|e| js_err("copyBufferToBuffer", &e))
        })
    }

    fn read(
        &self,
        buf: &WebSysBuffer,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = Result<Vec<u8>>> + use<> {
        let size = len.next_multiple_of(4).max(4);
        let started = self
            .raw_buffer(size, usage::MAP_READ | usage::COPY_DST, "read-back")
            .and_then(|staging| {
                self.record(|e| {
                    e.copy_buffer_to_buffer_with_f64_and_f64_and_f64(
                        &buf.buf.0,
                        offset as f64,
                        &staging,
                        0.0,
                        size as f64,
                    )
                    .map_err(|e| js_err("copyBufferToBuffer (read-back)", &e))
                })?;
                self.submit_pending(&mut self.inner().pending.borrow_mut());
                // Everything up to this copy is checked by these scopes; later work by new ones.
                let device = &self.inner().device;
                let validation = device.pop_error_scope();
                let memory = device.pop_error_scope();
                open_scopes(device);
                let mapped = staging.map_async(web_sys::gpu_map_mode::READ);
                Ok((staging, mapped, validation, memory))
            });
        async move {
            let (staging, mapped, validation, memory) = started?;
            let mapped = JsFuture::from(mapped).await;
            let checked = async {
                scope_result(validation, "validation").await?;
                scope_result(memory, "out-of-memory").await
            };
            // The scopes say why a map failed better than the rejected map does.
            let result = match (checked.await, mapped) {
                (Err(e), _) => Err(e),
                (Ok(()), Err(e)) => Err(js_err("mapAsync (read-back)", &e)),
                (Ok(()), Ok(_)) => staging
                    .get_mapped_range()
                    .map_err(|e| js_err("getMappedRange (read-back)", &e))
                    .map(|range| {
                        let mut bytes = Uint8Array::new(&range).to_vec();
                        bytes.truncate(len as usize);
                        bytes
                    }),
            };
            staging.destroy();
            result
        }
    }
}
