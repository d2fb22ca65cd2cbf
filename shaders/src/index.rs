//! The WGSL top-k kernel behind `realm_core::mips::MipsIndex`, so retrieval code can hold it
//! as it holds the CPU index. Native only: the browser's WebGPU cannot block, and uses
//! `TopKKernel::search` directly.

use realm_core::Error;
use realm_core::mips::MipsIndex;
use realm_core::retrieval::{Hit, check_matrix};

use crate::{GpuContext, TopKKernel};

/// Exact search on the GPU over `[rows, dim]` vectors held by the index.
pub struct GpuIndex {
    ctx: GpuContext,
    kernel: TopKKernel,
    vectors: Vec<f32>,
    dim: usize,
}

impl GpuIndex {
    /// Indexes finite `[rows, dim]` vectors on the default adapter.
    pub fn new(vectors: Vec<f32>, dim: usize) -> Result<Self, crate::GpuError> {
        check_matrix(&vectors, dim, "the index")?;
        let ctx = GpuContext::new_blocking()?;
        let kernel = TopKKernel::new_blocking(&ctx)?;
        Ok(Self {
            ctx,
            kernel,
            vectors,
            dim,
        })
    }

    /// The adapter the searches run on.
    pub fn describe(&self) -> String {
        self.ctx.describe()
    }
}

impl MipsIndex for GpuIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.vectors.len() / self.dim
    }

    fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>, Error> {
        self.kernel
            .search_blocking(&self.ctx, queries, &self.vectors, self.dim, k)
            .map_err(|e| match e {
                crate::GpuError::Input(inner) => inner,
                other => Error::Backend(other.to_string()),
            })
    }
}
