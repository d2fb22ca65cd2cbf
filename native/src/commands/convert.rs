//! `realm convert`: a Hugging Face REALM checkpoint directory (`config.json`,
//! `pytorch_model.bin` or `model.safetensors`, `vocab.txt`, and for open QA
//! `block_records.npy`) into realm-rs's own safe format: weights as safetensors, the evidence
//! embeddings `block_emb` as an index shard, the block texts as JSON lines. Nothing in the
//! source is executed: PyTorch's pickle is read by pytorch-reader and numpy's by our
//! `realm_core::checkpoint::npy`. The checkpoint must load strictly before anything is written, and the
//! output folder appears whole or not at all.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use realm_core::checkpoint::family::{Family, detect_family};
use realm_core::checkpoint::npy::read_block_records;
use realm_core::checkpoint::safetensors_file::{RawDtype, read_safetensors, tensor_from_le_bytes};
use realm_core::checkpoint::weights::WeightMap;
use realm_core::index::shard::{ElementType, Shard};
use realm_core::model::config::ReaderConfig;
use realm_core::model::config::read_config;
use realm_core::model::strict::{LoadReport, check_strict_load};
use realm_core::text::corpus::fingerprint_of;
use serde::Serialize;

use crate::files::model_dir::TOKENIZER_FILES;

/// Tokenizer and config files copied as they are.

#[derive(Args)]
pub struct ConvertArgs {
    /// The checkpoint directory (config.json, pytorch_model.bin or model.safetensors, vocab.txt,
    /// block_records.npy for open QA).
    pub source: PathBuf,
    /// The folder to create: config.json, model.safetensors, vocab.txt, and for open QA
    /// index.shard and passages.jsonl, plus manifest.json.
    #[arg(long)]
    pub out: PathBuf,
    /// How index.shard stores block_emb (open-QA checkpoints only: the others have none).
    #[arg(long, default_value = "f32", value_parser = ["f32", "f16", "int8"])]
    pub element: String,
    /// Replace the output folder if it exists.
    #[arg(long)]
    pub force: bool,
}

/// What `realm convert` wrote, also saved as manifest.json.
#[derive(Debug, Serialize)]
pub struct Manifest {
    pub format: &'static str,
    pub source: String,
    pub weights_from: String,
    #[serde(flatten)]
    pub load: LoadReport,
    pub passages: Option<usize>,
    pub element: Option<String>,
}

pub fn run(args: &ConvertArgs) -> anyhow::Result<()> {
    let manifest = convert(&args.source, &args.out, &args.element, args.force)?;
    println!(
        "converted {} ({:?}, {} tensors{}) into {}",
        args.source.display(),
        manifest.load.family,
        manifest.load.tensors,
        manifest
            .load
            .blocks
            .map_or(String::new(), |b| format!(", {b} evidence blocks")),
        args.out.display()
    );
    Ok(())
}

/// Reads every tensor of `pytorch_model.bin` (a `torch.save` zip or legacy file).
pub fn read_pytorch(path: &Path) -> anyhow::Result<WeightMap> {
    let reader = pytorch_reader::PytorchReader::new(path)
        .with_context(|| format!("reading the PyTorch checkpoint {}", path.display()))?;
    let mut weights = WeightMap::new();
    for (name, tensor) in reader.into_tensors() {
        use pytorch_reader::DType;
        let dtype = match tensor.dtype() {
            DType::F32 => RawDtype::F32,
            DType::F16 => RawDtype::F16,
            DType::BF16 => RawDtype::BF16,
            DType::I64 => RawDtype::I64,
            DType::I32 => RawDtype::I32,
            DType::U8 => RawDtype::U8,
            DType::Bool => RawDtype::Bool,
            other => bail!(
                "{}: tensor `{name}` has dtype {other:?}, which realm-rs does not read",
                path.display()
            ),
        };
        let bytes = tensor
            .read()
            .with_context(|| format!("reading the PyTorch checkpoint {}", path.display()))?;
        let host = tensor_from_le_bytes(&name, dtype, tensor.shape().to_vec(), &bytes)
            .with_context(|| format!("reading the PyTorch checkpoint {}", path.display()))?;
        weights.insert(name, host);
    }
    Ok(weights)
}

/// Converts `source` into the folder `out` (see the module docs).
pub fn convert(source: &Path, out: &Path, element: &str, force: bool) -> anyhow::Result<Manifest> {
    crate::files::check_out(out, false, &[source])?;
    if out.exists() && !force {
        bail!("{} exists: pass --force to replace it", out.display());
    }
    let read = |name: &str| {
        std::fs::read(source.join(name))
            .with_context(|| format!("reading {}", source.join(name).display()))
    };
    let config_json = read("config.json")?;
    let config = read_config(&config_json).context("config.json")?;
    let reader_config: ReaderConfig =
        serde_json::from_slice(&config_json).context("config.json")?;
    let (mut weights, weights_from) = if source.join("model.safetensors").is_file() {
        (
            read_safetensors(&read("model.safetensors")?)
                .with_context(|| format!("{}", source.join("model.safetensors").display()))?,
            "model.safetensors",
        )
    } else if source.join("pytorch_model.bin").is_file() {
        (
            read_pytorch(&source.join("pytorch_model.bin"))?,
            "pytorch_model.bin",
        )
    } else {
        bail!(
            "{} holds neither model.safetensors nor pytorch_model.bin",
            source.display()
        );
    };
    let family = detect_family(&weights)?;
    let device = realm_core::device::cpu_device();
    let load = check_strict_load(family, &config, &reader_config, &weights, &device)
        .with_context(|| format!("{weights_from} does not load strictly as {family:?}"))?;

    let mut manifest = None;
    crate::files::shard_file::write_dir_atomic(out, |tmp| {
        let mut passages = None;
        let mut element_written = None;
        if family == Family::OpenQa {
            let emb = weights
                .remove("block_emb")
                .expect("an open-QA checkpoint has block_emb");
            let (rows, dim) = (emb.shape[0], emb.shape[1]);
            let element: ElementType = element.parse().map_err(anyhow::Error::msg)?;
            let records = if source.join("block_records.npy").is_file() {
                let records = read_block_records(&read("block_records.npy")?)?;
                if records.len() != rows {
                    bail!(
                        "block_records.npy holds {} blocks but block_emb has {rows} rows",
                        records.len()
                    );
                }
                // Every other command refuses a passage without text: say so here, not there.
                if let Some(id) = records.iter().position(|t| t.trim().is_empty()) {
                    bail!("block_records.npy: block {id} is empty (every block must hold text)");
                }
                Some(records)
            } else {
                None
            };
            // By value: an f32 shard keeps block_emb's buffer rather than copying gigabytes.
            let mut shard =
                Shard::from_f32_vec(emb.data, dim, (0..rows as u32).collect(), element)?;
            if let Some(records) = &records {
                // The passages below, as every command reads them back: untitled blocks.
                shard = shard.with_corpus(fingerprint_of(records.iter().map(|t| ("", t.as_str()))));
            }
            crate::files::shard_file::write_shard(&tmp.join("index.shard"), &shard)?;
            element_written = Some(format!("{element:?}").to_lowercase());
            if let Some(records) = records {
                let mut lines = String::new();
                for (id, text) in records.iter().enumerate() {
                    lines.push_str(&serde_json::to_string(
                        &serde_json::json!({"id": id, "text": text}),
                    )?);
                    lines.push('\n');
                }
                crate::files::shard_file::write_atomic(
                    &tmp.join("passages.jsonl"),
                    lines.as_bytes(),
                )?;
                passages = Some(records.len());
            } else {
                eprintln!("note: no block_records.npy: index.shard has no passage texts beside it");
            }
        }
        let bytes = realm_core::checkpoint::safetensors_file::write_safetensors(&weights)?;
        crate::files::shard_file::write_atomic(&tmp.join("model.safetensors"), &bytes)?;
        crate::files::shard_file::write_atomic(&tmp.join("config.json"), &config_json)?;
        for name in TOKENIZER_FILES {
            if source.join(name).is_file() {
                crate::files::shard_file::write_atomic(&tmp.join(name), &read(name)?)?;
            }
        }
        let written = Manifest {
            format: "realm-rs/1",
            source: source.display().to_string(),
            weights_from: weights_from.to_string(),
            load,
            passages,
            element: element_written,
        };
        crate::files::shard_file::write_atomic(
            &tmp.join("manifest.json"),
            serde_json::to_string_pretty(&written)?.as_bytes(),
        )?;
        manifest = Some(written);
        Ok(())
    })?;
    let manifest = manifest.expect("written above");
    Ok(manifest)
}
