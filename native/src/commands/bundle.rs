//! `realm bundle`: one file holding everything the browser engine loads (the npm package's
//! `bundle` option and the `<realm-qa bundle="...">` attribute): a plain tar archive of the base
//! model's config.json, tokenizer.json and model.safetensors, the reader's reader.json and
//! reader.safetensors, the index shard as index.shard and the passages as passages.jsonl, and
//! where the reader's directory holds one, its fine-tuned question embedder's query.json and
//! query.safetensors. Checked before a byte is written (the reader and the question embedder
//! load over the model, the index holds one vector of the model's width per passage);
//! written through a temporary file; the same inputs give the same bytes (fixed modes and
//! times), so caches keep it. `--f16` stores the base model's weights as F16 and restamps the
//! cards with the rounded model's sha256 (keeping the original's as `base_rounded_from`), so
//! the reader and the question embedder load over it.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use realm_core::checkpoint::safetensors_file::write_safetensors_f16;
use realm_core::qa::models::{BaseModel, sha256_hex};

use crate::embed::read_passages;
use crate::files::model_dir::read_base;
use crate::files::shard_file::{read_shard, write_atomic_with};
use crate::qa::query_model::{QueryCard, question_embedder};
use crate::qa::reader_model::{ReaderCard, load_reader};

#[derive(Args, Clone)]
pub struct BundleArgs {
    /// The bundle to write (a tar archive; by convention NAME.realm.tar).
    #[arg(long)]
    pub out: PathBuf,
    /// The base BERT the reader sits on and the questions are embedded with.
    #[arg(long, default_value = "data/all-minilm-l6-v2")]
    pub model: PathBuf,
    /// The trained reader: a directory with reader.json and reader.safetensors (and
    /// query.json + query.safetensors, a fine-tuned question embedder, packed too where there).
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

/// The archive's members in order: (name in the bundle, file on disk); the question
/// embedder's two files where `query` (the reader's directory holds them).
fn members(args: &BundleArgs, query: bool) -> Vec<(&'static str, PathBuf)> {
    let mut members = vec![
        ("config.json", args.model.join("config.json")),
        ("tokenizer.json", args.model.join("tokenizer.json")),
        ("model.safetensors", args.model.join("model.safetensors")),
        ("reader.json", args.reader.join("reader.json")),
        ("reader.safetensors", args.reader.join("reader.safetensors")),
        ("index.shard", args.index.clone()),
        ("passages.jsonl", args.corpus.clone()),
    ];
    if query {
        members.push(("query.json", args.reader.join("query.json")));
        members.push(("query.safetensors", args.reader.join("query.safetensors")));
    }
    members
}

/// The cards `--f16` restamps: each names the model its tensors go over.
struct Cards {
    reader: ReaderCard,
    query: Option<QueryCard>,
}

pub fn run(args: &BundleArgs) -> anyhow::Result<()> {
    // A folder is refused by check_out below, with or without --force.
    if args.out.exists() && !args.out.is_dir() && !args.force {
        bail!("{} exists; pass --force to replace it", args.out.display());
    }
    let (base, cards) = check(args)?;
    let members = members(args, cards.query.is_some());
    let inputs: Vec<&std::path::Path> = members.iter().map(|(_, p)| p.as_path()).collect();
    crate::files::check_out(&args.out, true, &inputs)?;
    for (_, path) in &members {
        if !path.is_file() {
            bail!("{} is missing: a bundle needs it", path.display());
        }
    }
    // With --f16 the model and the cards (which name the model's sha256) are made here;
    // every other member is copied from its file.
    let made = match args.f16 {
        true => half_model(&base, cards)?,
        false => Vec::new(),
    };
    write_atomic_with(&args.out, |out| {
        let mut tar = tar::Builder::new(out);
        for (name, path) in &members {
            match made.iter().find(|(made, _)| made == name) {
                Some((_, bytes)) => append(&mut tar, name, bytes.len() as u64, bytes.as_slice())?,
                None => {
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
/// the base model and the cards they read.
fn check(args: &BundleArgs) -> anyhow::Result<(BaseModel, Cards)> {
    let base = read_base(&args.model)?;
    let cpu = realm_core::device::cpu_device();
    let (_, reader) = load_reader(&args.reader, &base, &cpu)?;
    let (_, query) = question_embedder(&base, Some(&args.reader), &cpu)?;
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
    Ok((base, Cards { reader, query }))
}

/// The base model with every tensor stored as F16, and the cards naming it as their base
/// (`base_sha256`) and the model it rounds (`base_rounded_from`): (member, bytes).
fn half_model(base: &BaseModel, cards: Cards) -> anyhow::Result<Vec<(&'static str, Vec<u8>)>> {
    let half = write_safetensors_f16(&base.weights)?;
    let rounded = sha256_hex(&half);
    let Cards {
        mut reader,
        mut query,
    } = cards;
    reader.base_rounded_from = Some(std::mem::replace(&mut reader.base_sha256, rounded.clone()));
    let mut made = vec![
        ("model.safetensors", half),
        ("reader.json", serde_json::to_vec_pretty(&reader)?),
    ];
    if let Some(query) = &mut query {
        query.base_rounded_from = Some(std::mem::replace(&mut query.base_sha256, rounded));
        made.push(("query.json", serde_json::to_vec_pretty(query)?));
    }
    Ok(made)
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
