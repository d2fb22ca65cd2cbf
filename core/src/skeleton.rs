//! The walking skeleton: a tiny REALM embedder with seeded weights embeds a handful of
//! passages and questions, so that every layer of the toolkit (CPU reference, WGSL kernel,
//! wasm in Node and in the browser) can be checked to return the same documents.

use burn::tensor::Device;

use crate::Error;
use crate::checkpoint::weights::{HostTensor, WeightLoader, WeightMap};
use crate::index::reference::check_matrix;
use crate::model::config::BertConfig;
use crate::model::embedder::RealmEmbedder;
use crate::rng::SplitMix64;
use crate::text::hash_tokenizer::HashTokenizer;

/// The seed of the skeleton's weights; every build uses it, so every build agrees.
pub const SEED: u64 = 0x5EA1_2020;

/// The skeleton's corpus.
pub const PASSAGES: &[&str] = &[
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France, completed in 1889.",
    "Mount Everest is Earth's highest mountain above sea level, in the Himalayas.",
    "The Pacific Ocean is the largest and deepest of Earth's five oceanic divisions.",
    "Ada Lovelace wrote the first algorithm intended to be carried out by a machine.",
    "Photosynthesis is the process by which plants convert light energy into chemical energy.",
    "The Great Wall of China is a series of fortifications built across northern China.",
    "Jupiter is the fifth planet from the Sun and the largest in the Solar System.",
    "The Rust programming language guarantees memory safety without a garbage collector.",
    "William Shakespeare was an English playwright, poet and actor born in Stratford-upon-Avon.",
    "The Amazon River in South America is the largest river by discharge volume of water.",
];

/// The skeleton's questions.
pub const QUESTIONS: &[&str] = &[
    "Where is the Eiffel Tower?",
    "What is the largest planet in the Solar System?",
    "Who wrote the first computer algorithm?",
];

/// A two-layer, 64-wide BERT projecting to REALM's 128 retrieval dimensions.
pub fn config() -> BertConfig {
    BertConfig {
        max_position_embeddings: 64,
        ..BertConfig::new(512, 64, 2, 4, 128)
    }
}

/// Names and shapes of every tensor in a Hugging Face `RealmEmbedder` checkpoint for
/// `config`, in PyTorch layout (`nn.Linear` weights are `[out, in]`).
pub fn embedder_tensor_shapes(config: &BertConfig) -> Vec<(String, Vec<usize>)> {
    let (h, i, p) = (
        config.hidden_size,
        config.intermediate_size,
        config.retriever_proj_size,
    );
    let mut shapes = vec![
        (
            "realm.embeddings.word_embeddings.weight".to_string(),
            vec![config.vocab_size, h],
        ),
        (
            "realm.embeddings.position_embeddings.weight".into(),
            vec![config.max_position_embeddings, h],
        ),
        (
            "realm.embeddings.token_type_embeddings.weight".into(),
            vec![config.type_vocab_size, h],
        ),
        ("realm.embeddings.LayerNorm.weight".into(), vec![h]),
        ("realm.embeddings.LayerNorm.bias".into(), vec![h]),
    ];
    let dense = |name: String, d_in: usize, d_out: usize| {
        [
            (format!("{name}.weight"), vec![d_out, d_in]),
            (format!("{name}.bias"), vec![d_out]),
        ]
    };
    let norm = |name: String, d: usize| {
        [
            (format!("{name}.weight"), vec![d]),
            (format!("{name}.bias"), vec![d]),
        ]
    };
    for l in 0..config.num_hidden_layers {
        let at = |name: &str| format!("realm.encoder.layer.{l}.{name}");
        shapes.extend(dense(at("attention.self.query"), h, h));
        shapes.extend(dense(at("attention.self.key"), h, h));
        shapes.extend(dense(at("attention.self.value"), h, h));
        shapes.extend(dense(at("attention.output.dense"), h, h));
        shapes.extend(norm(at("attention.output.LayerNorm"), h));
        shapes.extend(dense(at("intermediate.dense"), h, i));
        shapes.extend(dense(at("output.dense"), i, h));
        shapes.extend(norm(at("output.LayerNorm"), h));
    }
    shapes.extend(dense("realm.pooler.dense".into(), h, h));
    shapes.extend(dense("cls.dense".into(), h, p));
    shapes.extend(norm("cls.LayerNorm".into(), p));
    shapes
}

/// Deterministic weights for every tensor of the embedder: the same bits on every platform.
pub fn seeded_weights(config: &BertConfig, seed: u64) -> WeightMap {
    let mut rng = SplitMix64::new(seed);
    embedder_tensor_shapes(config)
        .into_iter()
        .map(|(name, shape)| {
            let n = shape.iter().product();
            // Matrices far wider than BERT's 0.02 so that an untrained model still tells
            // texts apart by clear margins (the cross-platform tests compare rankings).
            let data = if name.ends_with("LayerNorm.weight") {
                rng.uniform_vec(n, 0.1)
                    .into_iter()
                    .map(|v| 1.0 + v)
                    .collect()
            } else if name.ends_with(".bias") {
                rng.uniform_vec(n, 0.1)
            } else {
                rng.uniform_vec(n, 0.6)
            };
            let tensor =
                HostTensor::new(&name, shape, data).expect("shape and data agree by construction");
            (name, tensor)
        })
        .collect()
}

/// The skeleton's embedder and tokenizer on one device.
pub struct SkeletonRetriever {
    pub embedder: RealmEmbedder,
    pub tokenizer: HashTokenizer,
    pub device: Device,
    pub dim: usize,
}

impl SkeletonRetriever {
    pub fn new(device: Device) -> Result<Self, Error> {
        let config = config();
        let mut loader = WeightLoader::new(seeded_weights(&config, SEED), &device);
        let embedder = RealmEmbedder::load(&config, &mut loader, &device)?;
        loader.finish(&[])?;
        let tokenizer = HashTokenizer {
            vocab_size: config.vocab_size as u32,
            max_len: config.max_position_embeddings,
        };
        Ok(Self {
            embedder,
            tokenizer,
            device,
            dim: config.retriever_proj_size,
        })
    }

    /// Embeds texts as a flat row-major `[texts, dim]` buffer.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, Error> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let input = self.tokenizer.encode_batch(texts)?;
        let embeddings = self.embedder.embed(&input, &self.device); // [texts, dim]
        let values = embeddings
            .into_data()
            .try_into_vec::<f32>()
            .expect("the embedder returns f32");
        check_matrix(&values, self.dim, "the embeddings")?;
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::test_device;

    #[test]
    fn every_seeded_tensor_is_loaded_and_nothing_is_left() {
        // SkeletonRetriever::new fails on any missing or unused tensor.
        SkeletonRetriever::new(test_device()).unwrap();
    }

    #[test]
    fn a_missing_an_unused_or_a_misshapen_tensor_is_an_error() {
        let device = test_device();
        let config = config();
        let load = |weights: WeightMap| -> Result<(), Error> {
            let mut loader = WeightLoader::new(weights, &device);
            RealmEmbedder::load(&config, &mut loader, &device)?;
            loader.finish(&[])
        };
        let mut missing = seeded_weights(&config, 1);
        missing.remove("realm.encoder.layer.1.output.dense.bias");
        assert!(
            matches!(load(missing), Err(Error::MissingWeight { name }) if name.ends_with("layer.1.output.dense.bias"))
        );

        let mut extra = seeded_weights(&config, 1);
        extra.insert(
            "cls.predictions.bias".into(),
            HostTensor::new("b", vec![1], vec![0.0]).unwrap(),
        );
        assert!(
            matches!(load(extra), Err(Error::UnusedWeights { names }) if names == ["cls.predictions.bias"])
        );

        let mut misshapen = seeded_weights(&config, 1);
        misshapen.insert(
            "cls.dense.bias".into(),
            HostTensor::new("b", vec![3], vec![0.0; 3]).unwrap(),
        );
        assert!(matches!(load(misshapen), Err(Error::WeightShape { .. })));
    }

    #[test]
    fn padding_does_not_change_an_embedding() {
        let retriever = SkeletonRetriever::new(test_device()).unwrap();
        let alone = retriever.embed(&[PASSAGES[0]]).unwrap();
        // The short question forces padding onto nothing; the long passage pads the question.
        let batch = retriever
            .embed(&[QUESTIONS[0], PASSAGES[0], PASSAGES[3]])
            .unwrap();
        let question_alone = retriever.embed(&[QUESTIONS[0]]).unwrap();
        let dim = retriever.dim;
        for (a, b) in alone.iter().zip(&batch[dim..2 * dim]) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        for (a, b) in question_alone.iter().zip(&batch[..dim]) {
            assert!((a - b).abs() < 1e-5, "padded question: {a} vs {b}");
        }
    }

    #[test]
    fn embeddings_are_layer_normalised_and_differ_between_texts() {
        let retriever = SkeletonRetriever::new(test_device()).unwrap();
        let e = retriever.embed(PASSAGES).unwrap();
        assert_eq!(e.len(), PASSAGES.len() * retriever.dim);
        let first = &e[..retriever.dim];
        let mean: f32 = first.iter().sum::<f32>() / retriever.dim as f32;
        // LayerNorm's gamma is near 1 and beta near 0, so the mean stays near 0.
        assert!(mean.abs() < 0.1, "mean {mean}");
        assert_ne!(&e[..retriever.dim], &e[retriever.dim..2 * retriever.dim]);
    }
}
