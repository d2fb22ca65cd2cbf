//! Maximum inner-product search behind one interface: retrieval code holds a `dyn MipsIndex`
//! and never knows whether it is exact on the CPU, a GPU kernel, quantised or approximate.
//! [`ExactIndex`] is the CPU fast path; `reference::top_k_reference` is its plain reference.

use crate::Error;
use crate::index::reference::{Hit, check_matrix};
use crate::index::topk::{TopK, merge_parts};

/// Top-k by inner product over a set of `dim`-wide vectors. A plain index's hit ids are its
/// rows; a [`crate::index::live::LiveIndex`] maps them to document ids.
pub trait MipsIndex {
    /// Width of every vector.
    fn dim(&self) -> usize;
    /// Number of indexed vectors.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The `min(k, len)` best rows for each `[queries, dim]` query, in [`hit_order`].
    fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>, Error>;
    /// The `[len, dim]` f32 rows as given, for an index that keeps them so (the exact f32
    /// one); `None` for the others. What a training checkpoint saves to rebuild it as it was.
    fn f32_rows(&self) -> Option<&[f32]> {
        None
    }
}

/// Exact search over f32 vectors on the CPU: blocked, auto-vectorised dot products and a
/// bounded heap per query, over `threads` threads.
pub struct ExactIndex {
    dim: usize,
    vectors: Vec<f32>,
    /// Threads a search may use (1: the calling thread only).
    pub threads: usize,
}

impl ExactIndex {
    /// Indexes `[rows, dim]` row-major vectors, which must be finite.
    pub fn new(vectors: Vec<f32>, dim: usize) -> Result<Self, Error> {
        check_matrix(&vectors, dim, "the index")?;
        Ok(Self {
            dim,
            vectors,
            threads: 1,
        })
    }

    /// The indexed `[rows, dim]` vectors.
    pub fn vectors(&self) -> &[f32] {
        &self.vectors
    }
}

/// Splits `rows` rows into at most `threads` contiguous ranges, runs `search(first, last)` on
/// each (the first on the calling thread, the others on threads spawned for them) and merges
/// the results. A search of fewer than `min_per_thread` row-query pairs a thread takes fewer
/// threads: spawning one costs tens of microseconds, the whole of a small search (one query
/// over the 12,100-row int8 bench set: 0.023 ms on one thread, 0.107 ms split over two).
pub(crate) fn search_threaded<F>(
    rows: usize,
    threads: usize,
    n_queries: usize,
    k: usize,
    min_per_thread: usize,
    search: F,
) -> Vec<Vec<Hit>>
where
    F: Fn(usize, usize) -> Vec<Vec<Hit>> + Sync,
{
    let worth = (rows.saturating_mul(n_queries) / min_per_thread.max(1)).max(1);
    let threads = threads.min(worth).clamp(1, rows.max(1));
    if threads == 1 {
        return search(0, rows);
    }
    let per_thread = rows.div_ceil(threads);
    let parts: Vec<Vec<Vec<Hit>>> = std::thread::scope(|scope| {
        let search = &search;
        let handles: Vec<_> = (per_thread..rows)
            .step_by(per_thread)
            .map(|first| scope.spawn(move || search(first, (first + per_thread).min(rows))))
            .collect();
        let mut parts = vec![search(0, per_thread)];
        parts.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("a search thread panicked")),
        );
        parts
    });
    merge_parts(parts, n_queries, k)
}

/// `L` independent accumulators over the whole chunks of `L`, and the tail's plain sum.
#[inline(always)]
pub(crate) fn lane_sums<const L: usize>(a: &[f32], b: &[f32]) -> ([f32; L], f32) {
    let mut acc = [0.0f32; L];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..L {
            acc[i] += x[i] * y[i];
        }
    }
    (acc, ra.iter().zip(rb).map(|(x, y)| x * y).sum())
}

/// `L` independent accumulators: the compiler turns them into one SIMD register's lanes.
#[inline(always)]
fn dot_lanes<const L: usize>(a: &[f32], b: &[f32]) -> f32 {
    let (acc, tail) = lane_sums::<L>(a, b);
    acc.iter().sum::<f32>() + tail
}

/// Eight lanes: AVX2's width, and what the portable build vectorises to.
#[inline(always)]
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes::<8>(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot8(a, b)
}

/// One dot product with the widest SIMD the CPU has (same lanes, same sum as the scans).
#[inline]
pub fn dot_fast(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function was compiled for.
        return unsafe { dot_avx2(a, b) };
    }
    dot8(a, b)
}

/// Rows scored for every query while they sit in cache.
const TILE: usize = 1024;

/// One query at a time: each row's dot product goes straight into the query's heap.
#[inline(always)]
fn scan_rows_generic<const L: usize>(
    queries: &[f32],
    block: &[f32],
    first: usize,
    dim: usize,
    k: usize,
) -> Vec<Vec<Hit>> {
    let mut tops: Vec<TopK> = (0..queries.len() / dim).map(|_| TopK::new(k)).collect();
    for (t, tile) in block.chunks(TILE * dim).enumerate() {
        for (query, top) in queries.chunks_exact(dim).zip(&mut tops) {
            for (r, row) in tile.chunks_exact(dim).enumerate() {
                top.offer((first + t * TILE + r) as u32, dot_lanes::<L>(query, row));
            }
        }
    }
    tops.into_iter().map(TopK::into_sorted).collect()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn scan_rows_avx2(q: &[f32], block: &[f32], first: usize, dim: usize, k: usize) -> Vec<Vec<Hit>> {
    scan_rows_generic::<8>(q, block, first, dim, k)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn scan_rows_avx512(q: &[f32], block: &[f32], first: usize, dim: usize, k: usize) -> Vec<Vec<Hit>> {
    scan_rows_generic::<16>(q, block, first, dim, k)
}

/// The best `k` of rows `first..first + block.len() / dim` for every query, one at a time
/// (wide SIMD where the CPU has it).
fn scan_rows(queries: &[f32], block: &[f32], first: usize, dim: usize, k: usize) -> Vec<Vec<Hit>> {
    #[cfg(target_arch = "x86_64")]
    if crate::index::scan_avx512::supports(dim) {
        // SAFETY: `supports` checked the CPU feature and the width.
        return unsafe { crate::index::scan_avx512::scan(queries, block, first, dim, k) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports the feature the function was compiled for.
        return unsafe { scan_rows_avx512(queries, block, first, dim, k) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function was compiled for.
        return unsafe { scan_rows_avx2(queries, block, first, dim, k) };
    }
    scan_rows_generic::<8>(queries, block, first, dim, k)
}

/// Batches of queries: a tile of rows is scored for every query at once by a matrix
/// product (`gemm`, the kernel burn's CPU backend uses), then each query's heap takes its row.
fn gemm_rows(queries: &[f32], block: &[f32], first: usize, dim: usize, k: usize) -> Vec<Vec<Hit>> {
    let n_queries = queries.len() / dim;
    let mut tops: Vec<TopK> = (0..n_queries).map(|_| TopK::new(k)).collect();
    let mut scores = vec![0.0f32; n_queries * TILE];
    for (t, tile) in block.chunks(TILE * dim).enumerate() {
        let rows = tile.len() / dim;
        // scores [n_queries, rows] = queries [n_queries, dim] x tile^T [dim, rows]
        // SAFETY: every pointer covers the extent its strides describe: dst n_queries x rows
        // with row stride `rows`, lhs n_queries x dim (stride dim), rhs dim x rows read from
        // the row-major tile (column j is tile row j).
        unsafe {
            gemm::gemm(
                n_queries,
                rows,
                dim,
                scores.as_mut_ptr(),
                1,
                rows as isize,
                false,
                queries.as_ptr(),
                1,
                dim as isize,
                tile.as_ptr(),
                dim as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for (q, top) in tops.iter_mut().enumerate() {
            top.offer_run((first + t * TILE) as u32, &scores[q * rows..(q + 1) * rows]);
        }
    }
    tops.into_iter().map(TopK::into_sorted).collect()
}

/// From this many queries on, a search scores tiles by matrix product...
pub const GEMM_MIN_QUERIES: usize = 4;
/// ...unless there are at most this many and the index fits in [`CACHE_RESIDENT_BYTES`],
/// where the AVX-512 register scan runs once per query.
pub const SCAN_CACHED_MAX_QUERIES: usize = 8;
/// An index this small stays in this class of CPU's caches between queries.
pub const CACHE_RESIDENT_BYTES: usize = 8 << 20;

/// Exact top-k of `[queries, dim]` over the `[rows, dim]` `vectors` on `threads` threads:
/// the CPU fast path behind [`ExactIndex`] (inputs already checked).
pub fn exact_search_f32(
    vectors: &[f32],
    queries: &[f32],
    dim: usize,
    k: usize,
    threads: usize,
) -> Vec<Vec<Hit>> {
    let n_queries = queries.len() / dim;
    // A few queries over a cache-resident index: scanning once per query beats the
    // product's packing of every tile (measured on the 6 MB MiniLM bench set: 0.67 against
    // 1.03 ms for 8 queries, 0.34 against 0.87 for 4); from DRAM the product's single pass wins.
    #[cfg(target_arch = "x86_64")]
    let cached_scan = n_queries <= SCAN_CACHED_MAX_QUERIES
        && std::mem::size_of_val(vectors) <= CACHE_RESIDENT_BYTES
        && crate::index::scan_avx512::supports(dim);
    #[cfg(not(target_arch = "x86_64"))]
    let cached_scan = false;
    // A thread is worth about 2M multiply-adds at d = 128.
    search_threaded(
        vectors.len() / dim,
        threads,
        n_queries,
        k,
        1 << 14,
        |first, last| {
            let block = &vectors[first * dim..last * dim];
            if n_queries >= GEMM_MIN_QUERIES && !cached_scan {
                #[cfg(target_arch = "x86_64")]
                if crate::index::scan_avx512::supports_batch() {
                    // SAFETY: the CPU has AVX-512F.
                    return unsafe {
                        crate::index::scan_avx512::scan_batch(queries, block, first, dim, k)
                    };
                }
                gemm_rows(queries, block, first, dim, k)
            } else {
                scan_rows(queries, block, first, dim, k)
            }
        },
    )
}

/// The checks every index makes before a search.
pub fn check_search(index: &dyn MipsIndex, queries: &[f32], k: usize) -> Result<(), Error> {
    if k == 0 {
        return Err(Error::ZeroK);
    }
    if index.is_empty() {
        return Err(Error::EmptyCorpus);
    }
    if !queries.len().is_multiple_of(index.dim()) {
        return Err(Error::DimensionMismatch {
            query: queries.len(),
            index: index.dim(),
        });
    }
    check_matrix(queries, index.dim(), "the queries")?;
    Ok(())
}

impl MipsIndex for ExactIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn f32_rows(&self) -> Option<&[f32]> {
        Some(&self.vectors)
    }

    fn len(&self) -> usize {
        self.vectors.len() / self.dim
    }

    fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>, Error> {
        check_search(self, queries, k)?;
        Ok(exact_search_f32(
            &self.vectors,
            queries,
            self.dim,
            k,
            self.threads,
        ))
    }
}

/// A fast path's hits against [`top_k_reference`]'s: the summation order differs (SIMD lanes vs
/// left to right), so scores agree within a few f32 roundings of their size (4e-6 relative,
/// at least 4e-6: a 256-term sum near 16 once differed by 1.1e-5), and ids wherever no two
/// scores are that close.
#[cfg(test)]
pub(crate) fn assert_close_to_reference(fast: &[Vec<Hit>], reference: &[Vec<Hit>]) {
    let tolerance = |score: f32| 4e-6 * score.abs().max(1.0);
    assert_eq!(fast.len(), reference.len());
    for (f, r) in fast.iter().zip(reference) {
        assert_eq!(f.len(), r.len());
        for (a, b) in f.iter().zip(r) {
            assert!(
                (a.score - b.score).abs() <= tolerance(b.score),
                "{a:?} vs {b:?}"
            );
        }
        let gaps_clear = r
            .windows(2)
            .all(|w| w[0].score - w[1].score > 2.0 * tolerance(w[0].score));
        if gaps_clear {
            assert_eq!(
                f.iter().map(|h| h.id).collect::<Vec<_>>(),
                r.iter().map(|h| h.id).collect::<Vec<_>>()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::reference::{hit_order, top_k_reference};
    use crate::rng::{SplitMix64, fresh_seed};

    /// TopK against a full sort, with many tied scores so the id order is exercised.
    #[test]
    fn top_k_keeps_what_a_full_sort_keeps() {
        let mut rng = SplitMix64::new(fresh_seed());
        for &n in &[0usize, 5, 500] {
            for &k in &[1usize, 3, 16, 32, 33, 100] {
                let hits: Vec<Hit> = (0..n)
                    .map(|i| Hit {
                        id: (i * 7919 % n.max(1)) as u32,
                        score: (rng.next_symmetric() * 8.0).round(),
                    })
                    .collect();
                let mut top = TopK::new(k);
                for h in &hits {
                    top.offer(h.id, h.score);
                }
                let mut expected = hits.clone();
                expected.sort_by(hit_order);
                expected.truncate(k);
                assert_eq!(top.into_sorted(), expected, "n {n}, k {k}");
            }
        }
    }

    #[test]
    fn the_fast_path_returns_the_references_hits_on_random_inputs() {
        let mut rng = SplitMix64::new(fresh_seed());
        for &(n, dim, queries, k, threads) in &[
            (1000, 128, 7, 8, 1),
            (1000, 128, 7, 8, 3),
            (257, 13, 2, 300, 2),
            (5, 3, 1, 1, 4),
            (600, 9, 3, 50, 1),
            (3000, 128, 8, 8, 1),
            (2500, 64, 64, 100, 2),
            (70, 5, 5, 3, 1),
            // One to three queries at the widths with their own AVX-512 scan.
            (3000, 128, 1, 8, 1),
            (3001, 128, 3, 8, 2),
            (777, 64, 2, 20, 1),
            (500, 256, 1, 8, 3),
            // Batches on AVX-512: query vectors of 16 with padding, rows past a pass of 1,024
            // and not a multiple of the six-row block, an odd width.
            (2053, 128, 70, 8, 1),
            // Three groups of 64 queries, the last one 32 wide.
            (1500, 128, 150, 8, 1),
            (1100, 100, 33, 5, 2),
            (40, 17, 16, 40, 1),
        ] {
            let docs = rng.uniform_vec(n * dim, 1.0);
            let qs = rng.uniform_vec(queries * dim, 1.0);
            let mut index = ExactIndex::new(docs.clone(), dim).unwrap();
            index.threads = threads;
            let fast = index.search(&qs, k).unwrap();
            let reference = top_k_reference(&qs, &docs, dim, k).unwrap();
            assert_close_to_reference(&fast, &reference);
        }
    }

    #[test]
    fn ties_and_bad_input_behave_like_the_reference() {
        let docs = vec![1.0, 0.0, 1.0, 0.0, 0.5, 0.5];
        let index = ExactIndex::new(docs, 2).unwrap();
        let hits = index.search(&[1.0, 0.0], 2).unwrap();
        assert_eq!(hits[0].iter().map(|h| h.id).collect::<Vec<_>>(), vec![0, 1]);
        assert!(matches!(index.search(&[1.0, 0.0], 0), Err(Error::ZeroK)));
        // A k beyond the rows (any usize) gives them all and reserves nothing for k.
        assert_eq!(index.search(&[1.0, 0.0], usize::MAX).unwrap()[0].len(), 3);
        assert!(matches!(
            index.search(&[f32::NAN, 0.0], 1),
            Err(Error::NonFinite { .. })
        ));
        assert!(matches!(
            ExactIndex::new(vec![f32::INFINITY, 0.0], 2),
            Err(Error::NonFinite { .. })
        ));
        assert!(matches!(
            ExactIndex::new(vec![], 2).unwrap().search(&[1.0, 0.0], 1),
            Err(Error::EmptyCorpus)
        ));
    }
}
