//! The one-query exact scan for the widths retrieval uses (64, 128, 256 dimensions) on CPUs
//! with AVX-512: the query stays in registers for the whole scan, each row is two chains of
//! fused multiply-adds straight from memory, and rows pass their score to the heap only when
//! it reaches the heap's floor. The generic scan reloads the query for every row and sums
//! one chain; on a cache-resident index (12,100 x 128 f32 is 6 MB) that chain, not memory,
//! was the limit. Tested against `reference::top_k_reference` with the other scans.

use std::arch::x86_64::*;

use crate::index::reference::Hit;
use crate::index::topk::TopK;

/// Whether [`scan`] takes `dim`-wide rows on this CPU.
pub fn supports(dim: usize) -> bool {
    matches!(dim, 64 | 128 | 256) && std::arch::is_x86_feature_detected!("avx512f")
}

/// The best `k` of rows `first..first + block.len() / dim` for every query.
///
/// # Safety
/// [`supports`] must have returned true for `dim`.
#[target_feature(enable = "avx512f")]
pub unsafe fn scan(q: &[f32], block: &[f32], first: usize, dim: usize, k: usize) -> Vec<Vec<Hit>> {
    // SAFETY (all three): AVX-512F per the caller; each width matches its chunk count.
    match dim {
        64 => unsafe { scan_chunks::<4>(q, block, first, k) },
        128 => unsafe { scan_chunks::<8>(q, block, first, k) },
        _ => unsafe { scan_chunks::<16>(q, block, first, k) },
    }
}

/// Rows of `C` sixteen-lane chunks (`C` even).
#[target_feature(enable = "avx512f")]
unsafe fn scan_chunks<const C: usize>(
    queries: &[f32],
    block: &[f32],
    first: usize,
    k: usize,
) -> Vec<Vec<Hit>> {
    let dim = C * 16;
    let rows = block.len() / dim;
    let mut out = Vec::with_capacity(queries.len() / dim);
    for query in queries.chunks_exact(dim) {
        let mut q = [_mm512_setzero_ps(); C];
        for (c, lanes) in q.iter_mut().enumerate() {
            // SAFETY: 16 * c + 16 <= dim = query.len().
            *lanes = unsafe { _mm512_loadu_ps(query.as_ptr().add(16 * c)) };
        }
        let mut top = TopK::new(k);
        for r in 0..rows {
            // SAFETY: row r spans block[r * dim..(r + 1) * dim], inside the block.
            let score = unsafe {
                let row = block.as_ptr().add(r * dim);
                let mut even = _mm512_mul_ps(q[0], _mm512_loadu_ps(row));
                let mut odd = _mm512_mul_ps(q[1], _mm512_loadu_ps(row.add(16)));
                let mut c = 2;
                while c < C {
                    even = _mm512_fmadd_ps(q[c], _mm512_loadu_ps(row.add(16 * c)), even);
                    odd = _mm512_fmadd_ps(q[c + 1], _mm512_loadu_ps(row.add(16 * c + 16)), odd);
                    c += 2;
                }
                _mm512_reduce_add_ps(_mm512_add_ps(even, odd))
            };
            if score >= top.floor() {
                top.offer((first + r) as u32, score);
            }
        }
        out.push(top.into_sorted());
    }
    out
}

/// Rows scored together by [`scan_batch`]: six rows by four 16-query vectors are 24 of the
/// 32 registers' accumulators.
const ROWS: usize = 6;
/// Rows per pass over every query group: 1,024 rows of 128 f32 (512 KiB) stay in the
/// second-level cache while each group of 64 queries goes over them.
const PASS_ROWS: usize = 1024;

/// Queries per group: four 16-query vectors.
const GROUP: usize = 64;

/// The queries in the group that starts at query `group` of `width`.
fn group_width(width: usize, group: usize) -> usize {
    (width - group).min(GROUP)
}

/// Whether [`scan_batch`] runs on this CPU (any width).
pub fn supports_batch() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// The best `k` of rows `first..first + block.len() / dim` for each of several queries: the
/// queries packed once, transposed into 16-query vectors; each row element broadcast from
/// the index's own row-major rows (nothing of the index is copied; the next six rows are
/// prefetched while these are scored); each row's 16 scores per
/// vector compared with the 16 queries' heap floors at once, so the heaps hear only of the
/// scores that can enter. This replaced the `gemm` crate's product, which packs every tile
/// of the index again for each call (as much time as its kernel at 64 queries).
///
/// # Safety
/// [`supports_batch`] must have returned true.
#[target_feature(enable = "avx512f")]
pub unsafe fn scan_batch(
    queries: &[f32],
    block: &[f32],
    first: usize,
    dim: usize,
    k: usize,
) -> Vec<Vec<Hit>> {
    let n_queries = queries.len() / dim;
    let width = n_queries.div_ceil(16) * 16;
    // Each group of 64 queries (the last one narrower) is its own [dim][group width] block,
    // from group * dim on; the padding queries are zero. One [dim][width] array would put a
    // group's `dim` pieces 4 * width bytes apart: at 512 queries 2 KiB, so they all fell on
    // 8 of the first-level cache's 64 sets.
    let mut packed = vec![0f32; dim * width];
    for (q, query) in queries.chunks_exact(dim).enumerate() {
        let group = q / GROUP * GROUP;
        let group_width = group_width(width, group);
        for (d, &v) in query.iter().enumerate() {
            packed[group * dim + d * group_width + q - group] = v;
        }
    }
    let mut tops: Vec<TopK> = (0..n_queries).map(|_| TopK::new(k)).collect();
    // The padding queries' floors are +inf: nothing is ever offered to them.
    let mut floors = vec![f32::INFINITY; width];
    floors[..n_queries].fill(f32::NEG_INFINITY);
    let rows = block.len() / dim;
    let mut state = Batch {
        packed: &packed,
        width,
        dim,
        tops: &mut tops,
        floors: &mut floors,
    };
    for pass in (0..rows).step_by(PASS_ROWS) {
        let pass_end = (pass + PASS_ROWS).min(rows);
        for group in (0..width).step_by(GROUP) {
            let vectors = group_width(width, group) / 16;
            let mut r = pass;
            while r < pass_end {
                let take = (pass_end - r).min(ROWS);
                // SAFETY (every arm): AVX-512F per the caller; rows r..r + take and query
                // vectors group / 16..group / 16 + vectors are inside block and packed.
                unsafe {
                    match (take, vectors) {
                        (ROWS, 4) => state.score::<ROWS, 4>(block, first, r, group),
                        (ROWS, 3) => state.score::<ROWS, 3>(block, first, r, group),
                        (ROWS, 2) => state.score::<ROWS, 2>(block, first, r, group),
                        (ROWS, _) => state.score::<ROWS, 1>(block, first, r, group),
                        (_, 4) => state.score::<1, 4>(block, first, r, group),
                        (_, 3) => state.score::<1, 3>(block, first, r, group),
                        (_, 2) => state.score::<1, 2>(block, first, r, group),
                        (_, _) => state.score::<1, 1>(block, first, r, group),
                    }
                }
                r += if take == ROWS { ROWS } else { 1 };
            }
        }
    }
    tops.into_iter().map(TopK::into_sorted).collect()
}

/// What [`scan_batch`]'s register blocks read and fill.
struct Batch<'a> {
    packed: &'a [f32],
    width: usize,
    dim: usize,
    tops: &'a mut [TopK],
    floors: &'a mut [f32],
}

impl Batch<'_> {
    /// Scores rows `r..r + R` against the `V` query vectors from query `group` on, and offers
    /// the scores that reach their query's floor.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn score<const R: usize, const V: usize>(
        &mut self,
        block: &[f32],
        first: usize,
        r: usize,
        group: usize,
    ) {
        let dim = self.dim;
        let group_width = group_width(self.width, group);
        assert!((r + R) * dim <= block.len() && 16 * V <= group_width);
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        let rows = block.as_ptr().wrapping_add(r * dim);
        let packed = self.packed.as_ptr().wrapping_add(group * dim);
        // The next block's rows, one 64-byte line per step of the first R * dim / 16 steps
        // (fewer than dim), so a scan from DRAM does not wait on each block's first touch.
        let ahead = rows.wrapping_add(R * dim) as *const i8;
        let ahead_lines = R * dim / 16;
        for d in 0..dim {
            if d < ahead_lines {
                // A hint: no fault past the block's end.
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * d));
            }
            let mut q = [_mm512_setzero_ps(); V];
            for (j, q) in q.iter_mut().enumerate() {
                // SAFETY: group * dim + d * group_width + 16 j + 16 <= (group + group_width)
                // * dim <= width * dim (the assert).
                *q = unsafe { _mm512_loadu_ps(packed.add(d * group_width + 16 * j)) };
            }
            for (i, acc) in acc.iter_mut().enumerate() {
                // SAFETY: (r + i) * dim + d < block.len() (the assert).
                let x = _mm512_set1_ps(unsafe { *rows.add(i * dim + d) });
                for (a, q) in acc.iter_mut().zip(&q) {
                    *a = _mm512_fmadd_ps(x, *q, *a);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            for (j, a) in acc.iter().enumerate() {
                let at = group + 16 * j;
                // SAFETY: at + 16 <= width = floors.len() (the assert).
                let floor = unsafe { _mm512_loadu_ps(self.floors.as_ptr().add(at)) };
                // Not below the floor (a tie may still enter on its id).
                let mut mask = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(*a, floor);
                if mask == 0 {
                    continue;
                }
                let mut scores = [0f32; 16];
                // SAFETY: 16 f32 into a 16-f32 array.
                unsafe { _mm512_storeu_ps(scores.as_mut_ptr(), *a) };
                while mask != 0 {
                    let lane = mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    // A padding query scores 0 (NaN only from an infinite row): never offered.
                    let Some(top) = self.tops.get_mut(at + lane) else {
                        continue;
                    };
                    top.offer((first + r + i) as u32, scores[lane]);
                    self.floors[at + lane] = top.floor();
                }
            }
        }
    }
}
