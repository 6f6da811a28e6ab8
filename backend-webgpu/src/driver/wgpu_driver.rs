//! The `wgpu` driver: native Vulkan/Metal/DX12 (lavapipe in CI), and wasm32 through the browser.
//!
//! Dispatches are recorded into one pending command encoder and submitted together when a write, a
//! read or a full batch needs them, so a forward pass is a handful of submits, not hundreds.
//! Pipelines are compiled once per kernel and cached by name.

use super::{DeviceLimits, Driver, SubgroupSizes};
use crate::kernels::Kernel;
use engine_core::{Error, Result};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

/// On wasm32 wgpu hands WGSL to the browser, which wants the `enable` directives; natively naga
/// compiles it and takes subgroup operations without one.
const BROWSER_WGSL: bool = cfg!(target_arch = "wasm32");

/// Dispatches recorded before a submit is forced (bounds the encoder's memory).
const MAX_PENDING: usize = 256;

struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    dispatches: usize,
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: DeviceLimits,
    pipelines: Mutex<HashMap<&'static str, Arc<wgpu::ComputePipeline>>>,
    pending: Mutex<Pending>,
}

/// A `wgpu` device and queue; clones share them.
#[derive(Clone)]
pub struct WgpuDriver {
    inner: Arc<Inner>,
}

fn gpu_err(what: impl std::fmt::Display) -> Error {
    Error::Config(format!("webgpu: {what}"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl WgpuDriver {
    /// The first adapter wgpu offers (a GPU if there is one, else a software one such as
    /// lavapipe); `Err` naming why when there is none.
    pub async fn new() -> Result<Self> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| gpu_err(format!("no WebGPU adapter: {e}")))?;
        let info = adapter.get_info();
        let supported = adapter.limits();
        // Ask for what the adapter has: large models need its largest buffers and bindings.
        let required_limits = wgpu::Limits {
            max_buffer_size: supported.max_buffer_size,
            max_storage_buffer_binding_size: supported.max_storage_buffer_binding_size,
            max_storage_buffers_per_shader_stage: supported
                .max_storage_buffers_per_shader_stage
                .min(8),
            max_compute_workgroup_storage_size: supported.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: supported.max_compute_invocations_per_workgroup,
            max_compute_workgroup_size_x: supported.max_compute_workgroup_size_x,
            ..wgpu::Limits::downlevel_defaults()
        };
        let subgroups = adapter.features().contains(wgpu::Features::SUBGROUP);
        let required_features = if subgroups {
            wgpu::Features::SUBGROUP
        } else {
            wgpu::Features::empty()
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("sluice"),
                required_features,
                required_limits,
                ..Default::default()
            })
            .await
            .map_err(|e| gpu_err(format!("cannot open the adapter '{}': {e}", info.name)))?;
        let limits = DeviceLimits {
            max_buffer_size: supported.max_buffer_size,
            max_storage_binding: supported.max_storage_buffer_binding_size,
            max_workgroups_per_dim: supported.max_compute_workgroups_per_dimension,
            subgroups: subgroups.then_some(SubgroupSizes {
                min: info.subgroup_min_size,
                max: info.subgroup_max_size,
            }),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                device,
                queue,
                info,
                limits,
                pipelines: Mutex::new(HashMap::new()),
                pending: Mutex::new(Pending {
                    encoder: None,
                    dispatches: 0,
                }),
            }),
        })
    }

    fn pipeline(&self, kernel: &'static Kernel) -> Result<Arc<wgpu::ComputePipeline>> {
        let mut cache = lock(&self.inner.pipelines);
        if let Some(p) = cache.get(kernel.name) {
            return Ok(p.clone());
        }
        let device = &self.inner.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(kernel.name),
            source: wgpu::ShaderSource::Wgsl(kernel.source_for(BROWSER_WGSL).into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.name),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(gpu_err(format!(
                "kernel {} does not compile: {e}",
                kernel.name
            )));
        }
        let pipeline = Arc::new(pipeline);
        cache.insert(kernel.name, pipeline.clone());
        Ok(pipeline)
    }

    /// Submits the recorded dispatches.
    fn flush(&self) {
        self.submit_pending(&mut lock(&self.inner.pending));
    }

    /// Submits under the caller's lock of `pending`: were the lock released between taking the
    /// encoder and submitting it, another thread (a prefetch worker's upload) could take and
    /// submit a later encoder first, and a read-back would run before the dispatches it follows.
    fn submit_pending(&self, p: &mut Pending) {
        p.dispatches = 0;
        if let Some(encoder) = p.encoder.take() {
            self.inner.queue.submit([encoder.finish()]);
        }
    }

    fn record(&self, f: impl FnOnce(&mut wgpu::CommandEncoder)) {
        let mut p = lock(&self.inner.pending);
        let device = &self.inner.device;
        let encoder = p.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        f(encoder);
        p.dispatches += 1;
        if p.dispatches >= MAX_PENDING {
            self.submit_pending(&mut p);
        }
    }
}

impl Driver for WgpuDriver {
    type Buf = wgpu::Buffer;

    fn name(&self) -> String {
        let i = &self.inner.info;
        format!("webgpu ({}, {:?})", i.name, i.backend)
    }

    fn limits(&self) -> DeviceLimits {
        self.inner.limits
    }

    fn create_buffer(&self, bytes: u64, label: &str) -> Result<wgpu::Buffer> {
        let limits = self.inner.limits;
        if bytes > limits.max_buffer_size {
            return Err(gpu_err(format!(
                "{label}: {bytes} bytes exceed the adapter's max_buffer_size of {}",
                limits.max_buffer_size
            )));
        }
        Ok(self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            // wgpu zero-initializes new buffers.
            size: bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    fn write(&self, buf: &wgpu::Buffer, offset: u64, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        // Queue writes land before the next submit's commands: submit what reads the old data.
        // Writing under the same lock keeps every dispatch recorded before this call, by any
        // thread, ahead of the write.
        let mut p = lock(&self.inner.pending);
        self.submit_pending(&mut p);
        self.inner.queue.write_buffer(buf, offset, data);
        Ok(())
    }

    fn dispatch(
        &self,
        kernel: &'static Kernel,
        uniforms: &[u8],
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) -> Result<()> {
        let max = self.inner.limits.max_workgroups_per_dim;
        if workgroups.iter().any(|&w| w > max) {
            return Err(gpu_err(format!(
                "kernel {} needs {workgroups:?} workgroups; the adapter allows {max} per dimension",
                kernel.name
            )));
        }
        if workgroups.contains(&0) {
            return Ok(());
        }
        if kernel.subgroups && self.inner.limits.subgroups.is_none() {
            return Err(gpu_err(format!(
                "kernel {} uses subgroups, which this device was not opened with",
                kernel.name
            )));
        }
        let pipeline = self.pipeline(kernel)?;
        let device = &self.inner.device;
        let mut contents = uniforms.to_vec();
        contents.resize(uniforms.len().next_multiple_of(16).max(16), 0);
        let params = wgpu::util::DeviceExt::create_buffer_init(
            device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: &contents,
                usage: wgpu::BufferUsages::UNIFORM,
            },
        );
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: params.as_entire_binding(),
        }];
        entries.extend(
            buffers
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: b.as_entire_binding(),
                }),
        );
        let layout = pipeline.get_bind_group_layout(0);
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.name),
            layout: &layout,
            entries: &entries,
        });
        self.record(|encoder| {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel.name),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        });
        Ok(())
    }

    fn copy(
        &self,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        len: u64,
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.record(|e| e.copy_buffer_to_buffer(src, src_offset, dst, dst_offset, len));
        Ok(())
    }

    fn read(
        &self,
        buf: &wgpu::Buffer,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = Result<Vec<u8>>> + use<> {
        let result = (|| {
            let size = len.next_multiple_of(4).max(4);
            let staging = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("read-back"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.record(|e| e.copy_buffer_to_buffer(buf, offset, &staging, 0, size));
            self.flush();
            let (tx, rx) = std::sync::mpsc::channel();
            staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
            self.inner
                .device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| gpu_err(format!("waiting for the device: {e}")))?;
            rx.recv()
                .map_err(|_| gpu_err("the read-back was dropped"))?
                .map_err(|e| gpu_err(format!("mapping the read-back: {e}")))?;
            let bytes = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| gpu_err(format!("reading the read-back: {e}")))?[..len as usize]
                .to_vec();
            staging.unmap();
            Ok(bytes)
        })();
        std::future::ready(result)
    }
}
