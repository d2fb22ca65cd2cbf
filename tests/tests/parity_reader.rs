//! The span reader against transformers 4.57.6's `RealmReader` on the tiny random REALM
//! (`../shared/data/realm-parity-tiny`): span enumeration, logits (retriever logit added,
//! out-of-block spans very negative), argmax block and span, and the three losses, on the CPU
//! and wgpu backends, and the frozen inference path's logits on the CPU. Tolerances: logits
//! abs 1e-5 + rel 1e-4, losses abs 1e-4, indices exact.

use realm_core::linalg::Precision;
use realm_core::model::reader::{ReaderTargets, SpanReader, reader_losses};
use realm_tests::{assert_close, bert_input, parity_devices, tiny_realm, values};

#[test]
fn reader_spans_logits_prediction_and_losses_match_transformers() {
    let Some(f) = tiny_realm() else { return };
    let io = &f.io;
    assert_eq!(
        (
            f.reader_config.max_span_width,
            f.reader_config.span_hidden_size
        ),
        (5, 24)
    );
    let input = bert_input(io, "reader.");
    let ints = |name: &str| f.ints(name);
    let block_mask: Vec<u32> = io["reader.block_mask"]
        .data
        .iter()
        .map(|&v| v as u32)
        .collect();
    let per_block = |name: &str| ints(name).chunks(2).map(|c| c.to_vec()).collect::<Vec<_>>();
    let targets = ReaderTargets {
        starts: per_block("reader.start_positions"),
        ends: per_block("reader.end_positions"),
        has_answers: io["reader.has_answers"]
            .data
            .iter()
            .map(|&v| v != 0.0)
            .collect(),
    };

    for (name, device) in parity_devices() {
        let reader = f.reader(&device);

        let sequence = values(reader.bert.forward(&input, &device).last_hidden_state);
        assert_close(
            &format!("{name}: sequence_output"),
            &sequence,
            &io["reader.sequence_output"].data,
            1e-5,
            1e-4,
        );

        let relevance = burn::tensor::Tensor::<1>::from_data(
            burn::tensor::TensorData::new(io["reader.relevance_score"].data.clone(), [input.batch]),
            &device,
        );
        let out = reader.forward(&input, &block_mask, relevance.clone(), &device);
        let as_i64 = |v: &[u32]| v.iter().map(|&x| i64::from(x)).collect::<Vec<_>>();
        assert_eq!(
            as_i64(&out.starts),
            ints("reader.candidate_starts"),
            "{name}: span starts (width-major)"
        );
        assert_eq!(
            as_i64(&out.ends),
            ints("reader.candidate_ends"),
            "{name}: span ends"
        );

        // Out-of-block spans carry f32::MIN: compare those only as "very negative".
        let logits = values(out.logits.clone());
        let expected = &io["reader.reader_logits"].data;
        let (finite, huge): (Vec<usize>, Vec<usize>) =
            (0..expected.len()).partition(|&i| expected[i] > -1e30);
        assert!(!finite.is_empty() && !huge.is_empty());
        let pick = |v: &[f32], idx: &[usize]| idx.iter().map(|&i| v[i]).collect::<Vec<f32>>();
        assert_close(
            &format!("{name}: in-block span logits"),
            &pick(&logits, &finite),
            &pick(expected, &finite),
            1e-5,
            1e-4,
        );
        assert!(
            huge.iter().all(|&i| logits[i] < -1e30),
            "{name}: out-of-block spans must be very negative"
        );
        // The frozen inference path (`SpanReader::freeze`: what `ask`, `eval`, `serve` and the
        // browser run), on the CPU backend, against the same numbers.
        let mut frozen = f.reader(&device);
        let froze = SpanReader::freeze(&mut frozen, f.config.layer_norm_eps, Precision::F32);
        assert_eq!(
            froze,
            name == "cpu",
            "{name}: freezes on the CPU backend only"
        );
        if froze {
            let out = frozen.forward(&input, &block_mask, relevance.clone(), &device);
            assert_close(
                &format!("{name}: frozen reader's in-block span logits"),
                &pick(&values(out.logits), &finite),
                &pick(expected, &finite),
                1e-5,
                1e-4,
            );
        }

        let prediction = out.predict();
        assert_eq!(
            prediction.block as i64,
            ints("reader.block_idx")[0],
            "{name}: block"
        );
        assert_eq!(
            prediction.candidate as i64,
            ints("reader.candidate")[0],
            "{name}: candidate"
        );
        assert_eq!(
            i64::from(prediction.start),
            ints("reader.start_pos")[0],
            "{name}: start"
        );
        assert_eq!(
            i64::from(prediction.end),
            ints("reader.end_pos")[0],
            "{name}: end"
        );

        let losses = reader_losses(&out, relevance, &targets);
        let correct: Vec<f32> = losses
            .reader_correct
            .iter()
            .map(|&c| f32::from(u8::from(c)))
            .collect();
        assert_eq!(
            correct, io["reader.reader_correct"].data,
            "{name}: reader_correct"
        );
        assert_close(
            &format!("{name}: retriever_loss"),
            &values(losses.retriever_loss),
            &io["reader.retriever_loss"].data,
            1e-4,
            0.0,
        );
        assert_close(
            &format!("{name}: reader_loss"),
            &values(losses.reader_loss),
            &io["reader.reader_loss"].data,
            1e-4,
            0.0,
        );
        assert_close(
            &format!("{name}: loss"),
            &values(losses.loss),
            &io["reader.loss"].data,
            1e-4,
            0.0,
        );
    }
}

#[test]
fn spans_are_width_major_and_never_longer_than_the_sequence() {
    let (starts, ends) = realm_core::model::reader::span_candidates(4, 10);
    assert_eq!(starts, vec![0, 1, 2, 3, 0, 1, 2, 0, 1, 0]);
    assert_eq!(ends, vec![0, 1, 2, 3, 1, 2, 3, 2, 3, 3]);
}
