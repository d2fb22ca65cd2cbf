//! Fresh heads on a pre-trained encoder: a `RealmReader` checkpoint built from a plain BERT
//! (MiniLM has no span head), its `qa_outputs` drawn as BERT initialises new layers (weights
//! with standard deviation 0.02, biases 0, LayerNorm 1 and 0), and a
//! `RealmKnowledgeAugEncoder` checkpoint with a fresh masked-LM transform whose decoder is
//! tied to the word embeddings (MiniLM has no MLM head either).

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

/// A `RealmKnowledgeAugEncoder` weight map: `bert`'s tensors under `realm.` (pooler and
/// position-id buffer dropped) and a fresh `cls.predictions` head drawn from `seed`: the
/// transform as BERT initialises it, the decoder tied to the word embeddings, the bias 0.
pub fn encoder_from_bert(config: &BertConfig, bert: &WeightMap, seed: u64) -> WeightMap {
    let mut out: WeightMap = bert
        .iter()
        .filter(|(name, _)| !name.starts_with("pooler.") && !name.ends_with("position_ids"))
        .map(|(name, t)| (format!("realm.{name}"), t.clone()))
        .collect();
    let (h, v) = (config.hidden_size, config.vocab_size);
    let mut rng = SplitMix64::new(seed);
    let tied = out
        .get("realm.embeddings.word_embeddings.weight")
        .cloned()
        .expect("a BERT has word embeddings");
    let mut put = |name: &str, tensor: HostTensor| {
        out.insert(format!("cls.predictions.{name}"), tensor);
    };
    let t = |name: &str, shape: Vec<usize>, data: Vec<f32>| {
        HostTensor::new(name, shape, data).expect("shape and data agree")
    };
    put(
        "transform.dense.weight",
        t("w", vec![h, h], weights(&mut rng, h * h, INITIALIZER_RANGE)),
    );
    put("transform.dense.bias", t("b", vec![h], vec![0.0; h]));
    put("transform.LayerNorm.weight", t("g", vec![h], vec![1.0; h]));
    put("transform.LayerNorm.bias", t("b", vec![h], vec![0.0; h]));
    put("bias", t("b", vec![v], vec![0.0; v]));
    put("decoder.bias", t("b", vec![v], vec![0.0; v]));
    put("decoder.weight", tied);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::safetensors_file::strip_prefix;
    use crate::checkpoint::weights::WeightLoader;
    use crate::model::encoder::KnowledgeAugEncoder;
    use crate::text::BertInput;

    /// The masked-position fast path against the plain full-sequence forward, on random ids.
    #[test]
    fn the_encoder_at_masked_positions_matches_the_full_forward() {
        let device = crate::device::cpu_device();
        let config = crate::skeleton::config();
        let bert = strip_prefix(&crate::skeleton::seeded_weights(&config, 5), "realm.");
        let mut loader = WeightLoader::new(encoder_from_bert(&config, &bert, 9), &device);
        let encoder = KnowledgeAugEncoder::load(&config, &mut loader, &device).unwrap();
        loader.finish(&[]).unwrap();

        let mut rng = SplitMix64::new(31);
        let (rows, seq, targets) = (3, 12, 4);
        let ids: Vec<Vec<u32>> = (0..rows)
            .map(|_| {
                (0..seq)
                    .map(|_| (rng.next_u64() % config.vocab_size as u64) as u32)
                    .collect()
            })
            .collect();
        let types = vec![vec![0u32; seq]; rows];
        let pairs: Vec<(&[u32], &[u32])> = ids
            .iter()
            .zip(&types)
            .map(|(i, t)| (&i[..], &t[..]))
            .collect();
        let input = BertInput::padded(&pairs, 0);
        let positions: Vec<u32> = (0..rows * targets)
            .map(|_| (rng.next_u64() % seq as u64) as u32)
            .collect();

        let full: Vec<f32> = encoder
            .forward(&input, &device)
            .into_data()
            .try_into_vec()
            .unwrap();
        let at: Vec<f32> = encoder
            .forward_at(&input, &positions, targets, &device)
            .into_data()
            .try_into_vec()
            .unwrap();
        let vocab = config.vocab_size;
        for (k, &p) in positions.iter().enumerate() {
            let row = k / targets;
            let want = &full[(row * seq + p as usize) * vocab..][..vocab];
            let got = &at[k * vocab..][..vocab];
            for (a, b) in want.iter().zip(got) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
                    "row {row} position {p}: {a} vs {b}"
                );
            }
        }
        // The head's decoder is the word embeddings themselves (tied, as the loader checked).
        assert!(at.iter().any(|v| v.abs() > 1e-3));
    }
}
