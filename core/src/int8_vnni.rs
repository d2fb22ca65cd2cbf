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
                let live: __mmask16 = if lanes == LANES {
                    !0
                } else {
                    (1u16 << lanes) - 1
                };
                // SAFETY: masked loads read only the `lanes` rows that exist.
                let (sums, row_scales) = unsafe {
                    (
                        _mm512_maskz_loadu_epi32(live, self.row_sums.as_ptr().add(first_row)),
                        _mm512_maskz_loadu_ps(live, scales.as_ptr().add(first_row)),
                    )
                };
                let correction = _mm512_slli_epi32::<7>(sums); // 128 * sum(d)
                for ((a, (_, query_scale)), top) in
                    acc.iter().zip(query_group).zip(group_tops.iter_mut())
                {
                    // The reference's expression lane by lane: f32(dot) * (s_q * s_z).
                    let dot = _mm512_sub_epi32(*a, correction);
                    let scale = _mm512_mul_ps(_mm512_set1_ps(*query_scale), row_scales);
                    let score = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), scale);
                    let mut hits =
                        live & _mm512_cmp_ps_mask::<_CMP_GE_OQ>(score, _mm512_set1_ps(top.floor()));
                    if hits == 0 {
                        continue;
                    }
                    // SAFETY: scores holds 16 f32s.
                    unsafe { _mm512_storeu_ps(scores.as_mut_ptr(), score) };
                    while hits != 0 {
                        let l = hits.trailing_zeros() as usize;
                        top.offer((first_row + l) as u32, scores[l]);
                        hits &= hits - 1;
                    }
                }
            }
        }
        tops.into_iter().map(TopK::into_sorted).collect()
    }
}
