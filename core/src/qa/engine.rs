//! Open-domain question answering end to end, the engine every front end runs (`realm ask`,
//! `realm serve`, the browser): the question embedded by `Embed_input`, the top-k passages by
//! inner product from the index, each read by the span reader (long ones in windows), and the
//! best span of all of them the answer, with its passage, byte offsets, evidence sentence,
//! both models' scores and the time each part took.

use burn::tensor::Device;
use serde::Serialize;
use web_time::Instant;

use crate::Error;
use crate::index::MipsIndex;
use crate::index::reference::Hit;
use crate::index::shard::Shard;
use crate::model::embedder::RealmEmbedder;
use crate::model::reader::SpanReader;
use crate::qa::read::{AnswerRule, SpanAnswer, read_passages, read_passages_async};
use crate::text::corpus::{Passage, fingerprint};
use crate::text::wordpiece::WordPieceTokenizer;
use crate::train::reader::truncate_question;

/// Wordpieces of a question the embedder reads (as the index's passages were embedded).
pub const QUESTION_MAX_LENGTH: usize = 128;

/// A retrieved corpus: the passages, their index, and each index row's passage.
pub struct IndexedCorpus {
    pub passages: Vec<Passage>,
    pub index: Box<dyn MipsIndex + Send + Sync>,
    pub ids: Vec<u32>,
}

impl IndexedCorpus {
    /// The passages searched through `shard`, which must index them ([`check_corpus`]).
    pub fn from_shard(passages: Vec<Passage>, shard: Shard) -> Result<Self, Error> {
        check_corpus(&shard.ids, shard.corpus, &passages)?;
        let (index, ids) = shard.into_index()?;
        Ok(Self {
            passages,
            index,
            ids,
        })
    }
}

/// An index's rows (`ids`) must name passages of `passages`, and the corpus fingerprint it
/// recorded (`recorded`) must be theirs: otherwise it was built from another corpus, and its
/// rows would name the wrong passages. An index without a fingerprint (shard format version
/// 1) is checked by its ids alone.
pub fn check_corpus(ids: &[u32], recorded: Option<u32>, passages: &[Passage]) -> Result<(), Error> {
    if passages.is_empty() {
        return Err(Error::EmptyCorpus);
    }
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= passages.len()) {
        return Err(Error::Model(format!(
            "the index names passage {id}, past the corpus's {} passages: it was built from \
             another corpus",
            passages.len()
        )));
    }
    // Two rows of one passage would list it twice among the retrieved.
    let mut seen = vec![false; passages.len()];
    for &id in ids {
        if std::mem::replace(&mut seen[id as usize], true) {
            return Err(Error::Model(format!(
                "the index names passage {id} twice: rebuild it with `realm index`"
            )));
        }
    }
    check_fingerprint(recorded, fingerprint(passages))
}

/// [`check_corpus`] given the corpus's fingerprint, `found`.
pub fn check_fingerprint(recorded: Option<u32>, found: u32) -> Result<(), Error> {
    match recorded {
        Some(recorded) if recorded != found => Err(Error::Model(format!(
            "the index was built from another corpus (its corpus fingerprint is {recorded:08x}, \
             this corpus's {found:08x})"
        ))),
        _ => Ok(()),
    }
}

/// An index whose vectors are not as wide as the question embeddings (`embeds`) is an error:
/// searched anyway, each question would read as several short ones.
pub fn check_index_width(index: &dyn MipsIndex, embeds: usize) -> Result<(), Error> {
    if index.dim() != embeds {
        return Err(Error::Model(format!(
            "its vectors have {} dimensions, the model embeds in {embeds}: build the index with \
             this model (`realm index --model ...`)",
            index.dim()
        )));
    }
    Ok(())
}

/// The most passages one question reads (REALM reads 5; `realm serve --max-top-k` and the npm
/// package's `topK` stay within it).
pub const MAX_TOP_K: usize = 100;

/// Everything answering needs in memory.
pub struct QaEngine {
    /// `Embed_input`, and the device it runs on.
    pub embedder: RealmEmbedder,
    pub embed_device: Device,
    pub reader: SpanReader,
    pub reader_device: Device,
    pub tokenizer: WordPieceTokenizer,
    pub corpus: IndexedCorpus,
    /// Wordpieces of `[CLS] question [SEP] passage [SEP]` the reader reads.
    pub max_length: usize,
    /// How the answer is picked from the spans of all the passages read (the reader card's).
    pub answer_rule: AnswerRule,
}

/// One question's answer and how it was found.
#[derive(Debug, Clone, Serialize)]
pub struct AskReport {
    pub question: String,
    /// Whether the question was cut to the reader's length (half of `max_length`).
    pub truncated: bool,
    /// The answer over all retrieved passages (REALM's marginal, [`AnswerRule`]); none if no
    /// passage holds a readable span.
    pub answer: Option<Found>,
    /// The retrieved passages, best retriever score first.
    pub passages: Vec<Retrieved>,
    pub seconds: Timings,
}

#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub text: String,
    pub passage_id: u32,
    pub title: String,
    /// Byte offsets of the answer in the passage's text.
    pub start: usize,
    pub end: usize,
    /// The sentence holding the answer, the answer between [[ and ]].
    pub evidence: String,
    /// The reader's logit of this span, and its passage's retriever score.
    pub reader_score: f32,
    pub retriever_score: f32,
    /// The answer's log-score: over every span read with the same normalised text, log sum
    /// exp(reader + weight * retriever).
    pub score: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Retrieved {
    pub id: u32,
    pub title: String,
    pub retriever_score: f32,
    /// The reader's best span in this passage and its score.
    pub best_span: Option<String>,
    pub reader_score: Option<f32>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub embed: f64,
    pub search: f64,
    pub read: f64,
    pub total: f64,
}

impl QaEngine {
    /// The question's embedding `Embed_input(x)`, `[dim]`.
    pub fn embed_question(&self, question: &str) -> Result<Vec<f32>, Error> {
        Ok(self
            .question_tensor(question)?
            .into_data()
            .try_into_vec::<f32>()
            .expect("f32 embeddings"))
    }

    /// [`QaEngine::embed_question`] with the embedding awaited (WebGPU in a browser).
    pub async fn embed_question_async(&self, question: &str) -> Result<Vec<f32>, Error> {
        Ok(self
            .question_tensor(question)?
            .into_data_async()
            .await
            .map_err(|e| Error::Backend(format!("reading the question's embedding back: {e:?}")))?
            .try_into_vec::<f32>()
            .expect("f32 embeddings"))
    }

    fn question_tensor(&self, question: &str) -> Result<burn::tensor::Tensor<2>, Error> {
        let input = self
            .tokenizer
            .encode_batch(&[question], QUESTION_MAX_LENGTH)?;
        Ok(self.embedder.embed(&input, &self.embed_device))
    }

    /// The question cut to the reader's half of `max_length`, after checking the arguments.
    fn cut(&self, question: &str, k: usize) -> Result<String, Error> {
        if question.trim().is_empty() {
            return Err(Error::EmptyQuestion);
        }
        if k == 0 {
            return Err(Error::ZeroK);
        }
        // Each passage is read whole (every window tokenized first): a k of the whole corpus
        // would hold the engine for minutes and could exhaust a browser's memory.
        if k > MAX_TOP_K {
            return Err(Error::TooManyPassages { k, max: MAX_TOP_K });
        }
        // Control characters, zero-width spaces, lone combining marks: text the tokenizer
        // drops whole, which would leave the reader a question of nothing.
        if self.tokenizer.tokens(question)?.is_empty() {
            return Err(Error::QuestionWithoutWords);
        }
        truncate_question(&self.tokenizer, question, self.max_length / 2)
    }

    fn texts<'a>(&'a self, hits: &[Hit]) -> Vec<&'a str> {
        hits.iter().map(|h| self.passage(h).text.as_str()).collect()
    }

    fn passage(&self, hit: &Hit) -> &Passage {
        &self.corpus.passages[self.corpus.ids[hit.id as usize] as usize]
    }

    /// Answers `question` from the top `k` passages.
    pub fn ask(&self, question: &str, k: usize) -> Result<AskReport, Error> {
        let t0 = Instant::now();
        let cut = self.cut(question, k)?;
        let query = self.embed_question(&cut)?;
        let t1 = Instant::now();
        let hits = self.corpus.index.search(&query, k)?.remove(0);
        let t2 = Instant::now();
        let spans = read_passages(
            &self.reader,
            &self.tokenizer,
            &cut,
            &self.texts(&hits),
            self.max_length,
            &self.reader_device,
        )?;
        Ok(self.report(question, &cut, &hits, &spans, [t0, t1, t2, Instant::now()]))
    }

    /// [`QaEngine::ask`] with every read-back awaited: the same steps and the same answer, for
    /// devices that cannot read back synchronously (WebGPU in a browser).
    pub async fn ask_async(&self, question: &str, k: usize) -> Result<AskReport, Error> {
        let t0 = Instant::now();
        let cut = self.cut(question, k)?;
        let query = self.embed_question_async(&cut).await?;
        let t1 = Instant::now();
        let hits = self.corpus.index.search(&query, k)?.remove(0);
        let t2 = Instant::now();
        let spans = read_passages_async(
            &self.reader,
            &self.tokenizer,
            &cut,
            &self.texts(&hits),
            self.max_length,
            &self.reader_device,
        )
        .await?;
        Ok(self.report(question, &cut, &hits, &spans, [t0, t1, t2, Instant::now()]))
    }

    fn report(
        &self,
        question: &str,
        cut: &str,
        hits: &[Hit],
        spans: &[SpanAnswer],
        [t0, t1, t2, t3]: [Instant; 4],
    ) -> AskReport {
        let retriever: Vec<f32> = hits.iter().map(|h| h.score).collect();
        let answer = self.answer_rule.choose(spans, &retriever).map(|choice| {
            let s = &spans[choice.span];
            let hit = &hits[s.passage];
            let p = self.passage(hit);
            Found {
                text: s.text.clone(),
                passage_id: self.corpus.ids[hit.id as usize],
                title: p.title.clone(),
                start: s.start,
                end: s.end,
                evidence: evidence(&p.text, s.start, s.end),
                reader_score: s.reader_score,
                retriever_score: hit.score,
                score: choice.score,
            }
        });
        let passages = hits
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let best = spans.iter().find(|s| s.passage == i);
                Retrieved {
                    id: self.corpus.ids[h.id as usize],
                    title: self.passage(h).title.clone(),
                    retriever_score: h.score,
                    best_span: best.map(|s| s.text.clone()),
                    reader_score: best.map(|s| s.reader_score),
                }
            })
            .collect();
        AskReport {
            question: question.to_string(),
            truncated: cut.len() < question.len(),
            answer,
            passages,
            seconds: Timings {
                embed: (t1 - t0).as_secs_f64(),
                search: (t2 - t1).as_secs_f64(),
                read: (t3 - t2).as_secs_f64(),
                total: (t3 - t0).as_secs_f64(),
            },
        }
    }
}

/// The sentence of `text` around `start..end`, the span between `[[` and `]]`.
pub fn evidence(text: &str, start: usize, end: usize) -> String {
    let is_end = |c: char| matches!(c, '.' | '!' | '?' | '\n');
    let from = text[..start].rfind(is_end).map_or(0, |i| i + 1);
    let to = text[end..].find(is_end).map_or(text.len(), |i| end + i + 1);
    format!(
        "{}[[{}]]{}",
        text[from..start].trim_start(),
        &text[start..end],
        text[end..to].trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_marks_the_span_in_its_sentence() {
        let text = "Paris is big. The Mona Lisa is in the Louvre! It is old.";
        let start = text.find("Louvre").unwrap();
        assert_eq!(
            evidence(text, start, start + 6),
            "The Mona Lisa is in the [[Louvre]]!"
        );
        assert_eq!(evidence("Only one", 0, 4), "[[Only]] one");
    }

    #[test]
    fn an_index_of_other_passages_is_refused_and_one_without_a_fingerprint_is_not() {
        use crate::index::shard::ElementType;
        let passages = |texts: &[&str]| -> Vec<Passage> {
            texts
                .iter()
                .map(|t| Passage {
                    title: String::new(),
                    text: t.to_string(),
                })
                .collect()
        };
        let built = passages(&["one", "two"]);
        let shard = |ids: Vec<u32>, recorded: Option<u32>| Shard {
            corpus: recorded,
            ..Shard::from_f32(&[1.0, 0.0, 0.0, 1.0], 2, ids, ElementType::F32).unwrap()
        };
        let recorded = Some(fingerprint(&built));
        assert!(IndexedCorpus::from_shard(built.clone(), shard(vec![0, 1], recorded)).is_ok());
        // The same length, other text: only the fingerprint tells.
        let other = passages(&["one", "three"]);
        let err = IndexedCorpus::from_shard(other.clone(), shard(vec![0, 1], recorded))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("built from another corpus"), "{err}");
        // A version-1 shard has none: checked by its ids alone.
        assert!(IndexedCorpus::from_shard(other.clone(), shard(vec![0, 1], None)).is_ok());
        let err = IndexedCorpus::from_shard(other, shard(vec![0, 2], None))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("past the corpus's 2 passages"), "{err}");
        let err = IndexedCorpus::from_shard(built, shard(vec![1, 1], None))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("names passage 1 twice"), "{err}");
    }
}
