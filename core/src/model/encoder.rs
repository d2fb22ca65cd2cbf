//! The knowledge-augmented encoder p(y | z, x): BERT over `[CLS] x [SEP] z [SEP]` for each
//! retrieved document z, a masked-LM head whose decoder is tied to the word embeddings, and
//! the marginal likelihood p(y | x) = sum_z p(y | z, x) p(z | x) per masked token
//! (Hugging Face's `RealmKnowledgeAugEncoder`, REALM section 2.3).

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::Error;
use crate::checkpoint::weights::WeightLoader;
use crate::model::bert::{Bert, activation, load_layer_norm};
use crate::model::config::{BertConfig, HiddenAct};
use crate::text::BertInput;

/// The label of a position that carries no masked-LM target (PyTorch's `ignore_index`).
pub const IGNORE_LABEL: i64 = -100;

/// BERT's masked-LM head: `transform` (dense, activation, LayerNorm), then logits against
/// the word embeddings plus a bias.
#[derive(Module, Debug)]
pub struct MlmHead {
    pub transform: Linear,
    pub transform_norm: LayerNorm,
    pub bias: Param<Tensor<1>>,
    #[module(skip)]
    pub act: HiddenAct,
}

impl MlmHead {
    /// Loads `{prefix}predictions.*` (`transform.dense`, `transform.LayerNorm`, `bias`).
    /// The checkpoint's `decoder.weight` must equal the word embeddings it is tied to, and
    /// its `decoder.bias` the head's `bias` (one tensor stored under both names).
    pub fn load(
        config: &BertConfig,
        weights: &mut WeightLoader,
        prefix: &str,
        word_embeddings: &str,
        device: &Device,
    ) -> Result<Self, Error> {
        let (h, v) = (config.hidden_size, config.vocab_size);
        let p = |name: &str| format!("{prefix}predictions.{name}");
        weights.check_tied(&p("decoder.weight"), word_embeddings)?;
        weights.check_tied(&p("decoder.bias"), &p("bias"))?;
        Ok(Self {
            transform: Linear {
                weight: weights.take_linear_weight(&p("transform.dense.weight"), h, h)?,
                bias: Some(weights.take_param(&p("transform.dense.bias"), [h])?),
            },
            transform_norm: load_layer_norm(
                weights,
                &p("transform.LayerNorm"),
                h,
                config.layer_norm_eps,
                device,
            )?,
            bias: weights.take_param(&p("bias"), [v])?,
            act: config.hidden_act,
        })
    }

    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]`, `word_embeddings`: `[vocab, hidden]`
    /// - returns `[batch, seq, vocab]`
    pub fn forward(&self, hidden: Tensor<3>, word_embeddings: Tensor<2>) -> Tensor<3> {
        let [batch, seq, width] = hidden.dims();
        let h = activation(self.transform.forward(hidden), self.act);
        let h = self.transform_norm.forward(h).reshape([batch * seq, width]); // [batch * seq, hidden]
        let logits = h.matmul(word_embeddings.transpose()) + self.bias.val().unsqueeze_dim(0); // [batch * seq, vocab]
        let vocab = logits.dims()[1];
        logits.reshape([batch, seq, vocab])
    }
}

/// `RealmKnowledgeAugEncoder`: BERT and its tied masked-LM head.
#[derive(Module, Debug)]
pub struct KnowledgeAugEncoder {
    pub bert: Bert,
    pub mlm: MlmHead,
}

/// Tensors of a Hugging Face REALM reader/encoder checkpoint the encoder does not use.
pub const ENCODER_UNUSED: &[&str] = &[
    // The pooler: the encoder reads token states only.
    "realm.pooler.",
    // The reader's span head, which shares this BERT in `RealmReader` checkpoints.
    "qa_outputs.",
];

impl KnowledgeAugEncoder {
    /// Loads `realm.*` and `cls.*` as named in a Hugging Face `RealmKnowledgeAugEncoder`
    /// (or `RealmReader`) checkpoint.
    pub fn load(
        config: &BertConfig,
        weights: &mut WeightLoader,
        device: &Device,
    ) -> Result<Self, Error> {
        let mlm = MlmHead::load(
            config,
            weights,
            "cls.",
            "realm.embeddings.word_embeddings.weight",
            device,
        )?;
        let bert = Bert::load(config, weights, "realm.", false, device)?;
        Ok(Self { bert, mlm })
    }

    /// Masked-LM logits for each (query, candidate) sequence.
    ///
    /// # Shapes
    /// - `input`: `[batch * candidates, seq]` -> `[batch * candidates, seq, vocab]`
    pub fn forward(&self, input: &BertInput, device: &Device) -> Tensor<3> {
        let hidden = self.bert.forward(input, device).last_hidden_state; // [batch * candidates, seq, hidden]
        self.mlm
            .forward(hidden, self.bert.embeddings.word_embeddings.weight.val())
    }
}

impl KnowledgeAugEncoder {
    /// Masked-LM logits at `targets` positions of each row only (REALM computes the
    /// vocabulary softmax at the masked tokens, not over the whole sequence).
    ///
    /// # Shapes
    /// - `input`: `[rows, seq]`, `positions`: `[rows * targets]` (positions within each row)
    /// - returns `[rows, targets, vocab]`
    pub fn forward_at(
        &self,
        input: &BertInput,
        positions: &[u32],
        targets: usize,
        device: &Device,
    ) -> Tensor<3> {
        let (rows, seq) = (input.batch, input.seq);
        assert_eq!(
            positions.len(),
            rows * targets,
            "positions must be [rows, targets] = [{rows}, {targets}]"
        );
        let hidden = self.bert.forward(input, device).last_hidden_state; // [rows, seq, hidden]
        let width = hidden.dims()[2];
        let flat: Vec<i32> = positions
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                assert!((p as usize) < seq, "position {p} past the {seq} of a row");
                ((i / targets) * seq + p as usize) as i32
            })
            .collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(flat, [rows * targets]), device);
        let picked = hidden
            .reshape([rows * seq, width])
            .select(0, index)
            .reshape([rows, targets, width]); // [rows, targets, hidden]
        self.mlm
            .forward(picked, self.bert.embeddings.word_embeddings.weight.val())
    }
}

/// The marginal log-likelihood of the masked tokens and the loss REALM minimises.
pub struct MarginalLikelihood {
    /// `[batch, seq]`: log p(y_j | x) = logsumexp_z [log p(z | x) + log p(y_j | z, x)];
    /// 0 where there is no label.
    pub marginal_log_likelihood: Tensor<2>,
    /// `[]` as `[1]`: minus the mean of `marginal_log_likelihood` over the masked tokens.
    pub loss: Tensor<1>,
}

/// REALM's pre-training objective for a batch of queries, each with its candidates.
///
/// `relevance_score` holds f(x, z), so log p(z | x) = log_softmax over the candidates; the
/// gradient reaches the retriever through it (the paper's r(z)). `labels` holds the target
/// token at masked positions and [`IGNORE_LABEL`] elsewhere; `mlm_mask` selects the positions
/// that count (1.0) in the mean.
///
/// # Shapes
/// - `logits`: `[batch * candidates, seq, vocab]`, `relevance_score`: `[batch, candidates]`
/// - `labels`, `mlm_mask`: `[batch * seq]` row-major
pub fn marginal_log_likelihood(
    logits: Tensor<3>,
    relevance_score: Tensor<2>,
    labels: &[i64],
    mlm_mask: &[f32],
) -> MarginalLikelihood {
    let [flat, seq, _vocab] = logits.dims();
    let [batch, candidates] = relevance_score.dims();
    assert_eq!(
        flat,
        batch * candidates,
        "logits rows {flat} != batch {batch} x candidates {candidates}"
    );
    assert_eq!(
        labels.len(),
        batch * seq,
        "labels must be [batch, seq] = [{batch}, {seq}]"
    );
    assert_eq!(
        mlm_mask.len(),
        batch * seq,
        "mlm_mask must be [batch, seq] = [{batch}, {seq}]"
    );
    let device = logits.device();

    // Gather log p(y_j | z, x) at each label; ignored positions read token 0 and are zeroed.
    let targets: Vec<i32> = (0..batch)
        .flat_map(|b| (0..candidates).flat_map(move |_| (0..seq).map(move |j| (b, j))))
        .map(|(b, j)| labels[b * seq + j].max(0) as i32)
        .collect();
    let has_label: Vec<f32> = (0..batch)
        .flat_map(|b| (0..candidates).flat_map(move |_| (0..seq).map(move |j| (b, j))))
        .map(|(b, j)| {
            if labels[b * seq + j] == IGNORE_LABEL {
                0.0
            } else {
                1.0
            }
        })
        .collect();
    let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [flat, seq, 1]), &device); // [batch * candidates, seq, 1]
    let has_label = Tensor::<2>::from_data(
        TensorData::new(has_label, [batch, candidates * seq]),
        &device,
    )
    .reshape([batch, candidates, seq]); // [batch, candidates, seq]
    let token_log_prob = log_softmax(logits, 2)
        .gather(2, targets)
        .reshape([batch, candidates, seq])
        * has_label; // [batch, candidates, seq]

    let retriever_log_prob = log_softmax(relevance_score, 1).unsqueeze_dim::<3>(2); // [batch, candidates, 1]
    let joint = retriever_log_prob + token_log_prob; // [batch, candidates, seq]
    let marginal = logsumexp_dim1(joint); // [batch, seq]

    let mask = Tensor::<2>::from_data(TensorData::new(mlm_mask.to_vec(), [batch, seq]), &device); // [batch, seq]
    let count: f32 = mlm_mask.iter().sum();
    let loss = (marginal.clone() * mask)
        .sum()
        .div_scalar(count.max(f32::MIN_POSITIVE))
        .neg();
    MarginalLikelihood {
        marginal_log_likelihood: marginal,
        loss,
    }
}

/// log sum_c exp(x[:, c, :]), stably.
///
/// # Shapes
/// - `x`: `[batch, candidates, seq]` -> `[batch, seq]`
pub fn logsumexp_dim1(x: Tensor<3>) -> Tensor<2> {
    let max = x.clone().max_dim(1).detach(); // [batch, 1, seq]
    let summed = (x - max.clone()).exp().sum_dim(1); // [batch, 1, seq]
    (summed.log() + max).squeeze_dim::<2>(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// The paper's section 3.4: d log p(y|x) / d f(x, z) = r(z) = [p(y|z,x) / p(y|x) - 1] p(z|x),
    /// so documents that predict the masked token better than average are pushed up.
    #[test]
    fn the_retriever_gradient_is_the_papers_r_of_z() {
        let device = crate::device::cpu_device().autodiff();
        let mut rng = SplitMix64::new(2020);
        let (candidates, seq, vocab) = (5, 3, 7);
        let logits = rng.uniform_vec(candidates * seq * vocab, 3.0);
        let scores = rng.uniform_vec(candidates, 2.0);
        let labels = [-100i64, 4, -100];
        let mask = [0.0f32, 1.0, 0.0];

        let f = Tensor::<2>::from_data(TensorData::new(scores.clone(), [1, candidates]), &device)
            .require_grad();
        let l = Tensor::<3>::from_data(
            TensorData::new(logits.clone(), [candidates, seq, vocab]),
            &device,
        );
        let out = marginal_log_likelihood(l, f.clone(), &labels, &mask);
        // loss = -log p(y|x) for the single masked token.
        let grads = out.loss.backward();
        let grad: Vec<f32> = f.grad(&grads).unwrap().into_data().try_into_vec().unwrap();

        // r(z) by hand, in f64.
        let softmax = |x: &[f64]| {
            let m = x.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect::<Vec<f64>>()
        };
        let p_z = softmax(&scores.iter().map(|&v| v as f64).collect::<Vec<_>>());
        let p_y_given_z: Vec<f64> = (0..candidates)
            .map(|z| {
                let row: Vec<f64> = (0..vocab)
                    .map(|v| logits[(z * seq + 1) * vocab + v] as f64)
                    .collect();
                softmax(&row)[4]
            })
            .collect();
        let p_y: f64 = p_z.iter().zip(&p_y_given_z).map(|(a, b)| a * b).sum();
        for z in 0..candidates {
            let r = (p_y_given_z[z] / p_y - 1.0) * p_z[z];
            // The loss is -log p(y|x): its gradient is -r(z).
            assert!(
                (grad[z] as f64 + r).abs() < 1e-5,
                "z = {z}: autodiff {} vs r(z) {r}",
                -grad[z]
            );
        }
        assert!(
            grad.iter().any(|g| g.abs() > 1e-3),
            "a gradient this small would pass vacuously"
        );
    }
}
