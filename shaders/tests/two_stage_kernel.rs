//! The tiled matmul, the int8 scores and the radix-select top-k against their CPU
//! references on fresh random inputs, on whatever adapter wgpu finds (lavapipe in CI).

mod common;

use common::{assert_same, context, fresh_seed};
use realm_core::index::int8::{quantize_rows, top_k_int8_reference};
use realm_core::index::reference::{Hit, scores_reference, top_k_reference};
use realm_core::rng::SplitMix64;
use realm_shaders::{GpuIndex, GpuShard, MatmulKernel, TwoStageTopK};

#[test]
fn the_tiled_matmul_matches_the_reference() {
    let Some(ctx) = context() else { return };
    let mut rng = SplitMix64::new(fresh_seed());
    let kernel = MatmulKernel::new_blocking(&ctx).unwrap();
    // Shapes on, below and across tile edges, and a wide shared dimension.
    for &(m, n, kd) in &[
        (1, 1, 1),
        (16, 16, 16),
        (17, 33, 5),
        (3, 100, 130),
        (40, 7, 64),
    ] {
        let a = rng.uniform_vec(m * kd, 1.0);
        let b = rng.uniform_vec(n * kd, 1.0);
        let gpu = kernel.multiply_blocking(&ctx, &a, &b, (m, n, kd)).unwrap();
        let cpu = scores_reference(&a, &b, kd);
        for (i, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
            assert!(
                (g - c).abs() <= 1e-4,
                "({m},{n},{kd}) element {i}: {g} vs {c}"
            );
        }
    }
}

#[test]
fn large_k_selection_matches_the_reference() {
    let Some(ctx) = context() else { return };
    let mut rng = SplitMix64::new(fresh_seed());
    let kernel = TwoStageTopK::new_blocking(&ctx).unwrap();
    // k of REALM's fine-tuning beam, k > N, k = N, N not a multiple of 256, chunks below k.
    for &(n, dim, queries, k, chunk) in &[
        (6000, 16, 2, 5000, None),
        (300, 8, 3, 1000, None),
        (777, 12, 2, 777, Some(100)),
        (1000, 32, 4, 64, Some(333)),
        (50, 4, 1, 1, None),
    ] {
        let docs = rng.uniform_vec(n * dim, 1.0);
        let qs = rng.uniform_vec(queries * dim, 1.0);
        let shard = GpuShard::upload_f32(&ctx, &docs, dim, chunk).unwrap();
        let gpu = kernel.search_blocking(&ctx, &shard, &qs, k).unwrap();
        let cpu = top_k_reference(&qs, &docs, dim, k).unwrap();
        assert_eq!(gpu[0].len(), k.min(n), "n={n} k={k}");
        assert_same(&gpu, &cpu, 1e-4);
    }
}

#[test]
fn ties_at_the_threshold_go_to_the_lower_ids() {
    let Some(ctx) = context() else { return };
    let dim = 4;
    // 600 documents, scores in three levels; k cuts through the middle level.
    let docs: Vec<f32> = (0..600)
        .flat_map(|i| {
            let level = [1.0, 0.5, 0.25][i % 3];
            [level, 0.0, 0.0, 0.0]
        })
        .collect();
    let kernel = TwoStageTopK::new_blocking(&ctx).unwrap();
    let shard = GpuShard::upload_f32(&ctx, &docs, dim, Some(250)).unwrap();
    let gpu = kernel
        .search_blocking(&ctx, &shard, &[1.0, 0.0, 0.0, 0.0], 300)
        .unwrap();
    let cpu = top_k_reference(&[1.0, 0.0, 0.0, 0.0], &docs, dim, 300).unwrap();
    assert_eq!(gpu, cpu);
}

#[test]
fn int8_scores_equal_the_cpu_int8_path_bit_for_bit() {
    let Some(ctx) = context() else { return };
    let mut rng = SplitMix64::new(fresh_seed());
    let kernel = TwoStageTopK::new_blocking(&ctx).unwrap();
    for &(n, dim, queries, k, chunk) in &[
        (2000, 128, 3, 8, None),
        (999, 13, 2, 500, Some(400)),
        (70, 3, 5, 100, None),
    ] {
        let docs = rng.uniform_vec(n * dim, 1.0);
        let qs = rng.uniform_vec(queries * dim, 1.0);
        let (values, scales) = quantize_rows(&docs, dim).unwrap();
        let shard = GpuShard::upload_int8(&ctx, &values, &scales, dim, chunk).unwrap();
        let gpu = kernel.search_blocking(&ctx, &shard, &qs, k).unwrap();
        let cpu = top_k_int8_reference(&qs, &values, &scales, dim, k).unwrap();
        assert_eq!(gpu, cpu, "n={n} dim={dim} k={k}");
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let Some(ctx) = context() else { return };
    let kernel = TwoStageTopK::new_blocking(&ctx).unwrap();
    let shard = GpuShard::upload_f32(&ctx, &[0.5; 8], 2, None).unwrap();
    let err = |r: Result<Vec<Vec<Hit>>, realm_shaders::GpuError>| r.unwrap_err().to_string();
    assert!(err(kernel.search_blocking(&ctx, &shard, &[f32::NAN, 0.0], 1)).contains("non-finite"));
    assert!(err(kernel.search_blocking(&ctx, &shard, &[1.0, 0.0, 1.0], 1)).contains("dimension"));
    assert!(err(kernel.search_blocking(&ctx, &shard, &[1.0, 0.0], 0)).contains("k must"));
    assert!(GpuShard::upload_f32(&ctx, &[], 2, None).is_err());
    assert!(GpuShard::upload_int8(&ctx, &[1, 2, 3], &[1.0], 2, None).is_err());
}

#[test]
fn the_gpu_int8_index_and_large_k_answer_through_the_interface() {
    use realm_core::index::exact::MipsIndex;
    use realm_core::index::int8::Int8Index;
    if context().is_none() {
        return;
    }
    let mut rng = SplitMix64::new(fresh_seed());
    let (n, dim) = (400, 20);
    let docs = rng.uniform_vec(n * dim, 1.0);
    let qs = rng.uniform_vec(2 * dim, 1.0);
    let gpu = GpuIndex::new_int8(&docs, dim).unwrap();
    let cpu = Int8Index::from_f32(&docs, dim).unwrap();
    assert_eq!(gpu.search(&qs, 50).unwrap(), cpu.search(&qs, 50).unwrap());
    let f32_gpu = GpuIndex::new(docs.clone(), dim).unwrap();
    assert_same(
        &f32_gpu.search(&qs, 300).unwrap(),
        &top_k_reference(&qs, &docs, dim, 300).unwrap(),
        1e-4,
    );
}
