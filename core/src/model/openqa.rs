//! Retrieve-then-read open-domain QA (Hugging Face's `RealmForOpenQA` with its
//! `RealmRetriever`): embed the question, take the top `reader_beam_size` blocks by
//! f(x, z) over precomputed block embeddings, read `[CLS] question [SEP] block [SEP]` with the
//! span reader, and return the best span's wordpieces.

use burn::tensor::{Device, Tensor, TensorData};

use crate::Error;
use crate::index::reference::{Hit, top_k_reference};
use crate::model::embedder::RealmEmbedder;
use crate::model::reader::{Prediction, ReaderLosses, ReaderTargets, SpanReader, reader_losses};
use crate::text::wordpiece::{Encoded, Truncation, WordPieceTokenizer, pad_encoded};

/// The question-answering system: retriever, reader and the evidence blocks.
pub struct OpenQa {
    pub embedder: RealmEmbedder,
    pub reader: SpanReader,
    pub tokenizer: WordPieceTokenizer,
    /// `[blocks, dim]` row-major: Embed_doc of every evidence block.
    pub block_emb: Vec<f32>,
    pub blocks: Vec<String>,
    pub reader_beam_size: usize,
    pub reader_seq_len: usize,
}

/// One answered question.
pub struct OpenQaAnswer {
    /// `[dim]`: Embed_input(question).
    pub question_projection: Vec<f32>,
    /// The retrieved blocks, best first.
    pub retrieved: Vec<Hit>,
    pub prediction: Prediction,
    /// The predicted span's wordpiece ids.
    pub answer_ids: Vec<u32>,
    /// The losses, when gold answers were given.
    pub losses: Option<ReaderLosses>,
    /// `[retrieved]`: whether each retrieved block holds a gold answer.
    pub has_answers: Vec<bool>,
}

impl OpenQa {
    /// Answers one question. `gold` holds answers as wordpiece ids (without special tokens);
    /// with them the retriever and reader losses are computed as in fine-tuning.
    pub fn answer(
        &self,
        question: &str,
        gold: Option<&[Vec<u32>]>,
        device: &Device,
    ) -> Result<OpenQaAnswer, Error> {
        let dim = self.embedder.dim();
        let question_input = self
            .tokenizer
            .encode_batch(&[question], self.reader_seq_len)?;
        let question_projection: Vec<f32> = self
            .embedder
            .embed(&question_input, device)
            .into_data()
            .try_into_vec()
            .expect("f32 embedding");
        let k = self.reader_beam_size.min(self.blocks.len());
        let retrieved = top_k_reference(&question_projection, &self.block_emb, dim, k)?.remove(0);

        // [CLS] question [SEP] block [SEP], both texts truncated longest-first, padded.
        let rows: Vec<Encoded> = retrieved
            .iter()
            .map(|hit| {
                self.tokenizer.encode_pair(
                    question,
                    &self.blocks[hit.id as usize],
                    self.reader_seq_len,
                    Truncation::LongestFirst,
                )
            })
            .collect::<Result<_, _>>()?;
        let input = pad_encoded(&rows, self.tokenizer.pad_id);
        let block_mask: Vec<u32> = rows
            .iter()
            .flat_map(|row| {
                let inside = row
                    .special_tokens_mask
                    .iter()
                    .zip(&row.type_ids)
                    .map(|(&s, &t)| u32::from(s == 0 && t == 1));
                inside.chain(std::iter::repeat_n(0, input.seq - row.ids.len()))
            })
            .collect();
        let scores: Vec<f32> = retrieved.iter().map(|h| h.score).collect();
        let relevance = Tensor::<1>::from_data(TensorData::new(scores, [k]), device);
        let output = self
            .reader
            .forward(&input, &block_mask, relevance.clone(), device);
        let prediction = output.predict();
        let block = &rows[prediction.block].ids;
        let end = (prediction.end as usize + 1).min(block.len());
        let answer_ids = block[(prediction.start as usize).min(end)..end].to_vec();

        let (losses, has_answers) = match gold {
            Some(gold) => {
                let targets = find_answers(&rows, gold, self.tokenizer.sep_id);
                let has = targets.has_answers.clone();
                (Some(reader_losses(&output, relevance, &targets)), has)
            }
            None => (None, Vec::new()),
        };
        Ok(OpenQaAnswer {
            question_projection,
            retrieved,
            prediction,
            answer_ids,
            losses,
            has_answers,
        })
    }
}

/// Where each gold answer's wordpieces occur inside each block (between the first and the
/// second `[SEP]`), as `RealmRetriever.block_has_answer` finds them; -1 pads blocks with
/// fewer occurrences.
pub fn find_answers(rows: &[Encoded], gold: &[Vec<u32>], sep_id: u32) -> ReaderTargets {
    let mut starts = Vec::with_capacity(rows.len());
    let mut ends = Vec::with_capacity(rows.len());
    for row in rows {
        let ids = &row.ids;
        let first = ids.iter().position(|&t| t == sep_id).unwrap_or(ids.len());
        let second = ids
            .iter()
            .skip(first + 1)
            .position(|&t| t == sep_id)
            .map_or(ids.len(), |p| first + 1 + p);
        let (mut s, mut e) = (Vec::new(), Vec::new());
        for answer in gold.iter().filter(|a| !a.is_empty()) {
            for at in first + 1..second {
                if ids[at..].starts_with(answer) {
                    s.push(at as i64);
                    e.push((at + answer.len() - 1) as i64);
                }
            }
        }
        starts.push(s);
        ends.push(e);
    }
    let has_answers = starts.iter().map(|s: &Vec<i64>| !s.is_empty()).collect();
    let most = starts.iter().map(Vec::len).max().unwrap_or(0).max(1);
    for list in starts.iter_mut().chain(ends.iter_mut()) {
        list.resize(most, -1);
    }
    ReaderTargets {
        starts,
        ends,
        has_answers,
    }
}
