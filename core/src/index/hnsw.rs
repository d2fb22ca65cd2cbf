//! Approximate maximum inner-product search with HNSW graphs (instant-distance), for corpora
//! where an exact scan per question is too slow. Recall against exact search is measured in
//! the tests and benches, never assumed.
//!
//! instant-distance builds the graph by a distance, so inner products enter in one of two ways:
//! - [`HnswMetric::NegatedDot`]: distance `-x.z` (not a metric, but the graph still routes);
//! - [`HnswMetric::L2Augmented`]: the MIPS-to-L2 reduction (Bachrach et al. 2014): every
//!   document gains a coordinate `sqrt(R^2 - |z|^2)` (R the largest norm) and queries a 0, so
//!   the L2 order equals the inner-product order.
//!
//! The search is ours: instant-distance's algorithm, step for step, over flat arrays read back
//! from the built graph (on all its links, tested to return the crate's own results), with `ef`
//! chosen per call; it reads the first 24 of each point's 64 layer-0 links (`LINKS_WALKED`).
//! Both graphs are walked by `-q.z` on the original vectors, the order both distances share.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use instant_distance::{Builder, HnswMap, Point};
use serde::Serialize;

use crate::Error;
use crate::index::exact::{MipsIndex, check_search, dot_fast, lane_sums};
use crate::index::reference::{Hit, check_matrix, hit_order};

/// How inner products become instant-distance's distances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HnswMetric {
    NegatedDot,
    L2Augmented,
}

/// Graph parameters. `ef_search` is the default for [`MipsIndex::search`];
/// [`HnswIndex::search_with_ef`] takes another per call.
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
    let (acc, tail) = lane_sums::<32>(a, b);
    tree_sum(acc) + tail
}

/// The lanes summed pairwise, halving the width each round (`L` a power of two).
#[inline(always)]
fn tree_sum<const L: usize>(mut acc: [f32; L]) -> f32 {
    let mut width = L / 2;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    acc[0]
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
    tree_sum_m256(sum)
        + a[body..n]
            .iter()
            .zip(&b[body..n])
            .map(|(x, y)| x * y)
            .sum::<f32>()
}

/// [`dot_tree`] in AVX-512 (four chains of sixteen lanes): half the instructions of the AVX2
/// form where the CPU has 512-bit registers (hnswlib dispatches to AVX-512 there too).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn dot_tree_avx512(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (body, sixteens) = (n / 64 * 64, n / 16 * 16);
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i < body {
        for (j, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 16 * j + 16 <= body <= n, inside both slices.
            let (x, y) = unsafe {
                (
                    _mm512_loadu_ps(pa.add(i + 16 * j)),
                    _mm512_loadu_ps(pb.add(i + 16 * j)),
                )
            };
            *acc = _mm512_fmadd_ps(x, y, *acc);
        }
        i += 64;
    }
    while i < sixteens {
        // SAFETY: i + 16 <= sixteens <= n.
        let (x, y) = unsafe { (_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i))) };
        acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
        i += 16;
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(sum)
        + a[sixteens..n]
            .iter()
            .zip(&b[sixteens..n])
            .map(|(x, y)| x * y)
            .sum::<f32>()
}

/// [`HnswIndex::routing_keys`] for rows of `C` sixteen-lane chunks (`C` a multiple of 4): the
/// query loaded once, each row summed in [`dot_tree_avx512`]'s four chains and order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn routing_keys_avx512<const C: usize>(
    query: &[f32],
    rows: &[f32],
    points: &[u32],
    keys: &mut [u64],
) {
    use std::arch::x86_64::*;
    let dim = 16 * C;
    assert!(query.len() == dim && C.is_multiple_of(4) && keys.len() >= points.len());
    let q: [__m512; C] = std::array::from_fn(|c| {
        // SAFETY: 16 c + 16 <= dim = query.len().
        unsafe { _mm512_loadu_ps(query.as_ptr().add(16 * c)) }
    });
    for (i, &p) in points.iter().enumerate() {
        let row = &rows[p as usize * dim..][..dim];
        if let Some(&next) = points.get(i + 1) {
            prefetch(&rows[next as usize * dim..][..dim]);
        }
        let mut acc = [_mm512_setzero_ps(); 4];
        for c in (0..C).step_by(4) {
            for (j, acc) in acc.iter_mut().enumerate() {
                // SAFETY: 16 (c + j) + 16 <= dim = row.len().
                let x = unsafe { _mm512_loadu_ps(row.as_ptr().add(16 * (c + j))) };
                *acc = _mm512_fmadd_ps(q[c + j], x, *acc);
            }
        }
        let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        keys[i] = key(-_mm512_reduce_add_ps(sum), p);
    }
}

/// Cores this process may use, asked once: `available_parallelism` reads the cgroup's CPU
/// quota from /sys on every call (29 us here, about a whole one-query search), so asking it
/// per search cut single-query throughput by half or more.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Which routing kernel this CPU runs, decided once.
#[cfg(target_arch = "x86_64")]
fn routing_kernel() -> u8 {
    static KERNEL: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *KERNEL.get_or_init(|| {
        if std::arch::is_x86_feature_detected!("avx512f") {
            2
        } else if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            1
        } else {
            0
        }
    })
}

#[inline]
fn dot_routing(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    match routing_kernel() {
        // SAFETY: the CPU supports the features each function was compiled for.
        2 => return unsafe { dot_tree_avx512(a, b) },
        1 => return unsafe { dot_tree_avx2(a, b) },
        _ => {}
    }
    dot_tree(a, b)
}

#[derive(Clone)]
struct Euclidean(Vec<f32>);

impl Point for Euclidean {
    fn distance(&self, other: &Self) -> f32 {
        // Squared distance: the same order, and |q|^2 + R^2 - 2 q.z for augmented vectors.
        squared_distance(&self.0, &other.0)
    }
}

/// |a - b|^2 in 32 independent lanes summed as a tree, as [`dot_tree`]: the graph build
/// computes millions of these, and one chain of dependent additions (a plain `sum()`) made
/// the augmented graph's build four times as slow as the negated-dot one's. On AVX-512 the
/// same lanes in two registers (the compiler's own vectorisation of them used four-lane
/// ones): the same operations in the same order, so the same value, and graph, on every CPU.
fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if routing_kernel() == 2 {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { squared_distance_avx512(a, b) };
    }
    squared_distance_lanes(a, b)
}

/// [`squared_distance_lanes`] in AVX-512: lanes 0-15 and 16-31 of each 32-element chunk in
/// one register each, a multiply and an add apiece (no fused multiply-add, as in the plain
/// form), then the same halving tree and the same tail.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn squared_distance_avx512(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let body = n / 32 * 32;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut lo, mut hi) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut i = 0;
    while i < body {
        // SAFETY: i + 32 <= body <= n, inside both slices.
        let (d_lo, d_hi) = unsafe {
            (
                _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i))),
                _mm512_sub_ps(
                    _mm512_loadu_ps(pa.add(i + 16)),
                    _mm512_loadu_ps(pb.add(i + 16)),
                ),
            )
        };
        lo = _mm512_add_ps(lo, _mm512_mul_ps(d_lo, d_lo));
        hi = _mm512_add_ps(hi, _mm512_mul_ps(d_hi, d_hi));
        i += 32;
    }
    // The tree: lane j gains lane j + 16, then j + 8, then the eight lanes' own tree.
    let sixteen = _mm512_add_ps(lo, hi);
    let eight = _mm256_add_ps(
        _mm512_castps512_ps256(sixteen),
        _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(sixteen))),
    );
    tree_sum_m256(eight) + squared_tail(&a[body..n], &b[body..n])
}

/// [`tree_sum`] of eight lanes in one register: lane j gains lane j + 4, then j + 2, then j + 1.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
fn tree_sum_m256(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let four = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
    let one = _mm_add_ss(two, _mm_shuffle_ps::<1>(two, two));
    _mm_cvtss_f32(one)
}

/// The elements past the last whole 32: a plain sum.
#[inline(always)]
fn squared_tail(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

#[inline(always)]
fn squared_distance_lanes(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 32;
    let mut acc = [0.0f32; L];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let tail = squared_tail(ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..L {
            acc[i] += (x[i] - y[i]) * (x[i] - y[i]);
        }
    }
    tree_sum(acc) + tail
}

/// The points are not needed once the graph is read back (see [`Links::read_back`]).
impl Serialize for NegatedDot {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

impl Serialize for Euclidean {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

/// Neighbours per point on layer 0 and on the layers above (instant-distance's `2 M` and `M`).
const LINKS_ZERO: usize = 64;
const LINKS_UPPER: usize = 32;
/// Layer-0 links the search reads per point. instant-distance fills all 64 slots: first the
/// neighbours its heuristic picks (about 12 a point on the MiniLM demo set), then the pruned
/// candidates, each part nearest first. Reading all 64 scores two to three times the
/// neighbours of hnswlib's lists (24 a point on average on the same data), most of them close
/// to points already scored; the first 24 reach recall .99 with about a quarter fewer distance
/// evaluations per query (BENCHMARKS.md, Zen 4 HNSW).
const LINKS_WALKED: usize = 24;
/// An empty neighbour slot; a point's list ends at the first one.
const NO_LINK: u32 = u32::MAX;

/// The shape of instant-distance 0.6.1's `HnswMap<P, u32>` under serde, which is how the crate
/// hands its graph out. The version is pinned in Cargo.toml and the search below is tested
/// against the crate's own on the same graph.
mod layout {
    use serde::Deserialize;
    use serde_big_array::BigArray;

    #[derive(Deserialize)]
    pub(super) struct Map {
        pub hnsw: Hnsw,
        /// The caller's value for each graph point: here the row it came from.
        pub values: Vec<u32>,
    }

    #[derive(Deserialize)]
    pub(super) struct Hnsw {
        pub _ef_search: usize,
        pub points: Vec<()>,
        pub zero: Vec<Zero>,
        pub layers: Vec<Vec<Upper>>,
    }

    #[derive(Deserialize)]
    pub(super) struct Zero(#[serde(with = "BigArray")] pub [u32; super::LINKS_ZERO]);

    #[derive(Deserialize)]
    pub(super) struct Upper(pub [u32; super::LINKS_UPPER]);
}

/// The graph as flat arrays: what the search walks.
struct Links {
    /// The first `walked` layer-0 neighbours of every point, `walked` slots a point.
    zero: Vec<u32>,
    walked: usize,
    /// `upper[l - 1]`: neighbours on layer `l` of points `0..upper[l - 1].len()` (instant-distance
    /// numbers points so that every layer holds a prefix of them; point 0 is the entry).
    upper: Vec<Vec<[u32; LINKS_UPPER]>>,
    /// The row each graph point came from.
    rows: Vec<u32>,
}

impl Links {
    /// Reads a built graph back through its serde form, checks every link and keeps the first
    /// `walked` (at most `LINKS_ZERO`) of each point's layer-0 neighbours.
    fn read_back<P: Point + Serialize>(
        map: &HnswMap<P, u32>,
        n: usize,
        walked: usize,
    ) -> Result<Self, Error> {
        let broken = |what: String| Error::Config(format!("HNSW graph read-back: {what}"));
        let bytes = postcard::to_allocvec(map).map_err(|e| broken(e.to_string()))?;
        let layout::Map { hnsw, values } =
            postcard::from_bytes(&bytes).map_err(|e| broken(e.to_string()))?;
        let zero: Vec<[u32; LINKS_ZERO]> = hnsw.zero.into_iter().map(|z| z.0).collect();
        let upper: Vec<Vec<[u32; LINKS_UPPER]>> = hnsw
            .layers
            .into_iter()
            .map(|layer| layer.into_iter().map(|u| u.0).collect())
            .collect();
        if hnsw.points.len() != n || zero.len() != n || values.len() != n {
            return Err(broken(format!(
                "{} points, {} layer-0 nodes, {} rows for {n} vectors",
                hnsw.points.len(),
                zero.len(),
                values.len()
            )));
        }
        let mut seen = vec![false; n];
        for &row in &values {
            if row as usize >= n || std::mem::replace(&mut seen[row as usize], true) {
                return Err(broken(format!("row {row} out of range or repeated")));
            }
        }
        // A walk on a layer only visits that layer's points: every link must stay inside it.
        let valid =
            |list: &[u32], len: usize| list.iter().all(|&p| p == NO_LINK || (p as usize) < len);
        let mut below = n;
        for layer in &upper {
            if layer.is_empty() || layer.len() > below {
                return Err(broken(
                    "an upper layer is not a prefix of the one below".into(),
                ));
            }
            if !layer.iter().all(|l| valid(l, layer.len())) {
                return Err(broken("an upper-layer link leaves its layer".into()));
            }
            below = layer.len();
        }
        if !zero.iter().all(|l| valid(l, n)) {
            return Err(broken("a layer-0 link points past the last point".into()));
        }
        let walked = walked.clamp(1, LINKS_ZERO);
        Ok(Self {
            zero: zero.iter().flat_map(|l| &l[..walked]).copied().collect(),
            walked,
            upper,
            rows: values,
        })
    }

    /// The layer-0 neighbours the search reads for `point`; the list ends at the first
    /// `NO_LINK`.
    #[inline(always)]
    fn zero(&self, point: u32) -> &[u32] {
        let start = point as usize * self.walked;
        &self.zero[start..start + self.walked]
    }
}

/// Per-thread search state, kept between queries so the walk itself allocates nothing.
#[derive(Default)]
struct Scratch {
    /// `visited[p] == generation` when point `p` was scored in the current pass; one byte a
    /// point keeps the array in the first-level cache for corpora of tens of thousands.
    visited: Vec<u8>,
    generation: u8,
    /// Min-heap of points still to expand.
    candidates: BinaryHeap<Reverse<u64>>,
    /// Max-heap of the `ef` best points so far.
    nearest: BinaryHeap<u64>,
}

impl Scratch {
    /// Starts a pass over an `n`-point layer from `entry`: only it visited and to expand.
    fn start_pass(&mut self, n: usize, entry: u64) {
        self.next_pass(n);
        self.visit(key_point(entry));
        self.candidates.clear();
        self.candidates.push(Reverse(entry));
    }

    /// Starts a pass in which no point is visited yet.
    fn next_pass(&mut self, n: usize) {
        if self.visited.len() < n {
            self.visited.resize(n, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.visited.fill(0);
            self.generation = 1;
        }
    }

    /// Marks `p` visited; false if it already was in this pass.
    #[inline(always)]
    fn visit(&mut self, p: u32) -> bool {
        let slot = &mut self.visited[p as usize];
        let fresh = *slot != self.generation;
        *slot = self.generation;
        fresh
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// A (distance, point) pair as one integer that sorts like instant-distance's `Candidate`:
/// by distance (`OrderedFloat`'s order: NaN last), then by point.
#[inline(always)]
fn key(distance: f32, point: u32) -> u64 {
    // -0.0 and 0.0 compare equal as distances, as they do in `OrderedFloat`.
    let bits = (distance + 0.0).to_bits();
    let sortable = if distance.is_nan() {
        u32::MAX
    } else if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    };
    (sortable as u64) << 32 | point as u64
}

/// The distance part of a [`key`], in an order-preserving integer form.
#[inline(always)]
fn key_distance(key: u64) -> u32 {
    (key >> 32) as u32
}

#[inline(always)]
fn key_point(key: u64) -> u32 {
    key as u32
}

/// Asks for the first two cache lines of `data` (the hardware prefetcher follows on).
#[inline(always)]
fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes = std::mem::size_of_val(data);
        // SAFETY: a prefetch is a hint; both addresses are inside the live slice.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let p = data.as_ptr() as *const i8;
            if bytes > 0 {
                _mm_prefetch::<_MM_HINT_T0>(p);
            }
            if bytes > 64 {
                _mm_prefetch::<_MM_HINT_T0>(p.add(64));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// An HNSW graph over `[rows, dim]` vectors; hits carry rows and exact inner products.
///
/// instant-distance builds the graph; the search is ours (the crate's algorithm over flat
/// arrays, with `ef` chosen per search), because the crate's own walk spent most of its time
/// in sorted-vector inserts and in fetching each point through its own allocation.
pub struct HnswIndex {
    /// Threads a search of several queries may use (1: the calling thread only; at most the
    /// cores there are).
    pub threads: usize,
    dim: usize,
    /// The vectors in graph order, one block, so a neighbour's row is one offset away.
    vectors: Vec<f32>,
    links: Links,
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
        if rows >= NO_LINK as usize {
            return Err(Error::Config(format!(
                "HNSW holds under 2^32 - 1 rows, not {rows}"
            )));
        }
        let graph = build_graph(&vectors, dim, params);
        Self::from_graph(&vectors, dim, params, &graph, LINKS_WALKED)
    }

    /// Takes a built graph's links (the first `walked` of each layer-0 list) and lays the
    /// vectors out in its order.
    fn from_graph(
        vectors: &[f32],
        dim: usize,
        params: HnswParams,
        graph: &Graph,
        walked: usize,
    ) -> Result<Self, Error> {
        let rows = vectors.len() / dim;
        let links = match graph {
            Graph::NegatedDot(map) => Links::read_back(map, rows, walked)?,
            Graph::L2Augmented(map) => Links::read_back(map, rows, walked)?,
        };
        let mut ordered = Vec::with_capacity(vectors.len());
        for &row in &links.rows {
            let r = row as usize;
            ordered.extend_from_slice(&vectors[r * dim..(r + 1) * dim]);
        }
        Ok(Self {
            threads: 1,
            dim,
            vectors: ordered,
            links,
            params,
        })
    }

    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Like [`MipsIndex::search`] with another `ef` (candidates kept on layer 0): larger finds
    /// more of the exact neighbours and takes longer. No rebuild needed. The queries are
    /// shared among [`HnswIndex::threads`] threads.
    pub fn search_with_ef(
        &self,
        queries: &[f32],
        k: usize,
        ef: usize,
    ) -> Result<Vec<Vec<Hit>>, Error> {
        check_search(self, queries, k)?;
        if ef == 0 {
            return Err(Error::Config("HNSW ef must be at least 1".into()));
        }
        // No more hits than points, whatever k asks (and no overflow in k + k below).
        let k = k.min(self.len());
        let n_queries = queries.len() / self.dim;
        let threads = self.threads.min(cores()).clamp(1, n_queries.max(1));
        if threads == 1 {
            return Ok(self.search_here(queries, k, ef));
        }
        let per_thread = n_queries.div_ceil(threads) * self.dim;
        // The calling thread takes the first part itself, with its warm scratch space, while
        // threads spawned for the others search theirs.
        let (first, rest) = queries.split_at(per_thread.min(queries.len()));
        Ok(std::thread::scope(|scope| {
            let handles: Vec<_> = rest
                .chunks(per_thread)
                .map(|part| scope.spawn(move || self.search_here(part, k, ef)))
                .collect();
            let mut hits = self.search_here(first, k, ef);
            for handle in handles {
                hits.extend(handle.join().expect("an HNSW search thread panicked"));
            }
            hits
        }))
    }

    /// Searches checked queries one after another on the calling thread.
    fn search_here(&self, queries: &[f32], k: usize, ef: usize) -> Vec<Vec<Hit>> {
        SCRATCH.with_borrow_mut(|scratch| {
            queries
                .chunks_exact(self.dim)
                .map(|query| {
                    // The walk keeps ef points but routes by the same inner product summed in
                    // another order: only points within rounding of the k-th can change
                    // places, so k more are rescored, not all ef (at ef 128, 112 fewer inner
                    // products and a shorter sort a query).
                    let found = self.walk(query, ef.max(k), k + k.max(8), scratch);
                    self.rescored(query, &found, k)
                })
                .collect()
        })
    }

    /// The best `k` of `points` by exact inner product with `query`, in [`hit_order`].
    fn rescored(&self, query: &[f32], points: &[u32], k: usize) -> Vec<Hit> {
        let mut hits: Vec<Hit> = points
            .iter()
            .map(|&point| Hit {
                id: self.links.rows[point as usize],
                score: dot_fast(query, self.row(point)),
            })
            .collect();
        hits.sort_by(hit_order);
        hits.truncate(k);
        hits
    }

    #[inline(always)]
    fn row(&self, point: u32) -> &[f32] {
        let start = point as usize * self.dim;
        &self.vectors[start..start + self.dim]
    }

    #[inline(always)]
    fn distance(&self, query: &[f32], point: u32) -> f32 {
        // The routing order of both graphs: -q.z, and for augmented vectors
        // |q|^2 + R^2 - 2 q.z, which sorts the same.
        -dot_routing(query, self.row(point))
    }

    /// The [`key`]s of `points` by their distance from `query`, into `keys`: each row fetched
    /// while the one before is scored. At 64, 128 and 256 dimensions on AVX-512 the query stays
    /// in registers for all of them (the same sums as [`dot_tree_avx512`], so the same keys).
    fn routing_keys(&self, query: &[f32], points: &[u32], keys: &mut [u64]) {
        #[cfg(target_arch = "x86_64")]
        if routing_kernel() == 2 {
            let (rows, dim) = (&self.vectors[..], self.dim);
            // SAFETY (every arm): the CPU has AVX-512F; each width matches its chunk count.
            match dim {
                64 => return unsafe { routing_keys_avx512::<4>(query, rows, points, keys) },
                128 => return unsafe { routing_keys_avx512::<8>(query, rows, points, keys) },
                256 => return unsafe { routing_keys_avx512::<16>(query, rows, points, keys) },
                _ => {}
            }
        }
        for (i, &p) in points.iter().enumerate() {
            if let Some(&next) = points.get(i + 1) {
                prefetch(self.row(next));
            }
            keys[i] = key(self.distance(query, p), p);
        }
    }

    /// instant-distance's search (its `Hnsw::search`, ef = 1 on the upper layers) over the flat
    /// arrays; returns the nearest `keep` of the `ef` graph points found, nearest first.
    fn walk(&self, query: &[f32], ef: usize, keep: usize, s: &mut Scratch) -> Vec<u32> {
        let n = self.links.rows.len();
        s.nearest.clear();
        let mut best = key(self.distance(query, 0), 0);
        for layer in self.links.upper.iter().rev() {
            // A pass with ef = 1 from the best point so far.
            s.start_pass(n, best);
            while let Some(Reverse(candidate)) = s.candidates.pop() {
                if key_distance(candidate) > key_distance(best) {
                    break;
                }
                for &p in &layer[key_point(candidate) as usize] {
                    if p == NO_LINK {
                        break;
                    }
                    if !s.visit(p) {
                        continue;
                    }
                    let new = key(self.distance(query, p), p);
                    if new < best {
                        best = new;
                        s.candidates.push(Reverse(new));
                    }
                }
            }
        }

        s.start_pass(n, best);
        s.nearest.push(best);
        while let Some(Reverse(candidate)) = s.candidates.pop() {
            let furthest = *s.nearest.peek().expect("holds at least the entry point");
            if key_distance(candidate) > key_distance(furthest) {
                break;
            }
            // The likely next candidate's links, fetched while this one's neighbours are scored.
            if let Some(Reverse(next)) = s.candidates.peek() {
                prefetch(self.links.zero(key_point(*next)));
            }
            // The unvisited neighbours first, without a branch on whether each was visited
            // (as likely as not: a mispredicted branch a neighbour).
            let mut fresh = [0u32; LINKS_ZERO];
            let mut count = 0;
            for &p in self.links.zero(key_point(candidate)) {
                if p == NO_LINK {
                    break;
                }
                fresh[count] = p;
                count += usize::from(s.visit(p));
            }
            // Then all their distances, each row fetched while the one before is scored, apart
            // from the heap's unpredictable branches, so the rows' loads overlap.
            let mut keys = [0u64; LINKS_ZERO];
            self.routing_keys(query, &fresh[..count], &mut keys);
            for &new in &keys[..count] {
                if s.nearest.len() < ef || new < *s.nearest.peek().expect("ef >= 1") {
                    s.candidates.push(Reverse(new));
                    if s.nearest.len() < ef {
                        s.nearest.push(new);
                    } else {
                        // The furthest kept point replaced in place: one sift down, where a
                        // push and a pop would sift twice.
                        *s.nearest.peek_mut().expect("ef >= 1") = new;
                    }
                }
            }
        }
        let mut found: Vec<u64> = s.nearest.drain().collect();
        if keep < found.len() {
            found.select_nth_unstable(keep);
            found.truncate(keep);
        }
        found.sort_unstable();
        found.into_iter().map(key_point).collect()
    }
}

enum Graph {
    NegatedDot(HnswMap<NegatedDot, u32>),
    L2Augmented(HnswMap<Euclidean, u32>),
}

/// instant-distance's graph over the vectors, as the metric asks.
fn build_graph(vectors: &[f32], dim: usize, params: HnswParams) -> Graph {
    let builder = Builder::default()
        .ef_construction(params.ef_construction)
        .ef_search(params.ef_search)
        .seed(params.seed);
    let ids: Vec<u32> = (0..(vectors.len() / dim) as u32).collect();
    match params.metric {
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
    }
}

impl MipsIndex for HnswIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.links.rows.len()
    }

    /// `k` hits per query (fewer when the index is smaller, or when the graph reaches fewer
    /// points from its entry), rescored with exact inner
    /// products; the walk keeps `max(ef_search, k)` candidates.
    fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>, Error> {
        self.search_with_ef(queries, k, self.params.ef_search)
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
    use crate::index::reference::top_k_reference;
    use crate::rng::{SplitMix64, fresh_seed};

    #[test]
    fn the_lane_squared_distance_matches_the_plain_sum() {
        let seed = fresh_seed();
        let mut rng = SplitMix64::new(seed);
        for n in [0, 1, 31, 32, 33, 129, 385] {
            let (a, b) = (rng.uniform_vec(n, 2.0), rng.uniform_vec(n, 2.0));
            let plain: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(x - y) * f64::from(x - y))
                .sum();
            let got = f64::from(squared_distance(&a, &b));
            // The dispatched kernel computes the plain lanes' value bit for bit.
            assert_eq!(
                squared_distance(&a, &b).to_bits(),
                squared_distance_lanes(&a, &b).to_bits()
            );
            assert!(
                (got - plain).abs() <= 1e-5 * plain.max(1.0),
                "seed {seed}, n {n}: {got} vs {plain}"
            );
        }
    }

    #[test]
    fn the_routing_dot_product_matches_the_plain_one() {
        let mut rng = SplitMix64::new(fresh_seed());
        for len in [0, 1, 7, 31, 32, 33, 128, 129, 385] {
            let (a, b) = (rng.uniform_vec(len, 2.0), rng.uniform_vec(len, 2.0));
            let plain = crate::index::reference::dot(&a, &b);
            // Another summation order: equal up to f32 rounding of the terms' magnitudes.
            let bound = 1e-5 * a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum::<f32>() + 1e-6;
            #[allow(unused_mut)]
            let mut kernels = vec![dot_routing(&a, &b), dot_tree(&a, &b)];
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: checked just above.
                    kernels.push(unsafe { dot_tree_avx2(&a, &b) });
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: checked just above.
                    kernels.push(unsafe { dot_tree_avx512(&a, &b) });
                }
            }
            for fast in kernels {
                assert!(
                    (fast - plain).abs() <= bound,
                    "len {len}: {fast} vs {plain}"
                );
            }
        }
    }

    /// The register-resident query kernel sums in `dot_tree_avx512`'s order: the same keys,
    /// bit for bit, as the per-point distance, so the walk is unchanged by it.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_batched_routing_keys_equal_the_per_point_ones() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let mut rng = SplitMix64::new(fresh_seed());
        for dim in [64, 128, 256] {
            let rows = rng.uniform_vec(50 * dim, 2.0);
            let query = rng.uniform_vec(dim, 2.0);
            let points: Vec<u32> = (0..30).map(|i| (i * 17 % 50) as u32).collect();
            let mut keys = vec![0u64; points.len()];
            // SAFETY: checked just above.
            unsafe {
                match dim {
                    64 => routing_keys_avx512::<4>(&query, &rows, &points, &mut keys),
                    128 => routing_keys_avx512::<8>(&query, &rows, &points, &mut keys),
                    _ => routing_keys_avx512::<16>(&query, &rows, &points, &mut keys),
                }
            }
            for (&p, &got) in points.iter().zip(&keys) {
                let row = &rows[p as usize * dim..(p as usize + 1) * dim];
                assert_eq!(
                    got,
                    key(-dot_routing(&query, row), p),
                    "dim {dim}, point {p}"
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

    /// The fast walk is instant-distance's search over other data structures: on the same
    /// graph it must return the same points in the same order.
    #[test]
    fn the_walk_finds_what_instant_distance_finds_on_the_same_graph() {
        use instant_distance::Search;
        let seed = fresh_seed();
        eprintln!("seed {seed}");
        let mut rng = SplitMix64::new(seed);
        // 64 dimensions take the AVX-512 routing kernel where the CPU has it, 24 the plain one.
        for (dim, ef) in [(24, 1), (24, 8), (24, 50), (64, 8), (64, 50)] {
            let docs = clustered(&mut rng, 1200, dim, 40);
            let queries = clustered(&mut rng, 60, dim, 40);
            let params = HnswParams {
                ef_search: ef,
                ef_construction: 40,
                seed,
                ..HnswParams::default()
            };
            let graph = build_graph(&docs, dim, params);
            // All of instant-distance's links, as its own search reads them.
            let index = HnswIndex::from_graph(&docs, dim, params, &graph, LINKS_ZERO).unwrap();
            let Graph::NegatedDot(map) = &graph else {
                unreachable!("NegatedDot is the default metric")
            };
            assert!(
                !index.links.upper.is_empty(),
                "the graph should have upper layers"
            );
            let mut search = Search::default();
            let mut scratch = Scratch::default();
            for query in queries.chunks_exact(dim) {
                let theirs: Vec<u32> = map
                    .search(&NegatedDot(query.to_vec()), &mut search)
                    .map(|item| *item.value)
                    .collect();
                let ours: Vec<u32> = index
                    .walk(query, ef, ef, &mut scratch)
                    .into_iter()
                    .map(|p| index.links.rows[p as usize])
                    .collect();
                assert_eq!(ours, theirs, "dim {dim}, ef {ef}");
            }
            // A graph read back against the wrong vectors is refused, not walked.
            let Err(Error::Config(message)) =
                HnswIndex::from_graph(&docs[dim..], dim, params, &graph, LINKS_ZERO)
            else {
                panic!("a graph over 1200 points accepted for 1199 vectors")
            };
            assert!(message.contains("1199 vectors"), "{message}");
        }
    }

    #[test]
    fn a_larger_ef_per_search_finds_more_and_k_above_ef_still_gets_k_hits() {
        let seed = fresh_seed();
        let mut rng = SplitMix64::new(seed);
        let dim = 16;
        let docs = clustered(&mut rng, 3000, dim, 60);
        let queries = clustered(&mut rng, 80, dim, 60);
        let exact = top_k_reference(&queries, &docs, dim, 10).unwrap();
        let params = HnswParams {
            ef_search: 2,
            seed,
            ..HnswParams::default()
        };
        let mut index = HnswIndex::build(docs, dim, params).unwrap();
        let narrow = index.search(&queries, 10).unwrap();
        assert!(narrow.iter().all(|h| h.len() == 10), "seed {seed}");
        let wide = index.search_with_ef(&queries, 10, 400).unwrap();
        let (r_narrow, r_wide) = (recall_at_k(&exact, &narrow), recall_at_k(&exact, &wide));
        eprintln!("seed {seed}: recall@10 ef 10 {r_narrow:.3}, ef 400 {r_wide:.3}");
        assert!(r_wide >= 0.99 && r_wide >= r_narrow, "seed {seed}");
        // Threads share out the queries; each walk is deterministic, so nothing changes.
        for threads in [2, 3, 200] {
            index.threads = threads;
            assert_eq!(index.search_with_ef(&queries, 10, 400).unwrap(), wide);
        }
        assert!(matches!(
            index.search_with_ef(&queries, 10, 0),
            Err(Error::Config(_))
        ));
    }

    /// The search rescores only the walk's best `k + max(k, 8)` points: the same hits as
    /// rescoring all `ef` of them (the plain way) on random data, both graphs, several k.
    #[test]
    fn rescoring_the_walks_best_few_gives_the_hits_of_rescoring_all() {
        let seed = fresh_seed();
        let mut rng = SplitMix64::new(seed);
        let dim = 64;
        let docs = clustered(&mut rng, 2000, dim, 50);
        let queries = clustered(&mut rng, 40, dim, 50);
        for metric in [HnswMetric::NegatedDot, HnswMetric::L2Augmented] {
            let params = HnswParams {
                metric,
                seed,
                ..HnswParams::default()
            };
            let index = HnswIndex::build(docs.clone(), dim, params).unwrap();
            let mut scratch = Scratch::default();
            for (k, ef) in [(1, 64), (8, 8), (8, 100), (20, 150)] {
                let hits = index.search_with_ef(&queries, k, ef).unwrap();
                for (query, hits) in queries.chunks_exact(dim).zip(&hits) {
                    let all = index.walk(query, ef.max(k), ef.max(k), &mut scratch);
                    let expected = index.rescored(query, &all, k);
                    assert_eq!(hits, &expected, "seed {seed}, {metric:?}, k {k}, ef {ef}");
                }
            }
        }
    }

    #[test]
    fn sort_keys_order_like_distances_then_points() {
        let mut rng = SplitMix64::new(fresh_seed());
        let mut values: Vec<f32> = (0..500).map(|_| 1e3 * rng.next_symmetric()).collect();
        values.extend([0.0, -0.0, f32::MIN, f32::MAX, 1e-40, -1e-40, f32::INFINITY]);
        for &a in &values {
            for &b in &values[values.len() - 46..] {
                let expected = a.partial_cmp(&b).unwrap().then(3u32.cmp(&7));
                assert_eq!(key(a, 3).cmp(&key(b, 7)), expected, "{a} vs {b}");
            }
            // NaN sorts after every number, as in `OrderedFloat` (an overflowing inf - inf).
            assert!(key(f32::NAN, 0) > key(a, 1) && key(-f32::NAN, 0) > key(a, 1));
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
        // Any k, even one that would overflow k + k: every point, once.
        assert_eq!(index.search(&[1.0, 0.0], usize::MAX).unwrap()[0].len(), 2);
    }
}
