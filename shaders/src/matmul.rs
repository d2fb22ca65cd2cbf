//! Launches `matmul_nt.wgsl`: C = A . B^T on the GPU, the relevance scores of a query batch
//! against index rows. The CPU reference is `realm_core::index::reference::scores_reference`.

use crate::context::{GpuContext, GpuError, compile, dispatch, output, storage};

/// Tile edge of the WGSL kernel.
const TILE: usize = 16;

/// The compiled tiled matmul.
pub struct MatmulKernel {
    pipeline: wgpu::ComputePipeline,
}

impl MatmulKernel {
    pub async fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        Ok(Self {
            pipeline: compile(ctx, "matmul_nt.wgsl", crate::shader("matmul_nt.wgsl")).await?,
        })
    }

    /// Records `c [m, n] = a [m, kd] . b [n, kd]^T` on device buffers into `encoder`.
    pub(crate) fn record(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        (a, b, c): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
        (m, n, kd): (usize, usize, usize),
    ) -> Result<(), GpuError> {
        let groups = ctx.device.limits().max_compute_workgroups_per_dimension as usize;
        let (gx, gy) = (n.div_ceil(TILE), m.div_ceil(TILE));
        if gx > groups || gy > groups {
            return Err(GpuError::TooManyQueries {
                queries: m.max(n),
                max: groups * TILE,
            });
        }
        let params = storage(
            ctx,
            "matmul params",
            bytemuck::cast_slice(&[m as u32, n as u32, kd as u32]),
        );
        dispatch(
            ctx,
            encoder,
            &self.pipeline,
            &[&params, a, b, c],
            (gx as u32, gy as u32),
        );
        Ok(())
    }

    /// `a [m, kd] . b [n, kd]^T` as a row-major `[m, n]` vector.
    pub async fn multiply(
        &self,
        ctx: &GpuContext,
        a: &[f32],
        b: &[f32],
        (m, n, kd): (usize, usize, usize),
    ) -> Result<Vec<f32>, GpuError> {
        if a.len() != m * kd || b.len() != n * kd {
            return Err(realm_core::Error::EmbeddingLength {
                len: if a.len() != m * kd { a.len() } else { b.len() },
                dim: kd,
            }
            .into());
        }
        let bytes = (m * n * 4) as u64;
        if bytes > ctx.max_binding() || (m * kd * 4) as u64 > ctx.max_binding() {
            return Err(GpuError::RowTooLarge { bytes });
        }
        if m == 0 || n == 0 {
            return Ok(vec![0.0; m * n]);
        }
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let (a_buf, b_buf) = (
            storage(ctx, "a", bytemuck::cast_slice(a)),
            storage(ctx, "b", bytemuck::cast_slice(b)),
        );
        let c_buf = output(ctx, "c", bytes);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        self.record(ctx, &mut encoder, (&a_buf, &b_buf, &c_buf), (m, n, kd))?;
        let out = ctx
            .submit_and_read(encoder, &[(&c_buf, bytes)], "matmul_nt.wgsl", scope)
            .await?;
        Ok(bytemuck::pod_collect_to_vec(&out[0]))
    }

    #[cfg(not(target_family = "wasm"))]
    pub fn new_blocking(ctx: &GpuContext) -> Result<Self, GpuError> {
        pollster::block_on(Self::new(ctx))
    }

    #[cfg(not(target_family = "wasm"))]
    pub fn multiply_blocking(
        &self,
        ctx: &GpuContext,
        a: &[f32],
        b: &[f32],
        shape: (usize, usize, usize),
    ) -> Result<Vec<f32>, GpuError> {
        pollster::block_on(self.multiply(ctx, a, b, shape))
    }
}
