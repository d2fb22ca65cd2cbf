//! Question answering on the desktop: the trained reader on disk (`reader_model`), the
//! question sets and their splits as files (`data`), and the three commands' engines:
//! fine-tuning, evaluation and asking.

pub mod data;
pub mod reader_model;

use std::path::PathBuf;

use crate::commands::finetune::DeviceKind;

/// The files `ask` and `eval` answer from: the base model, the trained reader, the corpus
/// and its index.
#[derive(clap::Args, Clone, Debug)]
pub struct QaFiles {
    /// The base BERT the reader sits on and the retriever embeds with.
    #[arg(long, default_value = "data/all-minilm-l6-v2")]
    pub model: PathBuf,
    /// The trained reader: a directory with reader.json and reader.safetensors.
    #[arg(long, default_value = "native/models/demo-reader")]
    pub reader: PathBuf,
    /// Passages, in the order the index's document ids count them.
    #[arg(long, default_value = "data/wiki-leads/summaries_en-us.json")]
    pub corpus: PathBuf,
    /// The corpus's index shard, from `realm index --corpus CORPUS --out SHARD`.
    #[arg(long, default_value = "data/wiki-leads.int8.shard")]
    pub index: PathBuf,
    /// Passages the reader reads.
    #[arg(short = 'k', long, default_value_t = 5)]
    pub top_k: usize,
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
}
