//! The span reader on disk. A trained reader is shipped as the tensors that differ from its
//! base model (`reader.safetensors`, by module path, F16) and a card (`reader.json`) naming the
//! base model's sha256 and its own, both checked on load: the reader is rebuilt from the base
//! BERT with the card's seed for the fresh span head, then the trained tensors are put over it.

use std::path::Path;

use anyhow::Context;
use burn::module::{Module, ParamGroup};
use burn::tensor::Device;
use realm_core::checkpoint::module_io::{export_params, import_params};
use realm_core::checkpoint::safetensors_file::{read_safetensors, write_safetensors_f16};

use crate::files::model_dir::{BaseModel, check_base, read_verified, sha256_hex};
use realm_core::checkpoint::weights::WeightLoader;
use realm_core::model::config::ReaderConfig;
use realm_core::model::reader::SpanReader;
use realm_core::train::init::reader_from_bert;
use serde::{Deserialize, Serialize};

use crate::files::shard_file::write_atomic;

/// The path of the word embeddings, which fine-tuning leaves as the base model has them.
pub const WORD_EMBEDDINGS: &str = "bert.embeddings.word_embeddings.weight";

/// `reader.json`: what a shipped reader is and how to rebuild it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReaderCard {
    /// sha256 of the base model's `model.safetensors`.
    pub base_sha256: String,
    /// sha256 of `reader.safetensors`.
    pub sha256: String,
    /// Seed of the span head's initialisation (the tensors not shipped are rebuilt from it).
    pub head_seed: u64,
    pub reader: ReaderConfig,
    /// Wordpieces of `[CLS] question [SEP] passage [SEP]` the reader was trained on.
    pub max_length: usize,
    /// Free text: data, steps, time, the command that trained it.
    #[serde(default)]
    pub trained: serde_json::Value,
}

/// A reader on `base` with a fresh span head drawn from `seed`, loaded strictly.
pub fn fresh_reader(
    base: &BaseModel,
    reader: &ReaderConfig,
    seed: u64,
    device: &Device,
) -> anyhow::Result<SpanReader> {
    let weights = reader_from_bert(&base.config, reader, &base.weights, seed);
    let mut loader = WeightLoader::new(weights, device);
    let model = SpanReader::load(&base.config, reader, &mut loader, device)
        .context("the base model is not a BERT this reader can sit on")?;
    loader.finish(&[])?;
    Ok(model)
}

/// The same reader with its word embeddings frozen (no gradient, never updated).
pub fn freeze_word_embeddings(model: SpanReader) -> SpanReader {
    let id = model.bert.embeddings.word_embeddings.weight.id;
    model.freeze_group(ParamGroup::from_ids(vec![id]))
}

/// Writes `dir/reader.safetensors` (every tensor but the word embeddings, F16) and
/// `dir/reader.json`, each atomically.
pub fn export_reader(
    dir: &Path,
    model: &SpanReader,
    base: &BaseModel,
    mut card: ReaderCard,
) -> anyhow::Result<ReaderCard> {
    let trained = export_params(model, |path| path != WORD_EMBEDDINGS);
    let bytes = write_safetensors_f16(&trained)?;
    card.sha256 = sha256_hex(&bytes);
    card.base_sha256 = base.sha256.clone();
    write_atomic(&dir.join("reader.safetensors"), &bytes)?;
    write_atomic(&dir.join("reader.json"), &serde_json::to_vec_pretty(&card)?)?;
    Ok(card)
}

/// Reads a shipped reader from `dir` over `base`, checking both sha256 sums.
pub fn load_reader(
    dir: &Path,
    base: &BaseModel,
    device: &Device,
) -> anyhow::Result<(SpanReader, ReaderCard)> {
    let card_path = dir.join("reader.json");
    let card: ReaderCard =
        serde_json::from_slice(&std::fs::read(&card_path).with_context(|| {
            format!(
                "reading {}: train a reader with `realm finetune` or pass --reader DIR",
                card_path.display()
            )
        })?)
        .with_context(|| format!("{} is not a reader card", card_path.display()))?;
    let bytes = read_verified(&dir.join("reader.safetensors"), &card_path, &card.sha256)?;
    check_base(base, &card.base_sha256, "this reader")?;
    let trained = read_safetensors(&bytes).context("reader.safetensors")?;
    let model = fresh_reader(base, &card.reader, card.head_seed, device)?;
    let model =
        import_params(model, &trained).context("reader.safetensors does not fit the reader")?;
    Ok((model, card))
}
