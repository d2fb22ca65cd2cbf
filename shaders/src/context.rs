//! One wgpu adapter, device and queue, requested natively or in the browser.

/// Why a GPU computation could not run.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no GPU adapter is available ({0}); use the CPU path instead")]
    NoAdapter(String),
    #[error("the GPU adapter refused a device: {0}")]
    RequestDevice(String),
    #[error("the GPU rejected the work: {0}")]
    Rejected(String),
    #[error("reading the GPU's results back failed: {0}")]
    Readback(String),
    #[error("k = {k} is more than this kernel's maximum of {max}")]
    KTooLarge { k: usize, max: usize },
    #[error(
        "{queries} queries in one call is more than the adapter's {max} workgroups per dispatch"
    )]
    TooManyQueries { queries: usize, max: usize },
    #[error("one document of {bytes} bytes is larger than the adapter's storage binding limit")]
    RowTooLarge { bytes: u64 },
    #[error(transparent)]
    Input(#[from] realm_core::Error),
}

/// A wgpu device and queue with the adapter's description.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: wgpu::AdapterInfo,
}

impl GpuContext {
    /// Requests the default adapter (high performance preferred) and a device with the
    /// adapter's own limits, so large index chunks fit in one binding.
    pub async fn new() -> Result<Self, GpuError> {
        #[cfg(target_family = "wasm")]
        check_navigator_gpu()?;
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("realm"),
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::RequestDevice(e.to_string()))?;
        Ok(Self {
            device,
            queue,
            adapter: adapter.get_info(),
        })
    }

    /// [`GpuContext::new`], blocking the calling thread.
    #[cfg(not(target_family = "wasm"))]
    pub fn new_blocking() -> Result<Self, GpuError> {
        pollster::block_on(Self::new())
    }

    /// A short description of the adapter, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)`.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.adapter.name, self.adapter.backend, self.adapter.device_type
        )
    }

    /// Waits until `buffer` is mapped for reading. Natively this drives the device; in the
    /// browser the map callback fires from the event loop while this future is pending.
    pub(crate) async fn map_read(&self, slice: wgpu::BufferSlice<'_>) -> Result<(), GpuError> {
        let (sender, receiver) = futures_channel::oneshot::channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        #[cfg(not(target_family = "wasm"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        receiver
            .await
            .map_err(|_| GpuError::Readback("the device was lost before the map finished".into()))?
            .map_err(|e| GpuError::Readback(e.to_string()))
    }
}

/// Compiles one WGSL entry point `main` into a compute pipeline, inside a validation error
/// scope: a shader or pipeline the device rejects is an error, never a silent no-op.
pub(crate) async fn compile(
    ctx: &GpuContext,
    name: &str,
    source: &str,
) -> Result<wgpu::ComputePipeline, GpuError> {
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = ctx
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
    let pipeline = ctx
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
    if let Some(error) = scope.pop().await {
        return Err(GpuError::Rejected(format!("compiling {name}: {error}")));
    }
    Ok(pipeline)
}

/// A storage buffer holding `contents`.
pub(crate) fn storage(ctx: &GpuContext, label: &str, contents: &[u8]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE,
        })
}

/// An uninitialised storage buffer of `bytes` that can be copied out.
pub(crate) fn output(ctx: &GpuContext, label: &str, bytes: u64) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.max(4),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

/// A bind group for `pipeline` with `buffers` at bindings 0, 1, 2...
pub(crate) fn bind(
    ctx: &GpuContext,
    pipeline: &wgpu::ComputePipeline,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect::<Vec<_>>(),
    })
}

/// Records one dispatch of `pipeline` over `groups` (x, y) workgroups, with `buffers` bound at
/// 0, 1, 2...
pub(crate) fn dispatch(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    pipeline: &wgpu::ComputePipeline,
    buffers: &[&wgpu::Buffer],
    (x, y): (u32, u32),
) {
    let group = bind(ctx, pipeline, buffers);
    let mut pass = encoder.begin_compute_pass(&Default::default());
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, &group, &[]);
    pass.dispatch_workgroups(x, y, 1);
}

impl GpuContext {
    /// The largest storage binding this device accepts, in bytes.
    pub fn max_binding(&self) -> u64 {
        let limits = self.device.limits();
        limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
    }

    /// Copies `buffers` (each `bytes` long) into one mapped staging buffer after `encoder`'s
    /// work, submits, and returns their contents in order.
    pub(crate) async fn submit_and_read(
        &self,
        mut encoder: wgpu::CommandEncoder,
        buffers: &[(&wgpu::Buffer, u64)],
        what: &str,
        scope: wgpu::ErrorScopeGuard,
    ) -> Result<Vec<Vec<u8>>, GpuError> {
        let total: u64 = buffers.iter().map(|(_, b)| b).sum();
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size: total.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut at = 0;
        for (buffer, bytes) in buffers {
            encoder.copy_buffer_to_buffer(buffer, 0, &staging, at, *bytes);
            at += bytes;
        }
        self.queue.submit([encoder.finish()]);
        if let Some(error) = scope.pop().await {
            return Err(GpuError::Rejected(format!("running {what}: {error}")));
        }
        let slice = staging.slice(..);
        self.map_read(slice).await?;
        let bytes = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .to_vec();
        staging.unmap();
        let mut out = Vec::with_capacity(buffers.len());
        let mut at = 0usize;
        for (_, len) in buffers {
            out.push(bytes[at..at + *len as usize].to_vec());
            at += *len as usize;
        }
        Ok(out)
    }
}

/// wgpu's WebGPU backend panics where `navigator.gpu` is missing (Node, older browsers, or
/// Chromium without WebGPU); a panic would kill the wasm module, so check first.
#[cfg(target_family = "wasm")]
fn check_navigator_gpu() -> Result<(), GpuError> {
    use js_sys::{Reflect, global};
    let navigator = Reflect::get(&global(), &"navigator".into()).unwrap_or_default();
    let gpu = if navigator.is_object() {
        Reflect::get(&navigator, &"gpu".into()).unwrap_or_default()
    } else {
        navigator
    };
    if gpu.is_undefined() || gpu.is_null() {
        return Err(GpuError::NoAdapter(
            "this JavaScript environment has no navigator.gpu (WebGPU)".into(),
        ));
    }
    Ok(())
}
