//! The BERT encoder that REALM's retriever and knowledge-augmented encoder share: embeddings,
//! post-norm transformer layers and the [CLS] pooler, with Hugging Face's weight names.

use burn::module::Module;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::{gelu_approximate, relu, tanh};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::Error;
use crate::checkpoint::weights::{HostTensor, WeightLoader, WeightMap};
use crate::linalg::Precision;
use crate::model::config::{BertConfig, HiddenAct};
use crate::model::fast_math::{self, softmax_last};
use crate::model::frozen_bert::FrozenBert;
use crate::text::BertInput;
use std::sync::Arc;

/// The encoder's outputs for one batch.
pub struct BertOutput {
    /// `[batch, seq, hidden]`
    pub last_hidden_state: Tensor<3>,
    /// The embeddings' output, then each layer's: `num_hidden_layers + 1` of `[batch, seq, hidden]`;
    /// empty from a frozen encoder ([`Bert::freeze`]).
    pub hidden_states: Vec<Tensor<3>>,
    /// `[batch, hidden]`: tanh(dense(h_[CLS])), absent when the model has no pooler.
    pub pooler_output: Option<Tensor<2>>,
}

/// `BertModel`: embeddings, `num_hidden_layers` transformer layers and an optional pooler.
#[derive(Module, Debug)]
pub struct Bert {
    pub embeddings: BertEmbeddings,
    pub layers: Vec<BertLayer>,
    pub pooler: Option<Linear>,
    pub num_attention_heads: usize,
    #[module(skip)]
    pub hidden_act: HiddenAct,
    /// Set by [`Bert::freeze`]: the weights packed for the CPU inference path, which
    /// `forward` then takes. Changes to the weights after freezing are not seen.
    #[module(skip)]
    pub frozen: Option<Arc<FrozenBert>>,
}

#[derive(Module, Debug)]
pub struct BertEmbeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Embedding,
    pub layer_norm: LayerNorm,
}

#[derive(Module, Debug)]
pub struct BertLayer {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub attention_output: Linear,
    pub attention_layer_norm: LayerNorm,
    pub intermediate: Linear,
    pub output: Linear,
    pub output_layer_norm: LayerNorm,
}

fn load_linear(
    w: &mut WeightLoader,
    prefix: &str,
    d_in: usize,
    d_out: usize,
) -> Result<Linear, Error> {
    Ok(Linear {
        weight: w.take_linear_weight(&format!("{prefix}.weight"), d_in, d_out)?,
        bias: Some(w.take_param(&format!("{prefix}.bias"), [d_out])?),
    })
}

pub(crate) fn load_layer_norm(
    w: &mut WeightLoader,
    prefix: &str,
    d: usize,
    eps: f64,
    device: &Device,
) -> Result<LayerNorm, Error> {
    let mut norm = LayerNormConfig::new(d).with_epsilon(eps).init(device);
    norm.gamma = w.take_param(&format!("{prefix}.weight"), [d])?;
    norm.beta = Some(w.take_param(&format!("{prefix}.bias"), [d])?);
    Ok(norm)
}

fn load_embedding(
    w: &mut WeightLoader,
    name: &str,
    rows: usize,
    d: usize,
) -> Result<Embedding, Error> {
    Ok(Embedding {
        weight: w.take_param(name, [rows, d])?,
    })
}

impl Bert {
    /// The longest input the position embeddings cover, in wordpieces.
    pub fn max_positions(&self) -> usize {
        self.embeddings.position_embeddings.weight.val().dims()[0]
    }

    /// Builds the encoder from checkpoint tensors named as in Hugging Face's `BertModel`
    /// under `prefix` (`""` for a bare BERT, `"realm."` inside a REALM embedder).
    pub fn load(
        config: &BertConfig,
        weights: &mut WeightLoader,
        prefix: &str,
        with_pooler: bool,
        device: &Device,
    ) -> Result<Self, Error> {
        config.validate()?;
        let h = config.hidden_size;
        let eps = config.layer_norm_eps;
        let p = |name: &str| format!("{prefix}{name}");
        let embeddings = BertEmbeddings {
            word_embeddings: load_embedding(
                weights,
                &p("embeddings.word_embeddings.weight"),
                config.vocab_size,
                h,
            )?,
            position_embeddings: load_embedding(
                weights,
                &p("embeddings.position_embeddings.weight"),
                config.max_position_embeddings,
                h,
            )?,
            token_type_embeddings: load_embedding(
                weights,
                &p("embeddings.token_type_embeddings.weight"),
                config.type_vocab_size,
                h,
            )?,
            layer_norm: load_layer_norm(weights, &p("embeddings.LayerNorm"), h, eps, device)?,
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let l = |name: &str| p(&format!("encoder.layer.{i}.{name}"));
            layers.push(BertLayer {
                query: load_linear(weights, &l("attention.self.query"), h, h)?,
                key: load_linear(weights, &l("attention.self.key"), h, h)?,
                value: load_linear(weights, &l("attention.self.value"), h, h)?,
                attention_output: load_linear(weights, &l("attention.output.dense"), h, h)?,
                attention_layer_norm: load_layer_norm(
                    weights,
                    &l("attention.output.LayerNorm"),
                    h,
                    eps,
                    device,
                )?,
                intermediate: load_linear(
                    weights,
                    &l("intermediate.dense"),
                    h,
                    config.intermediate_size,
                )?,
                output: load_linear(weights, &l("output.dense"), config.intermediate_size, h)?,
                output_layer_norm: load_layer_norm(
                    weights,
                    &l("output.LayerNorm"),
                    h,
                    eps,
                    device,
                )?,
            });
        }
        let pooler = if with_pooler {
            Some(load_linear(weights, &p("pooler.dense"), h, h)?)
        } else {
            None
        };
        Ok(Self {
            embeddings,
            layers,
            pooler,
            num_attention_heads: config.num_attention_heads,
            hidden_act: config.hidden_act,
            frozen: None,
        })
    }

    /// The weights under Hugging Face's `BertModel` names below `prefix`, as [`Bert::load`]
    /// reads them (linear weights back to `[out, in]`): how a trained encoder leaves as a
    /// model directory any `--model` flag takes.
    pub fn hf_weights(&self, prefix: &str) -> WeightMap {
        let mut out = WeightMap::new();
        let mut put = |name: String, shape: Vec<usize>, data: Vec<f32>| {
            out.insert(format!("{prefix}{name}"), HostTensor { shape, data });
        };
        let e = &self.embeddings;
        for (name, table) in [
            ("word_embeddings", &e.word_embeddings),
            ("position_embeddings", &e.position_embeddings),
            ("token_type_embeddings", &e.token_type_embeddings),
        ] {
            let value = table.weight.val();
            put(
                format!("embeddings.{name}.weight"),
                value.dims().to_vec(),
                host_f32(value),
            );
        }
        let mut norms = vec![("embeddings.LayerNorm".to_string(), &e.layer_norm)];
        let mut linears = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let l = |name: &str| format!("encoder.layer.{i}.{name}");
            linears.push((l("attention.self.query"), &layer.query));
            linears.push((l("attention.self.key"), &layer.key));
            linears.push((l("attention.self.value"), &layer.value));
            linears.push((l("attention.output.dense"), &layer.attention_output));
            norms.push((l("attention.output.LayerNorm"), &layer.attention_layer_norm));
            linears.push((l("intermediate.dense"), &layer.intermediate));
            linears.push((l("output.dense"), &layer.output));
            norms.push((l("output.LayerNorm"), &layer.output_layer_norm));
        }
        if let Some(pooler) = &self.pooler {
            linears.push(("pooler.dense".to_string(), pooler));
        }
        for (name, norm) in norms {
            let beta = norm.beta.as_ref().expect("BERT's LayerNorms have a bias");
            put(
                format!("{name}.weight"),
                norm.gamma.dims().to_vec(),
                host_f32(norm.gamma.val()),
            );
            put(
                format!("{name}.bias"),
                beta.dims().to_vec(),
                host_f32(beta.val()),
            );
        }
        for (name, linear) in linears {
            let weight = linear.weight.val().transpose(); // [out, in], as Hugging Face stores it
            let bias = linear
                .bias
                .as_ref()
                .expect("BERT's linear layers have a bias");
            put(
                format!("{name}.weight"),
                weight.dims().to_vec(),
                host_f32(weight),
            );
            put(
                format!("{name}.bias"),
                bias.dims().to_vec(),
                host_f32(bias.val()),
            );
        }
        out
    }

    /// From now on `forward` runs [`FrozenBert`] at `precision` (inference only: no
    /// gradients, and later changes to the weights are not seen). Only on burn's CPU backend
    /// (Flex); elsewhere the module path stays and this returns `false`.
    ///
    /// # Panics
    /// If `precision` is not available on this machine ([`Precision::available`]).
    pub fn freeze(&mut self, eps: f64, precision: Precision) -> bool {
        if !fast_math::is_flex(&self.embeddings.word_embeddings.weight.val().device()) {
            return false;
        }
        self.frozen = Some(Arc::new(FrozenBert::new(self, eps, precision)));
        true
    }

    /// # Shapes
    /// - `input`: `[batch, seq]` ids, mask and segments
    /// - returns `[batch, seq, hidden]` and, with a pooler, `[batch, hidden]`
    pub fn forward(&self, input: &BertInput, device: &Device) -> BertOutput {
        let (batch, seq) = (input.batch, input.seq);
        assert_eq!(
            input.input_ids.len(),
            batch * seq,
            "input_ids must hold batch * seq = {} ids",
            batch * seq
        );
        if let Some(frozen) = &self.frozen {
            let last = frozen.forward(input);
            let h = frozen.hidden_size();
            let pooler_output = frozen
                .pool(&last, batch, seq)
                .map(|p| Tensor::<2>::from_data(TensorData::new(p, [batch, h]), device));
            return BertOutput {
                last_hidden_state: Tensor::from_data(
                    TensorData::new(last, [batch, seq, h]),
                    device,
                ),
                hidden_states: Vec::new(),
                pooler_output,
            };
        }
        let ids = int_tensor(&input.input_ids, batch, seq, device); // [batch, seq]
        let types = int_tensor(&input.token_type_ids, batch, seq, device); // [batch, seq]
        let positions: Vec<u32> = (0..batch).flat_map(|_| 0..seq as u32).collect();
        let positions = int_tensor(&positions, batch, seq, device); // [batch, seq]

        let e = &self.embeddings;
        let hidden = e.word_embeddings.forward(ids)
            + e.position_embeddings.forward(positions)
            + e.token_type_embeddings.forward(types); // [batch, seq, hidden]
        let mut hidden = e.layer_norm.forward(hidden);
        let mut hidden_states = vec![hidden.clone()];

        // Additive mask: 0 where attended, a large negative number on padding keys, the
        // same for every query row and head; none at all when nothing is padded.
        let mask = input.attention_mask.contains(&0).then(|| {
            let mask: Vec<f32> = input
                .attention_mask
                .chunks_exact(seq)
                .flat_map(|row| {
                    let row: Vec<f32> = row
                        .iter()
                        .map(|&m| if m == 0 { f32::MIN } else { 0.0 })
                        .collect();
                    std::iter::repeat_n(row, seq).flatten()
                })
                .collect();
            Tensor::<4>::from_data(TensorData::new(mask, [batch, 1, seq, seq]), device) // [batch, 1, seq, seq]
        });

        for layer in &self.layers {
            hidden = layer.forward(
                hidden,
                mask.clone(),
                self.num_attention_heads,
                self.hidden_act,
            );
            hidden_states.push(hidden.clone());
        }
        let pooler_output = self.pooler.as_ref().map(|pooler| {
            let [b, _, h] = hidden.dims();
            let cls = hidden.clone().narrow(1, 0, 1).reshape([b, h]); // [batch, hidden]
            tanh(pooler.forward(cls))
        });
        BertOutput {
            last_hidden_state: hidden,
            hidden_states,
            pooler_output,
        }
    }
}

impl BertLayer {
    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]`, `mask`: `[batch, 1, seq, seq]` -> `[batch, seq, hidden]`
    fn forward(
        &self,
        hidden: Tensor<3>,
        mask: Option<Tensor<4>>,
        heads: usize,
        act: HiddenAct,
    ) -> Tensor<3> {
        let [batch, seq, width] = hidden.dims();
        let head = width / heads;
        let split = |t: Tensor<3>| t.reshape([batch, seq, heads, head]).swap_dims(1, 2); // [batch, heads, seq, head]
        let q = split(fast_math::linear(&self.query, hidden.clone()));
        let k = split(fast_math::linear(&self.key, hidden.clone()));
        let v = split(fast_math::linear(&self.value, hidden.clone()));
        // softmax(q k^T / sqrt(head) + mask) v, fused by the backend where it can.
        let context = if fast_math::is_flex(&q.device()) {
            // On the CPU: two batched products around the vectorised softmax (Flex's fused
            // kernel calls libm's exp per score).
            let scale = 1.0 / (head as f64).sqrt();
            let scores = fast_math::matmul(q, k.swap_dims(2, 3)) * scale; // [batch, heads, seq, seq]
            let scores = match mask {
                Some(mask) => scores + mask,
                None => scores,
            };
            fast_math::matmul(softmax_last(scores), v)
        } else {
            let options = AttentionModuleOptions {
                scale: None, // 1 / sqrt(head)
                softcap: None,
                is_causal: false,
            };
            attention(q, k, v, None, mask, options)
        }; // [batch, heads, seq, head]
        let context = context.swap_dims(1, 2).reshape([batch, seq, width]); // [batch, seq, hidden]
        let attended = self
            .attention_layer_norm
            .forward(fast_math::linear(&self.attention_output, context) + hidden);
        let inner = fast_math::linear(&self.intermediate, attended.clone());
        let inner = activation(inner, act);
        self.output_layer_norm
            .forward(fast_math::linear(&self.output, inner) + attended)
    }
}

/// A tensor's values on the host, as f32.
fn host_f32<const D: usize>(value: Tensor<D>) -> Vec<f32> {
    value
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 data")
}

/// A `[batch, seq]` int tensor built from host data (i32 on every backend, never i64:
/// WebGPU has no 64-bit integers).
fn int_tensor(values: &[u32], batch: usize, seq: usize, device: &Device) -> Tensor<2, Int> {
    let values: Vec<i32> = values.iter().map(|&v| v as i32).collect();
    Tensor::from_data(TensorData::new(values, [batch, seq]), device)
}

/// The feed-forward activation a config names.
pub(crate) fn activation<const D: usize>(x: Tensor<D>, act: HiddenAct) -> Tensor<D> {
    match act {
        HiddenAct::Gelu => fast_math::gelu(x),
        HiddenAct::GeluNew => gelu_approximate(x),
        HiddenAct::Relu => relu(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::safetensors_file::strip_prefix;

    /// `hf_weights` is `load` read backwards: every tensor the loader took comes back under
    /// its name, shape and values, and nothing else.
    #[test]
    fn hf_weights_give_back_what_load_took() {
        let device = crate::device::cpu_device();
        let config = crate::skeleton::config();
        let all = strip_prefix(&crate::skeleton::seeded_weights(&config, 21), "realm.");
        let bert_only: WeightMap = all
            .into_iter()
            .filter(|(name, _)| {
                name.starts_with("embeddings.")
                    || name.starts_with("encoder.")
                    || name.starts_with("pooler.")
            })
            .collect();
        let mut loader = WeightLoader::new(bert_only.clone(), &device);
        let bert = Bert::load(&config, &mut loader, "", true, &device).unwrap();
        loader.finish(&[]).unwrap();

        let back = bert.hf_weights("");
        assert_eq!(
            back.keys().collect::<Vec<_>>(),
            bert_only.keys().collect::<Vec<_>>()
        );
        for (name, want) in &bert_only {
            let got = &back[name];
            assert_eq!(got.shape, want.shape, "{name}");
            assert_eq!(got.data, want.data, "{name}");
        }
        let prefixed = bert.hf_weights("realm.");
        assert!(prefixed.keys().all(|k| k.starts_with("realm.")));
        assert_eq!(prefixed.len(), back.len());
    }
}
