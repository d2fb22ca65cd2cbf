//! The int8 index's fast path on CPUs with AVX-512 VNNI: integer dot products with
//! `vpdpbusd` (64 multiply-adds per instruction), sixteen rows per register and no horizontal
//! sums. Scores are computed exactly as `quantized::top_k_int8_reference` computes them, so
//! the hits are the same bit for bit; the tests compare the two on random inputs.
//!
//! Layout: rows in blocks of 16; inside a block, for every group of four dimensions, the
//! sixteen rows' four bytes side by side (64 bytes, one register). `vpdpbusd` multiplies
//! unsigned by signed bytes, so queries are shifted by +128 and the shift is taken back with
//! each row's byte sum: q.d = (q + 128).d - 128 * sum(d).

use std::arch::x86_64::*;

use crate::mips::TopK;
use crate::retrieval::Hit;

const LANES: usize = 16;
/// Queries scored against each loaded block.
const QUERY_GROUP: usize = 4;

/// Rows of an int8 index in the VNNI layout.
pub struct VnniRows {
    groups: usize,
    blocks: Vec<u8>,
    row_sums: Vec<i32>,
    rows: usize,
}

/// Whether this CPU runs the VNNI path.
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

impl VnniRows {
    /// Re-lays `[rows, dim]` int8 values out in blocks of 16 rows.
    pub fn new(values: &[i8], dim: usize) -> Self {
        let rows = values.len() / dim;
        let groups = dim.div_ceil(4);
        let n_blocks = rows.div_ceil(LANES);
        let mut blocks = vec![0u8; n_blocks * groups * 64];
        let mut row_sums = vec![0i32; rows];
        for (r, row) in values.chunks_exact(dim).enumerate() {
            let (b, lane) = (r / LANES, r % LANES);
            for (j, &v) in row.iter().enumerate() {
                blocks[(b * groups + j / 4) * 64 + lane * 4 + j % 4] = v as u8;
            }
            row_sums[r] = row.iter().map(|&v| v as i32).sum();
        }
        Self {
            groups,
            blocks,
            row_sums,
            rows,
        }
    }

    pub fn blocks(&self) -> usize {
        self.rows.div_ceil(LANES)
    }

    /// The best `k` rows of blocks `first..last` for each quantised query.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512 VNNI ([`available`]).
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn search(
        &self,
        queries: &[(Vec<i8>, f32)],
        scales: &[f32],
        (first, last): (usize, usize),
        k: usize,
    ) -> Vec<Vec<Hit>> {
        let mut tops: Vec<TopK> = queries.iter().map(|_| TopK::new(k)).collect();
        // Each query's groups of four bytes, shifted to unsigned, as one u32 per group.
        let shifted: Vec<Vec<i32>> = queries
            .iter()
            .map(|(q, _)| {
                (0..self.groups)
                    .map(|g| {
                        let byte =
                            |j: usize| q.get(4 * g + j).map_or(128u8, |&v| (v as i32 + 128) as u8);
                        i32::from_le_bytes([byte(0), byte(1), byte(2), byte(3)])
                    })
                    .collect()
            })
            .collect();
        let mut dots = [0i32; LANES];
        let mut scores = [0f32; LANES];
        for start in (0..queries.len()).step_by(QUERY_GROUP) {
            let end = (start + QUERY_GROUP).min(queries.len());
            let (shifted_group, query_group) = (&shifted[start..end], &queries[start..end]);
            let group_tops = &mut tops[start..end];
            for b in first..last {
                let base = b * self.groups * 64;
                let mut acc = [_mm512_setzero_si512(); QUERY_GROUP];
                for g in 0..self.groups {
                    // SAFETY: base + g * 64 + 64 <= blocks.len() for every block below last.
                    let rows = unsafe {
                        _mm512_loadu_si512(self.blocks.as_ptr().add(base + g * 64) as *const _)
                    };
                    for (a, s) in acc.iter_mut().zip(shifted_group) {
                        *a = _mm512_dpbusd_epi32(*a, _mm512_set1_epi32(s[g]), rows);
                    }
                }
                let first_row = b * LANES;
                let lanes = LANES.min(self.rows - first_row);
                let sums = &self.row_sums[first_row..first_row + lanes];
                let row_scales = &scales[first_row..first_row + lanes];
                for ((a, (_, query_scale)), top) in
                    acc.iter().zip(query_group).zip(group_tops.iter_mut())
                {
                    // SAFETY: dots holds 16 i32s.
                    unsafe { _mm512_storeu_si512(dots.as_mut_ptr() as *mut _, *a) };
                    for l in 0..lanes {
                        let dot = dots[l] - 128 * sums[l];
                        scores[l] = dot as f32 * (query_scale * row_scales[l]);
                    }
                    let floor = top.floor();
                    for l in 0..lanes {
                        if scores[l] >= floor {
                            top.offer((first_row + l) as u32, scores[l]);
                        }
                    }
                }
            }
        }
        tops.into_iter().map(TopK::into_sorted).collect()
    }
}
