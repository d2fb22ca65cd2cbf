//! Maximum inner-product search behind one interface: retrieval code holds a `dyn MipsIndex`
//! and never knows whether it is exact on the CPU, a GPU kernel, quantised or approximate.
//! [`ExactIndex`] is the CPU fast path; `retrieval::top_k_reference` is its plain reference.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::Error;
use crate::retrieval::{Hit, check_matrix, hit_order};

/// Top-k by inner product over a fixed set of `dim`-wide vectors whose ids are their rows.
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
}

/// A heap entry ordered so that the heap's top is the worst hit kept so far.
struct Worst(Hit);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        hit_order(&self.0, &other.0)
    }
}

/// Eight independent accumulators: the compiler turns this into SIMD lanes.
#[inline]
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// The best `k` of rows `first..first + block.len() / dim` for every query.
fn search_rows(
    queries: &[f32],
    block: &[f32],
    first: usize,
    dim: usize,
    k: usize,
) -> Vec<Vec<Hit>> {
    const TILE: usize = 256; // rows scored for every query while they sit in cache
    let n_queries = queries.len() / dim;
    let mut heaps: Vec<BinaryHeap<Worst>> = (0..n_queries)
        .map(|_| BinaryHeap::with_capacity(k + 1))
        .collect();
    for (t, tile) in block.chunks(TILE * dim).enumerate() {
        for (query, heap) in queries.chunks_exact(dim).zip(&mut heaps) {
            for (r, row) in tile.chunks_exact(dim).enumerate() {
                let hit = Hit {
                    id: (first + t * TILE + r) as u32,
                    score: dot8(query, row),
                };
                if heap.len() < k {
                    heap.push(Worst(hit));
                } else if hit_order(&hit, &heap.peek().expect("k >= 1").0) == Ordering::Less {
                    heap.pop();
                    heap.push(Worst(hit));
                }
            }
        }
    }
    heaps
        .into_iter()
        .map(|heap| heap.into_sorted_vec().into_iter().map(|w| w.0).collect())
        .collect()
}

impl MipsIndex for ExactIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.vectors.len() / self.dim
    }

    fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>, Error> {
        if k == 0 {
            return Err(Error::ZeroK);
        }
        if self.is_empty() {
            return Err(Error::EmptyCorpus);
        }
        check_matrix(queries, self.dim, "the queries")?;
        let rows = self.len();
        let threads = self.threads.clamp(1, rows);
        if threads == 1 {
            return Ok(search_rows(queries, &self.vectors, 0, self.dim, k));
        }
        let per_thread = rows.div_ceil(threads);
        let parts: Vec<Vec<Vec<Hit>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .vectors
                .chunks(per_thread * self.dim)
                .enumerate()
                .map(|(i, block)| {
                    scope.spawn(move || search_rows(queries, block, i * per_thread, self.dim, k))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a search thread panicked"))
                .collect()
        });
        let n_queries = queries.len() / self.dim;
        Ok((0..n_queries)
            .map(|q| {
                let mut hits: Vec<Hit> = parts
                    .iter()
                    .flat_map(|part| part[q].iter().copied())
                    .collect();
                hits.sort_by(hit_order);
                hits.truncate(k);
                hits
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::top_k_reference;
    use crate::weights::SplitMix64;

    fn fresh_seed() -> u64 {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        eprintln!("seed = {seed}");
        seed
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
        ] {
            let docs = rng.uniform_vec(n * dim, 1.0);
            let qs = rng.uniform_vec(queries * dim, 1.0);
            let mut index = ExactIndex::new(docs.clone(), dim).unwrap();
            index.threads = threads;
            let fast = index.search(&qs, k).unwrap();
            let reference = top_k_reference(&qs, &docs, dim, k).unwrap();
            for (f, r) in fast.iter().zip(&reference) {
                assert_eq!(f.len(), r.len());
                for (a, b) in f.iter().zip(r) {
                    // Summation order differs (8 lanes vs left to right): scores within 1e-5;
                    // ids agree unless two scores are that close.
                    assert!((a.score - b.score).abs() < 1e-5, "{a:?} vs {b:?}");
                }
                let gaps_clear = r.windows(2).all(|w| w[0].score - w[1].score > 1e-5);
                if gaps_clear {
                    assert_eq!(
                        f.iter().map(|h| h.id).collect::<Vec<_>>(),
                        r.iter().map(|h| h.id).collect::<Vec<_>>()
                    );
                }
            }
        }
    }

    #[test]
    fn ties_and_bad_input_behave_like_the_reference() {
        let docs = vec![1.0, 0.0, 1.0, 0.0, 0.5, 0.5];
        let index = ExactIndex::new(docs, 2).unwrap();
        let hits = index.search(&[1.0, 0.0], 2).unwrap();
        assert_eq!(hits[0].iter().map(|h| h.id).collect::<Vec<_>>(), vec![0, 1]);
        assert!(matches!(index.search(&[1.0, 0.0], 0), Err(Error::ZeroK)));
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
