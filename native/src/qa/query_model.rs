//! The fine-tuned question embedder `Embed_input` on disk, beside a reader: `query.safetensors`
//! (the tensors `realm finetune-retriever` or `realm finetune --retriever-layers` trained, by
//! module path: matrices as int8 with a scale per row, the rest F16; the all-F16 files of
//! earlier versions read too) and `query.json` (the base model's sha256 and its own, both
//! checked on load). The passages keep the base model's embeddings (the index from `realm
//! index`), as REALM and ORQA fine-tune.

use std::path::Path;

use anyhow::Context;
use burn::module::{Module, ParamGroup};
use burn::tensor::Device;
use realm_core::checkpoint::module_io::{export_params, import_params, param_ids};
use realm_core::checkpoint::safetensors_file::{
    dequantize_int8_matrices, read_safetensors, write_safetensors_int8,
};
use realm_core::model::embedder::RealmEmbedder;
use serde::{Deserialize, Serialize};

use crate::files::model_dir::{
    BaseModel, SentenceModel, check_base, read_verified, sentence_model, sha256_hex,
};
use crate::files::shard_file::write_atomic;

/// `query.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryCard {
    pub base_sha256: String,
    pub sha256: String,
    /// Free text: data, steps, time, the command that trained it.
    #[serde(default)]
    pub trained: serde_json::Value,
}

/// Writes `dir/query.safetensors` (the parameters whose path `trained` accepts: matrices as
/// int8 with a scale per row, the rest F16) and `dir/query.json`, each atomically.
pub fn export_query_encoder(
    dir: &Path,
    model: &SentenceModel,
    base: &BaseModel,
    trained: impl Fn(&str) -> bool,
    mut card: QueryCard,
) -> anyhow::Result<QueryCard> {
    let bytes = write_safetensors_int8(&export_params(&model.embedder, trained))?;
    card.sha256 = sha256_hex(&bytes);
    card.base_sha256 = base.sha256.clone();
    write_atomic(&dir.join("query.safetensors"), &bytes)?;
    write_atomic(&dir.join("query.json"), &serde_json::to_vec_pretty(&card)?)?;
    Ok(card)
}

/// The question embedder: the base model's sentence embedder with `dir`'s fine-tuned tensors
/// over it when `dir` holds a `query.json` (`Some(card)`), else the base model's (`None`).
pub fn question_embedder(
    base: &BaseModel,
    dir: Option<&Path>,
    device: &Device,
) -> anyhow::Result<(SentenceModel, Option<QueryCard>)> {
    let model = sentence_model(base, device)?;
    let Some(dir) = dir.filter(|d| d.join("query.json").is_file()) else {
        return Ok((model, None));
    };
    let card_path = dir.join("query.json");
    let card: QueryCard = serde_json::from_slice(&std::fs::read(&card_path)?)
        .with_context(|| format!("{} is not a query-encoder card", card_path.display()))?;
    let bytes = read_verified(&dir.join("query.safetensors"), &card_path, &card.sha256)?;
    check_base(
        base,
        &card.base_sha256,
        &format!("the query encoder in {}", dir.display()),
    )?;
    let trained = read_safetensors(&bytes)
        .and_then(dequantize_int8_matrices)
        .context("query.safetensors")?;
    let embedder = import_params(model.embedder, &trained)
        .context("query.safetensors does not fit the base model's embedder")?;
    Ok((
        SentenceModel {
            embedder,
            tokenizer: model.tokenizer,
        },
        Some(card),
    ))
}

/// Whether a parameter of the embedder (by module path) lies in its top `train` of `layers`
/// layers: what a fine-tuned question embedder trains and ships.
pub fn top_layers(layers: usize, train: usize) -> impl Fn(&str) -> bool + Copy {
    move |path: &str| {
        path.strip_prefix("bert.layers.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|i| i.parse::<usize>().ok())
            .is_some_and(|i| i + train >= layers)
    }
}

/// `embedder` on `device` (an autodiff one) in training mode, every parameter but those
/// `trains` names frozen.
pub fn trainable_embedder(
    embedder: RealmEmbedder,
    trains: impl Fn(&str) -> bool,
    device: &Device,
) -> RealmEmbedder {
    let frozen = ParamGroup::from_ids(param_ids(&embedder, |p| !trains(p)));
    embedder.freeze_group(frozen).fork(device).train()
}
