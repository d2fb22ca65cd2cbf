//! The GPU half of REALM's maximum inner-product search: WGSL kernels (in `wgsl/`, loaded at
//! compile time) and the wgpu code that launches them, natively (Vulkan, Metal, DX12) and in
//! the browser (WebGPU). Every kernel has a plain CPU reference in `realm-core` and tests that
//! compare the two.

mod context;
#[cfg(not(target_family = "wasm"))]
mod index;
mod matmul;
mod resident;
mod topk;
mod two_stage;

pub use context::{GpuContext, GpuError};
#[cfg(not(target_family = "wasm"))]
pub use index::GpuIndex;
pub use matmul::MatmulKernel;
pub use resident::{GpuElement, GpuShard};
pub use topk::{MAX_K, TopKKernel};
pub use two_stage::TwoStageTopK;

/// Every WGSL source in this crate, by file name, for validation and inspection.
pub const SHADERS: &[(&str, &str)] = &[
    (
        "topk_inner_product.wgsl",
        include_str!("../wgsl/topk_inner_product.wgsl"),
    ),
    ("matmul_nt.wgsl", include_str!("../wgsl/matmul_nt.wgsl")),
    ("scores_int8.wgsl", include_str!("../wgsl/scores_int8.wgsl")),
    ("select_topk.wgsl", include_str!("../wgsl/select_topk.wgsl")),
];

/// The source of the WGSL file `name` (one of [`SHADERS`]).
pub(crate) fn shader(name: &str) -> &'static str {
    SHADERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .expect("a shader listed in SHADERS")
}
