//! `realm bundle`: one file holding everything the browser engine loads (the npm package's
//! `bundle` option and the `<realm-qa bundle="...">` attribute): a plain tar archive of the base
//! model's config.json, tokenizer.json and model.safetensors, the reader's reader.json and
//! reader.safetensors, the index shard as index.shard and the passages as passages.jsonl.
//! Checked before a byte is written (the reader loads over the model, the index holds one
//! vector of the model's width per passage); written through a temporary file; the same
//! inputs give the same bytes (fixed modes and times), so caches keep it. `--f16` stores the
//! base model's weights as F16 and restamps the reader's card with the rounded model's sha256
//! (keeping the original's as `base_rounded_from`), so the reader loads over it.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use realm_core::checkpoint::safetensors_file::write_safetensors_f16;
use realm_core::qa::models::{BaseModel, sha256_hex};

use crate::embed::read_passages;
use crate::files::model_dir::read_base;
use crate::files::shard_file::{read_shard, write_atomic_with};
use crate::qa::reader_model::{ReaderCard, load_reader};

#[derive(Args, Clone)]
pub struct BundleArgs {
    /// The bundle to write (a tar archive; by convention NAME.realm.tar).
    #[arg(long)]
    pub out: PathBuf,
    /// The base BERT the reader sits on and the questions are embedded with.
    #[arg(long, default_value = "data/all-minilm-l6-v2")]
    pub model: PathBuf,
    /// The trained reader: a directory with reader.json and reader.safetensors.
    #[arg(long, default_value = crate::files::DEMO_READER)]
    pub reader: PathBuf,
    /// The passages, in the order the index's document ids count them.
    #[arg(long, default_value = crate::files::DEMO_CORPUS)]
    pub corpus: PathBuf,
    /// The corpus's index shard, from `realm index` (int8 keeps the bundle small).
    #[arg(long, default_value = crate::files::DEMO_INDEX)]
    pub index: PathBuf,
    /// Store the base model's weights as F16 (rounded to nearest): half its bytes (the
    /// all-MiniLM-L6-v2 question embedder 90.9 -> 45.5 MB; the reader is F16 already). The
    /// engine widens them to f32 on load; what it costs in recall and EM is in README.
    #[arg(long)]
    pub f16: bool,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// The archive's members in order: (name in the bundle, file on disk).
fn members(args: &BundleArgs) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("config.json", args.model.join("config.json")),
        ("tokenizer.json", args.model.join("tokenizer.json")),
        ("model.safetensors", args.model.join("model.safetensors")),
        ("reader.json", args.reader.join("reader.json")),
        ("reader.safetensors", args.reader.join("reader.safetensors")),
        ("index.shard", args.index.clone()),
        ("passages.jsonl", args.corpus.clone()),
    ]
}

pub fn run(args: &BundleArgs) -> anyhow::Result<()> {
    // A folder is refused by check_out below, with or without --force.
    if args.out.exists() && !args.out.is_dir() && !args.force {
        bail!("{} exists; pass --force to replace it", args.out.display());
    }
    let (base, card) = check(args)?;
    let members = members(args);
    let inputs: Vec<&std::path::Path> = members.iter().map(|(_, p)| p.as_path()).collect();
    crate::files::check_out(&args.out, true, &inputs)?;
    for (_, path) in &members {
        if !path.is_file() {
            bail!("{} is missing: a bundle needs it", path.display());
        }
    }
    // With --f16 the model and the reader's card (which names the model's sha256) are made
    // here; every other member is copied from its file.
    let made = match args.f16 {
        true => Some(half_model(&base, card)?),
        false => None,
    };
    write_atomic_with(&args.out, |out| {
        let mut tar = tar::Builder::new(out);
        for (name, path) in &members {
            match (&made, *name) {
                (Some((model, _)), "model.safetensors") => {
                    append(&mut tar, name, model.len() as u64, model.as_slice())?
                }
                (Some((_, card)), "reader.json") => {
                    append(&mut tar, name, card.len() as u64, card.as_slice())?
                }
                _ => {
                    let file = std::fs::File::open(path)?;
                    append(&mut tar, name, file.metadata()?.len(), file)?
                }
            }
        }
        tar.finish()
    })?;
    let bytes = std::fs::metadata(&args.out)?.len();
    eprintln!(
        "wrote {}: {} files, {:.1} MB",
        args.out.display(),
        members.len(),
        bytes as f64 / 1e6
    );
    Ok(())
}

/// The checks the browser engine would make, here, where the error can name the file; returns
/// the base model and the reader's card they read.
fn check(args: &BundleArgs) -> anyhow::Result<(BaseModel, ReaderCard)> {
    let base = read_base(&args.model)?;
    let (_, card) = load_reader(&args.reader, &base, &realm_core::device::cpu_device())?;
    if args.reader.join("query.json").exists() {
        eprintln!(
            "warning: {} also holds a fine-tuned question embedder (query.json), which the browser engine does not load: its answers may differ from `realm ask`'s",
            args.reader.display()
        );
    }
    let shard = read_shard(&args.index)?;
    let passages = read_passages(&args.corpus, 0)?;
    if shard.dim != base.config.hidden_size {
        bail!(
            "{} holds {}-dimensional vectors; {} embeds in {}: index the corpus with that model (`realm index --model {}`)",
            args.index.display(),
            shard.dim,
            args.model.display(),
            base.config.hidden_size,
            args.model.display()
        );
    }
    if shard.len() != passages.len() {
        bail!(
            "{} holds {} vectors for the {} passages of {}: build it from that corpus (`realm index --corpus {}`)",
            args.index.display(),
            shard.len(),
            passages.len(),
            args.corpus.display(),
            args.corpus.display()
        );
    }
    realm_core::qa::engine::check_corpus(&shard.ids, shard.corpus, &passages).with_context(
        || {
            format!(
                "{} does not index {}: build it from that corpus (`realm index --corpus {}`)",
                args.index.display(),
                args.corpus.display(),
                args.corpus.display()
            )
        },
    )?;
    Ok((base, card))
}

/// The base model with every tensor stored as F16, and the reader's card naming it as the
/// reader's base (`base_sha256`) and the model it rounds (`base_rounded_from`).
fn half_model(base: &BaseModel, mut card: ReaderCard) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let half = write_safetensors_f16(&base.weights)?;
    card.base_rounded_from = Some(std::mem::replace(&mut card.base_sha256, sha256_hex(&half)));
    Ok((half, serde_json::to_vec_pretty(&card)?))
}

/// Appends the `len` bytes of `data` as `name` with a fixed mode and time, so equal inputs
/// give equal bundles.
fn append(
    tar: &mut tar::Builder<impl std::io::Write>,
    name: &str,
    len: u64,
    data: impl std::io::Read,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(len);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append_data(&mut header, name, data)
}
