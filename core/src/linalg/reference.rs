//! The plain matrix product every fast kernel in [`crate::linalg`] is tested against.

/// `out = a b` for row-major `[m, k]` `a` and `[k, n]` `b`: one f32 sum per output, in
/// order of `k`.
pub fn product(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, out: &mut [f32]) {
    assert_eq!(a.len(), m * k, "a must be [{m}, {k}]");
    assert_eq!(b.len(), k * n, "b must be [{k}, {n}]");
    assert_eq!(out.len(), m * n, "out must be [{m}, {n}]");
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
        }
    }
}

/// `x` rounded to the nearest bf16 (ties to even), back in an f32: what a bf16 kernel
/// multiplies instead of `x`.
pub fn round_bf16(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}
