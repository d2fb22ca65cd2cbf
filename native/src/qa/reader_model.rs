//! The span reader on disk: `reader.safetensors` (the tensors that differ from the base
//! model, F16) and `reader.json` (its card), written atomically after fine-tuning and read
//! back through `realm_core::qa::models`, which checks both sha256 sums and rebuilds it.

use std::path::Path;

use anyhow::Context;
use burn::module::{Module, ParamGroup};
use burn::tensor::Device;
use realm_core::checkpoint::module_io::export_params;
use realm_core::checkpoint::safetensors_file::write_safetensors_f16;
use realm_core::model::reader::SpanReader;

use crate::files::model_dir::{BaseModel, sha256_hex};
use crate::files::shard_file::write_atomic;

/// The path of the word embeddings, which fine-tuning leaves as the base model has them.
pub const WORD_EMBEDDINGS: &str = "bert.embeddings.word_embeddings.weight";

pub use realm_core::qa::models::{ReaderCard, fresh_reader};

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
    let card = ReaderCard::from_json(&std::fs::read(&card_path).with_context(|| {
        if dir.join("latest").is_file() {
            // A run directory whose reader is written only when its last step is done.
            format!(
                "reading {}: {} is a training run that has not written a reader: a `realm \
                 finetune` run writes it at its end (`realm finetune --resume {}` finishes one \
                 stopped before), a `realm finetune-retriever` run never (copy its query.* \
                 beside a reader)",
                card_path.display(),
                dir.display(),
                dir.display()
            )
        } else {
            format!(
                "reading {}: train a reader with `realm finetune` or pass --reader DIR",
                card_path.display()
            )
        }
    })?)
    .with_context(|| format!("reading {}", card_path.display()))?;
    let weights_path = dir.join("reader.safetensors");
    let bytes = std::fs::read(&weights_path)
        .with_context(|| format!("reading {}", weights_path.display()))?;
    let model =
        realm_core::qa::models::load_reader(base, &card, &bytes, device).with_context(|| {
            // The causes (a damaged file, another base: `--model`) are named beneath.
            format!("loading the reader in {}", dir.display())
        })?;
    Ok((model, card))
}
