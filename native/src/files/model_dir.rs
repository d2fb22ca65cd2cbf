//! Reading a model directory (Hugging Face layout: `config.json`, `model.safetensors`,
//! `tokenizer.json` or `vocab.txt`) into memory with its checksum, and into a `realm-core`
//! embedder and tokenizer.

use std::path::Path;

use anyhow::{Context, bail};
use burn::tensor::Device;
use realm_core::checkpoint::safetensors_file::read_safetensors;
use realm_core::checkpoint::weights::{WeightLoader, WeightMap};
use realm_core::model::config::BertConfig;
use realm_core::model::config::read_config;
use realm_core::model::embedder::{BERT_BUFFERS, RealmEmbedder};
use realm_core::text::wordpiece::WordPieceTokenizer;
use sha2::{Digest, Sha256};

/// A sentence-transformers BERT (e.g. all-MiniLM-L6-v2) and its tokenizer.
pub struct SentenceModel {
    pub embedder: RealmEmbedder,
    pub tokenizer: WordPieceTokenizer,
}

/// A base BERT directory read into memory.
pub struct BaseModel {
    pub config: BertConfig,
    pub weights: WeightMap,
    pub tokenizer: WordPieceTokenizer,
    pub sha256: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

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
    let config = read_config(&read("config.json")?).context("config.json")?;
    let bytes = read("model.safetensors")?;
    let sha256 = sha256_hex(&bytes);
    let weights = read_safetensors(&bytes).context("model.safetensors")?;
    let tokenizer = if dir.join("tokenizer.json").is_file() {
        WordPieceTokenizer::from_tokenizer_json(&read("tokenizer.json")?)?
    } else {
        WordPieceTokenizer::from_vocab(
            &String::from_utf8(read("vocab.txt")?).context("vocab.txt is not UTF-8")?,
        )?
    };
    Ok(BaseModel {
        config,
        weights,
        tokenizer,
        sha256,
    })
}

/// A sentence-transformers BERT directory as an embedder and its tokenizer.
pub fn load_sentence_model(dir: &Path, device: &Device) -> anyhow::Result<SentenceModel> {
    sentence_model(&read_base(dir)?, device)
}

/// The embedder (mean pooling over the last layer) of a base model already read.
pub fn sentence_model(base: &BaseModel, device: &Device) -> anyhow::Result<SentenceModel> {
    let mut loader = WeightLoader::new(base.weights.clone(), device);
    let embedder = RealmEmbedder::load_sentence_transformer(&base.config, &mut loader, device)
        .context("model.safetensors does not hold a BERT model for this config.json")?;
    loader.finish(BERT_BUFFERS)?;
    Ok(SentenceModel {
        embedder,
        tokenizer: base.tokenizer.clone(),
    })
}

/// The bytes of `path`, refused unless their sha256 is the one `card` (the file that names it)
/// records: a damaged or swapped file is an error naming both.
pub fn read_verified(path: &Path, card: &Path, sha256: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let found = sha256_hex(&bytes);
    if found != sha256 {
        bail!(
            "{} has sha256 {found}, but {} says {sha256}: the file is damaged or not the one the card describes",
            path.display(),
            card.display()
        );
    }
    Ok(bytes)
}

/// Refuses a base model other than the one `what` was trained on.
pub fn check_base(base: &BaseModel, trained_on: &str, what: &str) -> anyhow::Result<()> {
    if base.sha256 != trained_on {
        bail!(
            "the base model's model.safetensors has sha256 {}, but {what} was trained on {trained_on}: pass the base it was trained on with --model",
            base.sha256
        );
    }
    Ok(())
}
