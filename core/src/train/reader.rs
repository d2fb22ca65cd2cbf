//! The span reader's training examples and loss: a question and a passage become
//! `[CLS] question [SEP] passage [SEP]`, gold answers (byte ranges in the passage) become the
//! wordpiece spans that cover them, and the loss is REALM's marginal over gold spans,
//! -log sum_{z, s gold} p(s | x, z), over each question's passages (one row each), averaged
//! over the questions of the batch.

use burn::tensor::{Device, Tensor, TensorData};

use crate::Error;
use crate::model::reader::{ReaderOutput, SpanReader};
use crate::text::BertInput;
use crate::text::wordpiece::{Encoded, Truncation, WordPieceTokenizer};

/// One row of the reader: the tokenised pair and where its gold spans are.
#[derive(Debug, Clone)]
pub struct ReaderFeatures {
    pub encoded: Encoded,
    /// Inclusive wordpiece positions of each gold span inside the passage; empty when the
    /// answer was cut off, wider than the reader reads, or not given.
    pub gold: Vec<(u32, u32)>,
}

/// Tokenises `question` and `passage` into at most `max_length` wordpieces (the passage is
/// cut, the question kept up to `max_length / 2`), and maps each answer byte range of the
/// passage to the wordpieces covering it, keeping those of at most `max_span_width`.
pub fn featurize(
    tokenizer: &WordPieceTokenizer,
    question: &str,
    passage: &str,
    answers: &[(usize, usize)],
    max_length: usize,
    max_span_width: usize,
) -> Result<ReaderFeatures, Error> {
    let question = truncate_question(tokenizer, question, max_length / 2)?;
    let encoded = tokenizer.encode_pair(&question, passage, max_length, Truncation::OnlySecond)?;
    let passage_tokens: Vec<usize> = (0..encoded.ids.len())
        .filter(|&i| encoded.sequence_ids[i] == Some(1))
        .collect();
    let mut gold = Vec::new();
    for &(s, e) in answers {
        let start = passage_tokens
            .iter()
            .copied()
            .find(|&i| encoded.offsets[i].1 > s);
        let end = passage_tokens
            .iter()
            .rev()
            .copied()
            .find(|&i| encoded.offsets[i].0 < e);
        if let (Some(start), Some(end)) = (start, end) {
            let (first, last) = (encoded.offsets[start], encoded.offsets[end]);
            // Whole: nothing but whitespace of the answer lies outside the pieces (a span
            // cut by truncation is no gold span).
            let blank = |a: usize, b: usize| passage.get(a..b).is_some_and(|g| g.trim().is_empty());
            let whole = (first.0 <= s || blank(s, first.0)) && (last.1 >= e || blank(last.1, e));
            if whole && first.0 < e && start <= end && end - start < max_span_width {
                gold.push((start as u32, end as u32));
            }
        }
    }
    gold.sort_unstable();
    gold.dedup();
    Ok(ReaderFeatures { encoded, gold })
}

/// The question cut to `max_tokens` wordpieces (a question longer than the model reads is
/// truncated, never refused).
pub fn truncate_question(
    tokenizer: &WordPieceTokenizer,
    question: &str,
    max_tokens: usize,
) -> Result<String, Error> {
    let encoded = tokenizer.encode(question, None)?;
    let text: Vec<usize> = (0..encoded.ids.len())
        .filter(|&i| encoded.special_tokens_mask[i] == 0)
        .collect();
    if text.len() <= max_tokens {
        return Ok(question.to_string());
    }
    let end = encoded.offsets[text[max_tokens.max(1) - 1]].1;
    Ok(question[..end].to_string())
}

/// A batch of rows for [`SpanReader::forward`]: padded ids and the passage-token mask.
pub struct ReaderBatch {
    pub input: BertInput,
    /// `[rows * seq]`: 1 on the passage's own wordpieces.
    pub block_mask: Vec<u32>,
}

/// Pads `rows` into one batch of at least `min_seq` positions (the reader's widest span).
pub fn reader_batch(rows: &[&Encoded], pad_id: u32, min_seq: usize) -> ReaderBatch {
    let pairs: Vec<(&[u32], &[u32])> = rows.iter().map(|r| (&r.ids[..], &r.type_ids[..])).collect();
    let input = BertInput::padded_to(&pairs, pad_id, min_seq);
    let block_mask = rows
        .iter()
        .flat_map(|row| {
            row.sequence_ids
                .iter()
                .map(|s| u32::from(*s == Some(1)))
                .chain(std::iter::repeat_n(0, input.seq - row.ids.len()))
        })
        .collect();
    ReaderBatch { input, block_mask }
}

/// Runs the reader over independent rows (each its own question and passage, no retriever
/// score).
pub fn read_rows(reader: &SpanReader, batch: &ReaderBatch, device: &Device) -> ReaderOutput {
    let rows = batch.input.batch;
    let zero = Tensor::<1>::zeros([rows], device);
    reader.forward(&batch.input, &batch.block_mask, zero, device)
}

/// A logit no span gets: added to the logits outside the gold set.
const EXCLUDED: f32 = -1e30;

/// Mean over questions of -log sum_{z, s gold} p(s | z, x): each question's `group`
/// consecutive rows (its passages) share one softmax over all their spans, as REALM's reader
/// marginalises over the spans of its top-k blocks, so span scores compare across passages.
/// `group = 1` is one passage per question. Questions without a gold span in any of their rows
/// are left out of the mean (a batch without any is a programmer error).
///
/// # Shapes
/// - `output.logits`: `[rows, spans]`; `gold`: one list per row -> `[1]`
pub fn span_loss(output: &ReaderOutput, gold: &[Vec<(u32, u32)>], group: usize) -> Tensor<1> {
    let [rows, spans] = output.logits.dims();
    assert_eq!(gold.len(), rows, "one gold list per row");
    assert!(
        group > 0 && rows % group == 0,
        "{rows} rows do not split into questions of {group}"
    );
    let questions = rows / group;
    let device = output.logits.device();
    let mut penalty = vec![EXCLUDED; rows * spans];
    let mut weight = vec![0.0f32; questions];
    for (r, spans_r) in gold.iter().enumerate() {
        for s in 0..spans {
            if spans_r.contains(&(output.starts[s], output.ends[s])) {
                penalty[r * spans + s] = 0.0;
                weight[r / group] = 1.0;
            }
        }
    }
    let used: f32 = weight.iter().sum();
    assert!(
        used > 0.0,
        "a reader batch needs at least one question with a gold span"
    );
    let width = group * spans;
    let penalty = Tensor::<2>::from_data(TensorData::new(penalty, [questions, width]), &device);
    let weight = Tensor::<1>::from_data(TensorData::new(weight, [questions]), &device);
    let logits = output.logits.clone().reshape([questions, width]);
    let all = logsumexp_rows(logits.clone()); // [questions]
    let correct = logsumexp_rows(logits + penalty); // [questions]
    ((all - correct) * weight).sum().div_scalar(used)
}

/// log sum exp over the last axis, stably: `[rows, n]` -> `[rows]`.
pub fn logsumexp_rows(x: Tensor<2>) -> Tensor<1> {
    let [rows, _] = x.dims();
    let max = x.clone().max_dim(1).detach(); // [rows, 1]
    ((x - max.clone()).exp().sum_dim(1).log() + max).reshape([rows])
}

/// The `n` best spans of one row: `(start, end, logit)`, highest logit first.
pub fn best_spans(
    output: &ReaderOutput,
    logits: &[f32],
    row: usize,
    n: usize,
) -> Vec<(u32, u32, f32)> {
    let spans = output.starts.len();
    let row_logits = &logits[row * spans..(row + 1) * spans];
    let n = n.min(spans);
    if n == 0 {
        return Vec::new();
    }
    let higher = |a: &usize, b: &usize| row_logits[*b].total_cmp(&row_logits[*a]);
    let mut order: Vec<usize> = (0..spans).collect();
    order.select_nth_unstable_by(n - 1, higher);
    order.truncate(n);
    order.sort_by(higher);
    order
        .into_iter()
        .map(|i| (output.starts[i], output.ends[i], row_logits[i]))
        .collect()
}

/// The passage text a wordpiece span covers (byte offsets of its first and last pieces).
pub fn span_text<'a>(
    encoded: &Encoded,
    passage: &'a str,
    start: u32,
    end: u32,
) -> (usize, usize, &'a str) {
    let (s, e) = (
        encoded.offsets[start as usize].0,
        encoded.offsets[end as usize].1,
    );
    let e = e.max(s).min(passage.len());
    (s, e, &passage[s..e])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> WordPieceTokenizer {
        let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nwho\npainted\nthe\nmona\nlisa\n?\nleonardo\nda\nvinci\n.\nit\nwas\nby\n##s\npaint\n";
        WordPieceTokenizer::from_vocab(vocab).unwrap()
    }

    #[test]
    fn answers_map_to_the_wordpieces_that_cover_them() {
        let t = tokenizer();
        let passage = "It was painted by Leonardo da Vinci.";
        let s = passage.find("Leonardo").unwrap();
        let e = s + "Leonardo da Vinci".len();
        let f = featurize(&t, "Who painted the Mona Lisa?", passage, &[(s, e)], 64, 10).unwrap();
        assert_eq!(f.gold.len(), 1);
        let (gs, ge) = f.gold[0];
        assert_eq!(
            span_text(&f.encoded, passage, gs, ge).2,
            "Leonardo da Vinci"
        );
        // Too wide for the reader, or cut off by truncation: no gold span.
        let narrow = featurize(&t, "Who?", passage, &[(s, e)], 64, 2).unwrap();
        assert!(narrow.gold.is_empty());
        let cut = featurize(&t, "Who?", passage, &[(s, e)], 8, 10).unwrap();
        assert!(cut.gold.is_empty());
    }

    #[test]
    fn a_long_question_is_truncated_not_refused() {
        let t = tokenizer();
        let long = "who painted the mona lisa ".repeat(2000);
        let f = featurize(&t, &long, "It was Leonardo.", &[], 32, 10).unwrap();
        assert!(f.encoded.ids.len() <= 32);
        assert!(
            f.encoded.sequence_ids.contains(&Some(1)),
            "the passage still has room"
        );
    }

    #[test]
    fn the_span_loss_is_the_marginal_over_gold_spans_per_row() {
        let device = crate::device::cpu_device();
        // Two rows, three spans each.
        let logits = vec![1.0f32, 2.0, 3.0, 0.5, 0.0, -1.0];
        let output = ReaderOutput {
            logits: Tensor::<2>::from_data(TensorData::new(logits.clone(), [2, 3]), &device),
            starts: vec![0, 1, 2],
            ends: vec![0, 1, 2],
        };
        let gold = vec![vec![(1, 1), (2, 2)], vec![(0, 0)]];
        let loss: f32 = span_loss(&output, &gold, 1).into_scalar::<f32>();
        let lse = |v: &[f32]| v.iter().map(|x| x.exp()).sum::<f32>().ln();
        let row0 = lse(&logits[0..3]) - lse(&logits[1..3]);
        let row1 = lse(&logits[3..6]) - logits[3];
        assert!(
            (loss - (row0 + row1) / 2.0).abs() < 1e-5,
            "{loss} vs {}",
            (row0 + row1) / 2.0
        );
        // A row without gold is left out of the mean.
        let only = span_loss(&output, &[vec![], vec![(0, 0)]], 1).into_scalar::<f32>();
        assert!((only - row1).abs() < 1e-5);
        // Both rows one question's passages: one softmax over all six spans.
        let shared = span_loss(&output, &gold, 2).into_scalar::<f32>();
        let expected = lse(&logits) - lse(&[logits[1], logits[2], logits[3]]);
        assert!((shared - expected).abs() < 1e-5, "{shared} vs {expected}");
        // Gold only in the second passage still counts the question.
        let second = span_loss(&output, &[vec![], vec![(0, 0)]], 2).into_scalar::<f32>();
        assert!((second - (lse(&logits) - logits[3])).abs() < 1e-5);
    }
}
