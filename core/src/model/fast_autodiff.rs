//! `fast_math`'s GELU and softmax as autodiff operations on burn's CPU backend, each with its
//! backward written out: burn's own evaluated libm's `erff` and `expf` per element, and its
//! softmax as five tracked operations (max, subtract, exp, sum, divide), each with a pass of
//! its own forward and backward. A training step of the reader spent a sixth of its time
//! there (BENCHMARKS.md).
//!
//! The operations follow burn-autodiff's own (`ops/activation.rs`): prepare with the input's
//! node, keep what the backward needs as the state (GELU's input, softmax's output), register
//! the input's gradient from the output's.

use burn::tensor::{DType, Tensor};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn_flex::{Flex, FlexTensor};

use super::fast_math::{
    gelu_backward_in_place, gelu_in_place, softmax_backward_in_place, softmax_in_place,
};

/// The backend a training step runs on the CPU.
type Tracked = Autodiff<Flex, NoCheckpointing>;
type TrackedTensor = burn_backend::tensor::FloatTensor<Tracked>;

/// GELU with its own backward when `x` is an f32 tensor that autodiff tracks on Flex;
/// otherwise `x` comes back untouched.
pub(super) fn tracked_gelu<const D: usize>(x: Tensor<D>) -> Result<Tensor<D>, Tensor<D>> {
    on_tracked(x, gelu)
}

/// Softmax over the last dimension with its own backward, on the same terms as `tracked_gelu`.
pub(super) fn tracked_softmax_last<const D: usize>(x: Tensor<D>) -> Result<Tensor<D>, Tensor<D>> {
    on_tracked(x, softmax_last)
}

fn on_tracked<const D: usize>(
    x: Tensor<D>,
    op: impl FnOnce(TrackedTensor) -> TrackedTensor,
) -> Result<Tensor<D>, Tensor<D>> {
    if x.dtype() != DType::F32 {
        return Err(x);
    }
    // A clone shares the buffer; the original goes back when this is not a tracked Flex tensor.
    let Ok(primitive) = x.clone().try_into_primitive::<Tracked>() else {
        return Err(x);
    };
    drop(x);
    Ok(Tensor::from_primitive::<Tracked>(op(primitive)))
}

#[derive(Debug)]
struct Gelu;

impl Backward<Flex, 1> for Gelu {
    /// The input.
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            with_contiguous(grad, |grad| {
                gelu_backward_in_place(contiguous(&x).as_slice().unwrap_or(&[]), grad)
            })
        });
    }
}

fn gelu(x: TrackedTensor) -> TrackedTensor {
    let (input, guard) = x.into_parts();
    match Gelu
        .prepare::<NoCheckpointing>([guard])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let output = with_contiguous(input.clone(), gelu_in_place);
            prep.finish(input, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(with_contiguous(input, gelu_in_place)),
    }
}

#[derive(Debug)]
struct Softmax;

impl Backward<Flex, 1> for Softmax {
    /// The output.
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let y = ops.state;
        let width = row_width(&y);
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            with_contiguous(grad, |grad| {
                softmax_backward_in_place(contiguous(&y).as_slice().unwrap_or(&[]), grad, width)
            })
        });
    }
}

fn softmax_last(x: TrackedTensor) -> TrackedTensor {
    let (input, guard) = x.into_parts();
    let width = row_width(&input);
    let softmax = |values: &mut [f32]| softmax_in_place(values, width);
    match Softmax
        .prepare::<NoCheckpointing>([guard])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let output = with_contiguous(input, softmax);
            prep.finish(output.clone(), output)
        }
        OpsKind::UnTracked(prep) => prep.finish(with_contiguous(input, softmax)),
    }
}

fn row_width(x: &FlexTensor) -> usize {
    x.layout().shape().last().copied().unwrap_or(1)
}

/// `x` itself when it is contiguous from its buffer's start, else a contiguous copy.
fn contiguous(x: &FlexTensor) -> FlexTensor {
    if x.layout().is_contiguous() && x.layout().start_offset() == 0 {
        x.clone()
    } else {
        FlexTensor::from_data(x.clone().into_data())
    }
}

/// Applies `op` to the f32 elements of `x` in place, on a buffer of its own: `x`'s when no
/// other tensor shares it, a copy otherwise (Flex copies on write).
fn with_contiguous(x: FlexTensor, op: impl FnOnce(&mut [f32])) -> FlexTensor {
    let mut x = contiguous(&x);
    let n = x.layout().num_elements();
    op(&mut x.storage_mut::<f32>()[..n]);
    x
}

#[cfg(test)]
mod tests {
    use super::super::fast_math::{gelu, softmax_last};
    use crate::rng::{SplitMix64, fresh_seed};
    use burn::tensor::{Tensor, TensorData};

    fn values(t: Tensor<3>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn assert_close(fast: &[f32], plain: &[f32], tolerance: f32, what: &str) {
        assert_eq!(fast.len(), plain.len());
        for (i, (a, b)) in fast.iter().zip(plain).enumerate() {
            assert!(
                (a - b).abs() <= tolerance * b.abs().max(1.0),
                "{what}[{i}]: {a} vs burn's {b}"
            );
        }
    }

    /// Output and input gradient of `fast` and of burn's `plain` on the same random input,
    /// through a random weighting (so each output's gradient differs) and an upstream
    /// operation (so the input is a tracked intermediate, not a leaf).
    fn compare(
        fast: impl Fn(Tensor<3>) -> Tensor<3>,
        plain: impl Fn(Tensor<3>) -> Tensor<3>,
        input: impl Fn(Tensor<3>) -> Tensor<3>,
        scale: f32,
        what: &str,
    ) {
        let device = crate::device::cpu_device().autodiff();
        let mut rng = SplitMix64::new(fresh_seed());
        let shape = [3, 5, 37];
        let n = shape.iter().product();
        let x = TensorData::new(rng.uniform_vec(n, scale), shape);
        let w = Tensor::<3>::from_data(TensorData::new(rng.uniform_vec(n, 1.0), shape), &device);
        let tracked = Tensor::<3>::from_data(x.clone(), &device).require_grad();
        assert!(
            super::tracked_gelu(tracked).is_ok(),
            "the tracked path is taken"
        );
        let run = |op: &dyn Fn(Tensor<3>) -> Tensor<3>| {
            let x = Tensor::<3>::from_data(x.clone(), &device).require_grad();
            let y = op(input(x.clone() * 1.5));
            let grads = (y.clone() * w.clone().reshape(y.dims())).sum().backward();
            let grad = x.grad(&grads).expect("x has a gradient");
            (values(y), grad.into_data().try_to_vec::<f32>().unwrap())
        };
        let (fast_y, fast_grad) = run(&fast);
        let (plain_y, plain_grad) = run(&plain);
        assert_close(&fast_y, &plain_y, 1e-6, &format!("{what} output"));
        assert_close(&fast_grad, &plain_grad, 1e-5, &format!("{what} gradient"));
    }

    #[test]
    fn tracked_gelu_matches_burns_forward_and_backward() {
        let burns = burn::tensor::activation::gelu::<3>;
        compare(gelu, burns, |x| x, 6.0, "gelu");
        // Far tails, where the derivative is exactly 0 or 1.
        compare(gelu, burns, |x| x, 40.0, "gelu tails");
        // A transposed (non-contiguous) input.
        compare(gelu, burns, |x| x.swap_dims(1, 2), 6.0, "gelu transposed");
    }

    #[test]
    fn tracked_softmax_matches_burns_forward_and_backward() {
        let burns = |x: Tensor<3>| burn::tensor::activation::softmax(x, 2);
        compare(softmax_last, burns, |x| x, 6.0, "softmax");
        compare(
            softmax_last,
            burns,
            |x| x.swap_dims(1, 2),
            6.0,
            "softmax transposed",
        );
        // Masked scores, as the attention's padding gives them.
        let masked = |x: Tensor<3>| {
            let [a, b, c] = x.dims();
            let mut mask = vec![0.0f32; c];
            mask[c - 7..].fill(-10_000.0);
            let mask = Tensor::<1>::from_data(TensorData::new(mask, [c]), &x.device());
            x + mask.reshape([1, 1, c]).expand([a, b, c])
        };
        compare(softmax_last, burns, masked, 6.0, "softmax masked");
    }

    #[test]
    fn untracked_autodiff_tensors_take_the_same_kernels() {
        let device = crate::device::cpu_device().autodiff();
        let mut rng = SplitMix64::new(fresh_seed());
        let x = Tensor::<3>::from_data(
            TensorData::new(rng.uniform_vec(60, 5.0), [2, 3, 10]),
            &device,
        );
        let (fast, plain) = (
            values(gelu(x.clone())),
            values(burn::tensor::activation::gelu(x.clone())),
        );
        assert_close(&fast, &plain, 1e-6, "untracked gelu");
        assert!(super::tracked_softmax_last(x.clone()).is_ok());
        let plain_flex = Tensor::<3>::from_data(
            TensorData::new(vec![0.5f32; 6], [1, 2, 3]),
            &crate::device::cpu_device(),
        );
        assert!(
            super::tracked_gelu(plain_flex).is_err(),
            "plain Flex tensors take on_flex"
        );
        let before = x.clone().into_data();
        let _ = softmax_last(x.clone());
        assert_eq!(x.into_data(), before, "the input is untouched");
    }
}
