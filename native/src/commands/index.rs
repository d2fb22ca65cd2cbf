//! `realm index`: embeds a corpus with a sentence model and writes an index shard (f32, f16,
//! or int8 with a scale per vector), or re-writes an existing shard in another element type.
//! The shard is written through a temporary file and renamed into place.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use realm_core::index::int8::dequantize_row;
use realm_core::index::shard::{ElementType, Shard, Vectors};

use crate::embed::{check_embedding_flags, embed_passages, read_fingerprinted_window};
use crate::files::model_dir::{frozen_sentence_model, read_base};
use crate::files::shard_file::{read_shard, write_shard};

#[derive(Args, Clone)]
pub struct IndexArgs {
    /// The shard to write.
    #[arg(long)]
    pub out: PathBuf,
    /// How the shard stores its vectors: int8 is a quarter of f32's size (one scale per
    /// vector), f16 half.
    #[arg(long, default_value = "int8", value_parser = ["f32", "f16", "int8"])]
    pub element: String,
    /// Re-write this shard in `--element` instead of embedding a corpus (same ids; an int8 or
    /// f16 source is widened first, so its rounding stays).
    #[arg(long, conflicts_with_all = ["model", "corpus", "limit", "skip", "max_length", "batch", "precision"])]
    pub from: Option<PathBuf>,
    /// A sentence-transformers BERT directory (config.json, model.safetensors, tokenizer).
    #[arg(long, default_value = "data/all-minilm-l6-v2")]
    pub model: PathBuf,
    /// Passages: JSON lines of {"title", "text"}, or a JSON object {title: {"extract"}}.
    /// Document ids are the passages' positions in this file.
    #[arg(long, default_value = crate::files::DEMO_CORPUS)]
    pub corpus: PathBuf,
    /// Embed only the first N passages (0: all of them), counted after `--skip`.
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Leave out the corpus's first N passages (the ids stay positions in the file).
    #[arg(long, default_value_t = 0)]
    pub skip: usize,
    /// Wordpieces per passage, [CLS] and [SEP] included; longer passages are truncated.
    #[arg(long, default_value_t = 128)]
    pub max_length: usize,
    /// Passages embedded per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Matrix products of the passage embedder: f32, bf16 (AMX or AVX-512 BF16), or auto
    /// (bf16 where the CPU has either, else f32).
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: crate::precision::PrecisionArg,
}

pub fn run(args: &IndexArgs) -> anyhow::Result<()> {
    let element: ElementType = args.element.parse().map_err(anyhow::Error::msg)?;
    // A folder is refused by check_out below, with or without --force.
    if args.out.exists() && !args.out.is_dir() && !args.force {
        bail!("{} exists; pass --force to replace it", args.out.display());
    }
    // Never the shard it re-writes: another element type loses what the first one held.
    let inputs: Vec<&std::path::Path> = match &args.from {
        Some(source) => vec![source.as_path()],
        None => vec![args.corpus.as_path(), args.model.as_path()],
    };
    crate::files::check_out(&args.out, true, &inputs)?;
    let shard = match &args.from {
        Some(source) => rewrite(&read_shard(source)?, element)?,
        None => embed_corpus(args, element)?,
    };
    write_shard(&args.out, &shard)?;
    let corpus = match shard.corpus {
        Some(fingerprint) => format!(", corpus fingerprint {fingerprint:08x}"),
        None => String::new(),
    };
    eprintln!(
        "wrote {}: {} vectors of {} dimensions as {}{corpus}",
        args.out.display(),
        shard.len(),
        shard.dim,
        args.element
    );
    Ok(())
}

fn embed_corpus(args: &IndexArgs, element: ElementType) -> anyhow::Result<Shard> {
    check_embedding_flags(args.batch, args.max_length)?;
    let precision = args.precision.resolve()?;
    let base = read_base(&args.model)?;
    let model = frozen_sentence_model(&base, precision)?;
    let (passages, corpus) = read_fingerprinted_window(&args.corpus, args.skip, args.limit)?;
    let vectors = embed_passages(&model, &passages, args.max_length, args.batch, true)?;
    let first = u32::try_from(args.skip).context("--skip is past u32 ids")?;
    let ids = (first..first + passages.len() as u32).collect();
    Ok(Shard::from_f32_vec(vectors, model.embedder.dim(), ids, element)?.with_corpus(corpus))
}

/// The same documents stored as `element` (the corpus fingerprint kept).
pub fn rewrite(shard: &Shard, element: ElementType) -> anyhow::Result<Shard> {
    let rewritten = Shard::from_f32_vec(widened(shard), shard.dim, shard.ids.clone(), element)?;
    Ok(Shard {
        corpus: shard.corpus,
        ..rewritten
    })
}

/// The shard's vectors as f32, `[count, dim]` flat (f16 and int8 widened, their rounding kept).
pub fn widened(shard: &Shard) -> Vec<f32> {
    match &shard.vectors {
        Vectors::F32(v) => v.clone(),
        Vectors::F16(v) => v.iter().map(|h| h.to_f32()).collect(),
        Vectors::Int8 { values, scales } => values
            .chunks_exact(shard.dim)
            .zip(scales)
            .flat_map(|(row, &scale)| dequantize_row(row, scale))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::shard_file::write_shard;

    #[test]
    fn the_command_rewrites_a_shard_file_and_never_clobbers_one() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("f32.shard");
        let shard = Shard::from_f32(
            &[0.5, -1.0, 0.25, 2.0, 0.0, -0.75],
            3,
            vec![7, 9],
            ElementType::F32,
        )
        .unwrap();
        write_shard(&source, &shard).unwrap();
        let out = dir.path().join("int8.shard");
        let args = IndexArgs {
            out: out.clone(),
            element: "int8".into(),
            from: Some(source.clone()),
            model: PathBuf::new(),
            corpus: PathBuf::new(),
            limit: 0,
            skip: 0,
            max_length: 128,
            batch: 16,
            force: false,
            precision: Default::default(),
        };
        run(&args).unwrap();
        let written = read_shard(&out).unwrap();
        assert_eq!(written, rewrite(&shard, ElementType::Int8).unwrap());

        let refused = run(&args).unwrap_err().to_string();
        assert!(refused.contains("--force"), "{refused}");
        // A damaged source is a clear error and leaves the existing output as it was.
        let mut bytes = std::fs::read(&source).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        std::fs::write(&source, bytes).unwrap();
        let damaged = format!(
            "{:#}",
            run(&IndexArgs {
                force: true,
                ..args.clone()
            })
            .unwrap_err()
        );
        assert!(damaged.contains("damaged"), "{damaged}");
        assert_eq!(read_shard(&out).unwrap(), written);
        // Onto itself, even with --force: the source is what the command reads.
        let onto = format!(
            "{:#}",
            run(&IndexArgs {
                out: source.clone(),
                force: true,
                ..args
            })
            .unwrap_err()
        );
        assert!(onto.contains("which this command reads"), "{onto}");
    }

    #[test]
    fn rewriting_keeps_ids_and_rounds_only_once() {
        let dim = 3;
        let vectors = [0.5, -1.0, 0.25, 2.0, 0.0, -0.75];
        let f32_shard = Shard::from_f32(&vectors, dim, vec![7, 9], ElementType::F32)
            .unwrap()
            .with_corpus(42);
        let int8 = rewrite(&f32_shard, ElementType::Int8).unwrap();
        assert_eq!((int8.ids.clone(), int8.corpus), (vec![7, 9], Some(42)));
        assert_eq!(int8.element_type(), ElementType::Int8);
        // int8 -> f32 -> int8 lands on the same values, and scales within f32 rounding.
        let back = rewrite(
            &rewrite(&int8, ElementType::F32).unwrap(),
            ElementType::Int8,
        )
        .unwrap();
        let (
            Vectors::Int8 {
                values: v1,
                scales: s1,
            },
            Vectors::Int8 {
                values: v2,
                scales: s2,
            },
        ) = (&int8.vectors, &back.vectors)
        else {
            panic!("int8 shards");
        };
        assert_eq!(v1, v2);
        for (a, b) in s1.iter().zip(s2) {
            assert!((a - b).abs() <= 1e-6 * a, "{a} vs {b}");
        }
        let f16 = rewrite(&f32_shard, ElementType::F16).unwrap();
        assert_eq!(rewrite(&f16, ElementType::F32).unwrap(), f32_shard);
    }
}
