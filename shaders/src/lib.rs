//! The GPU half of REALM's maximum inner-product search: WGSL kernels (in `wgsl/`, loaded at
//! compile time) and the wgpu code that launches them, natively (Vulkan, Metal, DX12) and in
//! the browser (WebGPU). Every kernel has a plain CPU reference in `realm-core` and tests that
//! compare the two.

mod context;
#[cfg(not(target_family = "wasm"))]
mod index;
mod topk;

pub use context::{GpuContext, GpuError};
#[cfg(not(target_family = "wasm"))]
pub use index::GpuIndex;
pub use topk::{MAX_K, TopKKernel};

/// Every WGSL source in this crate, by file name, for validation and inspection.
pub const SHADERS: &[(&str, &str)] = &[(
    "topk_inner_product.wgsl",
    include_str!("../wgsl/topk_inner_product.wgsl"),
)];
