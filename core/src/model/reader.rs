//! The span reader for open-domain QA: BERT over `[CLS] question [SEP] block [SEP]`, every
//! span of up to `max_span_width` wordpieces inside the block scored by an MLP over
//! [h_start; h_end], the retriever's logit added, and the marginal retriever and reader losses
//! (Hugging Face's `RealmReader`, REALM section 3.4 and appendix).

use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use std::sync::Arc;

use crate::Error;
use crate::checkpoint::weights::WeightLoader;
use crate::linalg::Precision;
use crate::model::bert::{Bert, load_layer_norm};
use crate::model::config::{BertConfig, ReaderConfig};
use crate::model::frozen_bert::Dense;
use crate::text::BertInput;

/// Tensors of a Hugging Face `RealmReader` checkpoint the reader does not use.
pub const READER_UNUSED: &[&str] = &[
    // The pooler: the reader reads token states only.
    "realm.pooler.",
    // The masked-LM head, which `RealmReader` carries from pre-training but never runs.
    "cls.",
];

/// Every candidate span, width-major: all spans of width 1 by start, then width 2, ...
/// Returns `(starts, ends)`, inclusive token positions.
pub fn span_candidates(seq: usize, max_span_width: usize) -> (Vec<u32>, Vec<u32>) {
    (1..=max_span_width.min(seq))
        .flat_map(|width| {
            (0..=seq - width).map(move |start| (start as u32, (start + width - 1) as u32))
        })
        .unzip()
}

/// `RealmReader`: BERT and the span scorer (`qa_outputs`).
#[derive(Module, Debug)]
pub struct SpanReader {
    pub bert: Bert,
    pub dense_intermediate: Linear,
    pub dense_output: Linear,
    pub layer_norm: LayerNorm,
    pub max_span_width: usize,
    /// Set by [`SpanReader::freeze`]: `dense_intermediate` packed for the CPU inference
    /// path, which `forward` then takes.
    #[module(skip)]
    pub(crate) frozen_intermediate: Option<Arc<Dense>>,
}

/// The reader's scores for one question over its retrieved blocks.
pub struct ReaderOutput {
    /// `[blocks, spans]`: span logit + retriever logit; spans outside the block carry
    /// `f32::MIN` added, as in transformers.
    pub logits: Tensor<2>,
    pub starts: Vec<u32>,
    pub ends: Vec<u32>,
}

impl SpanReader {
    /// Loads `realm.*` and `qa_outputs.*` as named in a Hugging Face `RealmReader` checkpoint.
    pub fn load(
        config: &BertConfig,
        reader: &ReaderConfig,
        weights: &mut WeightLoader,
        device: &Device,
    ) -> Result<Self, Error> {
        let bert = Bert::load(config, weights, "realm.", false, device)?;
        let (h, s) = (config.hidden_size, reader.span_hidden_size);
        let linear = |w: &mut WeightLoader,
                      name: &str,
                      d_in: usize,
                      d_out: usize|
         -> Result<Linear, Error> {
            Ok(Linear {
                weight: w.take_linear_weight(&format!("qa_outputs.{name}.weight"), d_in, d_out)?,
                bias: Some(w.take_param(&format!("qa_outputs.{name}.bias"), [d_out])?),
            })
        };
        Ok(Self {
            dense_intermediate: linear(weights, "dense_intermediate", h, 2 * s)?,
            dense_output: linear(weights, "dense_output", s, 1)?,
            layer_norm: load_layer_norm(
                weights,
                "qa_outputs.layer_normalization",
                s,
                reader.reader_layer_norm_eps,
                device,
            )?,
            bert,
            max_span_width: reader.max_span_width,
            frozen_intermediate: None,
        })
    }

    /// From now on `forward` runs the encoder frozen ([`Bert::freeze`]) and the span head's
    /// largest product (`dense_intermediate`, every token's start and end projections) on
    /// the same packed kernels, at `precision`. Inference only; on backends other than
    /// burn's CPU one nothing changes and this returns `false`.
    ///
    /// # Panics
    /// If `precision` is not available on this machine ([`Precision::available`]).
    pub fn freeze(&mut self, eps: f64, precision: Precision) -> bool {
        if !Bert::freeze(&mut self.bert, eps, precision) {
            return false;
        }
        self.frozen_intermediate = Some(Arc::new(Dense::new(&self.dense_intermediate, precision)));
        true
    }

    /// Scores every span of every block.
    ///
    /// # Shapes
    /// - `input`: `[blocks, seq]`; `block_mask`: `[blocks * seq]`, 1 on the block's own tokens
    ///   (segment 1, not special); `relevance_score`: `[blocks]`, f(x, z) of each block
    /// - returns logits `[blocks, spans]`
    pub fn forward(
        &self,
        input: &BertInput,
        block_mask: &[u32],
        relevance_score: Tensor<1>,
        device: &Device,
    ) -> ReaderOutput {
        let (blocks, seq) = (input.batch, input.seq);
        assert!(
            seq >= self.max_span_width,
            "sequences of {seq} tokens are shorter than max_span_width {}",
            self.max_span_width
        );
        assert_eq!(
            block_mask.len(),
            blocks * seq,
            "block_mask must be [blocks, seq] = [{blocks}, {seq}]"
        );
        let hidden = self.bert.forward(input, device).last_hidden_state; // [blocks, seq, hidden]
        let projected = match &self.frozen_intermediate {
            Some(dense) => {
                let hidden = hidden
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .expect("f32 after convert");
                let rows = blocks * seq;
                let mut out = vec![0.0; rows * dense.outputs()];
                dense.forward(&hidden, rows, &mut out);
                Tensor::<3>::from_data(TensorData::new(out, [blocks, seq, dense.outputs()]), device)
            }
            None => self.dense_intermediate.forward(hidden),
        }; // [blocks, seq, 2 * span_hidden]
        let span_hidden = projected.dims()[2] / 2;
        let start_projection = projected.clone().narrow(2, 0, span_hidden); // [blocks, seq, span_hidden]
        let end_projection = projected.narrow(2, span_hidden, span_hidden); // [blocks, seq, span_hidden]

        let (starts, ends) = span_candidates(seq, self.max_span_width);
        let spans = starts.len();
        let index = |positions: &[u32]| {
            let values: Vec<i32> = positions.iter().map(|&p| p as i32).collect();
            Tensor::<1, Int>::from_data(TensorData::new(values, [spans]), device)
        };
        let candidate =
            start_projection.select(1, index(&starts)) + end_projection.select(1, index(&ends)); // [blocks, spans, span_hidden]
        let candidate = self.layer_norm.forward(relu(candidate));
        let span_logits = self
            .dense_output
            .forward(candidate)
            .reshape([blocks, spans]); // [blocks, spans]

        // A span counts only when both its ends lie inside the block.
        let outside: Vec<f32> = (0..blocks)
            .flat_map(|b| {
                starts.iter().zip(&ends).map(move |(&s, &e)| {
                    let inside = block_mask[b * seq + s as usize] != 0
                        && block_mask[b * seq + e as usize] != 0;
                    if inside { 0.0 } else { f32::MIN }
                })
            })
            .collect();
        let outside = Tensor::<2>::from_data(TensorData::new(outside, [blocks, spans]), device); // [blocks, spans]
        let logits = span_logits + outside + relevance_score.reshape([blocks, 1]); // [blocks, spans]
        ReaderOutput {
            logits,
            starts,
            ends,
        }
    }
}

/// The predicted answer: as transformers does, the block whose best span scores highest and,
/// separately, the span position that scores highest in any block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prediction {
    pub block: usize,
    pub candidate: usize,
    pub start: u32,
    pub end: u32,
}

impl ReaderOutput {
    pub fn predict(&self) -> Prediction {
        let [blocks, spans] = self.logits.dims();
        let logits: Vec<f32> = self.logits.to_data().try_into_vec().expect("f32 logits");
        let argmax = |values: &mut dyn Iterator<Item = f32>| {
            values
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, v)| {
                    if v > best.1 { (i, v) } else { best }
                })
                .0
        };
        let block = argmax(&mut (0..blocks).map(|b| {
            logits[b * spans..(b + 1) * spans]
                .iter()
                .cloned()
                .fold(f32::NEG_INFINITY, f32::max)
        }));
        let candidate = argmax(&mut (0..spans).map(|s| {
            (0..blocks)
                .map(|b| logits[b * spans + s])
                .fold(f32::NEG_INFINITY, f32::max)
        }));
        Prediction {
            block,
            candidate,
            start: self.starts[candidate],
            end: self.ends[candidate],
        }
    }
}

/// The gold answers' positions in each block, for the losses.
pub struct ReaderTargets {
    /// `[blocks][answers]` inclusive start and end token positions; -1 where an answer is not
    /// in that block.
    pub starts: Vec<Vec<i64>>,
    pub ends: Vec<Vec<i64>>,
    /// `[blocks]`: whether the block holds any answer (the retriever's target).
    pub has_answers: Vec<bool>,
}

/// The losses of one question.
pub struct ReaderLosses {
    /// `[1]`: -log of the retriever's probability mass on blocks holding an answer, 0 when none does.
    pub retriever_loss: Tensor<1>,
    /// `[1]`: -log of the reader's probability mass on gold spans (over all blocks and spans),
    /// 0 when no gold span is a candidate.
    pub reader_loss: Tensor<1>,
    /// `[1]`: their sum.
    pub loss: Tensor<1>,
    /// `[blocks * spans]`: which candidates are gold.
    pub reader_correct: Vec<bool>,
}

/// REALM's fine-tuning losses: marginal log-likelihoods over correct blocks and correct spans.
///
/// # Shapes
/// - `relevance_score`: `[blocks]`; `output.logits`: `[blocks, spans]`
pub fn reader_losses(
    output: &ReaderOutput,
    relevance_score: Tensor<1>,
    targets: &ReaderTargets,
) -> ReaderLosses {
    let [blocks, spans] = output.logits.dims();
    assert_eq!(
        targets.starts.len(),
        blocks,
        "targets must cover {blocks} blocks"
    );
    let reader_correct: Vec<bool> = (0..blocks)
        .flat_map(|b| {
            (0..spans).map(move |s| {
                targets.starts[b]
                    .iter()
                    .zip(&targets.ends[b])
                    .any(|(&gs, &ge)| {
                        gs == i64::from(output.starts[s]) && ge == i64::from(output.ends[s])
                    })
            })
        })
        .collect();
    let retriever_loss = marginal_log_loss(relevance_score, &targets.has_answers);
    let reader_loss = marginal_log_loss(
        output.logits.clone().reshape([blocks * spans]),
        &reader_correct,
    );
    let loss = retriever_loss.clone() + reader_loss.clone();
    ReaderLosses {
        retriever_loss,
        reader_loss,
        loss,
        reader_correct,
    }
}

/// logsumexp(logits) - logsumexp(logits over the correct entries); 0 when none is correct.
///
/// # Shapes
/// - `logits`: `[n]` -> `[1]`
pub fn marginal_log_loss(logits: Tensor<1>, correct: &[bool]) -> Tensor<1> {
    let [n] = logits.dims();
    assert_eq!(correct.len(), n, "one correctness flag per logit");
    let device = logits.device();
    if !correct.iter().any(|&c| c) {
        return logits.sum().mul_scalar(0.0);
    }
    let penalty: Vec<f32> = correct
        .iter()
        .map(|&c| if c { 0.0 } else { f32::MIN })
        .collect();
    let penalty = Tensor::<1>::from_data(TensorData::new(penalty, [n]), &device);
    logsumexp(logits.clone()) - logsumexp(logits + penalty)
}

/// log sum exp(x), stably; `[n]` -> `[1]`.
fn logsumexp(x: Tensor<1>) -> Tensor<1> {
    let max = x.clone().max().detach(); // [1]
    (x - max.clone()).exp().sum().log() + max
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::weights::HostTensor;
    use crate::rng::{SplitMix64, fresh_seed};
    use crate::skeleton::seeded_weights;

    #[test]
    fn frozen_span_logits_match_the_module_forward() {
        let seed = fresh_seed();
        let mut rng = SplitMix64::new(seed);
        let config = BertConfig::new(97, 32, 2, 4, 64);
        let reader = ReaderConfig {
            span_hidden_size: 12,
            max_span_width: 3,
            reader_layer_norm_eps: 1e-3,
            reader_beam_size: 2,
            reader_seq_len: 9,
        };
        let mut weights = seeded_weights(&config, seed);
        let s = reader.span_hidden_size;
        for (name, shape) in [
            ("dense_intermediate.weight", vec![2 * s, 32]),
            ("dense_intermediate.bias", vec![2 * s]),
            ("dense_output.weight", vec![1, s]),
            ("dense_output.bias", vec![1]),
            ("layer_normalization.weight", vec![s]),
            ("layer_normalization.bias", vec![s]),
        ] {
            let data = rng.uniform_vec(shape.iter().product(), 0.5);
            let name = format!("qa_outputs.{name}");
            weights.insert(name.clone(), HostTensor::new(&name, shape, data).unwrap());
        }
        let device = crate::device::cpu_device();
        let mut model = SpanReader::load(
            &config,
            &reader,
            &mut WeightLoader::new(weights, &device),
            &device,
        )
        .expect("seeded weights");
        let (blocks, seq) = (2, 9);
        let input = BertInput {
            input_ids: (0..blocks * seq)
                .map(|_| (rng.next_u64() % 97) as u32)
                .collect(),
            token_type_ids: (0..blocks * seq).map(|i| (i % seq >= 4) as u32).collect(),
            attention_mask: vec![1; blocks * seq],
            batch: blocks,
            seq,
        };
        let block_mask: Vec<u32> = (0..blocks * seq)
            .map(|i| (4..seq - 1).contains(&(i % seq)) as u32)
            .collect();
        let scores = || Tensor::<1>::from_data(TensorData::new(vec![0.5f32, -1.0], [2]), &device);
        let logits = |out: ReaderOutput| -> Vec<f32> {
            out.logits.into_data().try_into_vec::<f32>().unwrap()
        };
        let want = logits(model.forward(&input, &block_mask, scores(), &device));
        // Qualified: burn's `Module::freeze` (no arguments) would shadow it here.
        assert!(SpanReader::freeze(
            &mut model,
            config.layer_norm_eps,
            Precision::F32
        ));
        assert!(model.frozen_intermediate.is_some());
        let got = logits(model.forward(&input, &block_mask, scores(), &device));
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "seed {seed}: span {i}: {g} vs {w}"
            );
        }
    }
}
