//! Retrieve-then-read against transformers 4.57.6's `RealmForOpenQA` + `RealmRetriever` on
//! the tiny random REALM and its 16 evidence blocks (`../shared/data/realm-parity-tiny`):
//! question projection, block scores, retrieved blocks, predicted span and answer, losses.

use realm_core::model::openqa::OpenQa;
use realm_core::text::wordpiece::WordPieceTokenizer;
use realm_tests::{assert_close, parity_devices, shared_data, tiny_realm, values};

#[test]
fn open_qa_retrieves_reads_and_answers_like_transformers() {
    let (Some(f), Some(minilm)) = (tiny_realm(), shared_data("all-minilm-l6-v2")) else {
        return;
    };
    let io = &f.io;
    let blocks: Vec<String> =
        serde_json::from_slice(&std::fs::read(f.dir.join("openqa_blocks.json")).unwrap()).unwrap();
    let tokenizer =
        WordPieceTokenizer::from_vocab(&std::fs::read_to_string(minilm.join("vocab.txt")).unwrap())
            .unwrap();
    let ints = |name: &str| f.ints(name);
    let gold: Vec<Vec<u32>> = ints("openqa.answer_ids")
        .chunks(2)
        .map(|a| a.iter().filter(|&&t| t >= 0).map(|&t| t as u32).collect())
        .collect();
    let question = "Who was the Norse leader?";
    assert_eq!(
        tokenizer.encode(question, None).unwrap().ids,
        ints("openqa.input_ids")
            .iter()
            .map(|&v| v as u32)
            .collect::<Vec<_>>()
    );

    for (name, device) in parity_devices() {
        let qa = OpenQa {
            embedder: f.embedder(&device),
            reader: f.reader(&device),
            tokenizer: tokenizer.clone(),
            block_emb: f.weights["block_emb"].data.clone(),
            blocks: blocks.clone(),
            reader_beam_size: f.reader_config.reader_beam_size,
            reader_seq_len: f.reader_config.reader_seq_len,
        };
        let answer = qa.answer(question, Some(&gold), &device).unwrap();

        assert_close(
            &format!("{name}: question_projection"),
            &answer.question_projection,
            &io["openqa.question_projection"].data,
            1e-5,
            1e-4,
        );
        let retrieved: Vec<i64> = answer.retrieved.iter().map(|h| i64::from(h.id)).collect();
        assert_eq!(
            retrieved,
            ints("openqa.retrieved_block_ids"),
            "{name}: retrieved blocks"
        );
        let batch_scores = &io["openqa.batch_scores"].data;
        for hit in &answer.retrieved {
            assert!(
                (hit.score - batch_scores[hit.id as usize]).abs() < 1e-5,
                "{name}: score of block {}",
                hit.id
            );
        }
        assert_eq!(
            answer.prediction.block as i64,
            ints("openqa.block_idx")[0],
            "{name}: block"
        );
        assert_eq!(
            answer.prediction.candidate as i64,
            ints("openqa.candidate")[0],
            "{name}: candidate"
        );
        assert_eq!(
            i64::from(answer.prediction.start),
            ints("openqa.start_pos")[0],
            "{name}: start"
        );
        assert_eq!(
            i64::from(answer.prediction.end),
            ints("openqa.end_pos")[0],
            "{name}: end"
        );
        let predicted: Vec<i64> = answer.answer_ids.iter().map(|&t| i64::from(t)).collect();
        assert_eq!(
            predicted,
            ints("openqa.predicted_answer_ids"),
            "{name}: answer ids"
        );
        let correct: Vec<f32> = answer
            .has_answers
            .iter()
            .map(|&c| f32::from(u8::from(c)))
            .collect();
        assert_eq!(
            correct, io["openqa.retriever_correct"].data,
            "{name}: retriever_correct"
        );
        let loss = values(answer.losses.unwrap().loss);
        assert_close(
            &format!("{name}: loss"),
            &loss,
            &io["openqa.loss"].data,
            1e-4,
            0.0,
        );
    }
}
