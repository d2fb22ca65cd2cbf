//! The WGSL kernels behind `realm_core::index::exact::MipsIndex`, so retrieval code holds a GPU index
//! as it holds a CPU one. The rows stay in GPU memory; k <= 32 over f32 rows runs the fused
//! kernel, larger k and int8 rows the two-stage one. Native only: the browser's WebGPU
//! cannot block, and calls the kernels' async `search` directly.

use realm_core::Error;
use realm_core::index::exact::MipsIndex;
use realm_core::index::reference::Hit;

use crate::{GpuContext, GpuElement, GpuError, GpuShard, MAX_K, TopKKernel, TwoStageTopK};

/// Exact search on the GPU over rows held in GPU memory (f32, or int8 with scales).
pub struct GpuIndex {
    ctx: GpuContext,
    fused: TopKKernel,
    two_stage: TwoStageTopK,
    shard: GpuShard,
}

impl GpuIndex {
    /// Uploads finite f32 `[rows, dim]` vectors to the default adapter.
    pub fn new(vectors: Vec<f32>, dim: usize) -> Result<Self, GpuError> {
        Self::with(|ctx| GpuShard::upload_f32(ctx, &vectors, dim, None))
    }

    /// Quantises `[rows, dim]` vectors to int8 and uploads them.
    pub fn new_int8(vectors: &[f32], dim: usize) -> Result<Self, GpuError> {
        Self::with(|ctx| GpuShard::upload_int8_from_f32(ctx, vectors, dim, None))
    }

    /// Uploads int8 rows and their scales, as an int8 shard file holds them.
    pub fn from_int8(values: &[i8], scales: &[f32], dim: usize) -> Result<Self, GpuError> {
        Self::with(|ctx| GpuShard::upload_int8(ctx, values, scales, dim, None))
    }

    fn with(
        upload: impl FnOnce(&GpuContext) -> Result<GpuShard, GpuError>,
    ) -> Result<Self, GpuError> {
        let ctx = GpuContext::new_blocking()?;
        let fused = TopKKernel::new_blocking(&ctx)?;
        let two_stage = TwoStageTopK::new_blocking(&ctx)?;
        let shard = upload(&ctx)?;
        Ok(Self {
            ctx,
            fused,
            two_stage,
            shard,
        })
    }

    /// The adapter the searches run on.
    pub fn describe(&self) -> String {
        self.ctx.describe()
    }

    pub fn element(&self) -> GpuElement {
        self.shard.element()
    }
}

impl MipsIndex for GpuIndex {
    fn dim(&self) -> usize {
        self.shard.dim()
    }

    fn len(&self) -> usize {
        self.shard.rows()
    }

    fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>, Error> {
        let result = if k <= MAX_K && self.shard.element() == GpuElement::F32 {
            self.fused
                .search_resident_blocking(&self.ctx, &self.shard, queries, k)
        } else {
            self.two_stage
                .search_blocking(&self.ctx, &self.shard, queries, k)
        };
        result.map_err(|e| match e {
            GpuError::Input(inner) => inner,
            other => Error::Backend(other.to_string()),
        })
    }
}
