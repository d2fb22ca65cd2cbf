//! Where a question's passages come from: the dense retriever (the question's embedding, by
//! the fine-tuned question embedder beside the reader or the base sentence model, searched in
//! the corpus's index by inner product), or BM25 over each
//! passage's title and text, the sparse baseline REALM and ORQA compare with.

use anyhow::bail;
use bm25::{Document, Language, SearchEngine, SearchEngineBuilder};
use clap::ValueEnum;
use realm_core::index::MipsIndex;
use realm_core::text::corpus::Passage;

use crate::embed::{embed, read_passages};
use crate::files::model_dir::{BaseModel, SentenceModel};
use crate::qa::query_model::question_embedder;
use crate::qa::{IndexedCorpus, QaFiles};

/// Which retriever picks the passages the reader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RetrieverKind {
    /// The question embedder beside the reader (`query.json`, from `realm
    /// finetune-retriever`), else the base model's, searched in `--index`.
    Dense,
    /// The base model's sentence embedding (zero-shot), searched in `--index`.
    ZeroShot,
    /// BM25 (k1 = 0.9, b = 0.4, English stemming and stop words) over title and text; `--index`
    /// is not read.
    Bm25,
}

/// A corpus and the retriever that searches it.
pub struct Retrieval {
    pub passages: Vec<Passage>,
    /// What retrieves, in words: `dense (fine-tuned)`, `dense (zero-shot)`, `BM25`.
    pub name: String,
    how: How,
}

enum How {
    Dense {
        model: Box<SentenceModel>,
        index: Box<dyn MipsIndex + Send + Sync>,
        ids: Vec<u32>,
    },
    Bm25(SearchEngine<u32>),
}

impl Retrieval {
    /// Opens `files`'s corpus (and, for the dense retriever, its index).
    pub fn open(kind: RetrieverKind, base: &BaseModel, files: &QaFiles) -> anyhow::Result<Self> {
        Ok(match kind {
            RetrieverKind::Dense | RetrieverKind::ZeroShot => {
                let IndexedCorpus {
                    passages,
                    index,
                    ids,
                } = files.open_corpus()?;
                let beside = (kind == RetrieverKind::Dense).then_some(files.reader.as_path());
                let own = files.retriever_base(base)?;
                let base = own.as_ref().unwrap_or(base);
                let (mut model, card) =
                    question_embedder(base, beside, &realm_core::device::cpu_device())?;
                let precision = files.precision.resolve()?;
                model
                    .embedder
                    .bert
                    .freeze(base.config.layer_norm_eps, precision);
                super::check_width(&files.index, index.as_ref(), model.embedder.dim())?;
                let name = match card {
                    Some(_) => "dense (fine-tuned)",
                    None => "dense (zero-shot)",
                };
                Retrieval {
                    passages,
                    name: name.into(),
                    how: How::Dense {
                        model: Box::new(model),
                        index,
                        ids,
                    },
                }
            }
            RetrieverKind::Bm25 => Self::bm25(read_passages(&files.corpus, 0)?),
        })
    }

    /// BM25 over `passages`.
    pub fn bm25(passages: Vec<Passage>) -> Self {
        let documents = passages
            .iter()
            .enumerate()
            .map(|(i, p)| Document::new(i as u32, format!("{} {}", p.title, p.text)));
        let engine = SearchEngineBuilder::<u32>::with_documents(Language::English, documents)
            .k1(0.9)
            .b(0.4)
            .build();
        Retrieval {
            passages,
            name: "BM25".into(),
            how: How::Bm25(engine),
        }
    }

    /// Positions in `passages` of the best `depth` passages for `question`, best first (BM25
    /// returns fewer when fewer passages share a word with the question).
    pub fn top(&self, question: &str, depth: usize) -> anyhow::Result<Vec<usize>> {
        Ok(self
            .scored(question, depth)?
            .into_iter()
            .map(|(i, _)| i)
            .collect())
    }

    /// [`Retrieval::top`] with each passage's retriever score (inner product, or BM25's score).
    pub fn scored(&self, question: &str, depth: usize) -> anyhow::Result<Vec<(usize, f32)>> {
        if depth == 0 {
            bail!("a retrieval depth of 0 returns nothing");
        }
        Ok(match &self.how {
            How::Dense { model, index, ids } => {
                let query = embed(model, &[question], 128)?;
                index.search(&query, depth.min(index.len()))?[0]
                    .iter()
                    .map(|h| (ids[h.id as usize] as usize, h.score))
                    .collect()
            }
            How::Bm25(engine) => engine
                .search(question, depth)
                .into_iter()
                .map(|r| (r.document.id as usize, r.score))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(title: &str, text: &str) -> Passage {
        Passage {
            title: title.into(),
            text: text.into(),
        }
    }

    #[test]
    fn bm25_ranks_the_passages_that_share_the_rare_words_first() {
        let retrieval = Retrieval::bm25(vec![
            passage("Paris", "Paris is the capital of France."),
            passage(
                "Mona Lisa",
                "The Mona Lisa was painted by Leonardo da Vinci.",
            ),
            passage("Louvre", "The Louvre in Paris holds many paintings."),
        ]);
        let top = retrieval.top("Who painted the Mona Lisa?", 3).unwrap();
        assert_eq!(top[0], 1, "{top:?}");
        let top = retrieval.top("capital of France", 2).unwrap();
        assert_eq!(top[0], 0, "{top:?}");
        assert!(retrieval.top("zebra", 3).unwrap().is_empty());
        assert!(retrieval.top("Paris", 0).is_err());
    }
}
