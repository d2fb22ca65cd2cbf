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
use burn_autodiff::ops::{Backward, Ops, OpsKind, binary, unary};
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
                gelu_backward_in_place(as_f32(&contiguous(&x)), grad)
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
                softmax_backward_in_place(as_f32(&contiguous(&y)), grad, width)
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

/// The elements of a contiguous f32 tensor (the operations take f32 tensors only).
fn as_f32(x: &FlexTensor) -> &[f32] {
    x.as_slice().expect("a contiguous f32 tensor")
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

/// `a b` with its own backward when both are f32 tensors that autodiff tracks on Flex, `a` is
/// `[.., m, k]` and `b` either `[.., k, n]` with the same leading dimensions or `[k, n]` (a
/// weight, shared by every row); otherwise both come back untouched.
pub(super) fn tracked_matmul<const D: usize, const E: usize>(
    a: Tensor<D>,
    b: Tensor<E>,
) -> Result<Tensor<D>, (Tensor<D>, Tensor<E>)> {
    let (sa, sb) = (a.dims(), b.dims());
    if D < 2 || E < 2 {
        return Err((a, b));
    }
    let batched = E == D && sa[..D - 2] == sb[..E - 2];
    let shapes_fit = sa[D - 1] == sb[E - 2] && (batched || E == 2);
    if !shapes_fit || a.dtype() != DType::F32 || b.dtype() != DType::F32 {
        return Err((a, b));
    }
    let (Ok(pa), Ok(pb)) = (
        a.clone().try_into_primitive::<Tracked>(),
        b.clone().try_into_primitive::<Tracked>(),
    ) else {
        return Err((a, b));
    };
    Ok(Tensor::from_primitive::<Tracked>(matmul(pa, pb)))
}

/// One operand of a product as gemm reads it: the buffer, where each batch's matrix starts,
/// and the strides between its rows and its columns. A transpose swaps the two strides.
struct Operand<'a> {
    data: &'a [f32],
    starts: Vec<usize>,
    row: usize,
    col: usize,
}

impl<'a> Operand<'a> {
    /// The matrices of `x` (its last two dimensions), read in place when its strides are
    /// non-negative, or `None`.
    fn of(x: &'a FlexTensor) -> Option<Self> {
        let layout = x.layout();
        let (dims, strides) = (layout.shape().to_vec(), layout.strides());
        if !layout.has_positive_strides() || dims.len() < 2 {
            return None;
        }
        let d = dims.len();
        let mut starts = vec![layout.start_offset()];
        for axis in 0..d - 2 {
            let step = strides[axis] as usize;
            starts = starts
                .iter()
                .flat_map(|&s| (0..dims[axis]).map(move |i| s + i * step))
                .collect();
        }
        Some(Self {
            data: x.storage::<f32>(),
            starts,
            row: strides[d - 2] as usize,
            col: strides[d - 1] as usize,
        })
    }

    /// The same matrices, read transposed.
    fn transposed(self) -> Self {
        Self {
            row: self.col,
            col: self.row,
            ..self
        }
    }

    /// `count` contiguous `[rows, cols]` matrices, one after another.
    fn batches(data: &'a [f32], count: usize, rows: usize, cols: usize) -> Self {
        Self {
            data,
            starts: (0..count).map(|i| i * rows * cols).collect(),
            row: cols,
            col: 1,
        }
    }

    /// A contiguous `[rows, cols]` matrix.
    fn dense(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            starts: vec![0],
            row: cols,
            col: 1,
        }
    }
}

/// `a_i b_i` for each batch i (`b`'s one matrix for every i when it has one), each `[m, k]`
/// by `[k, n]`, into one contiguous buffer.
fn products(a: &Operand, b: &Operand, m: usize, k: usize, n: usize) -> Vec<f32> {
    let batches = a.starts.len();
    let mut out = vec![0.0f32; batches * m * n];
    let one = |i: usize, out: &mut [f32]| {
        let b_start = b.starts[if b.starts.len() == 1 { 0 } else { i }];
        let product = if batches == 1 {
            crate::linalg::strided_product_f32_threaded
        } else {
            crate::linalg::strided_product_f32
        };
        product(
            &a.data[a.starts[i]..],
            a.row,
            a.col,
            &b.data[b_start..],
            b.row,
            b.col,
            m,
            k,
            n,
            out,
            n,
        );
    };
    if m * n == 0 {
        return out;
    }
    #[cfg(not(target_family = "wasm"))]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(i, out)| one(i, out));
    }
    #[cfg(target_family = "wasm")]
    out.chunks_mut(m * n)
        .enumerate()
        .for_each(|(i, out)| one(i, out));
    out
}

fn tensor(values: Vec<f32>, dims: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(burn::tensor::TensorData::new(values, dims))
}

#[derive(Debug)]
struct Matmul;

impl Backward<Flex, 2> for Matmul {
    /// Both operands (`a` contiguous when `b` is a shared weight).
    type State = (FlexTensor, FlexTensor);

    fn backward(
        self,
        ops: Ops<(FlexTensor, FlexTensor), 2>,
        grads: &mut Gradients,
        _: &mut Checkpointer,
    ) {
        let (a, b) = ops.state;
        let (a_dims, b_dims) = (a.layout().shape().to_vec(), b.layout().shape().to_vec());
        let (k, n) = (b_dims[b_dims.len() - 2], b_dims[b_dims.len() - 1]);
        let rows = a.layout().num_elements() / k.max(1);
        let shared = b_dims.len() == 2 && a_dims.len() > 2;
        binary::<Flex, _, _>(
            ops.parents,
            ops.node,
            grads,
            // d a = g b^T: [.., m, n] by [n, k].
            |grad| {
                let grad = contiguous(&grad);
                let g = grad.storage::<f32>();
                let b = Operand::of(&b).expect("checked in forward").transposed();
                let values = if shared {
                    products(&Operand::dense(g, n), &b, rows, n, k)
                } else {
                    let m = a_dims[a_dims.len() - 2];
                    let g = Operand::batches(g, rows / m.max(1), m, n);
                    products(&g, &b, m, n, k)
                };
                tensor(values, a_dims.clone())
            },
            // d b = a^T g: [k, m] by [m, n], summed over the rows when b is shared.
            |grad| {
                let grad = contiguous(&grad);
                let g = grad.storage::<f32>();
                let values = if shared {
                    // a was made contiguous in forward: one [rows, k] matrix.
                    let a = Operand::dense(a.storage::<f32>(), k).transposed();
                    products(&a, &Operand::dense(g, n), k, rows, n)
                } else {
                    let a = Operand::of(&a).expect("checked in forward").transposed();
                    let m = a_dims[a_dims.len() - 2];
                    let g = Operand::batches(g, rows / m.max(1), m, n);
                    products(&a, &g, k, m, n)
                };
                tensor(values, b_dims.clone())
            },
        );
    }
}

fn matmul(a: TrackedTensor, b: TrackedTensor) -> TrackedTensor {
    let (a, guard_a) = a.into_parts();
    let (b, guard_b) = b.into_parts();
    let (a_dims, b_dims) = (a.layout().shape().to_vec(), b.layout().shape().to_vec());
    let d = a_dims.len();
    let (m, k, n) = (a_dims[d - 2], a_dims[d - 1], b_dims[b_dims.len() - 1]);
    // A shared weight multiplies all of a's rows at once: a is read as one [rows, k] matrix.
    let shared = b_dims.len() == 2 && d > 2;
    let readable = |x: FlexTensor| match Operand::of(&x) {
        Some(_) => x,
        None => FlexTensor::from_data(x.into_data()),
    };
    let a = if shared { contiguous(&a) } else { readable(a) };
    let b = readable(b);
    let values = {
        let ob = Operand::of(&b).expect("made readable");
        if shared {
            let rows = a.layout().num_elements() / k.max(1);
            products(&Operand::dense(a.storage::<f32>(), k), &ob, rows, k, n)
        } else {
            products(&Operand::of(&a).expect("made readable"), &ob, m, k, n)
        }
    };
    let mut out_dims = a_dims;
    out_dims[d - 1] = n;
    let output = tensor(values, out_dims);
    match Matmul
        .prepare::<NoCheckpointing>([guard_a, guard_b])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((a, b), output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
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

    /// `fast` (our product) and `plain` (burn's) on the same random `[a]` and `[b]`, through
    /// the same views and a random weighting of the output: outputs and both gradients agree.
    fn compare_matmul<const D: usize, const E: usize>(
        a_dims: [usize; D],
        b_dims: [usize; E],
        fast: impl Fn(Tensor<D>, Tensor<E>) -> Tensor<D>,
        plain: impl Fn(Tensor<D>, Tensor<E>) -> Tensor<D>,
        what: &str,
    ) {
        let device = crate::device::cpu_device().autodiff();
        let mut rng = SplitMix64::new(fresh_seed());
        let mut data = |dims: &[usize]| {
            TensorData::new(rng.uniform_vec(dims.iter().product(), 2.0), dims.to_vec())
        };
        let (a, b) = (data(&a_dims), data(&b_dims));
        let w = data(&[1 << 14]).try_to_vec::<f32>().unwrap();
        let run = |op: &dyn Fn(Tensor<D>, Tensor<E>) -> Tensor<D>| {
            let ta = Tensor::<D>::from_data(a.clone(), &device).require_grad();
            let tb = Tensor::<E>::from_data(b.clone(), &device).require_grad();
            let y = op(ta.clone(), tb.clone());
            let n = y.dims().iter().product::<usize>();
            let weights = Tensor::<1>::from_data(TensorData::new(w[..n].to_vec(), [n]), &device)
                .reshape(y.dims());
            let grads = (y.clone() * weights).sum().backward();
            let vec = |t: burn::tensor::TensorData| t.try_to_vec::<f32>().unwrap();
            (
                vec(y.into_data()),
                vec(ta.grad(&grads).expect("a's gradient").into_data()),
                vec(tb.grad(&grads).expect("b's gradient").into_data()),
            )
        };
        let (fast, plain) = (run(&fast), run(&plain));
        assert_close(&fast.0, &plain.0, 1e-5, &format!("{what} output"));
        assert_close(&fast.1, &plain.1, 1e-5, &format!("{what} gradient of a"));
        assert_close(&fast.2, &plain.2, 1e-5, &format!("{what} gradient of b"));
    }

    #[test]
    fn tracked_matmul_matches_burns_forward_and_backward() {
        let ours = |a: Tensor<4>, b: Tensor<4>| {
            super::tracked_matmul(a, b).unwrap_or_else(|_| panic!("the tracked path is taken"))
        };
        // The attention's q k^T: both operands strided views (heads split, k transposed).
        let heads = |t: Tensor<4>| t.swap_dims(1, 2);
        compare_matmul(
            [2, 7, 3, 5],
            [2, 7, 3, 5],
            |a, b| ours(heads(a), heads(b).swap_dims(2, 3)),
            |a, b| heads(a).matmul(heads(b).swap_dims(2, 3)),
            "q k^T",
        );
        // probabilities v: a contiguous a, a strided b.
        compare_matmul(
            [2, 3, 7, 7],
            [2, 7, 3, 5],
            |a, b| ours(a, heads(b)),
            |a, b| a.matmul(heads(b)),
            "p v",
        );
    }

    #[test]
    fn tracked_linear_products_match_burns() {
        let ours = |a: Tensor<3>, w: Tensor<2>| {
            super::tracked_matmul(a, w).unwrap_or_else(|_| panic!("the tracked path is taken"))
        };
        let burns = |a: Tensor<3>, w: Tensor<2>| a.matmul(w.unsqueeze::<3>());
        // A weight shared by every row of a batch, on contiguous and transposed inputs.
        compare_matmul([3, 9, 17], [17, 33], ours, burns, "x w");
        compare_matmul(
            [3, 17, 9],
            [17, 33],
            |a, w| ours(a.swap_dims(1, 2), w),
            |a, w| burns(a.swap_dims(1, 2), w),
            "x^T w",
        );
        // Plain matrices.
        let ours2 = |a: Tensor<2>, w: Tensor<2>| super::tracked_matmul(a, w).ok().unwrap();
        compare_matmul([5, 8], [8, 4], ours2, |a, w| a.matmul(w), "a b");
    }

    #[test]
    fn linear_layers_match_burns_forward_and_backward() {
        use burn::nn::LinearConfig;
        let device = crate::device::cpu_device().autodiff();
        let mut rng = SplitMix64::new(fresh_seed());
        let layer = LinearConfig::new(17, 9).init(&device);
        let x = TensorData::new(rng.uniform_vec(3 * 5 * 17, 2.0), [3, 5, 17]);
        let w = Tensor::<3>::from_data(
            TensorData::new(rng.uniform_vec(3 * 5 * 9, 1.0), [3, 5, 9]),
            &device,
        );
        let run = |fast: bool| {
            let x = Tensor::<3>::from_data(x.clone(), &device).require_grad();
            let y = if fast {
                super::super::fast_math::linear(&layer, x.clone())
            } else {
                layer.forward(x.clone())
            };
            let grads = (y.clone() * w.clone()).sum().backward();
            let vec = |t: TensorData| t.try_to_vec::<f32>().unwrap();
            let bias = layer
                .bias
                .as_ref()
                .expect("a bias")
                .grad(&grads)
                .expect("bias grad");
            (
                vec(y.into_data()),
                vec(x.grad(&grads).expect("x grad").into_data()),
                vec(layer.weight.grad(&grads).expect("weight grad").into_data()),
                vec(bias.into_data()),
            )
        };
        let (fast, plain) = (run(true), run(false));
        assert_close(&fast.0, &plain.0, 1e-5, "linear output");
        assert_close(&fast.1, &plain.1, 1e-5, "linear gradient of x");
        assert_close(&fast.2, &plain.2, 1e-5, "linear gradient of the weight");
        assert_close(&fast.3, &plain.3, 1e-5, "linear gradient of the bias");
    }
}
