//! Reading a model directory (Hugging Face layout: `config.json`, `model.safetensors`,
//! `tokenizer.json` or `vocab.txt`) into a `realm-core` embedder and tokenizer.

use std::path::Path;

use anyhow::{Context, bail};
use burn::tensor::Device;
use realm_core::checkpoint::safetensors_file::read_safetensors;
use realm_core::checkpoint::weights::WeightLoader;
use realm_core::model::config::read_config;
use realm_core::model::embedder::{BERT_BUFFERS, RealmEmbedder};
use realm_core::text::wordpiece::WordPieceTokenizer;

/// A sentence-transformers BERT (e.g. all-MiniLM-L6-v2) and its tokenizer.
pub struct SentenceModel {
    pub embedder: RealmEmbedder,
    pub tokenizer: WordPieceTokenizer,
}

pub fn load_sentence_model(dir: &Path, device: &Device) -> anyhow::Result<SentenceModel> {
    if !dir.is_dir() {
        bail!(
            "no model directory at {}: run `scripts/setup.sh --demo-data` to fetch all-MiniLM-L6-v2, or pass --model DIR",
            dir.display()
        );
    }
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .with_context(|| format!("reading {}", dir.join(name).display()))
    };
    let config = read_config(&read("config.json")?).context("config.json")?;
    let weights = read_safetensors(&read("model.safetensors")?).context("model.safetensors")?;
    let tokenizer = if dir.join("tokenizer.json").is_file() {
        WordPieceTokenizer::from_tokenizer_json(&read("tokenizer.json")?)?
    } else {
        WordPieceTokenizer::from_vocab(
            &String::from_utf8(read("vocab.txt")?).context("vocab.txt is not UTF-8")?,
        )?
    };
    let mut loader = WeightLoader::new(weights, device);
    let embedder = RealmEmbedder::load_sentence_transformer(&config, &mut loader, device)
        .context("model.safetensors does not hold a BERT model for this config.json")?;
    loader.finish(BERT_BUFFERS)?;
    Ok(SentenceModel {
        embedder,
        tokenizer,
    })
}
