//! The int8 index's fast path on CPUs with AVX-512 VNNI: integer dot products with
//! `vpdpbusd` (64 multiply-adds per instruction), sixteen rows per register and no horizontal
//! sums. Scores are computed exactly as `int8::top_k_int8_reference` computes them, so
//! the hits are the same bit for bit; the tests compare the two on random inputs.
//!
//! Layout: rows in blocks of 16; inside a block, for every group of four dimensions, the
//! sixteen rows' four bytes side by side (64 bytes, one register). `vpdpbusd` multiplies
//! unsigned by signed bytes, so rows are stored shifted by +128 and the shift is taken back
//! with one number per query: q.d = q.(d + 128) - 128 * sum(q). The query stays the signed
//! operand, read straight from memory as a broadcast.
//!
//! Like a matrix product, the scan is tiled: a tile of blocks small enough to stay in L2 is
//! scored against every query, eight queries at a time (eight accumulators in registers, one
//! load of the rows for all eight), before the next tile is read.

use std::arch::x86_64::*;

use crate::index::reference::Hit;
use crate::index::topk::TopK;

pub(crate) const LANES: usize = 16;
/// Queries scored against each loaded row register.
const QUERY_GROUP: usize = 8;
/// Bytes of blocks scored for every query before the next tile is read (well inside L2).
const TILE_BYTES: usize = 256 * 1024;

/// Rows of an int8 index in the VNNI layout.
pub struct VnniRows {
    groups: usize,
    blocks: Vec<u8>,
    rows: usize,
}

/// Whether this CPU runs the VNNI path.
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

/// The quantised queries of one search, packed for broadcasting.
struct Packed<'a> {
    /// Each query's groups of four signed bytes as one i32 (zero past the dimension).
    words: Vec<i32>,
    /// 128 * sum(q) per query.
    corrections: Vec<i32>,
    queries: &'a [(Vec<i8>, f32)],
}

impl VnniRows {
    /// Re-lays `[rows, dim]` int8 values out in blocks of 16 rows, shifted to unsigned.
    pub fn new(values: &[i8], dim: usize) -> Self {
        let rows = values.len() / dim;
        let groups = dim.div_ceil(4);
        let n_blocks = rows.div_ceil(LANES);
        // Padding (dimensions past `dim`, rows past the end) meets zero query bytes or a
        // masked lane, so its value never counts.
        let mut blocks = vec![128u8; n_blocks * groups * 64];
        for (r, row) in values.chunks_exact(dim).enumerate() {
            let (b, lane) = (r / LANES, r % LANES);
            for (j, &v) in row.iter().enumerate() {
                blocks[(b * groups + j / 4) * 64 + lane * 4 + j % 4] = (v as i32 + 128) as u8;
            }
        }
        Self {
            groups,
            blocks,
            rows,
        }
    }

    pub fn blocks(&self) -> usize {
        self.rows.div_ceil(LANES)
    }

    fn pack<'a>(&self, queries: &'a [(Vec<i8>, f32)]) -> Packed<'a> {
        let mut words = Vec::with_capacity(queries.len() * self.groups);
        for (q, _) in queries {
            for g in 0..self.groups {
                let byte = |j: usize| q.get(4 * g + j).map_or(0u8, |&v| v as u8);
                words.push(i32::from_le_bytes([byte(0), byte(1), byte(2), byte(3)]));
            }
        }
        let corrections = queries
            .iter()
            .map(|(q, _)| 128 * q.iter().map(|&v| v as i32).sum::<i32>())
            .collect();
        Packed {
            words,
            corrections,
            queries,
        }
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
        let packed = self.pack(queries);
        let tile = (TILE_BYTES / (self.groups * 64)).max(1);
        for tile_first in (first..last).step_by(tile) {
            let blocks = (tile_first, (tile_first + tile).min(last));
            let mut start = 0;
            while start < queries.len() {
                // SAFETY (all four): the caller guarantees the CPU features; `start + G` never
                // passes the number of queries, so every query index below is in range.
                start += match queries.len() - start {
                    n if n >= QUERY_GROUP => unsafe {
                        self.score_group::<QUERY_GROUP>(&packed, start, scales, blocks, &mut tops)
                    },
                    4..=7 => unsafe {
                        self.score_group::<4>(&packed, start, scales, blocks, &mut tops)
                    },
                    2 | 3 => unsafe {
                        self.score_group::<2>(&packed, start, scales, blocks, &mut tops)
                    },
                    _ => unsafe {
                        self.score_group::<1>(&packed, start, scales, blocks, &mut tops)
                    },
                };
            }
        }
        tops.into_iter().map(TopK::into_sorted).collect()
    }

    /// Scores queries `start..start + G` against blocks `first..last`, offering every row
    /// that reaches a query's floor; returns `G`.
    ///
    /// # Safety
    /// AVX-512F and AVX-512 VNNI; `start + G <= packed.queries.len()`; `last <= blocks()`.
    #[target_feature(enable = "avx512f,avx512vnni")]
    unsafe fn score_group<const G: usize>(
        &self,
        packed: &Packed,
        start: usize,
        scales: &[f32],
        (first, last): (usize, usize),
        tops: &mut [TopK],
    ) -> usize {
        let groups = self.groups;
        let words = &packed.words[start * groups..(start + G) * groups];
        let mut corrections = [_mm512_setzero_si512(); G];
        let mut query_scales = [_mm512_setzero_ps(); G];
        for i in 0..G {
            corrections[i] = _mm512_set1_epi32(packed.corrections[start + i]);
            query_scales[i] = _mm512_set1_ps(packed.queries[start + i].1);
        }
        let tops = &mut tops[start..start + G];
        let mut scores = [0f32; LANES];
        for b in first..last {
            // SAFETY: block b < blocks() spans groups * 64 bytes of `self.blocks`.
            let base = unsafe { self.blocks.as_ptr().add(b * groups * 64) };
            let mut acc = [_mm512_setzero_si512(); G];
            for g in 0..groups {
                // SAFETY: g < groups, inside block b; words holds G * groups entries.
                let rows = unsafe { _mm512_loadu_si512(base.add(g * 64) as *const _) };
                for (i, a) in acc.iter_mut().enumerate() {
                    let word = unsafe { *words.get_unchecked(i * groups + g) };
                    *a = _mm512_dpbusd_epi32(*a, rows, _mm512_set1_epi32(word));
                }
            }
            let first_row = b * LANES;
            let lanes = LANES.min(self.rows - first_row);
            let live: __mmask16 = if lanes == LANES {
                !0
            } else {
                (1u16 << lanes) - 1
            };
            // SAFETY: the masked load reads only the `lanes` rows that exist.
            let row_scales = unsafe { _mm512_maskz_loadu_ps(live, scales.as_ptr().add(first_row)) };
            for i in 0..G {
                // The reference's expression lane by lane: f32(dot) * (s_q * s_z).
                let dot = _mm512_sub_epi32(acc[i], corrections[i]);
                let scale = _mm512_mul_ps(query_scales[i], row_scales);
                let score = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), scale);
                let top = &mut tops[i];
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
        G
    }
}
