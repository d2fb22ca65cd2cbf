//! int8 index shards: every vector stored as int8 with its own scale, searched with integer
//! dot products. REALM's browser build and large corpora search these instead of f32.
//!
//! A vector `x` is stored as `q = round(x / s)` with `s = max|x| / 127`; a query is quantised
//! the same way when it arrives, so `f(x, z) ~ (q_x . q_z) * s_x * s_z` with the dot product
//! summed exactly in i32. [`top_k_int8_reference`] computes that score plainly; the fast path
//! must return the same hits bit for bit.

use crate::Error;
use crate::index::exact::{MipsIndex, check_search, search_threaded};
use crate::index::reference::{Hit, check_matrix, hit_order};
use crate::index::topk::TopK;

/// The largest magnitude a quantised element takes.
const LEVELS: f32 = 127.0;

/// Quantises `[rows, dim]` finite vectors: int8 values and one scale per row.
pub fn quantize_rows(vectors: &[f32], dim: usize) -> Result<(Vec<i8>, Vec<f32>), Error> {
    check_matrix(vectors, dim, "the vectors to quantise")?;
    let mut values = Vec::with_capacity(vectors.len());
    let mut scales = Vec::with_capacity(vectors.len() / dim);
    for row in vectors.chunks_exact(dim) {
        let scale = quantize_into(row, &mut values);
        scales.push(scale);
    }
    Ok((values, scales))
}

/// Appends the int8 form of `row` to `out` and returns its scale (0 for an all-zero row).
fn quantize_into(row: &[f32], out: &mut Vec<i8>) -> f32 {
    let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = max / LEVELS;
    if scale == 0.0 || !scale.is_normal() {
        out.extend(std::iter::repeat_n(0i8, row.len()));
        return 0.0;
    }
    out.extend(
        row.iter()
            .map(|v| (v / scale).round().clamp(-LEVELS, LEVELS) as i8),
    );
    scale
}

/// Quantises one query as every int8 path does before scoring: values and scale.
pub fn quantize_query(query: &[f32]) -> (Vec<i8>, f32) {
    let mut values = Vec::with_capacity(query.len());
    let scale = quantize_into(query, &mut values);
    (values, scale)
}

/// The vector a quantised row stands for.
pub fn dequantize_row(values: &[i8], scale: f32) -> Vec<f32> {
    values.iter().map(|&v| v as f32 * scale).collect()
}

/// The score of a quantised query against a quantised row, as every int8 path computes it.
#[inline(always)]
fn score(dot: i32, query_scale: f32, row_scale: f32) -> f32 {
    dot as f32 * (query_scale * row_scale)
}

/// Top-k over int8 rows, plainly: quantise each query, score every row, sort.
pub fn top_k_int8_reference(
    queries: &[f32],
    values: &[i8],
    scales: &[f32],
    dim: usize,
    k: usize,
) -> Result<Vec<Vec<Hit>>, Error> {
    if k == 0 {
        return Err(Error::ZeroK);
    }
    if scales.is_empty() {
        return Err(Error::EmptyCorpus);
    }
    check_matrix(queries, dim, "the queries")?;
    Ok(queries
        .chunks_exact(dim)
        .map(|query| {
            let mut q = Vec::with_capacity(dim);
            let query_scale = quantize_into(query, &mut q);
            let mut hits: Vec<Hit> = values
                .chunks_exact(dim)
                .zip(scales)
                .enumerate()
                .map(|(id, (row, &row_scale))| {
                    let dot: i32 = q.iter().zip(row).map(|(&a, &b)| a as i32 * b as i32).sum();
                    Hit {
                        id: id as u32,
                        score: score(dot, query_scale, row_scale),
                    }
                })
                .collect();
            hits.sort_by(hit_order);
            hits.truncate(k);
            hits
        })
        .collect())
}

/// Checks that `values_len` int8 values are whole rows of `dim`, one scale each, and that
/// every scale is finite and non-negative.
pub fn check_int8_rows(values_len: usize, scales: &[f32], dim: usize) -> Result<(), Error> {
    if dim == 0 || values_len != scales.len() * dim {
        return Err(Error::EmbeddingLength {
            len: values_len,
            dim,
        });
    }
    if let Some(position) = scales.iter().position(|s| !s.is_finite()) {
        return Err(Error::NonFinite {
            what: "the int8 scales",
            position,
        });
    }
    if let Some(position) = scales.iter().position(|&s| s < 0.0) {
        let scale = scales[position];
        return Err(Error::NegativeScale { position, scale });
    }
    Ok(())
}

/// An exact-over-int8 index: the values and scales of a quantised shard, searched with
/// widened integer dot products over tiles of rows, on one thread or many.
pub struct Int8Index {
    dim: usize,
    values: Vec<i8>,
    scales: Vec<f32>,
    /// The same rows in the AVX-512 VNNI layout, where the CPU has it.
    #[cfg(target_arch = "x86_64")]
    vnni: Option<crate::index::int8_vnni::VnniRows>,
    /// Threads a search may use (1: the calling thread only).
    pub threads: usize,
}

impl Int8Index {
    /// Quantises `[rows, dim]` f32 vectors.
    pub fn from_f32(vectors: &[f32], dim: usize) -> Result<Self, Error> {
        let (values, scales) = quantize_rows(vectors, dim)?;
        Self::new(values, scales, dim)
    }

    /// Wraps already quantised rows (one finite, non-negative scale per row).
    pub fn new(values: Vec<i8>, scales: Vec<f32>, dim: usize) -> Result<Self, Error> {
        check_int8_rows(values.len(), &scales, dim)?;
        Ok(Self {
            dim,
            #[cfg(target_arch = "x86_64")]
            vnni: crate::index::int8_vnni::available()
                .then(|| crate::index::int8_vnni::VnniRows::new(&values, dim)),
            values,
            scales,
            threads: 1,
        })
    }

    /// The same index searched by the portable scan only (for comparisons and benches).
    pub fn without_vnni(self) -> Self {
        #[cfg(target_arch = "x86_64")]
        return Self { vnni: None, ..self };
        #[cfg(not(target_arch = "x86_64"))]
        self
    }

    /// Whether searches take the AVX-512 VNNI path.
    pub fn uses_vnni(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        return self.vnni.is_some();
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    pub fn values(&self) -> &[i8] {
        &self.values
    }

    pub fn scales(&self) -> &[f32] {
        &self.scales
    }
}

/// Sixteen i32 accumulators over widened products: SIMD multiply-adds after vectorisation.
/// (Off in wasm with simd128, where `dot_i8_simd128` runs; the Node tests compare that with
/// this arithmetic done in JavaScript.)
#[cfg_attr(
    all(target_family = "wasm", target_feature = "simd128"),
    allow(dead_code)
)]
#[inline(always)]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] as i16 as i32 * y[i] as i16 as i32;
        }
    }
    let tail: i32 = ra.iter().zip(rb).map(|(&x, &y)| x as i32 * y as i32).sum();
    acc.iter().sum::<i32>() + tail
}

/// The same dot product on wasm's 128-bit SIMD: i8 lanes widened to i16, pairs multiplied and
/// summed into i32 lanes (`i32x4.dot_i16x8_s`). LLVM left the plain loop at ~1 GMAC/s there,
/// below a JavaScript loop; exact like `dot_i8` (integer arithmetic, no overflow at
/// 127 * 127 * 2 per lane per step for any dimension up to 2^16).
#[cfg(all(target_family = "wasm", target_feature = "simd128"))]
#[inline(always)]
fn dot_i8_simd128(a: &[i8], b: &[i8]) -> i32 {
    use core::arch::wasm32::*;
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut acc = i32x4_splat(0);
    for (x, y) in ca.zip(cb) {
        // SAFETY: each chunk holds exactly 16 bytes; v128_load has no alignment requirement.
        let (x, y) = unsafe {
            (
                v128_load(x.as_ptr() as *const v128),
                v128_load(y.as_ptr() as *const v128),
            )
        };
        let lo = i32x4_dot_i16x8(i16x8_extend_low_i8x16(x), i16x8_extend_low_i8x16(y));
        let hi = i32x4_dot_i16x8(i16x8_extend_high_i8x16(x), i16x8_extend_high_i8x16(y));
        acc = i32x4_add(acc, i32x4_add(lo, hi));
    }
    let tail: i32 = ra.iter().zip(rb).map(|(&x, &y)| x as i32 * y as i32).sum();
    i32x4_extract_lane::<0>(acc)
        + i32x4_extract_lane::<1>(acc)
        + i32x4_extract_lane::<2>(acc)
        + i32x4_extract_lane::<3>(acc)
        + tail
}

/// Rows scored for every query while they sit in cache.
const TILE: usize = 2048;

#[inline(always)]
fn scan_generic(
    queries: &[(Vec<i8>, f32)],
    values: &[i8],
    scales: &[f32],
    first: usize,
    dim: usize,
    k: usize,
) -> Vec<Vec<Hit>> {
    let mut tops: Vec<TopK> = queries.iter().map(|_| TopK::new(k)).collect();
    for (t, (tile, tile_scales)) in values
        .chunks(TILE * dim)
        .zip(scales.chunks(TILE))
        .enumerate()
    {
        for ((q, query_scale), top) in queries.iter().zip(&mut tops) {
            for (r, (row, &row_scale)) in tile.chunks_exact(dim).zip(tile_scales).enumerate() {
                #[cfg(all(target_family = "wasm", target_feature = "simd128"))]
                let dot = dot_i8_simd128(q, row);
                #[cfg(not(all(target_family = "wasm", target_feature = "simd128")))]
                let dot = dot_i8(q, row);
                let s = score(dot, *query_scale, row_scale);
                top.offer((first + t * TILE + r) as u32, s);
            }
        }
    }
    tops.into_iter().map(TopK::into_sorted).collect()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn scan_avx2(
    queries: &[(Vec<i8>, f32)],
    values: &[i8],
    scales: &[f32],
    first: usize,
    dim: usize,
    k: usize,
) -> Vec<Vec<Hit>> {
    scan_generic(queries, values, scales, first, dim, k)
}

fn scan(
    queries: &[(Vec<i8>, f32)],
    values: &[i8],
    scales: &[f32],
    first: usize,
    dim: usize,
    k: usize,
) -> Vec<Vec<Hit>> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports the features the function was compiled for.
        return unsafe { scan_avx2(queries, values, scales, first, dim, k) };
    }
    scan_generic(queries, values, scales, first, dim, k)
}

impl MipsIndex for Int8Index {
    fn dim(&self) -> usize {
        self.dim
    }

    fn len(&self) -> usize {
        self.scales.len()
    }

    fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>, Error> {
        check_search(self, queries, k)?;
        let dim = self.dim;
        let quantised: Vec<(Vec<i8>, f32)> = queries
            .chunks_exact(dim)
            .map(|query| {
                let mut q = Vec::with_capacity(dim);
                let scale = quantize_into(query, &mut q);
                (q, scale)
            })
            .collect();
        #[cfg(target_arch = "x86_64")]
        if let Some(vnni) = &self.vnni {
            // The int8 kernels run about eight times as many pairs a microsecond as f32's.
            return Ok(search_threaded(
                vnni.blocks(),
                self.threads,
                quantised.len(),
                k,
                (1 << 17) / crate::index::int8_vnni::LANES,
                // SAFETY: `vnni` exists only where the CPU has AVX-512 VNNI.
                |first, last| unsafe { vnni.search(&quantised, &self.scales, (first, last), k) },
            ));
        }
        Ok(search_threaded(
            self.len(),
            self.threads,
            quantised.len(),
            k,
            1 << 17,
            |first, last| {
                scan(
                    &quantised,
                    &self.values[first * dim..last * dim],
                    &self.scales[first..last],
                    first,
                    dim,
                    k,
                )
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::reference::top_k_reference;
    use crate::rng::{SplitMix64, fresh_seed};

    #[test]
    fn quantisation_round_trips_within_half_a_step() {
        let mut rng = SplitMix64::new(fresh_seed());
        let x = rng.uniform_vec(40 * 17, 3.0);
        let (values, scales) = quantize_rows(&x, 17).unwrap();
        for (r, row) in x.chunks_exact(17).enumerate() {
            let back = dequantize_row(&values[r * 17..(r + 1) * 17], scales[r]);
            for (a, b) in row.iter().zip(&back) {
                assert!((a - b).abs() <= scales[r] * 0.5 + 1e-6, "{a} vs {b}");
            }
        }
        let (zeros, zero_scales) = quantize_rows(&[0.0; 4], 4).unwrap();
        assert_eq!((zeros, zero_scales), (vec![0; 4], vec![0.0]));
    }

    #[test]
    fn the_fast_path_returns_the_references_hits_bit_for_bit() {
        let mut rng = SplitMix64::new(fresh_seed());
        for &(n, dim, queries, k, threads) in &[
            (1000, 128, 7, 8, 1),
            (5000, 128, 3, 8, 2),
            (257, 13, 2, 300, 2),
            (5, 3, 1, 1, 4),
            (4200, 33, 9, 50, 1),
            // Several L2 tiles, every query-group width (8 + 8 + 2 + 1).
            (9000, 128, 19, 8, 2),
            // Work enough for three threads (search_threaded's least per thread).
            (20000, 32, 20, 8, 3),
        ] {
            let docs = rng.uniform_vec(n * dim, 1.0);
            let qs = rng.uniform_vec(queries * dim, 1.0);
            let mut index = Int8Index::from_f32(&docs, dim).unwrap();
            index.threads = threads;
            let fast = index.search(&qs, k).unwrap();
            let reference =
                top_k_int8_reference(&qs, index.values(), index.scales(), dim, k).unwrap();
            assert_eq!(fast, reference, "n={n} dim={dim} k={k} threads={threads}");
            // The portable scan as well, where the VNNI path took the search above.
            let portable = index.without_vnni().search(&qs, k).unwrap();
            assert_eq!(portable, reference, "portable n={n} dim={dim} k={k}");
        }
    }

    #[test]
    fn int8_search_finds_the_f32_neighbours_on_clustered_data() {
        // 128-d unit vectors around 50 centres, like sentence embeddings: the int8 top-8
        // must hold nearly all of the exact f32 top-8.
        let mut rng = SplitMix64::new(fresh_seed());
        let dim = 128;
        let centres = rng.uniform_vec(50 * dim, 1.0);
        let mut docs = Vec::new();
        for i in 0..4000 {
            let c = &centres[(i % 50) * dim..(i % 50 + 1) * dim];
            let mut v: Vec<f32> = c.iter().map(|x| x + 0.3 * rng.next_symmetric()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            docs.extend(v);
        }
        let qs: Vec<f32> = docs[..20 * dim]
            .iter()
            .map(|x| x + 0.01 * rng.next_symmetric())
            .collect();
        let exact = top_k_reference(&qs, &docs, dim, 8).unwrap();
        let int8 = Int8Index::from_f32(&docs, dim)
            .unwrap()
            .search(&qs, 8)
            .unwrap();
        let found: usize = exact
            .iter()
            .zip(&int8)
            .map(|(e, i)| e.iter().filter(|h| i.iter().any(|x| x.id == h.id)).count())
            .sum();
        let recall = found as f64 / (8 * exact.len()) as f64;
        eprintln!("int8 recall@8 = {recall:.4}");
        assert!(recall >= 0.9, "int8 recall@8 {recall}");
    }

    #[test]
    fn bad_input_is_an_error() {
        let index = Int8Index::from_f32(&[1.0, 0.0, 0.0, 1.0], 2).unwrap();
        assert!(matches!(index.search(&[1.0, 0.0], 0), Err(Error::ZeroK)));
        assert!(matches!(
            index.search(&[1.0, 0.0, 1.0], 1),
            Err(Error::DimensionMismatch { .. })
        ));
        assert!(matches!(
            index.search(&[f32::NAN, 0.0], 1),
            Err(Error::NonFinite { .. })
        ));
        assert!(Int8Index::new(vec![0; 3], vec![1.0], 2).is_err());
        assert!(matches!(
            Int8Index::new(vec![0; 2], vec![f32::NAN], 2),
            Err(Error::NonFinite { .. })
        ));
        assert!(matches!(
            Int8Index::new(vec![0; 4], vec![1.0, -0.5], 2),
            Err(Error::NegativeScale { position: 1, .. })
        ));
    }
}
