//! A strict load of every module a checkpoint family holds: `realm convert` refuses a
//! checkpoint with any tensor missing, misshapen, or left over outside the families' named
//! allow-lists.

use burn::tensor::Device;

use crate::Error;
use crate::checkpoint::family::Family;
use crate::checkpoint::safetensors_file::strip_prefix;
use crate::checkpoint::weights::{WeightLoader, WeightMap};
use crate::model::config::{BertConfig, ReaderConfig};
use crate::model::embedder::{BERT_BUFFERS, EMBEDDER_UNUSED, RealmEmbedder};
use crate::model::encoder::{ENCODER_UNUSED, KnowledgeAugEncoder};
use crate::model::reader::{READER_UNUSED, SpanReader};

/// The position-id buffer older REALM checkpoints save under `realm.`: a constant, not a weight.
const REALM_BUFFERS: &[&str] = &["realm.embeddings.position_ids"];

/// What a strict load found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    pub family: Family,
    /// Tensors in the checkpoint.
    pub tensors: usize,
    /// Rows of `block_emb` (open QA only).
    pub blocks: Option<usize>,
}

fn load_strictly<T>(
    weights: WeightMap,
    allowed_unused: &[&str],
    device: &Device,
    load: impl FnOnce(&mut WeightLoader) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut loader = WeightLoader::new(weights, device);
    let module = load(&mut loader)?;
    loader.finish(allowed_unused)?;
    Ok(module)
}

/// Every tensor must start with one of `prefixes`: anything else is unused.
fn reject_stray(weights: &WeightMap, prefixes: &[&str]) -> Result<(), Error> {
    let mut stray: Vec<String> = weights
        .keys()
        .filter(|k| !prefixes.iter().any(|p| k.starts_with(p)))
        .cloned()
        .collect();
    if stray.is_empty() {
        return Ok(());
    }
    stray.sort();
    Err(Error::UnusedWeights { names: stray })
}

fn with(a: &[&'static str], b: &[&'static str]) -> Vec<&'static str> {
    a.iter().chain(b).copied().collect()
}

/// Loads every module `weights` holds for `family`, strictly, and drops them: an error names
/// the first tensor missing, misshapen or unused.
pub fn check_strict_load(
    family: Family,
    config: &BertConfig,
    reader: &ReaderConfig,
    weights: &WeightMap,
    device: &Device,
) -> Result<LoadReport, Error> {
    let mut blocks = None;
    match family {
        Family::Bert => {
            load_strictly(weights.clone(), BERT_BUFFERS, device, |w| {
                RealmEmbedder::load_sentence_transformer(config, w, device)
            })?;
        }
        Family::Embedder => {
            load_strictly(
                weights.clone(),
                &with(EMBEDDER_UNUSED, REALM_BUFFERS),
                device,
                |w| RealmEmbedder::load(config, w, device),
            )?;
        }
        Family::Encoder => {
            load_strictly(
                weights.clone(),
                &with(ENCODER_UNUSED, REALM_BUFFERS),
                device,
                |w| KnowledgeAugEncoder::load(config, w, device),
            )?;
        }
        Family::Reader => {
            load_strictly(
                weights.clone(),
                &with(READER_UNUSED, REALM_BUFFERS),
                device,
                |w| SpanReader::load(config, reader, w, device),
            )?;
        }
        Family::Scorer => {
            reject_stray(weights, &["embedder.", "query_embedder."])?;
            for prefix in ["embedder.", "query_embedder."] {
                if weights.keys().any(|k| k.starts_with(prefix)) {
                    load_strictly(
                        strip_prefix(weights, prefix),
                        &with(EMBEDDER_UNUSED, REALM_BUFFERS),
                        device,
                        |w| RealmEmbedder::load(config, w, device),
                    )?;
                }
            }
        }
        Family::OpenQa => {
            reject_stray(weights, &["embedder.", "reader.", "block_emb"])?;
            let emb = weights
                .get("block_emb")
                .ok_or_else(|| Error::MissingWeight {
                    name: "block_emb".into(),
                })?;
            if emb.shape.len() != 2 || emb.shape[1] != config.retriever_proj_size {
                return Err(Error::WeightShape {
                    name: "block_emb".into(),
                    expected: vec![
                        emb.shape.first().copied().unwrap_or(0),
                        config.retriever_proj_size,
                    ],
                    found: emb.shape.clone(),
                });
            }
            blocks = Some(emb.shape[0]);
            load_strictly(
                strip_prefix(weights, "embedder."),
                &with(EMBEDDER_UNUSED, REALM_BUFFERS),
                device,
                |w| RealmEmbedder::load(config, w, device),
            )?;
            load_strictly(
                strip_prefix(weights, "reader."),
                &with(READER_UNUSED, REALM_BUFFERS),
                device,
                |w| SpanReader::load(config, reader, w, device),
            )?;
        }
    }
    Ok(LoadReport {
        family,
        tensors: weights.len(),
        blocks,
    })
}
