//! `realm finetune`: trains the span reader on question/paragraph pairs (REALM section 3.5's
//! reader loss, the marginal over gold spans of width <= 10), starting from a plain BERT such
//! as all-MiniLM-L6-v2 with a fresh span head. With `--index`, each question's paragraph is read
//! beside `--negatives` passages the fixed retriever finds for it in `--corpus` (answer strings
//! found in them are weak gold spans), and the loss's softmax runs over the spans of all of
//! them, as REALM's reader does over its top-k blocks: scores that compare across passages are
//! what open retrieval needs. The step loop (learning rate, micro-batches, clipping, metrics,
//! checkpoints, Ctrl-C) is `train::steps`; this file says what a micro-batch is.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use burn::module::Module;
use burn::tensor::Device;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use realm_core::model::config::ReaderConfig;
use realm_core::model::reader::SpanReader;
use realm_core::qa::datasets::Question;
use realm_core::train::optim::bert_adamw;
use realm_core::train::reader::{ReaderFeatures, featurize, read_rows, reader_batch, span_loss};
use serde::{Deserialize, Serialize};

use crate::embed::embed;
use crate::files::model_dir::{BaseModel, read_base, sentence_model};
use crate::qa::data::{SquadSplit, paragraphs_outside, read_questions, squad_split};
use crate::qa::reader_model::{ReaderCard, export_reader, freeze_word_embeddings, fresh_reader};
use crate::qa::{IndexedCorpus, open_corpus};
use crate::train::order::Order;
use crate::train::run_dir::{Run, RunInputs, open_run, resume_or_start};
use crate::train::steps::{Ended, MicroLoss, Schedule, run_steps};

/// Where a run's tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum DeviceKind {
    /// burn's CPU backend.
    Cpu,
    /// burn's wgpu backend (Vulkan, Metal, DX12; lavapipe without a GPU).
    Wgpu,
}

impl DeviceKind {
    pub fn device(self) -> Device {
        match self {
            DeviceKind::Cpu => realm_core::device::cpu_device(),
            DeviceKind::Wgpu => realm_core::device::wgpu_device(),
        }
    }
}

#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct FinetuneArgs {
    /// The run directory to create (checkpoints, metrics.jsonl, the exported reader).
    #[arg(long, required_unless_present_any = ["resume", "dump_batches"])]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR from its latest checkpoint, with the flags it was started with
    /// (refused when a file they name changed since: DIR/inputs.json has their sha256).
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Base BERT directory (config.json, model.safetensors, tokenizer.json or vocab.txt).
    #[arg(long, default_value = "data/all-minilm-l6-v2")]
    pub model: PathBuf,
    /// Training questions with their paragraphs: SQuAD v1.1 JSON.
    #[arg(long)]
    pub squad: Option<PathBuf>,
    /// Which SQuAD articles to train on (`train`: all but the 12 held out).
    #[arg(long, value_enum, default_value = "train")]
    pub split: SquadSplit,
    /// An index shard of `--corpus` built with `--model` (`realm index`): each question's
    /// paragraph is read beside `--negatives` passages retrieved from it.
    #[arg(long, requires = "corpus")]
    pub index: Option<PathBuf>,
    /// The passages `--index` was built from.
    #[arg(long, requires = "index")]
    pub corpus: Option<PathBuf>,
    /// The BERT the negatives are retrieved with, when it is not `--model` (e.g. a `realm
    /// pretrain` run's `embedder/` beside its `encoder/` as `--model`); `--index` must be
    /// built with it.
    #[arg(long, value_name = "DIR", requires = "index")]
    #[serde(default)]
    pub retriever_model: Option<PathBuf>,
    /// Retrieved passages read beside each question's own paragraph (with `--index`).
    #[arg(long, default_value_t = 2)]
    pub negatives: usize,
    /// Optimiser steps.
    #[arg(long, default_value_t = 600)]
    pub steps: usize,
    /// Questions per micro-batch.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Micro-batches whose gradients are summed into one step.
    #[arg(long, default_value_t = 1)]
    pub accumulate: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Share of the steps spent warming up.
    #[arg(long, default_value_t = 0.1)]
    pub warmup: f64,
    /// Global gradient-norm clip.
    #[arg(long, default_value_t = 1.0)]
    pub clip: f32,
    /// Wordpieces of `[CLS] question [SEP] paragraph [SEP]`.
    #[arg(long, default_value_t = 256)]
    pub max_length: usize,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 50)]
    pub checkpoint_every: usize,
    /// Use only the first N training questions (0: all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Seed of the span head and the data order.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Train the word embeddings too (by default they stay the base model's, and the exported
    /// reader carries only the tensors that changed).
    #[arg(long)]
    pub train_word_embeddings: bool,
    /// Where training runs.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// Print no progress: no bar, no line per evaluation or checkpoint (metrics.jsonl has
    /// every step).
    #[arg(long)]
    #[serde(skip)]
    pub quiet: bool,
    /// Write the run's micro-batches (ids, type ids, passage mask, gold spans) to FILE as JSON
    /// lines, in the order the run reads them, and exit without training: the PyTorch peer
    /// benchmark (scripts/bench-qa.sh) trains on exactly these.
    #[arg(long, value_name = "FILE", hide = true, conflicts_with = "resume")]
    #[serde(skip)]
    pub dump_batches: Option<PathBuf>,
}

impl RunInputs for FinetuneArgs {
    fn inputs(&self) -> Vec<Option<&Path>> {
        vec![
            Some(self.model.as_path()),
            self.squad.as_deref(),
            self.index.as_deref(),
            self.corpus.as_deref(),
            self.retriever_model.as_deref(),
        ]
    }
}

pub fn run(args: &FinetuneArgs) -> anyhow::Result<()> {
    // `_lock` (not `_`) keeps the run directory locked to the end of the run.
    let Run {
        dir,
        args,
        resuming,
        lock: _lock,
    } = match &args.dump_batches {
        Some(_) => Run {
            dir: PathBuf::new(),
            args: args.clone(),
            resuming: false,
            lock: None,
        },
        None => open_run(args.out.as_deref(), args.resume.as_deref(), args, |saved| {
            FinetuneArgs {
                quiet: args.quiet,
                ..saved
            }
        })?,
    };
    check_args(&args)?;
    let device = args.device.device();
    let train_device = device.clone().autodiff();

    let base = read_base(&args.model)?;
    let reader_config: ReaderConfig = serde_json::from_str("{}")?;
    let squad = args
        .squad
        .as_ref()
        .context("--squad FILE is needed: the reader trains on SQuAD's paragraphs")?;
    let all = read_questions(squad)?;
    let unseen = paragraphs_outside(&all, args.split);
    let mut questions = squad_split(all, args.split);
    if args.limit > 0 {
        questions.truncate(args.limit);
    }
    let own_retriever = args
        .retriever_model
        .as_deref()
        .map(|dir| crate::qa::retriever_base(dir, &base))
        .transpose()?;
    let retrieved = match (&args.index, &args.corpus) {
        (Some(index), Some(corpus)) => Some(retrieve_negatives(
            own_retriever.as_ref().unwrap_or(&base),
            &questions,
            &open_corpus(corpus, index)?,
            &unseen,
            args.negatives,
        )?),
        _ => None,
    };
    let group = 1 + retrieved.as_ref().map_or(0, |_| args.negatives);
    let examples = featurize_all(
        &base.tokenizer,
        &questions,
        retrieved.as_deref(),
        args.max_length,
        reader_config.max_span_width,
    )?;
    if examples.is_empty() {
        bail!(
            "no training question has its answer inside the first {} wordpieces of its paragraph",
            args.max_length
        );
    }
    eprintln!(
        "finetune: {} of {} questions have a gold span within {} wordpieces; {} passage(s) per question; {} steps of {} x {}",
        examples.len(),
        questions.len(),
        args.max_length,
        group,
        args.steps,
        args.batch,
        args.accumulate
    );

    let lengths: Vec<usize> = examples
        .iter()
        .map(|e| {
            e.rows
                .iter()
                .map(|r| r.encoded.ids.len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut order = Order::new(&lengths, args.batch, args.seed);
    if let Some(file) = &args.dump_batches {
        return dump_batches(file, &args, &examples, &mut order, group);
    }

    let mut model = fresh_reader(&base, &reader_config, args.seed, &device)?;
    if !args.train_word_embeddings {
        model = freeze_word_embeddings(model);
    }
    let model: SpanReader = model.fork(&train_device).train();
    let (model, optim, start) = resume_or_start(&dir, resuming, model, bert_adamw)?;
    let schedule = Schedule {
        name: "finetune",
        dir: &dir,
        steps: args.steps,
        accumulate: args.accumulate,
        batch: args.batch,
        lr: args.lr,
        warmup: (args.warmup * args.steps as f64).round() as usize,
        clip: args.clip,
        checkpoint_every: args.checkpoint_every,
        seed: args.seed,
        plot_title: "realm finetune: span-reader loss",
        quiet: args.quiet,
        eval_every: 0,
        rates: Vec::new(),
    };
    let micro = |model: &SpanReader, position: usize| {
        let t = Instant::now();
        let picked = order.batch(position).to_vec();
        let rows: Vec<&_> = picked
            .iter()
            .flat_map(|&i| examples[i].rows.iter().map(|r| &r.encoded))
            .collect();
        let gold: Vec<Vec<(u32, u32)>> = picked
            .iter()
            .flat_map(|&i| examples[i].rows.iter().map(|r| r.gold.clone()))
            .collect();
        let batch = reader_batch(&rows, base.tokenizer.pad_id, reader_config.max_span_width);
        let data_seconds = t.elapsed().as_secs_f64();
        let output = read_rows(model, &batch, &train_device);
        let loss = span_loss(&output, &gold, group).div_scalar(args.accumulate as f64);
        let names: Vec<&str> = picked.iter().map(|&i| examples[i].id.as_str()).collect();
        Ok(MicroLoss {
            loss,
            data_seconds,
            describe: format!("questions {}", names.join(", ")),
            extra: serde_json::Value::Null,
        })
    };
    let model = match run_steps(&schedule, model, optim, start, micro, None, None)? {
        Ended::Finished(model) => model,
        Ended::Stopped(_) => return Ok(()),
    };
    let card = ReaderCard {
        base_sha256: String::new(),
        base_rounded_from: None,
        sha256: String::new(),
        head_seed: args.seed,
        reader: reader_config,
        max_length: args.max_length,
        // The reader alone until the weight is chosen on training questions
        // (scripts/answer_weight.py over `realm eval --out`'s predictions).
        retriever_weight: 0.0,
        trained: serde_json::json!({
            "data": format!("{} ({:?} split), {} questions with a gold span", squad.display(), args.split, examples.len()),
            "passages_per_question": group,
            "negatives_from": args.index.as_ref().map(|i| i.display().to_string()),
            "steps": args.steps,
            "batch": args.batch * args.accumulate,
            "lr": args.lr,
        }),
    };
    export_reader(&dir, &model.valid(), &base, card)?;
    eprintln!(
        "finetune: done; the reader is in {} (reader.safetensors, reader.json)",
        dir.display()
    );
    Ok(())
}

/// A featurised question: its id and its rows, its own paragraph first, then the retrieved
/// passages.
struct Example {
    id: String,
    rows: Vec<ReaderFeatures>,
}

/// For every question, the texts of the first `negatives` passages the base model's sentence
/// embedding retrieves from `corpus` that are neither the question's own paragraph nor one of
/// the `unseen` (held-out) paragraphs.
fn retrieve_negatives(
    base: &BaseModel,
    questions: &[Question],
    corpus: &IndexedCorpus,
    unseen: &HashSet<String>,
    negatives: usize,
) -> anyhow::Result<Vec<Vec<String>>> {
    if negatives == 0 {
        bail!("--negatives must be at least 1 with --index");
    }
    // Held-out paragraphs can fill the top of the list: look deep enough past them.
    let depth = (negatives + 32).min(corpus.index.len());
    let mut retriever = sentence_model(base, &realm_core::device::cpu_device())?;
    // The retriever stays fixed while the reader trains: the frozen forward, at f32 (the
    // negatives do not depend on the CPU's precision).
    let eps = base.config.layer_norm_eps;
    // Bert's own freeze, not burn's `Module::freeze` (which only stops gradients).
    let f32 = realm_core::linalg::Precision::F32;
    realm_core::model::bert::Bert::freeze(&mut retriever.embedder.bert, eps, f32);
    let bar = ProgressBar::new(questions.len() as u64);
    bar.set_style(ProgressStyle::with_template(
        "finetune: retrieving negatives {bar:40} {pos}/{len} [{elapsed_precise}, {eta} left]",
    )?);
    let mut out = Vec::with_capacity(questions.len());
    for chunk in questions.chunks(32) {
        let texts: Vec<&str> = chunk.iter().map(|q| q.question.as_str()).collect();
        let queries = embed(&retriever, &texts, 128)?;
        for (q, hits) in chunk.iter().zip(corpus.index.search(&queries, depth)?) {
            let own = q.context.as_ref().map(|c| c.text.trim());
            let picked: Vec<String> = hits
                .iter()
                .map(|h| {
                    corpus.passages[corpus.ids[h.id as usize] as usize]
                        .text
                        .clone()
                })
                .filter(|text| Some(text.trim()) != own && !unseen.contains(text.trim()))
                .take(negatives)
                .collect();
            if picked.len() < negatives {
                bail!(
                    "question {}: only {} passages of the corpus besides its own paragraph came back for --negatives {negatives}",
                    q.id,
                    picked.len()
                );
            }
            out.push(picked);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Featurises each question with its paragraph (annotated spans) and its retrieved passages
/// (answer strings found in them); questions with no gold span in any row are dropped.
fn featurize_all(
    tokenizer: &realm_core::text::wordpiece::WordPieceTokenizer,
    questions: &[Question],
    retrieved: Option<&[Vec<String>]>,
    max_length: usize,
    max_span_width: usize,
) -> anyhow::Result<Vec<Example>> {
    let mut out = Vec::new();
    for (n, q) in questions.iter().enumerate() {
        let Some(context) = &q.context else {
            bail!(
                "question {} has no paragraph: the reader trains on SQuAD-style files",
                q.id
            );
        };
        let mut rows = vec![featurize(
            tokenizer,
            &q.question,
            &context.text,
            &context.answers,
            max_length,
            max_span_width,
        )?];
        for passage in retrieved.map_or(&[][..], |r| &r[n][..]) {
            rows.push(featurize(
                tokenizer,
                &q.question,
                passage,
                &q.gold.find_in(passage),
                max_length,
                max_span_width,
            )?);
        }
        if rows.iter().any(|r| !r.gold.is_empty()) {
            out.push(Example {
                id: q.id.clone(),
                rows,
            });
        }
    }
    Ok(out)
}

/// Writes every micro-batch of the run, one JSON line each: `step`, `group` (rows per
/// question), and per row `ids`, `type_ids`, `passage` (1 on the passage's wordpieces) and
/// `gold` (inclusive wordpiece spans).
fn dump_batches(
    file: &std::path::Path,
    args: &FinetuneArgs,
    examples: &[Example],
    order: &mut Order,
    group: usize,
) -> anyhow::Result<()> {
    let mut out = Vec::new();
    for position in 0..args.steps * args.accumulate {
        let rows: Vec<serde_json::Value> = order
            .batch(position)
            .iter()
            .flat_map(|&i| &examples[i].rows)
            .map(|r| {
                let passage: Vec<u8> = r
                    .encoded
                    .sequence_ids
                    .iter()
                    .map(|s| u8::from(*s == Some(1)))
                    .collect();
                serde_json::json!({
                    "ids": r.encoded.ids,
                    "type_ids": r.encoded.type_ids,
                    "passage": passage,
                    "gold": r.gold,
                })
            })
            .collect();
        serde_json::to_writer(
            &mut out,
            &serde_json::json!({"step": position / args.accumulate, "group": group, "rows": rows}),
        )?;
        out.push(b'\n');
    }
    crate::files::shard_file::write_atomic(file, &out)?;
    eprintln!(
        "finetune: wrote {} micro-batches to {}",
        args.steps * args.accumulate,
        file.display()
    );
    Ok(())
}

fn check_args(args: &FinetuneArgs) -> anyhow::Result<()> {
    if args.steps == 0 || args.batch == 0 || args.accumulate == 0 || args.checkpoint_every == 0 {
        bail!("--steps, --batch, --accumulate and --checkpoint-every must be at least 1");
    }
    if !(args.lr > 0.0 && args.lr.is_finite()) {
        bail!("--lr must be a positive number, not {}", args.lr);
    }
    if !(0.0..1.0).contains(&args.warmup) {
        bail!(
            "--warmup is a share of the steps in [0, 1), not {}",
            args.warmup
        );
    }
    if args.max_length < 16 || args.max_length > 512 {
        bail!(
            "--max-length must be in 16..=512 (the model has 512 positions), not {}",
            args.max_length
        );
    }
    Ok(())
}
