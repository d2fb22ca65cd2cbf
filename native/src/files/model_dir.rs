//! Reading a model directory (Hugging Face layout: `config.json`, `model.safetensors`,
//! `tokenizer.json` or `vocab.txt`) into memory with its checksum, and into a `realm-core`
//! embedder and tokenizer.

use std::path::Path;

use anyhow::{Context, bail};
use burn::tensor::Device;
use realm_core::model::embedder::RealmEmbedder;
use realm_core::text::wordpiece::WordPieceTokenizer;

/// A sentence-transformers BERT (e.g. all-MiniLM-L6-v2) and its tokenizer.
pub struct SentenceModel {
    pub embedder: RealmEmbedder,
    pub tokenizer: WordPieceTokenizer,
}

pub use realm_core::qa::models::{BaseModel, sha256_hex};

pub fn read_base(dir: &Path) -> anyhow::Result<BaseModel> {
    if !dir.is_dir() {
        bail!(
            "no base model directory at {}: run `scripts/setup.sh --demo-data` to fetch all-MiniLM-L6-v2, or pass --model DIR",
            dir.display()
        );
    }
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .with_context(|| format!("reading {}", dir.join(name).display()))
    };
    let tokenizer = if dir.join("tokenizer.json").is_file() {
        WordPieceTokenizer::from_tokenizer_json(&read("tokenizer.json")?)
            .with_context(|| format!("reading {}", dir.join("tokenizer.json").display()))?
    } else {
        let vocab = dir.join("vocab.txt");
        WordPieceTokenizer::from_vocab(
            &String::from_utf8(read("vocab.txt")?)
                .with_context(|| format!("{} is not UTF-8", vocab.display()))?,
        )
        .with_context(|| format!("reading {}", vocab.display()))?
    };
    BaseModel::from_bytes(
        &read("config.json")?,
        &read("model.safetensors")?,
        tokenizer,
    )
    .with_context(|| format!("reading the base model in {}", dir.display()))
}

/// A sentence-transformers BERT directory as an embedder and its tokenizer.
pub fn load_sentence_model(dir: &Path, device: &Device) -> anyhow::Result<SentenceModel> {
    sentence_model(&read_base(dir)?, device)
}

/// The embedder (mean pooling over the last layer) of a base model already read.
pub fn sentence_model(base: &BaseModel, device: &Device) -> anyhow::Result<SentenceModel> {
    let embedder = base
        .sentence_embedder(device)
        .context("model.safetensors does not hold a BERT model for this config.json")?;
    Ok(SentenceModel {
        embedder,
        tokenizer: base.tokenizer.clone(),
    })
}

/// `base`'s sentence embedder on the CPU for weights that no longer change: BERT's own frozen
/// forward (packed, no autodiff; not burn's `Module::freeze`, which only stops gradients) at
/// `precision`.
pub fn frozen_sentence_model(
    base: &BaseModel,
    precision: realm_core::linalg::Precision,
) -> anyhow::Result<SentenceModel> {
    let mut model = sentence_model(base, &realm_core::device::cpu_device())?;
    model
        .embedder
        .bert
        .freeze(base.config.layer_norm_eps, precision);
    Ok(model)
}

/// Whether two tokenizers make the same ids: the same vocabulary size and special tokens
/// (a model reading another's inputs must share its vocabulary).
pub fn shares_vocabulary(a: &WordPieceTokenizer, b: &WordPieceTokenizer) -> bool {
    a.vocab_size() == b.vocab_size()
        && (a.cls_id, a.sep_id, a.pad_id, a.mask_id) == (b.cls_id, b.sep_id, b.pad_id, b.mask_id)
}

/// The tokenizer files a model directory may hold beside `config.json` and its weights.
pub const TOKENIZER_FILES: &[&str] = &[
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// Writes a model directory any `--model` flag reads: `weights` (Hugging Face `BertModel`
/// names) as `model.safetensors` beside the base directory's `config.json` and tokenizer
/// files. The directory appears whole or not at all.
pub fn write_model_dir(
    dir: &Path,
    base_dir: &Path,
    weights: &realm_core::checkpoint::weights::WeightMap,
) -> anyhow::Result<()> {
    let bytes = realm_core::checkpoint::safetensors_file::write_safetensors(weights)?;
    crate::files::shard_file::write_dir_atomic(dir, |tmp| {
        std::fs::write(tmp.join("model.safetensors"), &bytes)
            .with_context(|| format!("writing model.safetensors in {}", tmp.display()))?;
        for name in std::iter::once(&"config.json").chain(TOKENIZER_FILES) {
            let from = base_dir.join(name);
            if from.is_file() {
                std::fs::copy(&from, tmp.join(name))
                    .with_context(|| format!("copying {}", from.display()))?;
            }
        }
        Ok(())
    })
}
