//! The elementwise maths that burn's CPU backend (Flex) evaluates with one libm call per
//! element: exact GELU's `erf` and the attention softmax's `exp`. On MiniLM-sized layers
//! those two calls took a quarter of the forward (BENCHMARKS.md); here they are branch-free
//! polynomials the compiler turns into SIMD, applied in place to Flex's own buffers.
//!
//! Tensors that autodiff tracks on Flex take the same kernels as autodiff operations with
//! their own backward (`fast_autodiff`: GELU's derivative, softmax's y (g - sum g y)), where
//! burn evaluated libm per element and softmax as five tracked operations. Every other
//! backend takes burn's own operation; the parity tests run both. Accuracy: `exp_f32`
//! is within 2 ulp of `f32::exp` on the range softmax uses, `erf_f32` within 1e-6 absolute
//! (Abramowitz and Stegun 7.1.26, the formula PyTorch's vectorised `erf` evaluates, plus f32
//! rounding), far inside the 1e-5 parity tolerance; the tests below measure both on grids.

use burn::tensor::Tensor;

/// e^x for f32 without branches: x = n ln2 + r with |r| <= ln2 / 2, e^r by Cephes' degree-6
/// polynomial, 2^n put straight into the exponent bits. Inputs below -87.3 give ~1e-38
/// instead of a subnormal or 0 (softmax's masked scores: negligible beside the row's 1).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to the nearest integer and leaves it in the low mantissa bits.
    const ROUNDER: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.7);
    let shifted = x * LOG2E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5e-1;
    let er = p * r * r + r + 1.0;
    let n_bits = (shifted.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    // Wrapping: a checked add (debug builds) would keep the loops around this scalar.
    er * f32::from_bits((n_bits.wrapping_add(127) << 23) as u32)
}

/// erf(x) for f32 without branches (Abramowitz and Stegun 7.1.26: |error| < 1.5e-7 in the
/// formula, under 1e-6 after f32 rounding).
///
/// |x| is capped at 4, where erf already rounds to 1 in f32: beyond it `exp(-x^2)` would
/// fall below 2^-126, and every product with a subnormal costs an Intel core a microcode
/// assist (GELU took a sixth of a MiniLM forward on an Intel Xeon: BENCHMARKS.md).
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    let a = x.abs().min(4.0);
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let mut p = 1.061_405_4f32;
    p = p * t - 1.453_152_1;
    p = p * t + 1.421_413_8;
    p = p * t - 0.284_496_74;
    p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp_f32(-a * a);
    y.copysign(x)
}

/// Exact GELU, x Phi(x) = x (1 + erf(x / sqrt 2)) / 2, as BERT's `hidden_act: gelu`.
#[inline(always)]
pub fn gelu_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Softmax of each `width`-wide row, in place, after adding `bias` (`width` values, the same
/// for every row: the attention's padding mask) when there is one. Each pass is a map or a
/// reduction over 16 lanes, so the compiler vectorises all three (a running `sum +=`
/// inside the `exp` loop would keep the whole loop scalar: f32 addition does not reassociate).
#[inline(always)]
fn softmax_rows(values: &mut [f32], width: usize, bias: Option<&[f32]>) {
    for row in values.chunks_exact_mut(width) {
        if let Some(bias) = bias {
            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        }
        let max = reduce_lanes(row, f32::NEG_INFINITY, f32::max);
        // Masked scores (f32::MIN) would come out as exp_f32's floor, ~1e-38: multiplied by
        // the values they turn subnormal, and each subnormal product costs the FPU a microcode
        // assist (a padded batch ran 3x slower). They are 0 here, as they are in exact maths.
        row.iter_mut().for_each(|v| {
            let shifted = *v - max;
            *v = if shifted < -87.0 {
                0.0
            } else {
                exp_f32(shifted)
            };
        });
        let inv = 1.0 / reduce_lanes(row, 0.0, |a, b| a + b);
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// The sum of `values` in 16 independent lanes, then across them: a vector loop where a
/// plain `iter().sum()` is one chain of dependent additions.
#[inline(always)]
pub(crate) fn sum_lanes(values: &[f32]) -> f32 {
    reduce_lanes(values, 0.0, |a, b| a + b)
}

/// `op` folded over `values` in 16 independent lanes, then across the lanes.
#[inline(always)]
fn reduce_lanes(values: &[f32], init: f32, op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [init; 16];
    let mut chunks = values.chunks_exact(16);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = op(*lane, v);
        }
    }
    let tail = chunks.remainder().iter().fold(init, |acc, &v| op(acc, v));
    lanes.iter().fold(tail, |acc, &v| op(acc, v))
}

#[inline(always)]
fn gelu_slice(values: &mut [f32]) {
    values.iter_mut().for_each(|v| *v = gelu_f32(*v));
}

/// GELU's derivative, Phi(x) + x phi(x). phi is taken as 0 beyond |x| = 9 (it is below 1e-17
/// there), so that no product falls to a subnormal.
#[inline(always)]
pub fn gelu_derivative_f32(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let cdf = 0.5 * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2));
    let a = x.abs().min(9.0);
    let pdf = if x.abs() > 9.0 {
        0.0
    } else {
        INV_SQRT_2PI * exp_f32(-0.5 * a * a)
    };
    cdf + x * pdf
}

/// `grad *= gelu'(x)`, element by element: GELU's backward.
#[inline(always)]
fn gelu_backward_slice(x: &[f32], grad: &mut [f32]) {
    grad.iter_mut()
        .zip(x)
        .for_each(|(g, &x)| *g *= gelu_derivative_f32(x));
}

/// Softmax's backward over `width`-wide rows, in place: with y the softmax's output and g the
/// gradient of its output, g becomes y (g - sum(g y)).
#[inline(always)]
fn softmax_backward_rows(y: &[f32], grad: &mut [f32], width: usize) {
    for (y, g) in y.chunks_exact(width).zip(grad.chunks_exact_mut(width)) {
        let mut lanes = [0.0f32; 16];
        let (mut ys, mut gs) = (y.chunks_exact(16), g.chunks_exact(16));
        for (yc, gc) in (&mut ys).zip(&mut gs) {
            for ((lane, &y), &g) in lanes.iter_mut().zip(yc).zip(gc) {
                *lane += y * g;
            }
        }
        let tail: f32 = ys
            .remainder()
            .iter()
            .zip(gs.remainder())
            .map(|(y, g)| y * g)
            .sum();
        let dot = lanes.iter().fold(tail, |acc, &v| acc + v);
        g.iter_mut().zip(y).for_each(|(g, &y)| *g = y * (*g - dot));
    }
}

/// The slice kernels compiled for AVX2 + FMA, chosen at run time (the baseline x86-64
/// build has SSE2 only).
#[cfg(target_arch = "x86_64")]
mod wide {
    #[target_feature(enable = "avx2,fma")]
    pub fn gelu_slice(values: &mut [f32]) {
        super::gelu_slice(values)
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn softmax_rows(values: &mut [f32], width: usize, bias: Option<&[f32]>) {
        super::softmax_rows(values, width, bias)
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn gelu_backward_slice(x: &[f32], grad: &mut [f32]) {
        super::gelu_backward_slice(x, grad)
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn softmax_backward_rows(y: &[f32], grad: &mut [f32], width: usize) {
        super::softmax_backward_rows(y, grad, width)
    }

    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
}

/// The same kernels compiled for AVX-512 (16 lanes), where the CPU has it.
#[cfg(target_arch = "x86_64")]
mod widest {
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub fn gelu_slice(values: &mut [f32]) {
        super::gelu_slice(values)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub fn softmax_rows(values: &mut [f32], width: usize, bias: Option<&[f32]>) {
        super::softmax_rows(values, width, bias)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub fn gelu_backward_slice(x: &[f32], grad: &mut [f32]) {
        super::gelu_backward_slice(x, grad)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub fn softmax_backward_rows(y: &[f32], grad: &mut [f32], width: usize) {
        super::softmax_backward_rows(y, grad, width)
    }

    pub fn available() -> bool {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f") && super::wide::available()
        })
    }
}

/// GELU of every element, in place, with the widest SIMD the CPU has.
pub fn gelu_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if widest::available() {
        // SAFETY: the CPU supports the features the function was compiled for.
        return unsafe { widest::gelu_slice(values) };
    }
    #[cfg(target_arch = "x86_64")]
    if wide::available() {
        // SAFETY: the CPU supports the features the function was compiled for.
        return unsafe { wide::gelu_slice(values) };
    }
    gelu_slice(values)
}

/// `grad *= gelu'(x)` with the widest SIMD the CPU has (GELU's backward).
pub fn gelu_backward_in_place(x: &[f32], grad: &mut [f32]) {
    assert_eq!(x.len(), grad.len(), "one gradient per input");
    #[cfg(target_arch = "x86_64")]
    if widest::available() {
        // SAFETY: the CPU supports the features the function was compiled for.
        return unsafe { widest::gelu_backward_slice(x, grad) };
    }
    #[cfg(target_arch = "x86_64")]
    if wide::available() {
        // SAFETY: the CPU supports the features the function was compiled for.
        return unsafe { wide::gelu_backward_slice(x, grad) };
    }
    gelu_backward_slice(x, grad)
}

/// Softmax's backward over `width`-wide rows with the widest SIMD the CPU has: `grad`, the
/// gradient of the output `y`, becomes the gradient of the input.
pub fn softmax_backward_in_place(y: &[f32], grad: &mut [f32], width: usize) {
    assert_eq!(y.len(), grad.len(), "one gradient per output");
    #[cfg(target_arch = "x86_64")]
    if widest::available() {
        // SAFETY: the CPU supports the features the function was compiled for.
        return unsafe { widest::softmax_backward_rows(y, grad, width) };
    }
    #[cfg(target_arch = "x86_64")]
    if wide::available() {
        // SAFETY: the CPU supports the features the function was compiled for.
        return unsafe { wide::softmax_backward_rows(y, grad, width) };
    }
    softmax_backward_rows(y, grad, width)
}

/// Softmax of every `width`-wide row, in place, with the widest SIMD the CPU has.
pub fn softmax_in_place(values: &mut [f32], width: usize) {
    softmax_biased_in_place(values, width, None)
}

/// Softmax of every `width`-wide row after adding `bias` to each (when given), in place.
pub fn softmax_biased_in_place(values: &mut [f32], width: usize, bias: Option<&[f32]>) {
    if let Some(bias) = bias {
        assert_eq!(bias.len(), width, "one bias per column");
    }
    #[cfg(target_arch = "x86_64")]
    if widest::available() {
        // SAFETY: the CPU supports the features the function was compiled for.
        return unsafe { widest::softmax_rows(values, width, bias) };
    }
    #[cfg(target_arch = "x86_64")]
    if wide::available() {
        // SAFETY: the CPU supports the features the function was compiled for.
        return unsafe { wide::softmax_rows(values, width, bias) };
    }
    softmax_rows(values, width, bias)
}

/// Applies `op` to the tensor's f32 elements in place when it is a plain Flex tensor
/// (no autodiff) that is contiguous; otherwise hands the tensor back untouched.
#[cfg(feature = "flex")]
fn on_flex<const D: usize>(
    x: Tensor<D>,
    op: impl FnOnce(&mut [f32]),
) -> Result<Tensor<D>, Tensor<D>> {
    use burn::tensor::DType;
    use burn_flex::Flex;
    if x.dtype() != DType::F32 {
        return Err(x);
    }
    // A clone shares the buffer; the original goes back when this is not a Flex tensor.
    let Ok(mut primitive) = x.clone().try_into_primitive::<Flex>() else {
        return Err(x);
    };
    drop(x);
    if !primitive.layout().is_contiguous() || primitive.layout().start_offset() != 0 {
        return Err(Tensor::from_primitive::<Flex>(primitive));
    }
    let n = primitive.layout().num_elements();
    // storage_mut copies the buffer first if it is shared (copy on write).
    op(&mut primitive.storage_mut::<f32>()[..n]);
    Ok(Tensor::from_primitive::<Flex>(primitive))
}

#[cfg(feature = "flex")]
use super::fast_autodiff::{tracked_gelu, tracked_matmul, tracked_softmax_last};

#[cfg(not(feature = "flex"))]
#[allow(clippy::type_complexity)]
fn tracked_matmul<const D: usize, const E: usize>(
    a: Tensor<D>,
    b: Tensor<E>,
) -> Result<Tensor<D>, (Tensor<D>, Tensor<E>)> {
    Err((a, b))
}

#[cfg(not(feature = "flex"))]
fn tracked_gelu<const D: usize>(x: Tensor<D>) -> Result<Tensor<D>, Tensor<D>> {
    Err(x)
}

#[cfg(not(feature = "flex"))]
fn tracked_softmax_last<const D: usize>(x: Tensor<D>) -> Result<Tensor<D>, Tensor<D>> {
    Err(x)
}

#[cfg(not(feature = "flex"))]
fn on_flex<const D: usize>(
    x: Tensor<D>,
    _op: impl FnOnce(&mut [f32]),
) -> Result<Tensor<D>, Tensor<D>> {
    Err(x)
}

/// Whether tensors on `device` live on burn's CPU backend (Flex), with or without autodiff.
pub fn is_flex(device: &burn::tensor::Device) -> bool {
    #[cfg(feature = "flex")]
    return *device == burn::tensor::Device::flex();
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

/// `a b` (batched over the leading dimensions): on Flex tensors that autodiff tracks, gemm
/// reads strided views in place and writes its own buffer, with the backward's two products
/// done the same way (burn's Flex product zeroes its output and then copies it whole into an
/// aligned buffer: both passes were a tenth of a training step); burn's `matmul` elsewhere.
pub fn matmul<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    tracked_matmul(a, b).unwrap_or_else(|(a, b)| a.matmul(b))
}

/// A linear layer, `x w + bias`: its product by `matmul`'s kernels where autodiff tracks `x`
/// on Flex (the weight shared by every row), burn's `Linear::forward` elsewhere.
pub fn linear<const D: usize>(layer: &burn::nn::Linear, x: Tensor<D>) -> Tensor<D> {
    match tracked_matmul(x, layer.weight.val()) {
        Ok(product) => match &layer.bias {
            Some(bias) => product + bias.val().unsqueeze::<D>(),
            None => product,
        },
        Err((x, _)) => layer.forward(x),
    }
}

/// Exact GELU: the vectorised kernel on Flex tensors (with its own backward where autodiff
/// tracks them), burn's `gelu` everywhere else.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    on_flex(x, gelu_in_place)
        .or_else(tracked_gelu)
        .unwrap_or_else(burn::tensor::activation::gelu)
}

/// Softmax over the last dimension: the vectorised kernel on Flex tensors (with its own
/// backward where autodiff tracks them), burn's `softmax` everywhere else.
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let width = x.dims()[D - 1];
    on_flex(x, |values| softmax_in_place(values, width))
        .or_else(tracked_softmax_last)
        .unwrap_or_else(|x| burn::tensor::activation::softmax(x, D - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{SplitMix64, fresh_seed};
    use burn::tensor::{Device, TensorData};

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i32).abs_diff(b.to_bits() as i32)
    }

    #[test]
    fn exp_is_within_two_ulp_of_std_where_softmax_uses_it() {
        let mut worst = 0;
        for i in 0..=400_000 {
            let x = -80.0 + 88.0 * i as f32 / 400_000.0; // softmax feeds x - max <= 0
            worst = worst.max(ulps(exp_f32(x), x.exp()));
        }
        assert!(worst <= 2, "worst {worst} ulp");
        assert!(exp_f32(f32::NEG_INFINITY) < 1e-37);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn erf_and_gelu_match_libm_on_a_dense_grid() {
        let (mut worst_erf, mut worst_gelu) = (0.0f32, 0.0f32);
        for i in 0..=200_000 {
            let x = -12.0 + 24.0 * i as f32 / 200_000.0;
            worst_erf = worst_erf.max((erf_f32(x) - libm::erff(x)).abs());
            let exact = 0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2));
            worst_gelu = worst_gelu.max((gelu_f32(x) - exact).abs() / x.abs().max(1.0));
        }
        eprintln!("erf worst {worst_erf:e}, gelu worst {worst_gelu:e} (relative above |x| = 1)");
        assert!(worst_erf <= 1e-6, "erf worst {worst_erf}");
        // Far tails: exactly 1 and 0, with no subnormal on the way.
        for x in [4.0f32, 5.5, 9.4, 30.0, f32::MAX] {
            assert_eq!(erf_f32(x), 1.0, "erf({x})");
            assert_eq!(erf_f32(-x), -1.0, "erf(-{x})");
        }
        for x in [6.0f32, 9.4, 30.0, 1e30] {
            assert_eq!(gelu_f32(-x), 0.0, "gelu(-{x})");
        }
        assert!(worst_gelu <= 1e-6, "gelu worst {worst_gelu}");
    }

    #[test]
    fn the_tensor_paths_match_burns_own_operations() {
        let device = Device::default();
        let mut rng = SplitMix64::new(fresh_seed());
        let data = TensorData::new(rng.uniform_vec(3 * 5 * 37, 6.0), [3, 5, 37]);
        let x = Tensor::<3>::from_data(data, &device);
        for (fast, plain) in [
            (gelu(x.clone()), burn::tensor::activation::gelu(x.clone())),
            (
                softmax_last(x.clone()),
                burn::tensor::activation::softmax(x.clone(), 2),
            ),
            // A transposed (non-contiguous) view takes burn's path.
            (
                softmax_last(x.clone().swap_dims(1, 2)),
                burn::tensor::activation::softmax(x.clone().swap_dims(1, 2), 2),
            ),
        ] {
            let (fast, plain) = (fast.into_data(), plain.into_data());
            assert_eq!(fast.shape(), plain.shape());
            let (fast, plain) = (
                fast.try_to_vec::<f32>().unwrap(),
                plain.try_to_vec::<f32>().unwrap(),
            );
            for (a, b) in fast.iter().zip(&plain) {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
        // The input is untouched: the kernels wrote into their own copy of a shared buffer.
        let before = x.clone().into_data();
        let _ = gelu(x.clone());
        assert_eq!(x.into_data(), before);
    }
}
