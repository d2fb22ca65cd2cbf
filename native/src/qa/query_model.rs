//! The fine-tuned question embedder `Embed_input` on disk, beside a reader: `query.safetensors`
//! (the tensors `realm finetune-retriever` or `realm finetune --retriever-layers` trained, by
//! module path: matrices as int8 with a scale per row, the rest F16; the all-F16 files of
//! earlier versions read too) and `query.json` (the base model's sha256 and its own, both
//! checked on load by `realm_core::qa::models::load_question_embedder`, which the browser
//! engine runs too). The passages keep the base model's embeddings (the index from `realm
//! index`), as REALM and ORQA fine-tune.

use std::path::Path;

use anyhow::Context;
use burn::module::{Module, ParamGroup};
use burn::tensor::Device;
use realm_core::checkpoint::module_io::{export_params, param_ids};
use realm_core::checkpoint::safetensors_file::write_safetensors_int8;
use realm_core::model::embedder::RealmEmbedder;
use realm_core::qa::models::load_question_embedder;

use crate::files::model_dir::{BaseModel, SentenceModel, sentence_model, sha256_hex};
use crate::files::shard_file::write_atomic;

pub use realm_core::qa::models::QueryCard;

/// Writes `dir/query.safetensors` (the parameters whose path `trained` accepts: matrices as
/// int8 with a scale per row, the rest F16) and `dir/query.json` (saying `how` it was
/// trained), each atomically.
pub fn export_query_encoder(
    dir: &Path,
    model: &SentenceModel,
    base: &BaseModel,
    trained: impl Fn(&str) -> bool,
    how: serde_json::Value,
) -> anyhow::Result<QueryCard> {
    let bytes = write_safetensors_int8(&export_params(&model.embedder, trained))?;
    let card = QueryCard {
        base_sha256: base.sha256.clone(),
        base_rounded_from: None,
        sha256: sha256_hex(&bytes),
        trained: how,
    };
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
    let Some(dir) = dir.filter(|d| d.join("query.json").is_file()) else {
        return Ok((sentence_model(base, device)?, None));
    };
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    };
    let card = QueryCard::from_json(&read("query.json")?)
        .with_context(|| format!("the question embedder in {}", dir.display()))?;
    let embedder = load_question_embedder(base, &card, &read("query.safetensors")?, device)
        .with_context(|| format!("the question embedder in {}", dir.display()))?;
    Ok((
        SentenceModel {
            embedder,
            tokenizer: base.tokenizer.clone(),
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
