//! The real all-MiniLM-L6-v2 (`../shared/data/all-minilm-l6-v2`) against the outputs that
//! transformers 4.57.6 / sentence-transformers' recipe gave for six sentences
//! (`../shared/data/realm-parity-tiny/minilm_reference.safetensors`): hidden states, pooler,
//! mean pooling and the normalised sentence embedding, on the CPU and wgpu backends.

use realm_core::checkpoint::safetensors_file::read_safetensors;
use realm_core::checkpoint::weights::WeightLoader;
use realm_core::model::config::read_config;
use realm_core::model::embedder::{BERT_BUFFERS, RealmEmbedder, mean_pool};
use realm_tests::{assert_close, bert_input, parity_devices, read_tensors, shared_data, values};

// A real 6-layer, 384-wide model accumulates more rounding than the tiny one: abs 1e-4 on
// hidden states of magnitude ~1-10 (rel 1e-4), abs 1e-5 on unit-norm sentence embeddings.
#[test]
fn minilm_matches_transformers() {
    let (Some(model), Some(fixtures)) = (
        shared_data("all-minilm-l6-v2"),
        shared_data("realm-parity-tiny"),
    ) else {
        return;
    };
    let config = read_config(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    let weights =
        read_safetensors(&std::fs::read(model.join("model.safetensors")).unwrap()).unwrap();
    let reference = read_tensors(&fixtures.join("minilm_reference.safetensors"));
    let input = bert_input(&reference, "");
    for (name, device) in parity_devices() {
        let mut loader = WeightLoader::new(weights.clone(), &device);
        let embedder =
            RealmEmbedder::load_sentence_transformer(&config, &mut loader, &device).unwrap();
        loader.finish(BERT_BUFFERS).unwrap();
        assert_eq!(embedder.dim(), 384);

        let out = embedder.bert.forward(&input, &device);
        let hidden = out.last_hidden_state;
        let last = values(hidden.clone());
        assert_close(
            &format!("{name}: last_hidden_state"),
            &last,
            &reference["last_hidden_state"].data,
            1e-4,
            1e-4,
        );
        let pooler = values(out.pooler_output.unwrap());
        assert_close(
            &format!("{name}: pooler_output"),
            &pooler,
            &reference["pooler_output"].data,
            1e-5,
            1e-4,
        );
        let mean = values(mean_pool(hidden, &input.attention_mask, &device));
        assert_close(
            &format!("{name}: mean_pooled"),
            &mean,
            &reference["mean_pooled"].data,
            1e-5,
            1e-4,
        );
        let sentence = values(embedder.embed(&input, &device));
        assert_close(
            &format!("{name}: sentence_embedding"),
            &sentence,
            &reference["sentence_embedding"].data,
            1e-5,
            1e-4,
        );
    }
}

// The frozen CPU forward (`Bert::freeze`, what `ask`, `eval` and `index` run): at f32 within
// the same tolerances as the module; at bf16 (AMX, where the CPU has it) each sentence
// embedding within cosine 0.999 of transformers' f32 one.
#[test]
fn frozen_minilm_matches_transformers() {
    use realm_core::linalg::Precision;
    let (Some(model), Some(fixtures)) = (
        shared_data("all-minilm-l6-v2"),
        shared_data("realm-parity-tiny"),
    ) else {
        return;
    };
    let config = read_config(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    let weights =
        read_safetensors(&std::fs::read(model.join("model.safetensors")).unwrap()).unwrap();
    let reference = read_tensors(&fixtures.join("minilm_reference.safetensors"));
    let input = bert_input(&reference, "");
    let device = realm_core::device::cpu_device();
    for precision in [Precision::F32, Precision::Bf16] {
        if !precision.available() {
            eprintln!("{precision}: not on this CPU, skipped");
            continue;
        }
        let mut loader = WeightLoader::new(weights.clone(), &device);
        let mut embedder =
            RealmEmbedder::load_sentence_transformer(&config, &mut loader, &device).unwrap();
        assert!(embedder.bert.freeze(config.layer_norm_eps, precision));
        let out = embedder.bert.forward(&input, &device);
        assert!(
            out.hidden_states.is_empty(),
            "the frozen path must have run"
        );
        let sentence = values(embedder.embed(&input, &device));
        let want = &reference["sentence_embedding"].data;
        match precision {
            Precision::F32 => {
                let last = values(out.last_hidden_state);
                let what = "frozen f32: last_hidden_state";
                assert_close(
                    what,
                    &last,
                    &reference["last_hidden_state"].data,
                    1e-4,
                    1e-4,
                );
                let pooler = values(out.pooler_output.unwrap());
                let what = "frozen f32: pooler_output";
                assert_close(what, &pooler, &reference["pooler_output"].data, 1e-5, 1e-4);
                let what = "frozen f32: sentence_embedding";
                assert_close(what, &sentence, want, 1e-5, 1e-4);
            }
            Precision::Bf16 => {
                for (i, (got, want)) in sentence.chunks(384).zip(want.chunks(384)).enumerate() {
                    let cosine: f32 = got.iter().zip(want).map(|(a, b)| a * b).sum();
                    assert!(cosine > 0.999, "bf16 sentence {i}: cosine {cosine} to f32");
                }
            }
        }
    }
}
