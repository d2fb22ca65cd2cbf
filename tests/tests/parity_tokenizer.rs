//! The WordPiece tokenizer against transformers' `RealmTokenizer` (== `BertTokenizer`) on the
//! 58 cases of `../shared/data/realm-parity-tiny/tokenizer_cases.json`: exact tokens and ids,
//! built from `vocab.txt` (as for Google's REALM checkpoints) and from `tokenizer.json`.

use realm_core::text::wordpiece::{Truncation, WordPieceTokenizer};
use realm_tests::shared_data;
use serde_json::Value;

fn cases_and_tokenizers() -> Option<(Value, Vec<(&'static str, WordPieceTokenizer)>)> {
    let cases_dir = shared_data("realm-parity-tiny")?;
    let minilm = shared_data("all-minilm-l6-v2")?;
    let cases: Value =
        serde_json::from_slice(&std::fs::read(cases_dir.join("tokenizer_cases.json")).unwrap())
            .unwrap();
    let vocab = std::fs::read_to_string(minilm.join("vocab.txt")).unwrap();
    let json = std::fs::read(minilm.join("tokenizer.json")).unwrap();
    let tokenizers = vec![
        ("vocab.txt", WordPieceTokenizer::from_vocab(&vocab).unwrap()),
        (
            "tokenizer.json",
            WordPieceTokenizer::from_tokenizer_json(&json).unwrap(),
        ),
    ];
    Some((cases, tokenizers))
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn single_texts_match_transformers() {
    let Some((cases, tokenizers)) = cases_and_tokenizers() else {
        return;
    };
    let singles = cases["single"].as_array().unwrap();
    assert_eq!(singles.len(), 54);
    for (source, tokenizer) in &tokenizers {
        for case in singles {
            let text = case["text"].as_str().unwrap();
            let expected_tokens: Vec<&str> = case["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            assert_eq!(
                tokenizer.tokens(text).unwrap(),
                expected_tokens,
                "{source}: tokens of {text:?}"
            );
            let encoded = tokenizer.encode(text, None).unwrap();
            assert_eq!(
                encoded.ids,
                u32s(&case["input_ids"]),
                "{source}: ids of {text:?}"
            );
        }
    }
}

#[test]
fn question_passage_pairs_match_transformers() {
    let Some((cases, tokenizers)) = cases_and_tokenizers() else {
        return;
    };
    let pairs = cases["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 4);
    for (source, tokenizer) in &tokenizers {
        for case in pairs {
            assert_eq!(case["truncation"], "longest_first");
            let (a, b) = (
                case["text"].as_str().unwrap(),
                case["text_pair"].as_str().unwrap(),
            );
            let max_length = case["max_length"].as_u64().unwrap() as usize;
            let encoded = tokenizer
                .encode_pair(a, b, max_length, Truncation::LongestFirst)
                .unwrap();
            assert_eq!(
                encoded.ids,
                u32s(&case["input_ids"]),
                "{source}: ids of pair {a:?} (max {max_length})"
            );
            assert_eq!(
                encoded.type_ids,
                u32s(&case["token_type_ids"]),
                "{source}: segments of {a:?}"
            );
            assert_eq!(
                encoded.special_tokens_mask,
                u32s(&case["special_tokens_mask"]),
                "{source}: specials of {a:?}"
            );
        }
    }
}

#[test]
fn only_second_truncation_keeps_the_question_whole_and_offsets_point_into_the_text() {
    let Some((_, tokenizers)) = cases_and_tokenizers() else {
        return;
    };
    let (_, tokenizer) = &tokenizers[0];
    let question = "who wrote the first computer algorithm";
    let passage = "Ada Lovelace wrote the first algorithm intended to be carried out by a machine.";
    let encoded = tokenizer
        .encode_pair(question, passage, 12, Truncation::OnlySecond)
        .unwrap();
    assert_eq!(encoded.ids.len(), 12);
    let question_tokens = encoded
        .sequence_ids
        .iter()
        .filter(|s| **s == Some(0))
        .count();
    assert_eq!(question_tokens, 6, "every question token is kept");
    // Offsets are byte ranges into the passage for passage tokens.
    let first_passage = encoded
        .sequence_ids
        .iter()
        .position(|s| *s == Some(1))
        .unwrap();
    let (start, end) = encoded.offsets[first_passage];
    assert_eq!(&passage[start..end], "Ada");
    assert!(
        tokenizer
            .encode_pair(&"word ".repeat(20), "x", 12, Truncation::OnlySecond)
            .is_err()
    );
}
