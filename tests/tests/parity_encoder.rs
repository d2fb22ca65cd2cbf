//! The knowledge-augmented encoder against transformers 4.57.6's `RealmKnowledgeAugEncoder`
//! on the tiny random REALM (`../shared/data/realm-parity-tiny`): hidden states, masked-LM
//! logits and the marginal MLM loss, on the CPU and wgpu backends.
//! Tolerances: hidden states and logits abs 1e-5 + rel 1e-4, the loss abs 1e-4.

use realm_core::checkpoint::safetensors_file::strip_prefix;
use realm_core::checkpoint::weights::WeightLoader;
use realm_core::model::encoder::{ENCODER_UNUSED, KnowledgeAugEncoder, marginal_log_likelihood};
use realm_tests::{assert_close, bert_input, parity_devices, tiny_realm, values};

#[test]
fn encoder_logits_and_marginal_loss_match_transformers() {
    let Some(f) = tiny_realm() else { return };
    let (config, io) = (&f.config, &f.io);
    let input = bert_input(io, "encoder."); // [2 * 3, 48]
    let (batch, candidates, seq, vocab) = (2, 3, input.seq, config.vocab_size);
    let labels = f.ints("encoder.labels");
    let mlm_mask = io["encoder.mlm_mask"].data.clone();

    for (name, device) in parity_devices() {
        let mut loader = WeightLoader::new(strip_prefix(&f.weights, "reader."), &device);
        let encoder = KnowledgeAugEncoder::load(config, &mut loader, &device).unwrap();
        loader.finish(ENCODER_UNUSED).unwrap();

        let hidden = values(encoder.bert.forward(&input, &device).last_hidden_state);
        assert_close(
            &format!("{name}: last_hidden_state"),
            &hidden,
            &io["encoder.last_hidden_state"].data,
            1e-5,
            1e-4,
        );

        let logits = encoder.forward(&input, &device); // [6, 48, vocab]
        let flat = values(logits.clone());
        let at = |row: usize, pos: usize| {
            &flat[(row * seq + pos) * vocab..(row * seq + pos + 1) * vocab]
        };
        let first: Vec<f32> = (0..batch * candidates)
            .flat_map(|r| at(r, 0)[..64].to_vec())
            .collect();
        assert_close(
            &format!("{name}: logits[:, 0, :64]"),
            &first,
            &io["encoder.logits_first_token_first_64"].data,
            1e-5,
            1e-4,
        );
        let positions = &io["encoder.masked_positions"].data; // [(batch, position)]
        let masked: Vec<f32> = positions
            .chunks(2)
            .flat_map(|bp| {
                let (b, p) = (bp[0] as usize, bp[1] as usize);
                (0..candidates).flat_map(move |c| at(b * candidates + c, p).to_vec())
            })
            .collect();
        assert_close(
            &format!("{name}: logits at [MASK]"),
            &masked,
            &io["encoder.logits_at_masked"].data,
            1e-5,
            1e-4,
        );

        let relevance = burn::tensor::Tensor::<2>::from_data(
            burn::tensor::TensorData::new(
                io["encoder.relevance_score"].data.clone(),
                [batch, candidates],
            ),
            &device,
        );
        let loss = values(marginal_log_likelihood(logits, relevance, &labels, &mlm_mask).loss);
        assert_close(
            &format!("{name}: loss"),
            &loss,
            &io["encoder.loss"].data,
            1e-4,
            0.0,
        );
    }
}
