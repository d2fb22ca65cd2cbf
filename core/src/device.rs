//! One way to get a burn device: CPU by default, wgpu when asked.

use burn::tensor::Device;

/// The device tests and tools run on: burn's CPU backend (Flex) unless `REALM_DEVICE=wgpu`
/// asks for the wgpu backend (software Vulkan in CI, a real GPU elsewhere).
///
/// # Panics
/// When `REALM_DEVICE` names a backend this build does not carry.
pub fn test_device() -> Device {
    match std::env::var("REALM_DEVICE").as_deref() {
        Ok("wgpu") => wgpu_device(),
        Ok("cpu") | Ok("") | Err(_) => cpu_device(),
        Ok(other) => panic!("REALM_DEVICE={other} is not a backend: use `cpu` or `wgpu`"),
    }
}

/// burn's pure-Rust CPU backend.
pub fn cpu_device() -> Device {
    Device::flex()
}

/// burn's wgpu backend on the first adapter (a GPU, else lavapipe).
#[cfg(feature = "wgpu")]
pub fn wgpu_device() -> Device {
    // burn initialises its wgpu runtime once per selector; `Device` values are cheap handles.
    Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)
}

/// # Panics
/// Always: this build has no wgpu backend.
#[cfg(not(feature = "wgpu"))]
pub fn wgpu_device() -> Device {
    panic!("REALM_DEVICE=wgpu, but realm-core was built without its `wgpu` feature")
}
