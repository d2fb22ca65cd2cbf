//! Exact top-k for any k (REALM's 5,000-document fine-tuning beam) and for int8 indexes:
//! stage one writes every score of a query batch against a resident chunk
//! (`matmul_nt.wgsl` for f32 rows, `scores_int8.wgsl` for int8 rows), stage two selects each
//! query's k best from them (`select_topk.wgsl`); chunk lists merge on the CPU.
//! References: `realm_core::index::reference::top_k_reference` (f32) and
//! `realm_core::index::int8::top_k_int8_reference` (int8, bit for bit).

use realm_core::index::int8::quantize_query;
use realm_core::index::reference::Hit;

use crate::context::{GpuContext, GpuError, compile, dispatch, output, storage};
use crate::matmul::MatmulKernel;
use crate::resident::{ChunkData, ChunkLists, GpuShard, pack_int8, read_merged, words};

/// The compiled scoring and selection kernels.
pub struct TwoStageTopK {
    matmul: MatmulKernel,
    int8: wgpu::ComputePipeline,
    select: wgpu::ComputePipeline,
}

impl TwoStageTopK {
    pub async fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        Ok(Self {
            matmul: MatmulKernel::new(ctx).await?,
            int8: compile(ctx, "scores_int8.wgsl", crate::shader("scores_int8.wgsl")).await?,
            select: compile(ctx, "select_topk.wgsl", crate::shader("select_topk.wgsl")).await?,
        })
    }

    #[cfg(not(target_family = "wasm"))]
    pub fn new_blocking(ctx: &GpuContext) -> Result<Self, GpuError> {
        pollster::block_on(Self::new(ctx))
    }

    /// The `min(k, rows)` best rows of `shard` for each `[queries, dim]` query, in the
    /// project's hit order. Ids are rows of the shard.
    pub async fn search(
        &self,
        ctx: &GpuContext,
        shard: &GpuShard,
        queries: &[f32],
        k: usize,
    ) -> Result<Vec<Vec<Hit>>, GpuError> {
        let dim = shard.dim;
        let n_queries = shard.check_queries(queries, k)?;
        let largest_chunk = shard.chunks.iter().map(|c| c.rows).max().unwrap_or(1);
        let groups = ctx.device.limits().max_compute_workgroups_per_dimension as usize;
        // Queries per batch: every query's scores against the largest chunk fit one binding.
        let batch = ((ctx.max_binding() / (largest_chunk as u64 * 4)) as usize).clamp(1, groups);
        let mut results = Vec::with_capacity(n_queries);
        for batch_queries in queries.chunks(batch * dim) {
            results.extend(self.search_batch(ctx, shard, batch_queries, k).await?);
        }
        Ok(results)
    }

    async fn search_batch(
        &self,
        ctx: &GpuContext,
        shard: &GpuShard,
        queries: &[f32],
        k: usize,
    ) -> Result<Vec<Vec<Hit>>, GpuError> {
        let dim = shard.dim;
        let nq = queries.len() / dim;
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let query_buffers = match shard.element {
            crate::GpuElement::F32 => {
                (storage(ctx, "queries", bytemuck::cast_slice(queries)), None)
            }
            crate::GpuElement::Int8 => {
                let mut values = Vec::with_capacity(queries.len());
                let mut scales = Vec::with_capacity(nq);
                for q in queries.chunks_exact(dim) {
                    let (v, s) = quantize_query(q);
                    values.extend(v);
                    scales.push(s);
                }
                (
                    storage(
                        ctx,
                        "int8 queries",
                        bytemuck::cast_slice(&pack_int8(&values, dim)),
                    ),
                    Some(storage(ctx, "query scales", bytemuck::cast_slice(&scales))),
                )
            }
        };
        let largest_chunk = shard.chunks.iter().map(|c| c.rows).max().unwrap_or(1);
        let scores = output(ctx, "scores", (nq * largest_chunk * 4) as u64);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        let mut outs = Vec::with_capacity(shard.chunks.len());
        for chunk in &shard.chunks {
            let rows = chunk.rows;
            match &chunk.data {
                ChunkData::F32(docs) => self.matmul.record(
                    ctx,
                    &mut encoder,
                    (&query_buffers.0, docs, &scores),
                    (nq, rows, dim),
                )?,
                ChunkData::Int8 { values, scales } => {
                    let params = [nq as u32, rows as u32, words(dim) as u32];
                    let params = storage(ctx, "int8 params", bytemuck::cast_slice(&params));
                    let query_scales = query_buffers.1.as_ref().expect("int8 queries");
                    dispatch(
                        ctx,
                        &mut encoder,
                        &self.int8,
                        &[
                            &params,
                            values,
                            scales,
                            &query_buffers.0,
                            query_scales,
                            &scores,
                        ],
                        (rows.div_ceil(64) as u32, nq as u32),
                    );
                }
            }
            let k_chunk = k.min(rows);
            let params = [
                rows as u32,
                nq as u32,
                k_chunk as u32,
                chunk.first_row as u32,
            ];
            let params = storage(ctx, "select params", bytemuck::cast_slice(&params));
            let lists = ChunkLists::new(ctx, nq, k_chunk);
            dispatch(
                ctx,
                &mut encoder,
                &self.select,
                &[&params, &scores, &lists.ids, &lists.scores],
                (nq as u32, 1),
            );
            outs.push(lists);
        }
        read_merged(ctx, encoder, &outs, (nq, k), "the two-stage top-k", scope).await
    }

    #[cfg(not(target_family = "wasm"))]
    pub fn search_blocking(
        &self,
        ctx: &GpuContext,
        shard: &GpuShard,
        queries: &[f32],
        k: usize,
    ) -> Result<Vec<Vec<Hit>>, GpuError> {
        pollster::block_on(self.search(ctx, shard, queries, k))
    }
}
