//! f32 products on a right-hand operand packed once into panels of [`NR`] columns: the kernel
//! of the frozen encoders in wasm, where the `gemm` crate's simd128 path ran the reader at
//! ~6 GFLOP/s against ~23 for onnxruntime-web (BENCHMARKS.md, issue #12).
//!
//! `W` `[k, n]` is stored panel by panel; panel `p` holds columns `p NR .. p NR + NR` as `k`
//! rows of `NR` consecutive numbers (zeros past column `n`), so the kernel reads it front to
//! back. The kernel keeps a `[MR, NR]` block of the output in registers (eight 4-lane
//! accumulators: wasm has no FMA, and V8 gives it the sixteen xmm registers of x86), and for
//! each `p` multiplies one number of each of the `MR` rows of `x` by one panel row. Rows of `x`
//! are copied a cache block at a time into groups of `MR` rows interleaved by `k` (as panels
//! hold `W`), so the kernel reads both operands front to back; the block stays in cache while
//! every panel passes. (Reading `x` in place, four rows apart, ran the `[960, 1536] x [1536,
//! 384]` product at 25 GFLOP/s in Node on a Zen 4; packed, at 42.)
//!
//! Every output is summed in order of `k` with a multiply then an add, so the result equals
//! [`super::reference::product`]'s exactly (the tests check that). The lanes are
//! `core::arch::wasm32`'s `v128` with simd128, plain `[f32; 4]` elsewhere (natively the
//! kernel only runs in the tests).

/// Columns of a panel.
pub const NR: usize = 8;
/// Rows of `x` per kernel call.
const MR: usize = 4;

/// A row-major `[k, n]` operand in panels of [`NR`] columns.
#[derive(Clone, Debug)]
pub struct Panels {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl Panels {
    /// Packs the row-major `[k, n]` `values`.
    ///
    /// # Panics
    /// If `values` does not hold `k * n` numbers.
    pub fn new(values: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(
            values.len(),
            k * n,
            "a [{k}, {n}] matrix holds {} values",
            k * n
        );
        Self::strided(values, n, 1, k, n)
    }

    /// Packs the `[k, n]` view whose element `(p, j)` is `values[p * row + j * col]` (a
    /// transposed operand, or one head's columns inside wider rows).
    ///
    /// # Panics
    /// If the view reaches past `values`.
    pub fn strided(values: &[f32], row: usize, col: usize, k: usize, n: usize) -> Self {
        assert!(
            k == 0 || n == 0 || values.len() > (k - 1) * row + (n - 1) * col,
            "a [{k}, {n}] view with strides ({row}, {col}) reaches past {} values",
            values.len()
        );
        let panels = n.div_ceil(NR);
        let mut data = vec![0.0; panels * k * NR];
        for (p, panel) in data
            .chunks_exact_mut((k * NR).max(1))
            .enumerate()
            .take(panels)
        {
            let first = p * NR;
            let width = NR.min(n - first);
            for (r, dst) in panel.chunks_exact_mut(NR).enumerate() {
                if col == 1 {
                    dst[..width].copy_from_slice(&values[r * row + first..][..width]);
                } else {
                    for (j, d) in dst[..width].iter_mut().enumerate() {
                        *d = values[r * row + (first + j) * col];
                    }
                }
            }
        }
        Self { k, n, data }
    }

    /// `out = x W` for the row-major `[m, k]` `x`; `out` is `[m, n]`.
    ///
    /// # Panics
    /// If `x` or `out` has the wrong length.
    pub fn product(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let (k, n) = (self.k, self.n);
        assert_eq!(x.len(), m * k, "x must be [{m}, {k}]");
        assert_eq!(out.len(), m * n, "out must be [{m}, {n}]");
        self.product_rows(x, k, m, out, n);
    }

    /// `out = x W` where row `i` of `x` is `x[i * x_row..][..k]` and row `i` of the output is
    /// `out[i * out_row..][..n]` (the rest of `out` is left alone).
    ///
    /// # Panics
    /// If a row reaches past `x` or `out`, or `x_row < k`, or `out_row < n`.
    pub fn product_rows(&self, x: &[f32], x_row: usize, m: usize, out: &mut [f32], out_row: usize) {
        let k = self.k;
        assert!(
            m == 0 || (x_row >= k && x.len() >= (m - 1) * x_row + k),
            "x too short for [{m}, {k}] rows {x_row} apart"
        );
        self.product_view(x, x_row, 1, m, out, out_row);
    }

    /// `out = x W` for the `[m, k]` view of `x` whose element `(i, p)` is
    /// `x[i * x_row + p * x_col]`; row `i` of the output is `out[i * out_row..][..n]`.
    ///
    /// # Panics
    /// If the view reaches past `x`, a row of the output past `out`, or `out_row < n`.
    pub fn product_view(
        &self,
        x: &[f32],
        x_row: usize,
        x_col: usize,
        m: usize,
        out: &mut [f32],
        out_row: usize,
    ) {
        let (k, n) = (self.k, self.n);
        if m == 0 || n == 0 {
            return;
        }
        assert!(
            k == 0 || x.len() > (m - 1) * x_row + (k - 1) * x_col,
            "a [{m}, {k}] view of x with strides ({x_row}, {x_col}) reaches past {} values",
            x.len()
        );
        assert!(
            out_row >= n && out.len() >= (m - 1) * out_row + n,
            "out too short for [{m}, {n}] rows {out_row} apart"
        );
        if k == 0 {
            for i in 0..m {
                out[i * out_row..][..n].fill(0.0);
            }
            return;
        }
        // Rows of x per cache block: about `BLOCK_FLOATS` numbers, a whole number of groups.
        let block_rows = (BLOCK_FLOATS / k / MR).max(1) * MR;
        let mut packed = vec![0.0; block_rows.min(m.next_multiple_of(MR)) * k];
        for first in (0..m).step_by(block_rows) {
            let rows = block_rows.min(m - first);
            let groups = rows.div_ceil(MR);
            pack_groups(
                x,
                x_row,
                x_col,
                first,
                rows,
                k,
                &mut packed[..groups * MR * k],
            );
            for (p, panel) in self.data.chunks_exact(k * NR).enumerate() {
                let col = p * NR;
                let width = NR.min(n - col);
                for (g, group) in packed.chunks_exact(k * MR).take(groups).enumerate() {
                    let row = first + g * MR;
                    let at = Block {
                        row,
                        rows: MR.min(m - row),
                        out_row,
                        col,
                        width,
                    };
                    block_product(group, panel, out, at);
                }
            }
        }
    }
}

/// Numbers of `x` per cache block (128 KiB: a block stays in a 256 KiB-1 MiB L2 while every
/// panel passes over it, and one group of [`MR`] rows with one panel fits in L1).
const BLOCK_FLOATS: usize = 32 * 1024;

/// Copies rows `first .. first + rows` of the `[m, k]` view of `x` into `packed` in groups of
/// [`MR`] rows, each group `k` runs of `MR` numbers (row `r` of the group at offset `r` of
/// each run), so the kernel reads it front to back; a last group short of `MR` rows is
/// padded with zeros.
fn pack_groups(
    x: &[f32],
    x_row: usize,
    x_col: usize,
    first: usize,
    rows: usize,
    k: usize,
    packed: &mut [f32],
) {
    for (g, group) in packed.chunks_exact_mut(k * MR).enumerate() {
        for r in 0..MR {
            let i = g * MR + r;
            if i >= rows {
                group.iter_mut().skip(r).step_by(MR).for_each(|v| *v = 0.0);
                continue;
            }
            let start = (first + i) * x_row;
            let dst = group.iter_mut().skip(r).step_by(MR);
            if x_col == 1 {
                dst.zip(&x[start..][..k]).for_each(|(d, &v)| *d = v);
            } else {
                dst.enumerate().for_each(|(p, d)| *d = x[start + p * x_col]);
            }
        }
    }
}

/// Where one kernel call writes: rows `row .. row + rows` of the output (`rows <= MR`),
/// columns `col .. col + width` (one panel's).
#[derive(Clone, Copy)]
struct Block {
    row: usize,
    rows: usize,
    out_row: usize,
    col: usize,
    width: usize,
}

/// One `[MR, NR]` block of the output from one packed group of rows and one panel; only the
/// block's `rows` and `width` are stored.
#[inline(always)]
fn block_product(group: &[f32], panel: &[f32], out: &mut [f32], at: Block) {
    let Block {
        row,
        rows,
        out_row,
        col,
        width,
    } = at;
    let mut acc = [[Lanes::ZERO; 2]; MR];
    let (group, _) = group.as_chunks::<MR>();
    let (panel, _) = panel.as_chunks::<NR>();
    for (a, b) in group.iter().zip(panel) {
        let (b0, b1) = (Lanes::load(&b[..4]), Lanes::load(&b[4..]));
        for (acc, &a) in acc.iter_mut().zip(a) {
            let a = Lanes::splat(a);
            acc[0] = acc[0].add(a.mul(b0));
            acc[1] = acc[1].add(a.mul(b1));
        }
    }
    for (r, [lo, hi]) in acc.iter().enumerate().take(rows) {
        let dst = &mut out[(row + r) * out_row + col..][..width];
        if width == NR {
            lo.store(&mut dst[..4]);
            hi.store(&mut dst[4..]);
        } else {
            let mut all = [0.0; NR];
            lo.store(&mut all[..4]);
            hi.store(&mut all[4..]);
            dst.copy_from_slice(&all[..width]);
        }
    }
}

/// Four f32 lanes: wasm's `v128`.
#[cfg(all(target_family = "wasm", target_feature = "simd128"))]
#[derive(Clone, Copy)]
struct Lanes(core::arch::wasm32::v128);

#[cfg(all(target_family = "wasm", target_feature = "simd128"))]
impl Lanes {
    const ZERO: Self = Self(core::arch::wasm32::f32x4(0.0, 0.0, 0.0, 0.0));

    #[inline(always)]
    fn load(src: &[f32]) -> Self {
        assert!(src.len() >= 4);
        // SAFETY: four numbers are there; wasm loads need no alignment.
        Self(unsafe { core::arch::wasm32::v128_load(src.as_ptr().cast()) })
    }

    #[inline(always)]
    fn splat(v: f32) -> Self {
        Self(core::arch::wasm32::f32x4_splat(v))
    }

    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Self(core::arch::wasm32::f32x4_mul(self.0, o.0))
    }

    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Self(core::arch::wasm32::f32x4_add(self.0, o.0))
    }

    #[inline(always)]
    fn store(self, dst: &mut [f32]) {
        assert!(dst.len() >= 4);
        // SAFETY: four numbers fit; wasm stores need no alignment.
        unsafe { core::arch::wasm32::v128_store(dst.as_mut_ptr().cast(), self.0) }
    }
}

/// Four f32 lanes: plain arrays (the tests' path, and wasm without simd128).
#[cfg(not(all(target_family = "wasm", target_feature = "simd128")))]
#[derive(Clone, Copy)]
struct Lanes([f32; 4]);

#[cfg(not(all(target_family = "wasm", target_feature = "simd128")))]
impl Lanes {
    const ZERO: Self = Self([0.0; 4]);

    #[inline(always)]
    fn load(src: &[f32]) -> Self {
        Self([src[0], src[1], src[2], src[3]])
    }

    #[inline(always)]
    fn splat(v: f32) -> Self {
        Self([v; 4])
    }

    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i] * o.0[i]))
    }

    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i] + o.0[i]))
    }

    #[inline(always)]
    fn store(self, dst: &mut [f32]) {
        dst[..4].copy_from_slice(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::reference;
    use crate::rng::{SplitMix64, fresh_seed};

    #[test]
    fn panel_products_equal_the_reference_exactly() {
        let seed = fresh_seed();
        let mut rng = SplitMix64::new(seed);
        // Edges: a partial panel, row remainders of 1-3, three cache blocks (32 rows of
        // k = 1024 each) the last ending in a partial group, an empty sum, one column.
        for (m, k, n) in [
            (1, 1, 1),
            (3, 7, 5),
            (4, 16, 8),
            (17, 64, 33),
            (130, 40, 19),
            (70, 1024, 9),
            (2, 0, 9),
            (0, 5, 3),
            (69, 384, 1),
        ] {
            let a = rng.uniform_vec(m * k, 1.0);
            let b = rng.uniform_vec(k * n, 1.0);
            let mut want = vec![0.0; m * n];
            reference::product(&a, &b, m, k, n, &mut want);
            let mut got = vec![f32::NAN; m * n];
            Panels::new(&b, k, n).product(&a, m, &mut got);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                // `==`: the reference's empty sum is -0.0 (std's float `Sum` starts there).
                assert!(
                    g == w,
                    "seed {seed}, [{m}, {k}] x [{k}, {n}], output {i}: {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn strided_views_and_row_strides_give_the_dense_product() {
        let seed = fresh_seed();
        let mut rng = SplitMix64::new(seed);
        let (m, k, n) = (7, 5, 11);
        let a = rng.uniform_vec(m * k, 1.0);
        let b_t = rng.uniform_vec(n * k, 1.0); // [n, k]: b is its transpose
        let b: Vec<f32> = (0..k * n).map(|i| b_t[(i % n) * k + i / n]).collect();
        let mut want = vec![0.0; m * n];
        reference::product(&a, &b, m, k, n, &mut want);
        // x's rows 8 apart inside a wider buffer, the output's 13 apart.
        let mut wide = vec![f32::NAN; m * 8];
        for i in 0..m {
            wide[i * 8..][..k].copy_from_slice(&a[i * k..][..k]);
        }
        let mut got = vec![-1.0; m * 13];
        let packed = Panels::strided(&b_t, 1, k, k, n);
        packed.product_rows(&wide, 8, m, &mut got, 13);
        // x as the transposed view of a column-major copy.
        let a_t: Vec<f32> = (0..m * k).map(|i| a[(i % m) * k + i / m]).collect();
        let mut got_t = vec![-1.0; m * 13];
        packed.product_view(&a_t, 1, m, m, &mut got_t, 13);
        for got in [&got, &got_t] {
            for i in 0..m {
                assert_eq!(
                    &got[i * 13..][..n],
                    &want[i * n..][..n],
                    "seed {seed}, row {i}"
                );
                assert!(got[i * 13 + n..(i + 1) * 13].iter().all(|&v| v == -1.0));
            }
        }
    }

    #[test]
    #[should_panic(expected = "x must be [2, 3]")]
    fn a_short_left_operand_is_refused() {
        Panels::new(&[0.0; 6], 3, 2).product(&[0.0; 5], 2, &mut [0.0; 4]);
    }
}
