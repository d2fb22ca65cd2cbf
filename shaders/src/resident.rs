//! An index held in GPU buffers: uploaded once, in chunks that each fit one storage binding,
//! and searched by every kernel without crossing the bus again.

use realm_core::index::int8::{check_int8_rows, quantize_rows};
use realm_core::index::reference::{Hit, check_matrix, hit_order};

use crate::context::{GpuContext, GpuError, output, storage};

/// How a resident chunk stores its rows.
pub(crate) enum ChunkData {
    /// f32 `[rows, dim]`.
    F32(wgpu::Buffer),
    /// int8 rows packed four to a u32 (`words` per row), and one f32 scale per row.
    Int8 {
        values: wgpu::Buffer,
        scales: wgpu::Buffer,
    },
}

pub(crate) struct Chunk {
    pub first_row: usize,
    pub rows: usize,
    pub data: ChunkData,
}

/// The element type of a resident index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuElement {
    F32,
    Int8,
}

/// Rows of an index in GPU memory.
pub struct GpuShard {
    pub(crate) dim: usize,
    pub(crate) rows: usize,
    pub(crate) element: GpuElement,
    pub(crate) chunks: Vec<Chunk>,
}

/// u32 words per int8 row of width `dim`.
pub(crate) fn words(dim: usize) -> usize {
    dim.div_ceil(4)
}

/// Packs int8 rows of width `dim` four to a u32, lowest byte first, zero-padding each row.
pub(crate) fn pack_int8(values: &[i8], dim: usize) -> Vec<u32> {
    let w = words(dim);
    let mut out = vec![0u32; values.len() / dim * w];
    for (r, row) in values.chunks_exact(dim).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            out[r * w + j / 4] |= (v as u8 as u32) << (8 * (j % 4));
        }
    }
    out
}

impl GpuShard {
    /// Uploads finite f32 `[rows, dim]` vectors, at most `chunk_rows` rows per chunk
    /// (`None`: as many as one storage binding and one dispatch allow).
    pub fn upload_f32(
        ctx: &GpuContext,
        vectors: &[f32],
        dim: usize,
        chunk_rows: Option<usize>,
    ) -> Result<Self, GpuError> {
        let rows = check_matrix(vectors, dim, "the index")?;
        if rows == 0 {
            return Err(realm_core::Error::EmptyCorpus.into());
        }
        let per_chunk = Self::rows_per_chunk(ctx, (dim * 4) as u64, chunk_rows)?;
        let chunks = vectors
            .chunks(per_chunk * dim)
            .enumerate()
            .map(|(i, c)| Chunk {
                first_row: i * per_chunk,
                rows: c.len() / dim,
                data: ChunkData::F32(storage(ctx, "index rows", bytemuck::cast_slice(c))),
            })
            .collect();
        Ok(Self {
            dim,
            rows,
            element: GpuElement::F32,
            chunks,
        })
    }

    /// Quantises and uploads finite f32 vectors as int8 rows with one scale each.
    pub fn upload_int8_from_f32(
        ctx: &GpuContext,
        vectors: &[f32],
        dim: usize,
        chunk_rows: Option<usize>,
    ) -> Result<Self, GpuError> {
        let (values, scales) = quantize_rows(vectors, dim)?;
        Self::upload_int8(ctx, &values, &scales, dim, chunk_rows)
    }

    /// Uploads int8 rows (`[rows, dim]` values, one scale per row), as an int8 shard holds.
    pub fn upload_int8(
        ctx: &GpuContext,
        values: &[i8],
        scales: &[f32],
        dim: usize,
        chunk_rows: Option<usize>,
    ) -> Result<Self, GpuError> {
        let rows = scales.len();
        check_int8_rows(values.len(), scales, dim)?;
        if rows == 0 {
            return Err(realm_core::Error::EmptyCorpus.into());
        }
        let w = words(dim);
        let per_chunk = Self::rows_per_chunk(ctx, (w * 4) as u64, chunk_rows)?;
        let packed = pack_int8(values, dim);
        let chunks = packed
            .chunks(per_chunk * w)
            .zip(scales.chunks(per_chunk))
            .enumerate()
            .map(|(i, (v, s))| Chunk {
                first_row: i * per_chunk,
                rows: s.len(),
                data: ChunkData::Int8 {
                    values: storage(ctx, "int8 rows", bytemuck::cast_slice(v)),
                    scales: storage(ctx, "int8 scales", bytemuck::cast_slice(s)),
                },
            })
            .collect();
        Ok(Self {
            dim,
            rows,
            element: GpuElement::Int8,
            chunks,
        })
    }

    fn rows_per_chunk(
        ctx: &GpuContext,
        row_bytes: u64,
        asked: Option<usize>,
    ) -> Result<usize, GpuError> {
        let fit = (ctx.max_binding() / row_bytes) as usize;
        if fit == 0 {
            return Err(GpuError::RowTooLarge { bytes: row_bytes });
        }
        // The matmul kernel launches one workgroup per 16 rows in x.
        let groups = ctx.device.limits().max_compute_workgroups_per_dimension as usize;
        Ok(asked.unwrap_or(fit).clamp(1, fit.min(groups * 16)))
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn element(&self) -> GpuElement {
        self.element
    }

    /// Number of chunks the rows were split into.
    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }
}

impl GpuShard {
    /// Checks a `[queries, dim]` batch against this shard: k >= 1, the width, finite values.
    /// Returns the number of queries.
    pub(crate) fn check_queries(&self, queries: &[f32], k: usize) -> Result<usize, GpuError> {
        if k == 0 {
            return Err(realm_core::Error::ZeroK.into());
        }
        if !queries.len().is_multiple_of(self.dim) {
            return Err(realm_core::Error::DimensionMismatch {
                query: queries.len(),
                index: self.dim,
            }
            .into());
        }
        Ok(check_matrix(queries, self.dim, "the queries")?)
    }
}

/// One chunk's per-query top-k lists on the device: `n_queries * k_chunk` ids and scores.
pub(crate) struct ChunkLists {
    pub ids: wgpu::Buffer,
    pub scores: wgpu::Buffer,
    bytes: u64,
    k_chunk: usize,
}

impl ChunkLists {
    pub fn new(ctx: &GpuContext, n_queries: usize, k_chunk: usize) -> Self {
        let bytes = (n_queries * k_chunk * 4) as u64;
        Self {
            ids: output(ctx, "top-k ids", bytes),
            scores: output(ctx, "top-k scores", bytes),
            bytes,
            k_chunk,
        }
    }
}

/// Submits `encoder`, reads every chunk's lists back and merges them into one top-k list per
/// query, in the project's hit order. Ids of `u32::MAX` mark empty slots.
pub(crate) async fn read_merged(
    ctx: &GpuContext,
    encoder: wgpu::CommandEncoder,
    lists: &[ChunkLists],
    (n_queries, k): (usize, usize),
    what: &str,
    scope: wgpu::ErrorScopeGuard,
) -> Result<Vec<Vec<Hit>>, GpuError> {
    let reads: Vec<(&wgpu::Buffer, u64)> = lists
        .iter()
        .flat_map(|l| [(&l.ids, l.bytes), (&l.scores, l.bytes)])
        .collect();
    let data = ctx.submit_and_read(encoder, &reads, what, scope).await?;
    let mut results = vec![Vec::new(); n_queries];
    for (c, list) in lists.iter().enumerate() {
        let ids: Vec<u32> = bytemuck::pod_collect_to_vec(&data[2 * c]);
        let scores: Vec<f32> = bytemuck::pod_collect_to_vec(&data[2 * c + 1]);
        for (q, hits) in results.iter_mut().enumerate() {
            let range = q * list.k_chunk..(q + 1) * list.k_chunk;
            hits.extend(
                ids[range.clone()]
                    .iter()
                    .zip(&scores[range])
                    .filter(|(id, _)| **id != u32::MAX)
                    .map(|(&id, &score)| Hit { id, score }),
            );
        }
    }
    for hits in &mut results {
        hits.sort_by(hit_order);
        hits.truncate(k);
    }
    Ok(results)
}
