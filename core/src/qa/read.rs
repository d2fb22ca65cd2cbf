//! Reading retrieved passages for an answer: each passage as `[CLS] question [SEP] window
//! [SEP]`, a long passage cut into overlapping windows at wordpiece boundaries, every span of up
//! to `max_span_width` wordpieces scored by the span reader, and the best span of every passage
//! returned with its character offsets in the passage's own text.

use burn::tensor::Device;

use crate::Error;
use crate::model::reader::SpanReader;
use crate::text::wordpiece::WordPieceTokenizer;
use crate::train::reader::{
    best_span, featurize, read_rows, reader_batch, span_text, truncate_question,
};

/// The best span found in one passage.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanAnswer {
    /// Position of the passage in the list read.
    pub passage: usize,
    /// Byte range of the answer in the passage's text.
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// The reader's span logit.
    pub reader_score: f32,
}

/// Byte ranges of windows of `passage` that fit `room` wordpieces each, overlapping by half.
pub fn windows(
    tokenizer: &WordPieceTokenizer,
    passage: &str,
    room: usize,
) -> Result<Vec<(usize, usize)>, Error> {
    let encoded = tokenizer.encode(passage, None)?;
    let pieces: Vec<(usize, usize)> = (0..encoded.ids.len())
        .filter(|&i| encoded.special_tokens_mask[i] == 0)
        .map(|i| encoded.offsets[i])
        .collect();
    let room = room.max(2);
    if pieces.len() <= room {
        return Ok(vec![(0, passage.len())]);
    }
    let stride = room / 2;
    let mut out = Vec::new();
    let mut first = 0;
    loop {
        let last = (first + room).min(pieces.len()) - 1;
        let start = if first == 0 { 0 } else { pieces[first].0 };
        let end = if last + 1 == pieces.len() {
            passage.len()
        } else {
            pieces[last].1
        };
        out.push((start, end));
        if last + 1 == pieces.len() {
            return Ok(out);
        }
        first += stride;
    }
}

/// The best span of each passage, best first. `max_length` counts the whole pair; passages
/// longer than the room the question leaves are read in windows.
pub fn read_passages(
    reader: &SpanReader,
    tokenizer: &WordPieceTokenizer,
    question: &str,
    passages: &[&str],
    max_length: usize,
    device: &Device,
) -> Result<Vec<SpanAnswer>, Error> {
    let question = truncate_question(tokenizer, question, max_length / 2)?;
    let question_len = tokenizer.encode(&question, None)?.ids.len(); // with [CLS] and [SEP]
    let room = max_length.saturating_sub(question_len + 1);
    // (passage, byte offset of the window, features)
    let mut rows = Vec::new();
    for (p, passage) in passages.iter().enumerate() {
        for (s, e) in windows(tokenizer, passage, room)? {
            let window = &passage[s..e];
            let f = featurize(
                tokenizer,
                &question,
                window,
                &[],
                max_length,
                reader.max_span_width,
            )?;
            rows.push((p, s, window, f.encoded));
        }
    }
    let mut best: Vec<Option<SpanAnswer>> = vec![None; passages.len()];
    for chunk in rows.chunks(8) {
        let encoded: Vec<&_> = chunk.iter().map(|r| &r.3).collect();
        let batch = reader_batch(&encoded, tokenizer.pad_id, reader.max_span_width);
        let output = read_rows(reader, &batch, device);
        let logits: Vec<f32> = output
            .logits
            .to_data()
            .try_to_vec::<f32>()
            .expect("f32 logits");
        for (r, (p, offset, window, enc)) in chunk.iter().enumerate() {
            let (start, end, score) = best_span(&output, &logits, r);
            if !score.is_finite() || score < -1e30 {
                continue;
            }
            let (s, e, text) = span_text(enc, window, start, end);
            if best[*p].as_ref().is_none_or(|b| score > b.reader_score) {
                best[*p] = Some(SpanAnswer {
                    passage: *p,
                    start: offset + s,
                    end: offset + e,
                    text: text.to_string(),
                    reader_score: score,
                });
            }
        }
    }
    let mut answers: Vec<SpanAnswer> = best.into_iter().flatten().collect();
    answers.sort_by(|a, b| b.reader_score.total_cmp(&a.reader_score));
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_a_long_passage_with_overlap_and_a_short_one_whole() {
        let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\nc\n";
        let t = WordPieceTokenizer::from_vocab(vocab).unwrap();
        assert_eq!(windows(&t, "a b c", 10).unwrap(), vec![(0, 5)]);
        let text = "a b c a b c a b c a";
        let w = windows(&t, text, 4).unwrap();
        assert_eq!(w.first().unwrap().0, 0);
        assert_eq!(w.last().unwrap().1, text.len());
        for pair in w.windows(2) {
            assert!(pair[1].0 < pair[0].1, "windows overlap: {w:?}");
        }
        for &(s, e) in &w {
            assert!(t.encode(&text[s..e], None).unwrap().ids.len() - 2 <= 4);
        }
    }
}
