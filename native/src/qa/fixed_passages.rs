//! The passage side of REALM's fine-tuning (section 3.5, as ORQA): the passages' embeddings
//! stay those of the index `realm index` built, and only the question embedder learns. Its
//! retriever loss is the marginal over the top B passages the current question embedding
//! finds of those that hold an answer,
//! -log sum_{z in top-B, answer in z} softmax_z(scale * Embed_input(x) . Embed_doc(z)).
//! `realm finetune-retriever` trains on it alone, `realm finetune --retriever-layers` beside
//! the reader's loss.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::tensor::{Device, Tensor, TensorData};
use realm_core::index::MipsIndex;
use realm_core::index::exact::ExactIndex;
use realm_core::qa::answer::{Gold, PreparedPassage};
use realm_core::train::reader::logsumexp_rows;

use crate::commands::index::widened;
use crate::embed::read_passages;
use crate::files::shard_file::read_shard;

/// An index's passage embeddings, searchable, with the passages' texts.
pub struct FixedPassages {
    /// `[rows * dim]`, the shard's vectors as f32 (int8 rows dequantised).
    pub vectors: Vec<f32>,
    pub dim: usize,
    index: ExactIndex,
    prepared: Vec<PreparedPassage>,
    /// Rows whose passage is a paragraph of a held-out question: never a training target.
    unseen: Vec<bool>,
    /// How deep a search looks so that `top_b` rows remain once the unseen are skipped.
    depth: usize,
    /// A passage's trimmed text -> its first row.
    rows_by_text: HashMap<String, usize>,
}

/// What [`FixedPassages::retriever_loss`] gives back.
pub struct RetrieverLoss {
    /// The sum over the questions with an answer in their top B (`[1]`; 0 when none has).
    pub sum: Tensor<1>,
    /// How many questions the sum holds.
    pub used: usize,
    pub search_seconds: f64,
}

impl FixedPassages {
    /// Reads `index` (a shard of `corpus` of `dim`-wide vectors, built with `model`) and the
    /// corpus; paragraphs in `unseen_text` are never a target.
    pub fn open(
        index_path: &Path,
        corpus: &Path,
        model: &Path,
        dim: usize,
        unseen_text: &HashSet<String>,
        top_b: usize,
    ) -> anyhow::Result<Self> {
        let passages = read_passages(corpus, 0)?;
        let shard = read_shard(index_path)?;
        realm_core::qa::engine::check_corpus(&shard.ids, shard.corpus, &passages).with_context(
            || {
                format!(
                    "{} does not index {}: rebuild it with `realm index --corpus {}`",
                    index_path.display(),
                    corpus.display(),
                    corpus.display()
                )
            },
        )?;
        if shard.dim != dim {
            bail!(
                "{} holds {}-d vectors, but {} embeds into {dim} dims: build the index with this model",
                index_path.display(),
                shard.dim,
                model.display(),
            );
        }
        let vectors = widened(&shard);
        let index = ExactIndex::new(vectors.clone(), dim)?;
        let prepared: Vec<PreparedPassage> = shard
            .ids
            .iter()
            .map(|&id| PreparedPassage::new(&passages[id as usize].text))
            .collect();
        let unseen: Vec<bool> = prepared
            .iter()
            .map(|p| unseen_text.contains(p.text.trim()))
            .collect();
        let mut rows_by_text = HashMap::new();
        for (row, p) in prepared.iter().enumerate() {
            rows_by_text.entry(p.text.trim().to_string()).or_insert(row);
        }
        let depth = (top_b + unseen.iter().filter(|&&u| u).count()).min(index.len());
        Ok(Self {
            vectors,
            dim,
            index,
            prepared,
            unseen,
            depth,
            rows_by_text,
        })
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// The embedding of the passage whose text is `text` (trimmed), if the index holds it.
    pub fn vector_of(&self, text: &str) -> Option<&[f32]> {
        let row = *self.rows_by_text.get(text.trim())?;
        Some(&self.vectors[row * self.dim..(row + 1) * self.dim])
    }

    /// The retriever's marginal loss summed over the questions (`queries`: `[b, dim]`, on the
    /// autodiff device; `golds` and `ids` one per question) that have an answer among their
    /// top `top_b` passages; the others are left out, as ORQA leaves them out.
    pub fn retriever_loss(
        &self,
        queries: Tensor<2>,
        golds: &[&Gold],
        ids: &[&str],
        top_b: usize,
        scale: f32,
        device: &Device,
    ) -> anyhow::Result<RetrieverLoss> {
        let host: Vec<f32> = queries
            .clone()
            .detach()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 embeddings");
        let t = Instant::now();
        let hits = self.index.search(&host, self.depth)?;
        let (b, k, dim) = (golds.len(), top_b, self.dim);
        let mut docs = vec![0.0f32; b * k * dim];
        let mut penalty = vec![-1e30f32; b * k];
        let mut weight = vec![0.0f32; b];
        let mut short = Vec::new();
        for (q, (gold, hits)) in golds.iter().zip(&hits).enumerate() {
            let top: Vec<usize> = hits
                .iter()
                .map(|h| h.id as usize)
                .filter(|&row| !self.unseen[row])
                .take(k)
                .collect();
            if top.len() < k {
                short.push(ids[q]);
                continue;
            }
            for (slot, &row) in top.iter().enumerate() {
                let at = (q * k + slot) * dim;
                docs[at..at + dim].copy_from_slice(&self.vectors[row * dim..(row + 1) * dim]);
                if gold.occurs_in_prepared(&self.prepared[row]) {
                    penalty[q * k + slot] = 0.0;
                    weight[q] = 1.0;
                }
            }
        }
        if !short.is_empty() {
            bail!(
                "questions {}: fewer than --top-b {k} passages of the corpus are not held out",
                short.join(", ")
            );
        }
        let search_seconds = t.elapsed().as_secs_f64();
        let used = weight.iter().filter(|&&w| w > 0.0).count();
        let docs = Tensor::<3>::from_data(TensorData::new(docs, [b, k, dim]), device);
        let scores = (queries.reshape([b, 1, dim]) * docs)
            .sum_dim(2)
            .reshape([b, k])
            .mul_scalar(scale); // [b, top_b]
        let penalty = Tensor::<2>::from_data(TensorData::new(penalty, [b, k]), device);
        let weight = Tensor::<1>::from_data(TensorData::new(weight, [b]), device);
        let sum =
            ((logsumexp_rows(scores.clone()) - logsumexp_rows(scores + penalty)) * weight).sum();
        Ok(RetrieverLoss {
            sum,
            used,
            search_seconds,
        })
    }
}
