//! Fresh heads on a pre-trained encoder: a `RealmReader` checkpoint built from a plain BERT
//! (MiniLM has no span head), its `qa_outputs` drawn as BERT initialises new layers (weights
//! with standard deviation 0.02, biases 0, LayerNorm 1 and 0).

use crate::checkpoint::weights::{HostTensor, WeightMap};
use crate::model::config::{BertConfig, ReaderConfig};
use crate::rng::SplitMix64;

/// BERT's `initializer_range`.
pub const INITIALIZER_RANGE: f32 = 0.02;

/// Weights uniform in `[-a, a)` with the standard deviation `std` (a = std * sqrt(3)).
fn weights(rng: &mut SplitMix64, n: usize, std: f32) -> Vec<f32> {
    rng.uniform_vec(n, std * 3f32.sqrt())
}

/// A `RealmReader` weight map: the BERT tensors of `bert` (Hugging Face `BertModel` names,
/// e.g. a sentence-transformers model) under `realm.`, its pooler and position-id buffer
/// dropped (the reader reads token states), and a fresh span head drawn from `seed`.
pub fn reader_from_bert(
    config: &BertConfig,
    reader: &ReaderConfig,
    bert: &WeightMap,
    seed: u64,
) -> WeightMap {
    let mut out: WeightMap = bert
        .iter()
        .filter(|(name, _)| !name.starts_with("pooler.") && !name.ends_with("position_ids"))
        .map(|(name, t)| (format!("realm.{name}"), t.clone()))
        .collect();
    let (h, s) = (config.hidden_size, reader.span_hidden_size);
    let mut rng = SplitMix64::new(seed);
    let mut put = |name: &str, shape: Vec<usize>, data: Vec<f32>| {
        out.insert(
            format!("qa_outputs.{name}"),
            HostTensor::new(name, shape, data).expect("shape and data agree"),
        );
    };
    put(
        "dense_intermediate.weight",
        vec![2 * s, h],
        weights(&mut rng, 2 * s * h, INITIALIZER_RANGE),
    );
    put("dense_intermediate.bias", vec![2 * s], vec![0.0; 2 * s]);
    put(
        "dense_output.weight",
        vec![1, s],
        weights(&mut rng, s, INITIALIZER_RANGE),
    );
    put("dense_output.bias", vec![1], vec![0.0]);
    put("layer_normalization.weight", vec![s], vec![1.0; s]);
    put("layer_normalization.bias", vec![s], vec![0.0; s]);
    out
}
