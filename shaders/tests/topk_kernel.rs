//! The WGSL top-k against the CPU reference on fresh random inputs, on whatever adapter wgpu
//! finds (lavapipe in CI). Without an adapter the tests say so and pass, unless
//! `REALM_REQUIRE_GPU=1` (set by the project's test script) makes that a failure.

mod common;

use common::{assert_same, context, fresh_seed};
use realm_core::index::reference::top_k_reference;
use realm_core::rng::SplitMix64;
use realm_shaders::{GpuError, MAX_K, TopKKernel};

#[test]
fn agrees_with_the_reference_on_random_inputs() {
    let Some(ctx) = context() else { return };
    eprintln!("adapter: {}", ctx.describe());
    let mut rng = SplitMix64::new(fresh_seed());
    let kernel = TopKKernel::new_blocking(&ctx).unwrap();
    // N not a multiple of the workgroup, k below, at and above N, odd dimensions.
    for &(n, dim, queries, k) in &[
        (1000, 128, 5, 8),
        (131, 17, 3, MAX_K),
        (5, 8, 2, 20),
        (64, 3, 1, 1),
    ] {
        let docs = rng.uniform_vec(n * dim, 1.0);
        let qs = rng.uniform_vec(queries * dim, 1.0);
        let gpu = kernel.search_blocking(&ctx, &qs, &docs, dim, k).unwrap();
        let cpu = top_k_reference(&qs, &docs, dim, k).unwrap();
        assert_eq!(gpu[0].len(), k.min(n));
        assert_same(&gpu, &cpu, 1e-4);
    }
}

#[test]
fn ties_go_to_the_lower_id() {
    let Some(ctx) = context() else { return };
    let mut rng = SplitMix64::new(fresh_seed());
    let dim = 16;
    let row = rng.uniform_vec(dim, 1.0);
    // 100 identical documents: every score ties, so the ids must be 0..k.
    let docs: Vec<f32> = row.iter().copied().cycle().take(100 * dim).collect();
    let gpu = TopKKernel::new_blocking(&ctx)
        .unwrap()
        .search_blocking(&ctx, &row, &docs, dim, 10)
        .unwrap();
    let ids: Vec<u32> = gpu[0].iter().map(|h| h.id).collect();
    assert_eq!(ids, (0..10).collect::<Vec<u32>>());
}

#[test]
fn an_index_split_across_dispatches_gives_the_same_answer() {
    let Some(ctx) = context() else { return };
    let mut rng = SplitMix64::new(fresh_seed());
    let (n, dim, k) = (300, 32, 12);
    let docs = rng.uniform_vec(n * dim, 1.0);
    let qs = rng.uniform_vec(4 * dim, 1.0);
    let mut kernel = TopKKernel::new_blocking(&ctx).unwrap();
    // Chunks smaller than k and not dividing N exercise the cross-chunk merge.
    for rows in [7, 64, 299] {
        kernel.max_rows_per_chunk = Some(rows);
        let gpu = kernel.search_blocking(&ctx, &qs, &docs, dim, k).unwrap();
        assert_same(&gpu, &top_k_reference(&qs, &docs, dim, k).unwrap(), 1e-4);
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let Some(ctx) = context() else { return };
    let kernel = TopKKernel::new_blocking(&ctx).unwrap();
    let docs = vec![0.5; 8];
    let mut nan = docs.clone();
    nan[5] = f32::NAN;
    let err = kernel
        .search_blocking(&ctx, &[1.0, 0.0], &nan, 2, 1)
        .unwrap_err();
    assert!(err.to_string().contains("non-finite"), "{err}");
    let inf = kernel
        .search_blocking(&ctx, &[f32::INFINITY, 0.0], &docs, 2, 1)
        .unwrap_err();
    assert!(inf.to_string().contains("queries"), "{inf}");
    assert!(matches!(
        kernel.search_blocking(&ctx, &[1.0, 0.0], &docs, 2, MAX_K + 1),
        Err(GpuError::KTooLarge { .. })
    ));
    assert!(matches!(
        kernel.search_blocking(&ctx, &[1.0, 0.0], &[], 2, 1),
        Err(GpuError::Input(_))
    ));
}

#[test]
fn the_gpu_and_cpu_indexes_answer_alike_through_one_interface() {
    use realm_core::index::exact::{ExactIndex, MipsIndex};
    if context().is_none() {
        return;
    }
    let mut rng = SplitMix64::new(fresh_seed());
    let (n, dim) = (500, 24);
    let docs = rng.uniform_vec(n * dim, 1.0);
    let queries = rng.uniform_vec(3 * dim, 1.0);
    let indexes: Vec<Box<dyn MipsIndex>> = vec![
        Box::new(ExactIndex::new(docs.clone(), dim).unwrap()),
        Box::new(realm_shaders::GpuIndex::new(docs.clone(), dim).unwrap()),
    ];
    let reference = top_k_reference(&queries, &docs, dim, 10).unwrap();
    for index in &indexes {
        assert_eq!((index.dim(), index.len()), (dim, n));
        assert_same(&index.search(&queries, 10).unwrap(), &reference, 1e-4);
        // Errors in the input come back as the core's errors, whatever the backend.
        assert!(matches!(
            index.search(&queries, 0),
            Err(realm_core::Error::ZeroK)
        ));
    }
}
