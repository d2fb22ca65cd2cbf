//! BERT's optimiser as REALM fine-tunes with it: AdamW (epsilon 1e-6, weight decay 0.01) with
//! LayerNorm parameters and biases left undecayed, and clipping by the global gradient norm
//! over all parameters (burn's own clipping is per tensor). burn's AdamW corrects the moments'
//! bias, which BERT's TensorFlow optimiser does not: a small, documented difference.

use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};

use crate::checkpoint::module_io::param_ids;
use burn::tensor::Tensor;

/// BERT's weight decay.
pub const WEIGHT_DECAY: f32 = 0.01;
/// BERT's Adam epsilon.
pub const EPSILON: f32 = 1e-6;

/// Ids of the parameters that take no weight decay: LayerNorm's `gamma`/`beta` and every
/// `bias`, found by their module paths.
pub fn no_decay_params<M: Module>(module: &M) -> Vec<ParamId> {
    param_ids(module, |path| {
        matches!(path.rsplit('.').next(), Some("bias" | "beta" | "gamma"))
    })
}

/// AdamW with BERT's settings for `module`: decay 0.01 everywhere but LayerNorm and biases.
pub fn bert_adamw<M: Module>(module: &M) -> ModuleOptimizer {
    let undecayed = ParamGroup::from_ids(no_decay_params(module));
    AdamWConfig::new()
        .with_epsilon(EPSILON)
        .with_weight_decay(WEIGHT_DECAY)
        .init()
        .with_group(
            undecayed,
            AdamWConfig::new()
                .with_epsilon(EPSILON)
                .with_weight_decay(0.0)
                .build(),
            None,
        )
}

/// The global L2 norm of `grads` over `module`'s parameters: the squares are summed on the
/// device and read back once (one sync per step, not one per tensor).
pub fn global_grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> f32 {
    struct Sum<'a> {
        grads: &'a GradientsParams,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for Sum<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let squares = g.powi_scalar(2).sum(); // [1]
                self.total = Some(match self.total.take() {
                    Some(total) => total + squares,
                    None => squares,
                });
            }
        }
    }
    let mut sum = Sum { grads, total: None };
    module.visit(&mut sum);
    sum.total.map_or(0.0, |t| t.into_scalar::<f32>().sqrt())
}

/// Scales every gradient by `min(1, max_norm / (norm + 1e-6))`, BERT's
/// `clip_by_global_norm`. Returns the norm before clipping.
pub fn clip_global_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f32) -> f32 {
    let norm = global_grad_norm(module, grads);
    let scale = (max_norm / (norm + 1e-6)).min(1.0);
    if scale < 1.0 {
        struct Scale<'a> {
            grads: &'a mut GradientsParams,
            scale: f32,
        }
        impl ModuleVisitor for Scale<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(g) = self.grads.remove::<D>(param.id) {
                    self.grads.register(param.id, g.mul_scalar(self.scale));
                }
            }
        }
        module.visit(&mut Scale { grads, scale });
    }
    norm
}

/// Moves the gradients of the parameters `ids` out of `grads` into a set of their own, so
/// that they can take a step of their own learning rate (fresh heads learn faster than the
/// pre-trained body they sit on).
pub fn split_grads<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    ids: &[ParamId],
) -> GradientsParams {
    struct Split<'a> {
        grads: &'a mut GradientsParams,
        ids: &'a [ParamId],
        out: GradientsParams,
    }
    impl ModuleVisitor for Split<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.ids.contains(&param.id)
                && let Some(g) = self.grads.remove::<D>(param.id)
            {
                self.out.register(param.id, g);
            }
        }
    }
    let mut split = Split {
        grads,
        ids,
        out: GradientsParams::new(),
    };
    module.visit(&mut split);
    split.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
    use burn::tensor::{Device, TensorData};

    #[derive(Module, Debug)]
    struct Tiny {
        dense: Linear,
        layer_norm: LayerNorm,
    }

    fn tiny(device: &Device) -> Tiny {
        Tiny {
            dense: LinearConfig::new(3, 2).init(device),
            layer_norm: LayerNormConfig::new(2).init(device),
        }
    }

    /// Two AdamW steps, one for a group at its own rate and one for the rest, move each
    /// parameter as one step at that parameter's rate would.
    #[test]
    fn a_split_group_steps_at_its_own_rate() {
        let device = crate::device::cpu_device().autodiff();
        let m = tiny(&device);
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, -2.0, 3.0], [1, 3]), &device);
        let loss = |m: &Tiny| {
            m.layer_norm
                .forward(m.dense.forward(x.clone()))
                .mul_scalar(3.0)
                .sum()
                + m.dense.weight.val().sum()
        };
        let host = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
        let fast = vec![m.dense.weight.id];

        let mut grads = GradientsParams::from_grads(loss(&m).backward(), &m);
        let head = split_grads(&m, &mut grads, &fast);
        assert!(grads.get::<2>(m.dense.weight.id).is_none(), "moved out");
        assert!(head.get::<2>(m.dense.weight.id).is_some());
        let mut optim = bert_adamw(&m);
        let split = optim.step(1e-3, m.clone(), grads);
        let split = optim.step(1e-2, split, head);

        // The same step taken twice whole, at each rate: the weight follows the fast one,
        // the bias the slow one.
        let whole = |lr: f64| {
            let grads = GradientsParams::from_grads(loss(&m).backward(), &m);
            bert_adamw(&m).step(lr, m.clone(), grads)
        };
        let (slow, quick) = (whole(1e-3), whole(1e-2));
        let close = |a: Vec<f32>, b: Vec<f32>| a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(close(
            host(split.dense.weight.val()),
            host(quick.dense.weight.val())
        ));
        let bias = |t: &Tiny| {
            t.dense
                .bias
                .as_ref()
                .unwrap()
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        assert!(close(bias(&split), bias(&slow)));
        assert!(!close(
            host(split.dense.weight.val()),
            host(slow.dense.weight.val())
        ));
    }

    #[test]
    fn layer_norms_and_biases_take_no_decay() {
        let device = crate::device::cpu_device();
        let m = tiny(&device);
        let ids = no_decay_params(&m);
        assert_eq!(
            ids.len(),
            3,
            "dense.bias, layer_norm.gamma, layer_norm.beta"
        );
        assert!(ids.contains(&m.dense.bias.as_ref().unwrap().id));
        assert!(ids.contains(&m.layer_norm.gamma.id));
        assert!(!ids.contains(&m.dense.weight.id));
    }

    #[test]
    fn the_global_norm_spans_all_parameters_and_clipping_scales_them_together() {
        let device = crate::device::cpu_device().autodiff();
        let m = tiny(&device);
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, -2.0, 3.0], [1, 3]), &device);
        let loss = m
            .layer_norm
            .forward(m.dense.forward(x))
            .mul_scalar(10.0)
            .sum()
            + m.dense.weight.val().sum().mul_scalar(5.0);
        let mut grads = GradientsParams::from_grads(loss.backward(), &m);
        // The plain norm: every gradient's squares summed on the host.
        let mut plain = 0.0f64;
        let mut add = |t: Option<Tensor<2>>| {
            if let Some(t) = t {
                let v: Vec<f32> = t.into_data().try_to_vec::<f32>().unwrap();
                plain += v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>();
            }
        };
        add(grads.get::<2>(m.dense.weight.id));
        let mut add1 = |t: Option<Tensor<1>>| {
            if let Some(t) = t {
                let v: Vec<f32> = t.into_data().try_to_vec::<f32>().unwrap();
                plain += v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>();
            }
        };
        add1(grads.get::<1>(m.dense.bias.as_ref().unwrap().id));
        add1(grads.get::<1>(m.layer_norm.gamma.id));
        add1(grads.get::<1>(m.layer_norm.beta.as_ref().unwrap().id));
        let plain = plain.sqrt() as f32;
        assert!(
            plain > 1.0,
            "the test needs a norm above the clip ({plain})"
        );
        let before = clip_global_norm(&m, &mut grads, 1.0);
        assert!(
            (before - plain).abs() <= 1e-4 * plain,
            "{before} vs {plain}"
        );
        let after = global_grad_norm(&m, &grads);
        assert!(
            (after - 1.0).abs() < 1e-4,
            "clipped to the max norm: {after}"
        );
        // Below the max nothing changes.
        let again = clip_global_norm(&m, &mut grads, 10.0);
        assert!((again - after).abs() < 1e-6);
        assert!((global_grad_norm(&m, &grads) - after).abs() < 1e-6);
    }
}
