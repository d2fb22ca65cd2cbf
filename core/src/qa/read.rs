//! Reading retrieved passages for an answer: each passage as `[CLS] question [SEP] window
//! [SEP]`, a long passage cut into overlapping windows at wordpiece boundaries, every span of up
//! to `max_span_width` wordpieces scored by the span reader, and the best few spans of every
//! passage returned with their character offsets in the passage's own text.

use burn::tensor::Device;

use crate::Error;
use crate::model::reader::ReaderOutput;
use crate::model::reader::SpanReader;
use crate::qa::answer::normalize_answer;
use crate::text::wordpiece::Encoded;
use crate::text::wordpiece::WordPieceTokenizer;
use crate::train::reader::{
    ReaderBatch, best_spans, featurize, read_rows, reader_batch, span_text, truncate_question,
};

/// A span found in one passage.
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

/// Spans kept per passage: the best, and the runners-up that answer selection may weigh
/// (the same answer found in several passages adds up).
pub const SPANS_PER_PASSAGE: usize = 4;

/// One question's reading: every window of every passage featurised as `[CLS] question [SEP]
/// window [SEP]`, read in batches, and the best spans of each passage kept. The forward passes
/// are the caller's ([`read_passages`] reads their logits synchronously, `read_passages_async`
/// awaits them, as WebGPU needs), so both read the same rows and keep the same spans.
pub struct Reading<'a> {
    /// (passage, byte offset of the window, window, features)
    rows: Vec<(usize, usize, &'a str, Encoded)>,
    /// Each passage's best spans, best first, at most [`SPANS_PER_PASSAGE`], no byte range twice
    /// (overlapping windows read some spans twice).
    best: Vec<Vec<SpanAnswer>>,
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
            best: vec![Vec::new(); passages.len()],
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

    /// Keeps each passage's best spans from batch `b`'s output and its logits read back.
    pub fn take(&mut self, b: usize, output: &ReaderOutput, logits: &[f32]) {
        let first = b * READ_BATCH;
        for r in 0..self.chunk(b).len() {
            let (p, offset, window, enc) = &self.rows[first + r];
            for (start, end, score) in best_spans(output, logits, r, SPANS_PER_PASSAGE) {
                if !score.is_finite() || score < -1e30 {
                    continue;
                }
                let (s, e, text) = span_text(enc, window, start, end);
                let kept = &mut self.best[*p];
                let (start, end) = (offset + s, offset + e);
                if let Some(same) = kept.iter_mut().find(|k| (k.start, k.end) == (start, end)) {
                    same.reader_score = same.reader_score.max(score);
                } else {
                    kept.push(SpanAnswer {
                        passage: *p,
                        start,
                        end,
                        text: text.to_string(),
                        reader_score: score,
                    });
                }
                kept.sort_by(|a, b| b.reader_score.total_cmp(&a.reader_score));
                kept.truncate(SPANS_PER_PASSAGE);
            }
        }
    }

    /// The spans kept, best first: each passage's best before any passage's runner-up, so the
    /// first span of a passage in the list is its best.
    pub fn answers(self) -> Vec<SpanAnswer> {
        let mut answers: Vec<SpanAnswer> = self.best.into_iter().flatten().collect();
        answers.sort_by(|a, b| b.reader_score.total_cmp(&a.reader_score));
        answers
    }
}

/// The best spans of each passage, best first (see [`Reading::answers`]). `max_length` counts
/// the whole pair; passages longer than the room the question leaves are read in windows.
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

/// How open QA weighs what it read: REALM's marginal p(y|x) = sum over passages z of
/// p(y|z,x) p(z|x), taken over the spans kept. Every span s of passage z scores
/// `reader(z, s) + retriever_weight * retriever(z)` (the reader's logits are comparable across
/// passages: it was trained with one softmax over the spans of all the passages it read), the
/// spans with the same normalised text add up (log-sum-exp), and the best text wins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnswerRule {
    /// Weight of the retriever's score (log p(z|x) up to a constant, at this temperature).
    pub retriever_weight: f32,
}

/// The chosen answer: which span stands for it and its total log-score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    /// Index in the spans given: the best-scoring span with the winning text.
    pub span: usize,
    /// log sum of exp(score) over the spans with the winning text.
    pub score: f32,
}

impl AnswerRule {
    /// The best answer among `spans` (as [`read_passages`] returns them), `retriever[p]` being
    /// passage p's retriever score; `None` when there are no spans.
    pub fn choose(&self, spans: &[SpanAnswer], retriever: &[f32]) -> Option<Choice> {
        // (normalised text, total, best span, its score), in first-seen order.
        let mut answers: Vec<(String, f32, usize, f32)> = Vec::new();
        for (i, s) in spans.iter().enumerate() {
            let score = s.reader_score + self.retriever_weight * retriever[s.passage];
            let key = normalize_answer(&s.text);
            match answers.iter_mut().find(|a| a.0 == key) {
                Some(a) => {
                    a.1 = log_add_exp(a.1, score);
                    if score > a.3 {
                        (a.2, a.3) = (i, score);
                    }
                }
                None => answers.push((key, score, i, score)),
            }
        }
        answers.into_iter().fold(
            None,
            |best: Option<Choice>, (_, total, span, _)| match best {
                Some(b) if b.score >= total => Some(b),
                _ => Some(Choice { span, score: total }),
            },
        )
    }
}

fn log_add_exp(a: f32, b: f32) -> f32 {
    let m = a.max(b);
    m + (-(a - b).abs()).exp().ln_1p()
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

    fn span(passage: usize, text: &str, reader_score: f32) -> SpanAnswer {
        SpanAnswer {
            passage,
            start: 0,
            end: text.len(),
            text: text.into(),
            reader_score,
        }
    }

    #[test]
    fn the_same_answer_in_several_passages_adds_up() {
        let spans = [
            span(0, "Paris", 2.0),
            span(1, "the Louvre", 1.5),
            span(2, "Louvre", 1.4),
        ];
        let rule = AnswerRule {
            retriever_weight: 0.0,
        };
        let choice = rule.choose(&spans, &[0.0; 3]).unwrap();
        // "the Louvre" and "Louvre" normalise alike: log(e^1.5 + e^1.4) = 2.14 > 2.0.
        assert_eq!(choice.span, 1);
        assert!((choice.score - (1.5f32.exp() + 1.4f32.exp()).ln()).abs() < 1e-5);
        assert_eq!(rule.choose(&[], &[]), None);
    }

    #[test]
    fn the_retriever_weight_can_outvote_the_reader() {
        let spans = [span(0, "Paris", 2.0), span(1, "Lyon", 1.0)];
        let retriever = [0.1, 0.9];
        let pick = |w| {
            AnswerRule {
                retriever_weight: w,
            }
            .choose(&spans, &retriever)
            .unwrap()
            .span
        };
        assert_eq!(pick(0.0), 0);
        assert_eq!(pick(1.0), 0); // 2.1 against 1.9
        assert_eq!(pick(2.0), 1); // 2.2 against 2.8
    }
}
