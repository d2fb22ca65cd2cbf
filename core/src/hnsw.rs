//! Approximate maximum inner-product search with HNSW graphs (instant-distance), for corpora
//! where an exact scan per question is too slow. Recall against exact search is measured in
//! the tests and benches, never assumed.
//!
//! instant-distance searches by a distance, so inner products enter in one of two ways:
//! - [`HnswMetric::NegatedDot`]: distance `-x.z` (not a metric, but the graph still routes);
//! - [`HnswMetric::L2Augmented`]: the MIPS-to-L2 reduction (Bachrach et al. 2014): every
//!   document gains a coordinate `sqrt(M^2 - |z|^2)` and queries a 0, so the L2 order equals
//!   the inner-product order.

use instant_distance::{Builder, HnswMap, Point, Search};

use crate::Error;
use crate::mips::{MipsIndex, check_search, dot_fast, lane_sums};
use crate::retrieval::{Hit, check_matrix, hit_order};

/// How inner products become instant-distance's distances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HnswMetric {
    NegatedDot,
    L2Augmented,
}

/// Graph parameters. instant-distance fixes `ef_search` when the graph is built.
#[derive(Debug, Clone, Copy)]
pub struct HnswParams {
    pub metric: HnswMetric,
    pub ef_construction: usize,
    pub ef_search: usize,
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            metric: HnswMetric::NegatedDot,
            ef_construction: 100,
            ef_search: 100,
            seed: 1,
        }
    }
}

#[derive(Clone)]
struct NegatedDot(Vec<f32>);

impl Point for NegatedDot {
    fn distance(&self, other: &Self) -> f32 {
        -dot_routing(&self.0, &other.0)
    }
}

/// Thirty-two lanes in four independent chains, summed as a tree: the graph walk computes
/// thousands of these per query, and a single accumulator chain spends its time waiting on
/// latency. Only routes the walk: final scores are [`dot_fast`]'s, like every other index's.
#[inline(always)]
fn dot_tree(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 32;
    let (mut acc, tail) = lane_sums::<L>(a, b);
    let mut width = L / 2;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    acc[0] + tail
}

/// [`dot_tree`] written out in AVX2 FMA instructions (the compiler's own vectorisation of it
/// used two-lane registers).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_tree_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let body = n / 32 * 32;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i < body {
        for (j, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 8 * j + 8 <= body <= n, inside both slices.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_ps(pa.add(i + 8 * j)),
                    _mm256_loadu_ps(pb.add(i + 8 * j)),
                )
            };
            *acc = _mm256_fmadd_ps(x, y, *acc);
        }
        i += 32;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
    let quarter = _mm_add_ps(half, _mm_movehl_ps(half, half));
    let one = _mm_add_ss(quarter, _mm_shuffle_ps::<1>(quarter, quarter));
    _mm_cvtss_f32(one)
        + a[body..n]
            .iter()
            .zip(&b[body..n])
            .map(|(x, y)| x * y)
            .sum::<f32>()
}

#[inline]
fn dot_routing(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function was compiled for.
        return unsafe { dot_tree_avx2(a, b) };
    }
    dot_tree(a, b)
}

#[derive(Clone)]
struct Euclidean(Vec<f32>);

impl Point for Euclidean {
    fn distance(&self, other: &Self) -> f32 {
        // Squared distance: the same order, and |q|^2 + M^2 - 2 q.z for augmented vectors.
        self.0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| (a - b) * (a - b))
            .sum()
    }
}

enum Graph {
    NegatedDot(HnswMap<NegatedDot, u32>),
    L2Augmented(HnswMap<Euclidean, u32>),
}

/// An HNSW graph over `[rows, dim]` vectors; hits carry rows and exact inner products.
pub struct HnswIndex {
    dim: usize,
    vectors: Vec<f32>,
    graph: Graph,
    params: HnswParams,
}

impl HnswIndex {
    /// Builds the graph (on every core: instant-distance uses rayon).
    pub fn build(vectors: Vec<f32>, dim: usize, params: HnswParams) -> Result<Self, Error> {
        let rows = check_matrix(&vectors, dim, "the index")?;
        if rows == 0 {
            return Err(Error::EmptyCorpus);
        }
        if params.ef_search == 0 || params.ef_construction == 0 {
            return Err(Error::Config("HNSW ef values must be at least 1".into()));
        }
        let builder = Builder::default()
            .ef_construction(params.ef_construction)
            .ef_search(params.ef_search)
            .seed(params.seed);
        let ids: Vec<u32> = (0..rows as u32).collect();
        let graph = match params.metric {
            HnswMetric::NegatedDot => Graph::NegatedDot(
                builder.build(
                    vectors
                        .chunks_exact(dim)
                        .map(|v| NegatedDot(v.to_vec()))
                        .collect(),
                    ids,
                ),
            ),
            HnswMetric::L2Augmented => {
                let max_norm2 = vectors
                    .chunks_exact(dim)
                    .map(|v| dot_fast(v, v))
                    .fold(0.0f32, f32::max);
                let points = vectors
                    .chunks_exact(dim)
                    .map(|v| {
                        let mut p = v.to_vec();
                        p.push((max_norm2 - dot_fast(v, v)).max(0.0).sqrt());
                        Euclidean(p)
                    })
                    .collect();
                Graph::L2Augmented(builder.build(points, ids))
            }
        };
        Ok(Self {
            dim,
            vectors,
            graph,
            params,
        })
    }

    pub fn params(&self) -> HnswParams {
        self.params
    }

    fn candidates(&self, query: &[f32], search: &mut Search) -> Vec<u32> {
        match &self.graph {
            Graph::NegatedDot(map) => map
                .search(&NegatedDot(query.to_vec()), search)
                .map(|item| *item.value)
                .collect(),
            Graph::L2Augmented(map) => {
                let mut q = query.to_vec();
                q.push(0.0);
                map.search(&Euclidean(q), search)
                    .map(|item| *item.value)
                    .collect()
            }
        }
    }
}

impl MipsIndex for HnswIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.vectors.len() / self.dim
    }

    /// Up to `min(k, ef_search)` hits per query, rescored with exact inner products.
    fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>, Error> {
        check_search(self, queries, k)?;
        let mut search = Search::default();
        Ok(queries
            .chunks_exact(self.dim)
            .map(|query| {
                let mut hits: Vec<Hit> = self
                    .candidates(query, &mut search)
                    .into_iter()
                    .map(|row| {
                        let r = row as usize;
                        Hit {
                            id: row,
                            score: dot_fast(query, &self.vectors[r * self.dim..(r + 1) * self.dim]),
                        }
                    })
                    .collect();
                hits.sort_by(hit_order);
                hits.truncate(k);
                hits
            })
            .collect())
    }
}

/// Fraction of the exact top-k ids that the approximate hits contain, over all queries.
pub fn recall_at_k(exact: &[Vec<Hit>], approximate: &[Vec<Hit>]) -> f64 {
    let mut found = 0usize;
    let mut total = 0usize;
    for (e, a) in exact.iter().zip(approximate) {
        total += e.len();
        found += e.iter().filter(|h| a.iter().any(|x| x.id == h.id)).count();
    }
    if total == 0 {
        1.0
    } else {
        found as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::top_k_reference;
    use crate::weights::{SplitMix64, fresh_seed};

    #[test]
    fn the_routing_dot_product_matches_the_plain_one() {
        let mut rng = SplitMix64::new(fresh_seed());
        for len in [0, 1, 7, 31, 32, 33, 128, 129, 385] {
            let (a, b) = (rng.uniform_vec(len, 2.0), rng.uniform_vec(len, 2.0));
            let plain = crate::retrieval::dot(&a, &b);
            // Another summation order: equal up to f32 rounding of the terms' magnitudes.
            let bound = 1e-5 * a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum::<f32>() + 1e-6;
            for fast in [dot_routing(&a, &b), dot_tree(&a, &b)] {
                assert!(
                    (fast - plain).abs() <= bound,
                    "len {len}: {fast} vs {plain}"
                );
            }
        }
    }

    /// Unit vectors around `clusters` centres, the shape of sentence embeddings.
    pub(crate) fn clustered(
        rng: &mut SplitMix64,
        n: usize,
        dim: usize,
        clusters: usize,
    ) -> Vec<f32> {
        let centres = rng.uniform_vec(clusters * dim, 1.0);
        let mut out = Vec::with_capacity(n * dim);
        for i in 0..n {
            let c = &centres[(i % clusters) * dim..(i % clusters + 1) * dim];
            let mut v: Vec<f32> = c.iter().map(|x| x + 0.5 * rng.next_symmetric()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            out.extend(v);
        }
        out
    }

    #[test]
    fn both_metrics_find_the_exact_neighbours_and_report_recall() {
        let seed = fresh_seed();
        let mut rng = SplitMix64::new(seed);
        let dim = 32;
        let docs = clustered(&mut rng, 1500, dim, 30);
        let queries: Vec<f32> = clustered(&mut rng, 50, dim, 30);
        let exact = top_k_reference(&queries, &docs, dim, 8).unwrap();
        for metric in [HnswMetric::NegatedDot, HnswMetric::L2Augmented] {
            let params = HnswParams {
                metric,
                seed,
                ..HnswParams::default()
            };
            let index = HnswIndex::build(docs.clone(), dim, params).unwrap();
            let hits = index.search(&queries, 8).unwrap();
            let recall = recall_at_k(&exact, &hits);
            eprintln!("{metric:?}: recall@8 = {recall:.4}");
            for (h, e) in hits.iter().zip(&exact) {
                // Scores are exact inner products, so the best hit found can never beat exact.
                assert!(h[0].score <= e[0].score + 1e-6);
            }
            assert!(recall >= 0.9, "{metric:?} recall@8 {recall}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            HnswIndex::build(vec![], 4, HnswParams::default()),
            Err(Error::EmptyCorpus)
        ));
        let index = HnswIndex::build(vec![1.0, 0.0, 0.0, 1.0], 2, HnswParams::default()).unwrap();
        assert!(matches!(
            index.search(&[1.0], 1),
            Err(Error::DimensionMismatch { .. })
        ));
        assert_eq!(index.search(&[1.0, 0.0], 5).unwrap()[0].len(), 2);
    }
}
