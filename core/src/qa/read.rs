//! Reading retrieved passages for an answer: each passage as `[CLS] question [SEP] window
//! [SEP]`, a long passage cut into overlapping windows at wordpiece boundaries, every span of up
//! to `max_span_width` wordpieces scored by the span reader, and the best span of every passage
//! returned with its character offsets in the passage's own text.

use burn::tensor::Device;

use crate::Error;
use crate::model::reader::ReaderOutput;
use crate::model::reader::SpanReader;
use crate::text::wordpiece::Encoded;
use crate::text::wordpiece::WordPieceTokenizer;
use crate::train::reader::{
    ReaderBatch, best_span, featurize, read_rows, reader_batch, span_text, truncate_question,
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

/// Rows the reader reads at once.
const READ_BATCH: usize = 8;

/// One question's reading: every window of every passage featurised as `[CLS] question [SEP]
/// window [SEP]`, read in batches, and the best span of each passage kept. The forward passes
/// are the caller's ([`read_passages`] reads their logits synchronously, `read_passages_async`
/// awaits them, as WebGPU needs), so both read the same rows and keep the same spans.
pub struct Reading<'a> {
    /// (passage, byte offset of the window, window, features)
    rows: Vec<(usize, usize, &'a str, Encoded)>,
    best: Vec<Option<SpanAnswer>>,
    pad_id: u32,
    max_span_width: usize,
}

impl<'a> Reading<'a> {
    /// Windows of `passages` that fit `max_length` beside the question (passages longer than
    /// the room the question leaves are read in overlapping windows).
    pub fn new(
        reader: &SpanReader,
        tokenizer: &WordPieceTokenizer,
        question: &str,
        passages: &[&'a str],
        max_length: usize,
    ) -> Result<Self, Error> {
        let question = truncate_question(tokenizer, question, max_length / 2)?;
        let question_len = tokenizer.encode(&question, None)?.ids.len(); // with [CLS] and [SEP]
        let room = max_length.saturating_sub(question_len + 1);
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
        Ok(Self {
            rows,
            best: vec![None; passages.len()],
            pad_id: tokenizer.pad_id,
            max_span_width: reader.max_span_width,
        })
    }

    /// Batches to read.
    pub fn batches(&self) -> usize {
        self.rows.len().div_ceil(READ_BATCH)
    }

    /// Batch `b`'s input to the reader.
    pub fn batch(&self, b: usize) -> ReaderBatch {
        let encoded: Vec<&Encoded> = self.chunk(b).iter().map(|r| &r.3).collect();
        reader_batch(&encoded, self.pad_id, self.max_span_width)
    }

    fn chunk(&self, b: usize) -> &[(usize, usize, &'a str, Encoded)] {
        let first = b * READ_BATCH;
        &self.rows[first..(first + READ_BATCH).min(self.rows.len())]
    }

    /// Keeps each passage's best span from batch `b`'s output and its logits read back.
    pub fn take(&mut self, b: usize, output: &ReaderOutput, logits: &[f32]) {
        let first = b * READ_BATCH;
        for r in 0..self.chunk(b).len() {
            let (p, offset, window, enc) = &self.rows[first + r];
            let (start, end, score) = best_span(output, logits, r);
            if !score.is_finite() || score < -1e30 {
                continue;
            }
            let (s, e, text) = span_text(enc, window, start, end);
            if self.best[*p]
                .as_ref()
                .is_none_or(|b| score > b.reader_score)
            {
                self.best[*p] = Some(SpanAnswer {
                    passage: *p,
                    start: offset + s,
                    end: offset + e,
                    text: text.to_string(),
                    reader_score: score,
                });
            }
        }
    }

    /// The best span of each passage that has one, best first.
    pub fn answers(self) -> Vec<SpanAnswer> {
        let mut answers: Vec<SpanAnswer> = self.best.into_iter().flatten().collect();
        answers.sort_by(|a, b| b.reader_score.total_cmp(&a.reader_score));
        answers
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
    let mut reading = Reading::new(reader, tokenizer, question, passages, max_length)?;
    for b in 0..reading.batches() {
        let output = read_rows(reader, &reading.batch(b), device);
        let logits = output
            .logits
            .to_data()
            .try_to_vec::<f32>()
            .expect("f32 logits");
        reading.take(b, &output, &logits);
    }
    Ok(reading.answers())
}

/// [`read_passages`] with the logits awaited: for backends that cannot read back
/// synchronously (WebGPU in a browser).
pub async fn read_passages_async(
    reader: &SpanReader,
    tokenizer: &WordPieceTokenizer,
    question: &str,
    passages: &[&str],
    max_length: usize,
    device: &Device,
) -> Result<Vec<SpanAnswer>, Error> {
    let mut reading = Reading::new(reader, tokenizer, question, passages, max_length)?;
    for b in 0..reading.batches() {
        let output = read_rows(reader, &reading.batch(b), device);
        let logits = output
            .logits
            .to_data_async()
            .await
            .map_err(|e| Error::Backend(format!("reading the reader's logits back: {e:?}")))?
            .try_to_vec::<f32>()
            .expect("f32 logits");
        reading.take(b, &output, &logits);
    }
    Ok(reading.answers())
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
