//! Launches `topk_inner_product.wgsl`: exact top-k by inner product for a batch of queries,
//! splitting an index larger than one storage binding into chunks and merging their lists.
//! The CPU reference it must agree with is `realm_core::retrieval::top_k_reference`.

use realm_core::retrieval::{Hit, check_matrix, hit_order};
use wgpu::util::DeviceExt;

use crate::context::{GpuContext, GpuError};

/// The largest k the kernel keeps per query (its private lists hold this many entries).
pub const MAX_K: usize = 32;
/// Invocations per workgroup, as in the WGSL source.
const WORKGROUP: usize = 64;
const NO_ID: u32 = u32::MAX;

/// The compiled top-k pipeline for one device.
pub struct TopKKernel {
    pipeline: wgpu::ComputePipeline,
    /// Rows of the index per dispatch; `None` uses the adapter's storage binding limit.
    pub max_rows_per_chunk: Option<usize>,
}

impl TopKKernel {
    /// Compiles the kernel; a shader or pipeline the device rejects is an error.
    pub async fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = ctx
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("topk_inner_product"),
                source: wgpu::ShaderSource::Wgsl(crate::SHADERS[0].1.into()),
            });
        let pipeline = ctx
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("topk_inner_product"),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(error) = scope.pop().await {
            return Err(GpuError::Rejected(format!(
                "compiling topk_inner_product.wgsl: {error}"
            )));
        }
        Ok(Self {
            pipeline,
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
    /// errors.
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
        let n_docs = check_matrix(documents, dim, "the index")?;
        if n_docs == 0 {
            return Err(realm_core::Error::EmptyCorpus.into());
        }
        let n_queries = check_matrix(queries, dim, "the queries")?;
        let limits = ctx.device.limits();
        let max_groups = limits.max_compute_workgroups_per_dimension as usize;
        if n_queries > max_groups {
            return Err(GpuError::TooManyQueries {
                queries: n_queries,
                max: max_groups,
            });
        }
        if n_queries == 0 {
            return Ok(Vec::new());
        }
        let row_bytes = (dim * 4) as u64;
        let binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let rows_fit = (binding / row_bytes) as usize;
        if rows_fit == 0 {
            return Err(GpuError::RowTooLarge { bytes: row_bytes });
        }
        let chunk_rows = self
            .max_rows_per_chunk
            .unwrap_or(rows_fit)
            .clamp(1, rows_fit);

        // Validation errors would otherwise leave zeros in the output, or panic natively.
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let queries_buffer = storage(ctx, "queries", bytemuck::cast_slice(queries));
        let k_chunk = k.min(chunk_rows);
        let out_len = (n_queries * k_chunk) as u64 * 4;
        let chunks: Vec<(usize, &[f32])> = documents
            .chunks(chunk_rows * dim)
            .enumerate()
            .map(|(i, c)| (i * chunk_rows, c))
            .collect();
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("topk staging"),
            size: out_len * 2 * chunks.len() as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        // Buffers must outlive the submission; keep them until the map completes.
        let mut keep = Vec::new();
        for (index, &(first_row, chunk)) in chunks.iter().enumerate() {
            let rows = chunk.len() / dim;
            let params = [
                rows as u32,
                dim as u32,
                n_queries as u32,
                k_chunk as u32,
                first_row as u32,
            ];
            let params = storage(ctx, "params", bytemuck::cast_slice(&params));
            let docs = storage(ctx, "docs", bytemuck::cast_slice(chunk));
            let out = |label| {
                ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: out_len,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                })
            };
            let (out_ids, out_scores) = (out("out_ids"), out("out_scores"));
            let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("topk"),
                layout: &self.pipeline.get_bind_group_layout(0),
                entries: &[&params, &docs, &queries_buffer, &out_ids, &out_scores]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| wgpu::BindGroupEntry {
                        binding: i as u32,
                        resource: b.as_entire_binding(),
                    })
                    .collect::<Vec<_>>(),
            });
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&self.pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(n_queries as u32, 1, 1);
            }
            let at = out_len * 2 * index as u64;
            encoder.copy_buffer_to_buffer(&out_ids, 0, &staging, at, out_len);
            encoder.copy_buffer_to_buffer(&out_scores, 0, &staging, at + out_len, out_len);
            keep.push((params, docs, out_ids, out_scores));
        }
        ctx.queue.submit([encoder.finish()]);
        if let Some(error) = scope.pop().await {
            return Err(GpuError::Rejected(format!(
                "running topk_inner_product.wgsl: {error}"
            )));
        }

        let slice = staging.slice(..);
        ctx.map_read(slice).await?;
        let bytes = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .to_vec();
        staging.unmap();
        drop(keep);

        let words: &[u32] = bytemuck::cast_slice(&bytes);
        let per_list = n_queries * k_chunk;
        let mut results = vec![Vec::with_capacity(k_chunk * chunks.len()); n_queries];
        for chunk in words.chunks_exact(2 * per_list) {
            let (ids, scores) = chunk.split_at(per_list);
            for (q, hits) in results.iter_mut().enumerate() {
                for i in q * k_chunk..(q + 1) * k_chunk {
                    if ids[i] != NO_ID {
                        hits.push(Hit {
                            id: ids[i],
                            score: f32::from_bits(scores[i]),
                        });
                    }
                }
            }
        }
        for hits in &mut results {
            hits.sort_by(hit_order);
            hits.truncate(k);
        }
        Ok(results)
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

fn storage(ctx: &GpuContext, label: &str, contents: &[u8]) -> wgpu::Buffer {
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE,
        })
}

const _: () = assert!(
    MAX_K * WORKGROUP == 2048,
    "the WGSL workgroup lists hold WG * MAX_K entries"
);
