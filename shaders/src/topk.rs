//! Launches `topk_inner_product.wgsl`: exact top-k by inner product for a batch of queries,
//! splitting an index larger than one storage binding into chunks and merging their lists.
//! The CPU reference it must agree with is `realm_core::index::reference::top_k_reference`.

use realm_core::index::reference::Hit;

use crate::context::{GpuContext, GpuError, compile, dispatch, storage};
use crate::resident::{ChunkData, ChunkLists, GpuElement, GpuShard, read_merged};

/// The largest k the kernel keeps per query (its private lists hold this many entries).
pub const MAX_K: usize = 32;
/// Invocations per workgroup, as in the WGSL source.
const WORKGROUP: usize = 64;

/// The compiled top-k pipeline for one device.
pub struct TopKKernel {
    pipeline: wgpu::ComputePipeline,
    /// Rows of the index per dispatch; `None` uses the adapter's storage binding limit.
    pub max_rows_per_chunk: Option<usize>,
}

impl TopKKernel {
    /// Compiles the kernel; a shader or pipeline the device rejects is an error.
    pub async fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        Ok(Self {
            pipeline: compile(
                ctx,
                "topk_inner_product.wgsl",
                crate::shader("topk_inner_product.wgsl"),
            )
            .await?,
            max_rows_per_chunk: None,
        })
    }

    /// [`TopKKernel::new`], blocking the calling thread.
    #[cfg(not(target_family = "wasm"))]
    pub fn new_blocking(ctx: &GpuContext) -> Result<Self, GpuError> {
        pollster::block_on(Self::new(ctx))
    }

    /// The `k` best documents for each query, as `top_k_reference` returns them.
    ///
    /// `queries` is `[queries, dim]` and `documents` `[documents, dim]`, row-major; document
    /// ids are row numbers. Non-finite values, an empty index, k = 0 and k > [`MAX_K`] are
    /// errors. The documents are uploaded for this call; [`TopKKernel::search_resident`]
    /// searches an index already in GPU memory.
    pub async fn search(
        &self,
        ctx: &GpuContext,
        queries: &[f32],
        documents: &[f32],
        dim: usize,
        k: usize,
    ) -> Result<Vec<Vec<Hit>>, GpuError> {
        if k == 0 {
            return Err(realm_core::Error::ZeroK.into());
        }
        if k > MAX_K {
            return Err(GpuError::KTooLarge { k, max: MAX_K });
        }
        let shard = GpuShard::upload_f32(ctx, documents, dim, self.max_rows_per_chunk)?;
        self.search_resident(ctx, &shard, queries, k).await
    }

    /// [`TopKKernel::search`] over an f32 index in GPU memory.
    pub async fn search_resident(
        &self,
        ctx: &GpuContext,
        shard: &GpuShard,
        queries: &[f32],
        k: usize,
    ) -> Result<Vec<Vec<Hit>>, GpuError> {
        if k > MAX_K {
            return Err(GpuError::KTooLarge { k, max: MAX_K });
        }
        if shard.element != GpuElement::F32 {
            return Err(GpuError::Rejected(
                "the fused top-k kernel reads f32 rows; search int8 rows with TwoStageTopK".into(),
            ));
        }
        let dim = shard.dim;
        let n_queries = shard.check_queries(queries, k)?;
        let max_groups = ctx.device.limits().max_compute_workgroups_per_dimension as usize;
        if n_queries > max_groups {
            return Err(GpuError::TooManyQueries {
                queries: n_queries,
                max: max_groups,
            });
        }
        if n_queries == 0 {
            return Ok(Vec::new());
        }

        // Validation errors would otherwise leave zeros in the output, or panic natively.
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let queries_buffer = storage(ctx, "queries", bytemuck::cast_slice(queries));
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        let mut outs = Vec::with_capacity(shard.chunks.len());
        for chunk in &shard.chunks {
            let ChunkData::F32(docs) = &chunk.data else {
                unreachable!("an f32 shard holds f32 chunks")
            };
            let k_chunk = k.min(chunk.rows);
            let params = [
                chunk.rows as u32,
                dim as u32,
                n_queries as u32,
                k_chunk as u32,
                chunk.first_row as u32,
            ];
            let params = storage(ctx, "params", bytemuck::cast_slice(&params));
            let lists = ChunkLists::new(ctx, n_queries, k_chunk);
            dispatch(
                ctx,
                &mut encoder,
                &self.pipeline,
                &[&params, docs, &queries_buffer, &lists.ids, &lists.scores],
                (n_queries as u32, 1),
            );
            outs.push(lists);
        }
        let what = "topk_inner_product.wgsl";
        read_merged(ctx, encoder, &outs, (n_queries, k), what, scope).await
    }

    /// [`TopKKernel::search_resident`], blocking the calling thread.
    #[cfg(not(target_family = "wasm"))]
    pub fn search_resident_blocking(
        &self,
        ctx: &GpuContext,
        shard: &GpuShard,
        queries: &[f32],
        k: usize,
    ) -> Result<Vec<Vec<Hit>>, GpuError> {
        pollster::block_on(self.search_resident(ctx, shard, queries, k))
    }

    /// [`TopKKernel::search`], blocking the calling thread.
    #[cfg(not(target_family = "wasm"))]
    pub fn search_blocking(
        &self,
        ctx: &GpuContext,
        queries: &[f32],
        documents: &[f32],
        dim: usize,
        k: usize,
    ) -> Result<Vec<Vec<Hit>>, GpuError> {
        pollster::block_on(self.search(ctx, queries, documents, dim, k))
    }
}

const _: () = assert!(
    MAX_K * WORKGROUP == 2048,
    "the WGSL workgroup lists hold WG * MAX_K entries"
);
