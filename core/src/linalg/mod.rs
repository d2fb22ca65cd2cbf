//! Matrix products for the frozen encoders on the CPU (indexing, `ask`): `x W` with the
//! weight `W` packed once for the kernel that will multiply by it.
//!
//! Three kernels, one contract ([`Matrix::product`]: `out = x W`, row-major, f32 in and out):
//! - [`reference`]: the plain triple loop every fast kernel is tested against;
//! - `F32`: the `gemm` crate's kernels (the ones burn's CPU backend calls; AVX-512 where the
//!   CPU has it, at 0.85-0.95 of PyTorch's sgemm on an Intel Xeon: `benches/linalg.rs`);
//!   in wasm [`panel`]'s simd128 kernel on weights packed into column panels instead;
//! - `Bf16` ([`bf16`]): operands rounded to bf16, sums kept in f32, on Intel AMX tiles where
//!   the CPU has AMX-BF16 and the OS grants the tile state (Linux on x86-64), else on AVX-512
//!   BF16 (AMD Zen 4 and later).

pub mod bf16;
pub mod panel;
pub mod reference;

/// How a [`Matrix`] multiplies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 operands and sums.
    F32,
    /// bf16 operands (8-bit mantissa), f32 sums: AMX tiles or AVX-512 BF16.
    Bf16,
}

impl Precision {
    /// Whether this machine can multiply at this precision.
    pub fn available(self) -> bool {
        match self {
            Self::F32 => true,
            Self::Bf16 => bf16::available(),
        }
    }

    /// The fastest precision this machine has: bf16 on AMX or AVX-512 BF16 (1.5-2.1x our f32
    /// on an AMD Zen 5, retrieval recall and gold-paragraph EM within 0.1 of f32's:
    /// BENCHMARKS.md), f32 elsewhere.
    pub fn fastest() -> Self {
        if bf16::available() {
            Self::Bf16
        } else {
            Self::F32
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        })
    }
}

/// A `[k, n]` right-hand operand packed for one kernel.
#[derive(Clone, Debug)]
pub struct Matrix {
    k: usize,
    n: usize,
    packed: Packed,
}

#[derive(Clone, Debug)]
enum Packed {
    /// Row-major `[k, n]`, for the `gemm` crate.
    #[cfg_attr(target_family = "wasm", allow(dead_code))]
    F32(Vec<f32>),
    /// Column panels, for wasm's kernel.
    #[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
    Panels(panel::Panels),
    Bf16(bf16::PackedB),
}

impl Matrix {
    /// Packs the row-major `[k, n]` `values` for `precision`.
    ///
    /// # Panics
    /// If `values` does not hold `k * n` numbers, or `precision` is not available here
    /// ([`Precision::available`]).
    pub fn new(values: Vec<f32>, k: usize, n: usize, precision: Precision) -> Self {
        assert_eq!(
            values.len(),
            k * n,
            "a [{k}, {n}] matrix holds {} values",
            k * n
        );
        let packed = match precision {
            #[cfg(not(target_family = "wasm"))]
            Precision::F32 => Packed::F32(values),
            #[cfg(target_family = "wasm")]
            Precision::F32 => Packed::Panels(panel::Panels::new(&values, k, n)),
            Precision::Bf16 => {
                assert!(
                    bf16::available(),
                    "bf16 products need AMX or AVX-512 BF16 (Precision::available)"
                );
                Packed::Bf16(bf16::PackedB::new(&values, k, n))
            }
        };
        Self { k, n, packed }
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn precision(&self) -> Precision {
        match self.packed {
            Packed::F32(_) | Packed::Panels(_) => Precision::F32,
            Packed::Bf16(_) => Precision::Bf16,
        }
    }

    /// `out = x W` for the row-major `[m, k]` `x`; `out` is `[m, n]`.
    ///
    /// # Panics
    /// If `x` or `out` has the wrong length.
    pub fn product(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let (k, n) = (self.k, self.n);
        assert_eq!(x.len(), m * k, "x must be [{m}, {k}]");
        assert_eq!(out.len(), m * n, "out must be [{m}, {n}]");
        match &self.packed {
            Packed::F32(w) => product_f32(x, w, m, k, n, out),
            Packed::Panels(w) => w.product(x, m, out),
            Packed::Bf16(w) => w.product(x, k, m, out, n),
        }
    }
}

/// Products of at least this many multiply-adds run on every thread of the pool.
#[cfg_attr(target_family = "wasm", allow(dead_code))]
pub(crate) const PARALLEL_MIN_MACS: usize = 1 << 21;

/// The threads a product may use: rayon's pool natively (`RAYON_NUM_THREADS` caps it), one
/// in wasm.
pub fn threads() -> usize {
    #[cfg(not(target_family = "wasm"))]
    return rayon::current_num_threads();
    #[cfg(target_family = "wasm")]
    1
}

/// `out = a b` for row-major `[m, k]` `a` and `[k, n]` `b`, by the `gemm` crate (on every
/// thread when the product is large).
pub fn product_f32(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, out: &mut [f32]) {
    assert_eq!(out.len(), m * n, "out must be [{m}, {n}]");
    gemm_call(a, k, 1, b, n, 1, m, k, n, out, n, parallelism(m, k, n));
}

/// Every thread for a large product, this one for a small one.
fn parallelism(m: usize, k: usize, n: usize) -> gemm::Parallelism {
    #[cfg(target_family = "wasm")]
    let _ = (m, k, n);
    match threads() {
        #[cfg(not(target_family = "wasm"))]
        t if t > 1 && m * k * n >= PARALLEL_MIN_MACS => gemm::Parallelism::Rayon(t),
        _ => gemm::Parallelism::None,
    }
}

/// `out = a b` where element `(i, p)` of `a` is `a[i * a_row + p * a_col]` and `(p, j)` of
/// `b` is `b[p * b_row + j * b_col]`: transposed or strided views with no copy (one head of
/// the attention inside the fused q/k/v rows). Row `i` of the output is
/// `out[i * out_row..][..n]`. On this thread only (the attention runs one per thread). In
/// wasm `b`'s view is packed into [`panel`]'s panels first.
#[allow(clippy::too_many_arguments)]
pub fn strided_product_f32(
    a: &[f32],
    a_row: usize,
    a_col: usize,
    b: &[f32],
    b_row: usize,
    b_col: usize,
    m: usize,
    k: usize,
    n: usize,
    out: &mut [f32],
    out_row: usize,
) {
    #[cfg(target_family = "wasm")]
    if m > 0 && n > 0 {
        // The view packed into panels for wasm's kernel: a copy of `k n` numbers for a
        // product of `m k n` multiply-adds.
        panel::Panels::strided(b, b_row, b_col, k, n)
            .product_view(a, a_row, a_col, m, out, out_row);
        return;
    }
    gemm_call(
        a,
        a_row,
        a_col,
        b,
        b_row,
        b_col,
        m,
        k,
        n,
        out,
        out_row,
        gemm::Parallelism::None,
    );
}

/// `strided_product_f32` on every thread when the product is large (as `product_f32`).
#[allow(clippy::too_many_arguments)]
pub fn strided_product_f32_threaded(
    a: &[f32],
    a_row: usize,
    a_col: usize,
    b: &[f32],
    b_row: usize,
    b_col: usize,
    m: usize,
    k: usize,
    n: usize,
    out: &mut [f32],
    out_row: usize,
) {
    let parallelism = parallelism(m, k, n);
    gemm_call(
        a,
        a_row,
        a_col,
        b,
        b_row,
        b_col,
        m,
        k,
        n,
        out,
        out_row,
        parallelism,
    );
}

#[allow(clippy::too_many_arguments)]
fn gemm_call(
    a: &[f32],
    a_row: usize,
    a_col: usize,
    b: &[f32],
    b_row: usize,
    b_col: usize,
    m: usize,
    k: usize,
    n: usize,
    out: &mut [f32],
    out_row: usize,
    parallelism: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, r: usize, c: usize| (rows - 1) * r + (cols - 1) * c;
    assert!(
        n <= out_row && out.len() > last(m, n, out_row, 1),
        "out too short for [{m}, {n}]"
    );
    assert!(
        k == 0 || a.len() > last(m, k, a_row, a_col),
        "a too short for [{m}, {k}]"
    );
    assert!(
        k == 0 || b.len() > last(k, n, b_row, b_col),
        "b too short for [{k}, {n}]"
    );
    // SAFETY: the asserts above keep every index the strides reach inside the slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            out_row as isize,
            false,
            a.as_ptr(),
            a_col as isize,
            a_row as isize,
            b.as_ptr(),
            b_col as isize,
            b_row as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{SplitMix64, fresh_seed};

    #[test]
    fn f32_products_match_the_reference_on_random_shapes() {
        let seed = fresh_seed();
        let mut rng = SplitMix64::new(seed);
        // The last is large enough to run on every thread (when the pool has two).
        for (m, k, n) in [
            (1, 1, 1),
            (3, 7, 5),
            (17, 64, 33),
            (5, 0, 4),
            (300, 128, 96),
        ] {
            let a = rng.uniform_vec(m * k, 1.0);
            let b = rng.uniform_vec(k * n, 1.0);
            let mut want = vec![0.0; m * n];
            reference::product(&a, &b, m, k, n, &mut want);
            let mut got = vec![f32::NAN; m * n];
            Matrix::new(b.clone(), k, n, Precision::F32).product(&a, m, &mut got);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-5 * (1.0 + k as f32),
                    "seed {seed}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn strided_products_read_transposed_views() {
        let seed = fresh_seed();
        let mut rng = SplitMix64::new(seed);
        let (m, k, n) = (6, 5, 4);
        let a = rng.uniform_vec(m * k, 1.0);
        let b_t = rng.uniform_vec(n * k, 1.0); // [n, k]: b is its transpose
        let b: Vec<f32> = (0..k * n).map(|i| b_t[(i % n) * k + i / n]).collect();
        let mut want = vec![0.0; m * n];
        reference::product(&a, &b, m, k, n, &mut want);
        let mut got = vec![0.0; m * n];
        strided_product_f32(&a, k, 1, &b_t, 1, k, m, k, n, &mut got, n);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "seed {seed}: {g} vs {w}");
        }
    }
}
