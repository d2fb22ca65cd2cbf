//! Question answering on the desktop: the trained reader on disk (`reader_model`), the
//! question sets and their splits as files (`data`), and the three commands' engines:
//! fine-tuning, evaluation and asking.

pub mod data;
pub mod fixed_passages;
pub mod query_model;
pub mod reader_model;
pub mod retriever;

use std::path::{Path, PathBuf};

use anyhow::Context;
use realm_core::index::MipsIndex;
use realm_core::qa::engine::{QaEngine, check_index_width};

use crate::files::model_dir::{BaseModel, read_base};
use crate::qa::query_model::question_embedder;
use crate::qa::reader_model::load_reader;

use crate::commands::finetune::DeviceKind;

/// The files `ask` and `eval` answer from: the base model, the trained reader, the corpus
/// and its index.
#[derive(clap::Args, Clone, Debug)]
pub struct QaFiles {
    /// The base BERT the reader sits on and the retriever embeds with.
    #[arg(long, default_value = "data/all-minilm-l6-v2")]
    pub model: PathBuf,
    /// The BERT questions are embedded with, when it is not `--model` (e.g. a `realm
    /// pretrain` run's `embedder/`): `--index` must be built with it, and it must share
    /// `--model`'s vocabulary.
    #[arg(long, value_name = "DIR")]
    pub retriever_model: Option<PathBuf>,
    /// The trained reader: a directory with reader.json and reader.safetensors.
    #[arg(long, default_value = crate::files::DEMO_READER)]
    pub reader: PathBuf,
    /// Passages, in the order the index's document ids count them.
    #[arg(long, default_value = crate::files::DEMO_CORPUS)]
    pub corpus: PathBuf,
    /// The corpus's index shard, from `realm index --corpus CORPUS --out SHARD`.
    #[arg(long, default_value = crate::files::DEMO_INDEX)]
    pub index: PathBuf,
    /// Passages the reader reads (1 to 100).
    #[arg(short = 'k', long, default_value_t = 5)]
    pub top_k: usize,
    /// Where the reader runs; the question embedder runs on the CPU's frozen forward.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// Matrix products of the question embedder and the reader on the CPU: f32, bf16 (AMX or
    /// AVX-512 BF16), or auto (bf16 where the CPU has either).
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: crate::precision::PrecisionArg,
}

pub use realm_core::qa::engine::IndexedCorpus;

impl QaFiles {
    /// Everything `ask` and `serve` answer with: the reader, the question embedder (the
    /// fine-tuned one where `--reader` holds a `query.json`), both frozen at `--precision`,
    /// and the indexed corpus.
    pub fn open_engine(&self) -> anyhow::Result<QaEngine> {
        let reader_device = self.device.device();
        let base = read_base(&self.model)?;
        let precision = self.precision.resolve()?;
        let eps = base.config.layer_norm_eps;
        let (mut reader, card) = load_reader(&self.reader, &base, &reader_device)?;
        reader.freeze(eps, precision);
        let embed_device = realm_core::device::cpu_device();
        let own = self.retriever_base(&base)?;
        let (mut retriever, _) = question_embedder(
            own.as_ref().unwrap_or(&base),
            Some(&self.reader),
            &embed_device,
        )?;
        retriever.embedder.bert.freeze(eps, precision);
        let corpus = self.open_corpus()?;
        check_width(&self.index, corpus.index.as_ref(), retriever.embedder.dim())?;
        Ok(QaEngine {
            embedder: retriever.embedder,
            embed_device,
            reader,
            reader_device,
            tokenizer: base.tokenizer,
            corpus,
            max_length: card.max_length,
            answer_rule: card.answer_rule(),
        })
    }

    /// `--retriever-model`'s BERT (`None`: questions are embedded with `base`, `--model`'s).
    pub fn retriever_base(&self, base: &BaseModel) -> anyhow::Result<Option<BaseModel>> {
        self.retriever_model
            .as_deref()
            .map(|dir| retriever_base(dir, base))
            .transpose()
    }

    /// Reads `--corpus` and `--index` ([`open_corpus`]).
    pub fn open_corpus(&self) -> anyhow::Result<IndexedCorpus> {
        open_corpus(&self.corpus, &self.index)
    }
}

/// The BERT in `dir` as the question embedder beside `base`, whose tokenizer both share.
pub fn retriever_base(dir: &Path, base: &BaseModel) -> anyhow::Result<BaseModel> {
    if !dir.is_dir() {
        anyhow::bail!(
            "--retriever-model {}: no such model directory (a sentence BERT's: config.json, model.safetensors, tokenizer.json or vocab.txt)",
            dir.display()
        );
    }
    let own = read_base(dir)?;
    let (a, b) = (&own.tokenizer, &base.tokenizer);
    if !crate::files::model_dir::shares_vocabulary(a, b) {
        anyhow::bail!(
            "the retriever model in {} has another vocabulary ({} wordpieces) than the base model ({})",
            dir.display(),
            a.vocab_size(),
            b.vocab_size()
        );
    }
    Ok(own)
}

/// [`check_index_width`] naming the shard.
pub fn check_width(index: &Path, search: &dyn MipsIndex, embeds: usize) -> anyhow::Result<()> {
    check_index_width(search, embeds).with_context(|| index.display().to_string())
}

/// Reads a corpus and its index shard; a missing index or one built from another corpus is an
/// error saying how to build the right one.
pub fn open_corpus(corpus: &Path, index: &Path) -> anyhow::Result<IndexedCorpus> {
    let passages = crate::embed::read_passages(corpus, 0)?;
    if !index.exists() {
        anyhow::bail!(
            "no index at {}: build it once with `realm index --corpus {} --out {}`",
            index.display(),
            corpus.display(),
            index.display()
        );
    }
    let shard = crate::files::shard_file::read_shard(index)?;
    IndexedCorpus::from_shard(passages, shard).with_context(|| {
        format!(
            "{} does not index {}: rebuild it with `realm index --corpus {} --out {} --force`",
            index.display(),
            corpus.display(),
            corpus.display(),
            index.display()
        )
    })
}
