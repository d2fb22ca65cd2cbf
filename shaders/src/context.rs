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
