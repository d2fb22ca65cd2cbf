//! The walking skeleton across crates: the embedder on burn's CPU and wgpu backends, and
//! retrieval by the CPU reference and the WGSL kernel, all return the same passages.

use burn::tensor::{Device, DeviceKind};
use realm_core::index::reference::top_k_reference;
use realm_core::skeleton::{PASSAGES, QUESTIONS, SkeletonRetriever};
use realm_shaders::{GpuContext, TopKKernel};
use realm_tests::gpu_required;

fn wgpu_available() -> bool {
    match GpuContext::new_blocking() {
        Ok(_) => true,
        Err(e) if gpu_required() => panic!("REALM_REQUIRE_GPU=1 but {e}"),
        Err(e) => {
            eprintln!("skipping: {e}");
            false
        }
    }
}

#[test]
fn the_embedder_agrees_on_the_cpu_and_wgpu_backends() {
    if !wgpu_available() {
        return;
    }
    let cpu = SkeletonRetriever::new(Device::flex())
        .unwrap()
        .embed(PASSAGES)
        .unwrap();
    let gpu = SkeletonRetriever::new(Device::wgpu(DeviceKind::DefaultDevice))
        .unwrap()
        .embed(PASSAGES)
        .unwrap();
    let worst = cpu
        .iter()
        .zip(&gpu)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "largest CPU/wgpu difference {worst}");
}

#[test]
fn the_kernel_retrieves_what_the_reference_retrieves() {
    if !wgpu_available() {
        return;
    }
    let retriever = SkeletonRetriever::new(Device::flex()).unwrap();
    let docs = retriever.embed(PASSAGES).unwrap();
    let queries = retriever.embed(QUESTIONS).unwrap();
    let ctx = GpuContext::new_blocking().unwrap();
    let gpu = TopKKernel::new_blocking(&ctx)
        .unwrap()
        .search_blocking(&ctx, &queries, &docs, retriever.dim, 5)
        .unwrap();
    let cpu = top_k_reference(&queries, &docs, retriever.dim, 5).unwrap();
    for (g, c) in gpu.iter().zip(&cpu) {
        let ids = |hits: &[realm_core::index::reference::Hit]| {
            hits.iter().map(|h| h.id).collect::<Vec<_>>()
        };
        assert_eq!(ids(g), ids(c));
        for (a, b) in g.iter().zip(c) {
            assert!((a.score - b.score).abs() < 1e-3 * b.score.abs().max(1.0));
        }
    }
}
