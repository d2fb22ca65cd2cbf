//! bf16 matrix products for the frozen encoders: operands rounded to bf16 (8-bit mantissa),
//! sums kept in f32, on one of two kernels over one packed weight ([`Kernel`]):
//! - AMX tiles (Intel Sapphire Rapids and later Xeons): eight 1 KiB tile registers and one
//!   instruction, `tdpbf16ps`, that adds a `[16, 32] x [32, 16]` bf16 product into a `[16, 16]`
//!   f32 tile; `[32, 32]` blocks of the output in four accumulator tiles;
//! - AVX-512 BF16 where there is no AMX (AMD Zen 4 and later, Intel Cooper Lake): `vdpbf16ps`,
//!   sixteen f32 lanes each adding the product of a bf16 pair; `[8, 32]` blocks of the output
//!   in sixteen registers.
//!
//! The weight (`b`, `[k, n]`) is packed once ([`PackedB`]): zero-padded to multiples of 32,
//! cut into `[32, 16]` tiles stored in AMX's pair-interleaved ("VNNI") order, each column
//! strip's tiles one after another along `k`. A tile's row is then one pair of `k` for 16
//! columns: the AMX tile row, and exactly one `vdpbf16ps` operand, so along `k` a strip is one
//! run of 64-byte rows. Each product rounds `x` to bf16 (AVX-512 BF16's `vcvtneps2bf16`,
//! round to nearest even).
//!
//! The tile state is off by default on Linux: AMX is used only once the kernel granted it
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, asked once after checking CPUID).
//! Rust has no stable AMX intrinsics, so the tile instructions are inline assembly; the
//! compiler never uses tile registers itself. The AVX-512 kernel is intrinsics.

/// The kernels a bf16 product can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Intel AMX tiles.
    Amx,
    /// AVX-512 BF16 vector registers.
    Avx512,
}

impl Kernel {
    /// The fastest kernel this machine has, if any. Checked once.
    pub fn best() -> Option<Self> {
        static BEST: std::sync::OnceLock<Option<Kernel>> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            [Self::Amx, Self::Avx512]
                .into_iter()
                .find(|k| k.available())
        })
    }

    /// Whether this CPU (and, for AMX, the OS) lets this process run the kernel.
    pub fn available(self) -> bool {
        static AMX: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        match self {
            Self::Amx => *AMX.get_or_init(amx::detect),
            Self::Avx512 => avx512::detect(),
        }
    }
}

/// Whether this machine multiplies at bf16 at all (on either kernel).
pub fn available() -> bool {
    Kernel::best().is_some()
}

/// A `[k, n]` right-hand operand in AMX tiles, bf16.
#[derive(Clone, Debug)]
pub struct PackedB {
    k: usize,
    n: usize,
    /// `k` rounded up to a multiple of 32: the number of 32-deep steps is `k_pad / 32`.
    k_pad: usize,
    /// `n` rounded up to a multiple of 32 (two 16-wide tiles per output block).
    n_pad: usize,
    /// Tile `(strip j, step c)` is the 512 values at `(j * k_pad / 32 + c) * 512`; inside
    /// it, row `r` holds `b[32c + 2r + e][16j + q]` at `32r + 2q + e` (bf16 bits).
    tiles: Vec<u16>,
}

/// Values in one tile: 16 rows of 64 bytes.
const TILE: usize = 512;

fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

impl PackedB {
    /// Packs the row-major `[k, n]` `b`.
    pub fn new(b: &[f32], k: usize, n: usize) -> Self {
        Self::strided(b, n, 1, k, n)
    }

    /// Packs `b` where element `(p, j)` is `b[p * row + j * col]` (a transpose read in place
    /// has `row = 1`).
    pub fn strided(b: &[f32], row: usize, col: usize, k: usize, n: usize) -> Self {
        let mut packed = Self {
            k: 0,
            n: 0,
            k_pad: 0,
            n_pad: 0,
            tiles: Vec::new(),
        };
        packed.repack(b, row, col, k, n);
        packed
    }

    /// [`strided`](Self::strided) into this one's buffer.
    pub fn repack(&mut self, b: &[f32], row: usize, col: usize, k: usize, n: usize) {
        if k > 0 && n > 0 {
            assert!(
                b.len() > (k - 1) * row + (n - 1) * col,
                "b too short for [{k}, {n}]"
            );
        }
        let (k_pad, n_pad) = (round_up(k, 32), round_up(n, 32));
        let steps = k_pad / 32;
        self.tiles.clear();
        self.tiles.resize(n_pad / 16 * steps * TILE, 0);
        let at = |p: usize, j: usize| {
            let (c, within, strip, q) = (p / 32, p % 32, j / 16, j % 16);
            (strip * steps + c) * TILE + within / 2 * 32 + q * 2 + within % 2
        };
        // Rounded a row (or, for a transposed view, a column) at a time by the vector
        // conversion where there is one, then put in place.
        let mut rounded = vec![0u16; k.max(n)];
        let mut gathered = vec![0f32; k.max(n)];
        if col == 1 {
            for p in 0..k {
                round_row(&b[p * row..][..n], &mut rounded[..n]);
                for (j, &v) in rounded[..n].iter().enumerate() {
                    self.tiles[at(p, j)] = v;
                }
            }
        } else {
            for j in 0..n {
                let column = &mut gathered[..k];
                if row == 1 {
                    column.copy_from_slice(&b[j * col..][..k]);
                } else {
                    column
                        .iter_mut()
                        .enumerate()
                        .for_each(|(p, v)| *v = b[p * row + j * col]);
                }
                round_row(column, &mut rounded[..k]);
                for (p, &v) in rounded[..k].iter().enumerate() {
                    self.tiles[at(p, j)] = v;
                }
            }
        }
        (self.k, self.n, self.k_pad, self.n_pad) = (k, n, k_pad, n_pad);
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// `out = x b` where row `i` of `x` is `x[i * x_row..][..k]` and row `i` of the output
    /// is `out[i * out_row..][..n]`, on the fastest kernel here.
    ///
    /// # Panics
    /// Where no kernel is available ([`available`]), or a slice is too short.
    pub fn product(&self, x: &[f32], x_row: usize, m: usize, out: &mut [f32], out_row: usize) {
        let kernel = Kernel::best()
            .expect("bf16 products need AMX or AVX-512 BF16 (linalg::bf16::available)");
        self.product_on(kernel, x, x_row, m, out, out_row);
    }

    /// [`product`](Self::product) on `kernel` (the tests and the bench compare the two).
    pub fn product_on(
        &self,
        kernel: Kernel,
        x: &[f32],
        x_row: usize,
        m: usize,
        out: &mut [f32],
        out_row: usize,
    ) {
        let (k, n) = (self.k, self.n);
        if m == 0 || n == 0 {
            return;
        }
        assert!(
            x_row >= k && x.len() >= (m - 1) * x_row + k,
            "x too short for [{m}, {k}]"
        );
        assert!(
            out_row >= n && out.len() >= (m - 1) * out_row + n,
            "out too short for [{m}, {n}]"
        );
        if k == 0 {
            out.chunks_mut(out_row)
                .take(m)
                .for_each(|r| r[..n].fill(0.0));
            return;
        }
        assert!(
            kernel.available(),
            "the {kernel:?} kernel is not available here"
        );
        // Large products: blocks of rows (multiples of 32) on every thread of the pool.
        #[cfg(not(target_family = "wasm"))]
        {
            let threads = super::threads();
            if threads > 1 && m >= 64 && m * k * n >= super::PARALLEL_MIN_MACS {
                use rayon::prelude::*;
                let rows = round_up(m.div_ceil(threads), 32);
                out.par_chunks_mut(rows * out_row)
                    .enumerate()
                    .for_each(|(i, out)| {
                        let m_here = (m - i * rows).min(rows);
                        self.product_here(
                            kernel,
                            &x[i * rows * x_row..],
                            x_row,
                            m_here,
                            out,
                            out_row,
                        );
                    });
                return;
            }
        }
        self.product_here(kernel, x, x_row, m, out, out_row);
    }

    /// [`product`](Self::product) on this thread.
    fn product_here(
        &self,
        kernel: Kernel,
        x: &[f32],
        x_row: usize,
        m: usize,
        out: &mut [f32],
        out_row: usize,
    ) {
        let (k, n) = (self.k, self.n);
        let (k_pad, n_pad) = (self.k_pad, self.n_pad);
        let m_pad = round_up(m, 32);
        SCRATCH.with_borrow_mut(|(a, c)| {
            grow(a, m_pad * k_pad);
            grow(c, m_pad * n_pad);
            let (a, c) = (&mut a[..m_pad * k_pad], &mut c[..m_pad * n_pad]);
            for (i, dst) in a.chunks_exact_mut(k_pad).enumerate() {
                if i < m {
                    round_row(&x[i * x_row..][..k], &mut dst[..k]);
                    dst[k..].fill(0);
                } else {
                    dst.fill(0);
                }
            }
            // Whole 32-row blocks straight into `out` when its rows hold whole tiles; the
            // rest through `c`.
            let direct = if n == n_pad { m / 32 * 32 } else { 0 };
            if direct > 0 {
                // SAFETY: `kernel` is available; `a` holds `direct` rows of `k_pad`, `out` holds
                // `direct` rows of `out_row >= n_pad` (asserted above), the tiles `[k_pad, n_pad]`.
                unsafe { multiply(kernel, a, direct, k_pad, &self.tiles, n_pad, out, out_row) };
            }
            let rest = m_pad - direct;
            if rest > 0 {
                let a = &a[direct * k_pad..];
                // SAFETY: as above, with `c` `[rest, n_pad]`.
                unsafe { multiply(kernel, a, rest, k_pad, &self.tiles, n_pad, c, n_pad) };
                for (i, src) in c.chunks_exact(n_pad).take(m - direct).enumerate() {
                    out[(direct + i) * out_row..][..n].copy_from_slice(&src[..n]);
                }
            }
        });
    }
}

/// `c = a b` on `kernel`: `a` row-major `[m_pad, k_pad]` bf16, `b` the packed tiles of
/// `[k_pad, n_pad]`, `c` `[m_pad, n_pad]` f32 in rows `ldc` apart; all three sizes multiples
/// of 32.
///
/// # Safety
/// `kernel` must be available and the slices as long as the shapes say.
#[allow(clippy::too_many_arguments)]
unsafe fn multiply(
    kernel: Kernel,
    a: &[u16],
    m_pad: usize,
    k_pad: usize,
    b: &[u16],
    n_pad: usize,
    c: &mut [f32],
    ldc: usize,
) {
    debug_assert!(m_pad.is_multiple_of(32) && k_pad.is_multiple_of(32) && n_pad.is_multiple_of(32));
    debug_assert!(a.len() >= m_pad * k_pad && ldc >= n_pad);
    debug_assert!(m_pad == 0 || c.len() >= (m_pad - 1) * ldc + n_pad);
    debug_assert!(b.len() == n_pad / 16 * (k_pad / 32) * TILE);
    // SAFETY: the caller's.
    unsafe {
        match kernel {
            Kernel::Amx => amx::product(a, m_pad, k_pad, b, n_pad, c, ldc),
            Kernel::Avx512 => avx512::product(a, m_pad, k_pad, b, n_pad, c, ldc),
        }
    }
}

/// `dst[i] = bf16(src[i])` (round to nearest even): AVX-512 BF16's conversion where the CPU
/// has it, `half`'s otherwise (packing needs no bf16 instructions; only products do).
fn round_row(src: &[f32], dst: &mut [u16]) {
    if avx512::detect() {
        avx512::to_bf16(src, dst);
    } else {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = half::bf16::from_f32(s).to_bits();
        }
    }
}

thread_local! {
    /// Each thread's bf16 copy of the left operand and f32 output tiles, grown as needed and
    /// kept: fresh pages for every product cost more than the product (the kernel zeroes them).
    static SCRATCH: std::cell::RefCell<(Vec<u16>, Vec<f32>)> = const {
        std::cell::RefCell::new((Vec::new(), Vec::new()))
    };
}

fn grow<T: Default + Clone>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::default());
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod amx {
    use std::arch::asm;
    use std::arch::x86_64::__cpuid_count;

    pub fn detect() -> bool {
        let leaf7 = __cpuid_count(7, 0);
        let (amx_bf16, amx_tile) = (leaf7.edx >> 22 & 1 == 1, leaf7.edx >> 24 & 1 == 1);
        if !(amx_bf16 && amx_tile && std::arch::is_x86_feature_detected!("avx512bf16")) {
            return false;
        }
        const ARCH_REQ_XCOMP_PERM: u64 = 0x1023;
        const XFEATURE_XTILEDATA: u64 = 18;
        const SYS_ARCH_PRCTL: u64 = 158;
        let status: i64;
        // SAFETY: arch_prctl only changes this process's permitted extended state.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => status,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        status == 0
    }

    /// The tile palette: all eight tiles 16 rows of 64 bytes.
    #[repr(C, align(64))]
    struct TileConfig {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        bytes_per_row: [u16; 16],
        rows: [u8; 16],
    }

    /// `c = a b`: `a` row-major `[m_pad, k_pad]` bf16, `b` the packed tiles of
    /// `[k_pad, n_pad]`, `c` row-major `[m_pad, n_pad]` f32; `m_pad`, `k_pad`, `n_pad`
    /// multiples of 32.
    ///
    /// # Safety
    /// AMX must be available ([`detect`]) and the slices as long as the shapes say.
    pub unsafe fn product(
        a: &[u16],
        m_pad: usize,
        k_pad: usize,
        b: &[u16],
        n_pad: usize,
        c: &mut [f32],
        ldc: usize,
    ) {
        let mut config = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            bytes_per_row: [0; 16],
            rows: [0; 16],
        };
        config.bytes_per_row[..8].fill(64);
        config.rows[..8].fill(16);
        let steps = k_pad / 32;
        let strip = steps * super::TILE; // values per 16-wide column strip of b
        // SAFETY (whole block): the config is valid palette 1; pointers stay in the slices
        // by the shapes above.
        unsafe {
            asm!("ldtilecfg [{0}]", in(reg) &config, options(nostack, readonly));
            for j in (0..n_pad / 16).step_by(2) {
                let b0 = b.as_ptr().add(j * strip);
                let b1 = b0.add(strip);
                for i in (0..m_pad).step_by(32) {
                    let a0 = a.as_ptr().add(i * k_pad);
                    let c0 = c.as_mut_ptr().add(i * ldc + j * 16);
                    block(a0, k_pad * 2, b0, b1, steps, c0, ldc * 4);
                }
            }
            asm!("tilerelease", options(nostack, nomem));
        }
    }

    /// One `[32, 32]` output block: four accumulator tiles over `steps` steps of 32 along k.
    /// `lda` and `ldc` are row strides in bytes.
    #[inline(always)]
    unsafe fn block(
        a: *const u16,
        lda: usize,
        b0: *const u16,
        b1: *const u16,
        steps: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        // SAFETY: the caller keeps every address inside its buffers.
        unsafe {
            let a16 = a.byte_add(16 * lda);
            let c16 = c.byte_add(16 * ldc);
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                "2:",
                "tileloadd tmm4, [{a} + {lda}*1]",
                "tileloadd tmm5, [{a16} + {lda}*1]",
                "tileloadd tmm6, [{b0} + {s64}*1]",
                "tileloadd tmm7, [{b1} + {s64}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "add {a}, 64",
                "add {a16}, 64",
                "add {b0}, 1024",
                "add {b1}, 1024",
                "dec {steps}",
                "jnz 2b",
                "tilestored [{c} + {ldc}*1], tmm0",
                "tilestored [{c} + {ldc}*1 + 64], tmm1",
                "tilestored [{c16} + {ldc}*1], tmm2",
                "tilestored [{c16} + {ldc}*1 + 64], tmm3",
                a = inout(reg) a => _,
                a16 = inout(reg) a16 => _,
                b0 = inout(reg) b0 => _,
                b1 = inout(reg) b1 => _,
                steps = inout(reg) steps => _,
                lda = in(reg) lda,
                s64 = in(reg) 64usize,
                c = in(reg) c,
                c16 = in(reg) c16,
                ldc = in(reg) ldc,
                options(nostack),
            );
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod amx {
    pub fn detect() -> bool {
        false
    }

    pub unsafe fn product(
        _: &[u16],
        _: usize,
        _: usize,
        _: &[u16],
        _: usize,
        _: &mut [f32],
        _: usize,
    ) {
        unreachable!("no AMX here: Kernel::Amx is never available")
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Rows of one register block: 8 rows x 2 column strips of 16 = 16 accumulators.
    const ROWS: usize = 8;

    pub fn detect() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }

    /// `dst[i] = bf16(src[i])`, round to nearest even.
    pub fn to_bf16(src: &[f32], dst: &mut [u16]) {
        assert_eq!(src.len(), dst.len());
        assert!(detect(), "the bf16 conversion needs AVX-512 BF16");
        // SAFETY: AVX-512 BF16 checked above.
        unsafe { to_bf16_avx512(src, dst) }
    }

    #[target_feature(enable = "avx512f,avx512bf16,avx512vl")]
    fn to_bf16_avx512(src: &[f32], dst: &mut [u16]) {
        let whole = src.len() / 16 * 16;
        for (s, d) in src[..whole]
            .chunks_exact(16)
            .zip(dst[..whole].chunks_exact_mut(16))
        {
            // SAFETY: both chunks hold 16 elements; unaligned loads and stores.
            unsafe {
                let v = _mm512_loadu_ps(s.as_ptr());
                let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
                _mm256_storeu_si256(d.as_mut_ptr().cast(), h);
            }
        }
        for (s, d) in src[whole..].iter().zip(&mut dst[whole..]) {
            *d = half::bf16::from_f32(*s).to_bits();
        }
    }

    /// `c = a b`, the contract of the AMX kernel: `a` row-major `[m_pad, k_pad]` bf16, `b`
    /// the packed tiles of `[k_pad, n_pad]`, `c` `[m_pad, n_pad]` f32 in rows `ldc` apart.
    ///
    /// # Safety
    /// AVX-512 BF16 must be there ([`detect`]) and the slices as long as the shapes say.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn product(
        a: &[u16],
        m_pad: usize,
        k_pad: usize,
        b: &[u16],
        n_pad: usize,
        c: &mut [f32],
        ldc: usize,
    ) {
        // Along k a strip is one run of rows of 32 bf16 (one pair of k for 16 columns).
        let strip = k_pad / 32 * super::TILE;
        for j in (0..n_pad / 16).step_by(2) {
            for i in (0..m_pad).step_by(ROWS) {
                // SAFETY: rows i..i + ROWS of a and c, strips j and j + 1 of b: inside the
                // slices by the shapes above.
                unsafe {
                    block(
                        a.as_ptr().add(i * k_pad),
                        k_pad,
                        b.as_ptr().add(j * strip),
                        b.as_ptr().add((j + 1) * strip),
                        c.as_mut_ptr().add(i * ldc + j * 16),
                        ldc,
                    )
                }
            }
        }
    }

    /// One `[ROWS, 32]` block of `c`: row `r` of `a` (`lda` values apart) times the two
    /// strips at `b0` and `b1`, `lda / 2` pairs of k each.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    unsafe fn block(
        a: *const u16,
        lda: usize,
        b0: *const u16,
        b1: *const u16,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
        let pairs = lda / 2;
        // SAFETY: the caller keeps every address inside its buffers; all loads unaligned.
        unsafe {
            let a = a.cast::<u32>();
            for p in 0..pairs {
                let w0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b0.add(32 * p).cast()));
                let w1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b1.add(32 * p).cast()));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let pair = a.add(r * pairs + p).read_unaligned();
                    let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair as i32));
                    acc[0] = _mm512_dpbf16_ps(acc[0], x, w0);
                    acc[1] = _mm512_dpbf16_ps(acc[1], x, w1);
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(c.add(r * ldc), acc[0]);
                _mm512_storeu_ps(c.add(r * ldc + 16), acc[1]);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx512 {
    pub fn detect() -> bool {
        false
    }

    pub fn to_bf16(_: &[f32], _: &mut [u16]) {
        unreachable!("no AVX-512 here: detect() is false")
    }

    pub unsafe fn product(
        _: &[u16],
        _: usize,
        _: usize,
        _: &[u16],
        _: usize,
        _: &mut [f32],
        _: usize,
    ) {
        unreachable!("no AVX-512 here: Kernel::Avx512 is never available")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::reference::{self, round_bf16};
    use crate::rng::{SplitMix64, fresh_seed};

    #[test]
    fn every_kernel_matches_the_reference_on_bf16_rounded_operands() {
        let kernels: Vec<Kernel> = [Kernel::Amx, Kernel::Avx512]
            .into_iter()
            .filter(|k| k.available())
            .collect();
        if kernels.is_empty() {
            eprintln!("skipped: neither AMX nor AVX-512 BF16 on this machine");
            return;
        }
        for kernel in kernels {
            products_match_the_reference(kernel);
        }
    }

    fn products_match_the_reference(kernel: Kernel) {
        let seed = fresh_seed();
        let mut rng = SplitMix64::new(seed);
        // The last is large enough to split its rows over threads (when the pool has two).
        for (m, k, n) in [
            (1, 1, 1),
            (3, 7, 5),
            (33, 64, 17),
            (40, 100, 70),
            (128, 384, 96),
            (300, 128, 96),
        ] {
            let a = rng.uniform_vec(m * k, 1.0);
            let b = rng.uniform_vec(k * n, 1.0);
            let round = |v: &[f32]| v.iter().map(|&x| round_bf16(x)).collect::<Vec<_>>();
            let mut want = vec![0.0; m * n];
            reference::product(&round(&a), &round(&b), m, k, n, &mut want);
            // Output rows wider than n (a head's columns inside the context rows): the
            // columns past n stay untouched.
            let wide = n + 5;
            let mut got = vec![f32::NAN; m * wide];
            PackedB::new(&b, k, n).product_on(kernel, &a, k, m, &mut got, wide);
            for (at, g) in got.iter().enumerate() {
                let (i, j) = (at / wide, at % wide);
                if j >= n {
                    assert!(
                        g.is_nan(),
                        "{kernel:?} seed {seed} [{m},{k},{n}]: wrote past n at ({i}, {j})"
                    );
                    continue;
                }
                let w = want[i * n + j];
                let tolerance = 1e-5 * (1.0 + k as f32);
                assert!(
                    (g - w).abs() <= tolerance,
                    "{kernel:?} seed {seed} [{m},{k},{n}] ({i},{j}): {g} vs {w}"
                );
            }
        }
    }
}
