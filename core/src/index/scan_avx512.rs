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
