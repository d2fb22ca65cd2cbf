//! `realm finetune`: trains the span reader on question/paragraph pairs (REALM section 3.5's
//! reader loss, the marginal over gold spans of width <= 10), starting from a plain BERT such
//! as all-MiniLM-L6-v2 with a fresh span head. With `--index`, each question's paragraph is read
//! beside `--negatives` passages the fixed retriever finds for it in `--corpus` (answer strings
//! found in them are weak gold spans), and the loss's softmax runs over the spans of all of
//! them, as REALM's reader does over its top-k blocks: scores that compare across passages are
//! what open retrieval needs.
//!
//! Questions without paragraphs (NQ-open, WebQuestions, CuratedTrec: REALM section 4.1's
//! fine-tuning sets) are read from their top `--negatives` retrieved passages alone, the answer
//! strings or patterns found there as gold spans; `--init-reader` starts from a trained reader.
//! Several question files train one reader in one run (`--questions` repeated): every question
//! then reads as many passages as a SQuAD question does, its paragraph counted.
//!
//! With `--retriever-layers N` the question embedder trains too, as REALM fine-tunes: each
//! passage's retriever score f(x, z) joins its spans' logits, so the marginal
//! p(y|x) = sum_z p(y|z,x) p(z|x) reaches Embed_input, and the retriever's own marginal over
//! its top B is added. Embed_doc stays the index's; the passages read stay those the starting
//! retriever found (their scores come from the embedder as it trains), while the top B is
//! searched afresh each step.
//!
//! The step loop (learning rate, micro-batches, clipping, metrics, checkpoints, Ctrl-C) is
//! `train::steps`; this file says what a micro-batch is.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use realm_core::checkpoint::module_io::param_ids;
use realm_core::linalg::Precision;
use realm_core::model::config::ReaderConfig;
use realm_core::model::embedder::RealmEmbedder;
use realm_core::model::reader::SpanReader;
use realm_core::qa::datasets::Question;
use realm_core::qa::engine::QUESTION_MAX_LENGTH;
use realm_core::qa::splits::squad_article_is_held_out;
use realm_core::train::optim::bert_adamw;
use realm_core::train::reader::{
    ReaderBatch, ReaderFeatures, featurize, read_rows, reader_batch, span_loss,
};
use serde::{Deserialize, Serialize};

use crate::embed::embed;
use crate::files::model_dir::{
    BaseModel, SentenceModel, frozen_sentence_model, read_base, sentence_model,
};
use crate::qa::data::{
    SquadSplit, check_training_split, paragraphs_outside, read_training_file, squad_split,
};
use crate::qa::fixed_passages::FixedPassages;
use crate::qa::query_model::{export_query_encoder, top_layers, trainable_embedder};
use crate::qa::reader_model::{
    ReaderCard, export_reader, freeze_word_embeddings, fresh_reader, load_reader,
};
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
    /// Training questions: SQuAD v1.1 JSON (each read with its own paragraph and
    /// `--negatives` retrieved passages), or questions without paragraphs, as REALM fine-tunes
    /// on NQ-open JSON lines, WebQuestions JSON or CuratedTrec TSV (each read from the top
    /// `--negatives` passages `--index` retrieves for it; the answer strings, or CuratedTrec's
    /// patterns, found in them are the gold spans; questions with none are left out). The
    /// sets' test files are refused, and their questions left out wherever they appear
    /// (core/src/qa/splits.rs). Repeat the flag to train on
    /// several files in one run: with a SQuAD file among them every question reads the same
    /// number of passages, so one without a paragraph reads the top `--negatives` + 1; a file
    /// named twice is read twice (its questions drawn twice as often).
    #[arg(long, visible_alias = "questions", value_name = "FILE")]
    #[serde(default, deserialize_with = "one_or_many")]
    pub squad: Vec<PathBuf>,
    /// The SQuAD articles trained on: always the 36 training ones (not a flag; kept in the
    /// saved arguments of a run).
    #[arg(skip)]
    #[serde(default)]
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
    /// Retrieved passages read beside each question's own paragraph (with `--index`); for
    /// questions without paragraphs, the passages read (one more in a run with SQuAD files).
    #[arg(long, default_value_t = 2)]
    pub negatives: usize,
    /// Start from this trained reader (reader.json + reader.safetensors over `--model`, e.g.
    /// native/models/demo-reader) instead of a fresh span head; its answer weight carries over.
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub init_reader: Option<PathBuf>,
    /// Train the question embedder's top N layers with the reader, as REALM fine-tunes
    /// (section 3.5): each passage read scores f(x, z) = `--scale` x Embed_input(x) .
    /// Embed_doc(z), Embed_doc fixed (`--index`'s embeddings), added to its spans' logits, so
    /// the reader's marginal over passages and spans reaches the retriever; the retriever's
    /// own loss over the top `--top-b` passages is added. The run then writes
    /// query.safetensors beside the reader. 0: the retriever stays fixed.
    #[arg(long, default_value_t = 0, value_name = "N", requires = "index")]
    #[serde(default)]
    pub retriever_layers: usize,
    /// Passages of the retriever loss's marginal (REALM's B; with `--retriever-layers`); 0:
    /// no retriever loss, the retriever learns from the reader's marginal alone.
    #[arg(long, default_value_t = 100, requires = "retriever_layers")]
    #[serde(default = "default_top_b")]
    pub top_b: usize,
    /// f(x, z) is this times the inner product of the unit-length embeddings (with
    /// `--retriever-layers`; the exported reader's `retriever_weight`).
    #[arg(long, default_value_t = 20.0, requires = "retriever_layers")]
    #[serde(default = "default_scale")]
    pub scale: f32,
    /// The question embedder's learning rate as a share of `--lr` (with `--retriever-layers`).
    #[arg(long, default_value_t = 0.5, requires = "retriever_layers")]
    #[serde(default = "default_retriever_lr_factor")]
    pub retriever_lr_factor: f64,
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
    /// Use only the first N training questions of each file (0: all).
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

/// `--squad` as args.json holds it: a list, or from runs of before 2026-12-07 one path or null.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Saved {
        Many(Vec<PathBuf>),
        One(Option<PathBuf>),
    }
    Ok(match Saved::deserialize(d)? {
        Saved::Many(files) => files,
        Saved::One(file) => file.into_iter().collect(),
    })
}

fn default_top_b() -> usize {
    100
}

fn default_scale() -> f32 {
    20.0
}

fn default_retriever_lr_factor() -> f64 {
    0.5
}

impl RunInputs for FinetuneArgs {
    fn inputs(&self) -> Vec<Option<&Path>> {
        let mut inputs = vec![
            Some(self.model.as_path()),
            self.index.as_deref(),
            self.corpus.as_deref(),
            self.retriever_model.as_deref(),
            self.init_reader.as_deref(),
        ];
        inputs.extend(self.squad.iter().map(|f| Some(f.as_path())));
        inputs
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
    if args.squad.is_empty() {
        bail!("--squad FILE (or --questions FILE) is needed: the questions to train on");
    }
    let Training {
        questions,
        mut unseen,
        open_files,
    } = read_training_questions(&args)?;
    // Questions without paragraphs (NQ-open, WebQuestions, CuratedTrec) read retrieved
    // passages alone; beside SQuAD's, as many as a SQuAD question reads in all.
    let open = open_files == args.squad.len();
    let own_retriever = args
        .retriever_model
        .as_deref()
        .map(|dir| crate::qa::retriever_base(dir, &base))
        .transpose()?;
    let layers = own_retriever
        .as_ref()
        .unwrap_or(&base)
        .config
        .num_hidden_layers;
    if args.retriever_layers > layers {
        bail!("--retriever-layers must be in 0..={layers} (the retriever's layers)");
    }
    let retrieved = match (&args.index, &args.corpus) {
        (Some(index), Some(corpus)) => {
            let corpus = open_corpus(corpus, index)?;
            if open_files > 0 {
                // Whatever the questions, the reader never reads a held-out SQuAD article.
                unseen.extend(held_out_passages(&corpus));
            }
            Some(retrieve_negatives(
                own_retriever.as_ref().unwrap_or(&base),
                &questions,
                &corpus,
                &unseen,
                args.negatives,
                !open,
            )?)
        }
        _ => None,
    };
    let group = usize::from(!open) + retrieved.as_ref().map_or(0, |_| args.negatives);
    let examples = featurize_all(
        &base.tokenizer,
        &questions,
        retrieved.as_deref(),
        args.max_length,
        reader_config.max_span_width,
    )?;
    if examples.is_empty() {
        match open {
            true => bail!(
                "no training question has an answer in its top {} passages: retrieve more with --negatives, or index a corpus that holds their answers",
                args.negatives
            ),
            false => bail!(
                "no training question has its answer inside the first {} wordpieces of its paragraph{}",
                args.max_length,
                if open_files > 0 {
                    " or of its retrieved passages"
                } else {
                    ""
                }
            ),
        }
    }
    eprintln!(
        "finetune: {} of {} questions have a gold span within {} wordpieces{}; {} passage(s) per question; {} steps of {} x {}",
        examples.len(),
        questions.len(),
        args.max_length,
        if open {
            " of their retrieved passages"
        } else {
            ""
        },
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

    let (mut reader, init_weight) = match &args.init_reader {
        Some(dir) => {
            let (reader, card) = load_reader(dir, &base, &device)?;
            if card.reader.max_span_width != reader_config.max_span_width {
                bail!(
                    "{}: its spans are at most {} wordpieces wide, this run's {}",
                    dir.display(),
                    card.reader.max_span_width,
                    reader_config.max_span_width
                );
            }
            (reader, Some(card.retriever_weight))
        }
        None => (
            fresh_reader(&base, &reader_config, args.seed, &device)?,
            None,
        ),
    };
    if !args.train_word_embeddings {
        reader = freeze_word_embeddings(reader);
    }
    let reader: SpanReader = reader.fork(&train_device).train();
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
    let input = |picked: &[usize]| reader_input(&examples, picked, &base, &reader_config);
    let trained = if args.retriever_layers == 0 {
        let (model, optim, start) = resume_or_start(&dir, resuming, reader, bert_adamw)?;
        let micro = |model: &SpanReader, position: usize| {
            let t = Instant::now();
            let picked = order.batch(position).to_vec();
            let (batch, gold) = input(&picked);
            let data_seconds = t.elapsed().as_secs_f64();
            let output = read_rows(model, &batch, &train_device);
            let loss = span_loss(&output, &gold, group).div_scalar(args.accumulate as f64);
            Ok(MicroLoss {
                loss,
                data_seconds,
                describe: describe(&examples, &picked),
                extra: serde_json::Value::Null,
            })
        };
        match run_steps(&schedule, model, optim, start, micro, None, None)? {
            Ended::Finished(model) => Some(model),
            Ended::Stopped(_) => None,
        }
    } else {
        let retriever_base = own_retriever.as_ref().unwrap_or(&base);
        let joint = JointSetup {
            args: &args,
            dir: &dir,
            resuming,
            retriever_base,
            questions: &questions,
            retrieved: retrieved.as_deref().expect("clap requires --index"),
            examples: &examples,
            unseen: &unseen,
            group,
        };
        train_joint(joint, reader, schedule, &mut order, &input, &train_device)?
    };
    let Some(model) = trained else {
        return Ok(());
    };
    let card = ReaderCard {
        base_sha256: String::new(),
        base_rounded_from: None,
        sha256: String::new(),
        head_seed: args.seed,
        reader: reader_config,
        max_length: args.max_length,
        // Trained beside the retriever, the reader's logits expect f(x, z) added at the
        // training scale; alone, the reader until the weight is chosen on training questions
        // (scripts/answer_weight.py over `realm eval --out`'s predictions).
        retriever_weight: if args.retriever_layers > 0 {
            args.scale
        } else {
            init_weight.unwrap_or(0.0)
        },
        trained: serde_json::json!({
            "data": format!("{} ({:?} split), {} questions with a gold span", names(&args.squad), args.split, examples.len()),
            "init_reader": args.init_reader.as_ref().map(|d| d.display().to_string()),
            "passages_per_question": group,
            "negatives_from": args.index.as_ref().map(|i| i.display().to_string()),
            "retriever_layers": args.retriever_layers,
            "steps": args.steps,
            "batch": args.batch * args.accumulate,
            "lr": args.lr,
        }),
    };
    export_reader(&dir, &model.valid(), &base, card)?;
    eprintln!(
        "finetune: done; the reader is in {} (reader.safetensors, reader.json{})",
        dir.display(),
        if args.retriever_layers > 0 {
            ", and the question embedder: query.safetensors, query.json"
        } else {
            ""
        }
    );
    Ok(())
}

/// The reader's rows for the questions `picked` (each question's passages in a row) and
/// their gold spans.
fn reader_input(
    examples: &[Example],
    picked: &[usize],
    base: &BaseModel,
    reader_config: &ReaderConfig,
) -> (ReaderBatch, Vec<Vec<(u32, u32)>>) {
    let rows: Vec<&_> = picked
        .iter()
        .flat_map(|&i| examples[i].rows.iter().map(|r| &r.encoded))
        .collect();
    let gold: Vec<Vec<(u32, u32)>> = picked
        .iter()
        .flat_map(|&i| examples[i].rows.iter().map(|r| r.gold.clone()))
        .collect();
    let batch = reader_batch(&rows, base.tokenizer.pad_id, reader_config.max_span_width);
    (batch, gold)
}

/// The micro-batch's questions, for the error a non-finite loss stops the run with.
fn describe(examples: &[Example], picked: &[usize]) -> String {
    let names: Vec<&str> = picked.iter().map(|&i| examples[i].id.as_str()).collect();
    format!("questions {}", names.join(", "))
}

/// The two networks REALM fine-tunes for open QA: the reader and the question embedder
/// (Embed_input; the passages keep the index's embeddings).
#[derive(Module, Debug)]
pub struct ReaderAndRetriever {
    pub reader: SpanReader,
    pub embedder: RealmEmbedder,
}

/// What `--retriever-layers` adds to a fine-tuning run's setup.
struct JointSetup<'a> {
    args: &'a FinetuneArgs,
    dir: &'a Path,
    resuming: bool,
    /// The BERT questions are embedded with (`--retriever-model`, else `--model`).
    retriever_base: &'a BaseModel,
    questions: &'a [Question],
    /// Per question, the negatives' texts.
    retrieved: &'a [Vec<String>],
    examples: &'a [Example],
    unseen: &'a HashSet<String>,
    group: usize,
}

/// Trains the reader and the question embedder together (`--retriever-layers`): the reader's
/// marginal over the spans of a question's passages with f(x, z) in every span's logit, plus
/// the retriever's marginal over its top B. Writes query.safetensors and query.json in the
/// run directory at the end; the reader (`None` when stopped with Ctrl-C) is the caller's to
/// export.
fn train_joint(
    setup: JointSetup,
    reader: SpanReader,
    mut schedule: Schedule,
    order: &mut Order,
    input: &dyn Fn(&[usize]) -> (ReaderBatch, Vec<Vec<(u32, u32)>>),
    train_device: &Device,
) -> anyhow::Result<Option<SpanReader>> {
    let JointSetup {
        args,
        dir,
        resuming,
        retriever_base,
        questions,
        retrieved,
        examples,
        unseen,
        group,
    } = setup;
    let layers = retriever_base.config.num_hidden_layers;
    let cpu = realm_core::device::cpu_device();
    let question_model = sentence_model(retriever_base, &cpu)?;
    let dim = question_model.embedder.dim();
    let index = args.index.as_deref().expect("clap requires --index");
    let corpus = args.corpus.as_deref().expect("clap requires --corpus");
    let model_dir = args.retriever_model.as_deref().unwrap_or(&args.model);
    let fixed = FixedPassages::open(index, corpus, model_dir, dim, unseen, args.top_b)?;
    let docs = passage_vectors(&fixed, retriever_base, questions, retrieved, examples)?;
    eprintln!(
        "finetune: the top {} of the question embedder's {layers} layers train with the reader (at {} x --lr), f(x, z) = {} x Embed_input(x) . Embed_doc(z); {}",
        args.retriever_layers,
        args.retriever_lr_factor,
        args.scale,
        match args.top_b {
            0 => "no retriever loss (--top-b 0)".to_string(),
            b => format!(
                "retriever loss over the top {b} of {} passages",
                fixed.len()
            ),
        }
    );

    let trains = top_layers(layers, args.retriever_layers);
    let tokenizer = question_model.tokenizer.clone();
    let embedder = trainable_embedder(question_model.embedder, trains, train_device);
    let model = ReaderAndRetriever { reader, embedder };
    let (model, optim, start) = resume_or_start(dir, resuming, model, bert_adamw)?;
    // After loading: a checkpoint's parameters come back with the ids they were saved with.
    let retriever = param_ids(&model, |path| path.starts_with("embedder."));
    schedule.rates = vec![(retriever, args.retriever_lr_factor)];
    schedule.plot_title = "realm finetune: reader + retriever loss";
    let micro = |model: &ReaderAndRetriever, position: usize| {
        let t = Instant::now();
        let picked = order.batch(position).to_vec();
        let (batch, gold) = input(&picked);
        let b = picked.len();
        let texts: Vec<&str> = picked
            .iter()
            .map(|&i| questions[examples[i].question].question.as_str())
            .collect();
        let asked = tokenizer.encode_batch(&texts, QUESTION_MAX_LENGTH)?;
        let rows: Vec<f32> = picked.iter().flat_map(|&i| docs[i].clone()).collect();
        let mut data_seconds = t.elapsed().as_secs_f64();
        let queries = model.embedder.embed(&asked, train_device); // [b, dim]
        let rows = Tensor::<3>::from_data(TensorData::new(rows, [b, group, dim]), train_device);
        let relevance = (queries.clone().reshape([b, 1, dim]) * rows)
            .sum_dim(2)
            .reshape([b * group])
            .mul_scalar(args.scale);
        let output = model
            .reader
            .forward(&batch.input, &batch.block_mask, relevance, train_device);
        let reader_loss = span_loss(&output, &gold, group);
        let golds: Vec<_> = picked
            .iter()
            .map(|&i| &questions[examples[i].question].gold)
            .collect();
        let ids: Vec<_> = picked.iter().map(|&i| examples[i].id.as_str()).collect();
        let mut extra = serde_json::json!({
            "reader_loss": reader_loss.clone().into_scalar::<f32>(),
        });
        let mut loss = reader_loss;
        if args.top_b > 0 {
            let top_b = fixed.retriever_loss(
                queries,
                &golds,
                &ids,
                args.top_b,
                args.scale,
                train_device,
            )?;
            data_seconds += top_b.search_seconds;
            let retriever_loss = top_b.sum.div_scalar(top_b.used.max(1) as f32);
            extra["retriever_loss"] = retriever_loss.clone().into_scalar::<f32>().into();
            extra["retriever_questions"] = top_b.used.into();
            loss = loss + retriever_loss;
        }
        Ok(MicroLoss {
            loss: loss.div_scalar(args.accumulate as f64),
            data_seconds,
            describe: describe(examples, &picked),
            extra,
        })
    };
    let model = match run_steps(&schedule, model, optim, start, micro, None, None)? {
        Ended::Finished(model) => model,
        Ended::Stopped(_) => return Ok(None),
    };
    let trained_how = serde_json::json!({
        "with": "realm finetune --retriever-layers: trained beside the reader in this directory",
        "index": index.display().to_string(),
        "top_b": args.top_b,
        "scale": args.scale,
        "train_layers": args.retriever_layers,
        "steps": args.steps,
        "batch": args.batch * args.accumulate,
        "lr": args.lr * args.retriever_lr_factor,
    });
    let question_model = SentenceModel {
        embedder: model.embedder.valid(),
        tokenizer,
    };
    export_query_encoder(dir, &question_model, retriever_base, trains, trained_how)?;
    Ok(Some(model.reader))
}

/// Embed_doc(z) of every passage each example reads (`[group * dim]` an example, its own
/// paragraph first): the index's vector where the corpus holds the passage, else the fixed
/// retriever's embedding of it (a training paragraph missing from the corpus).
fn passage_vectors(
    fixed: &FixedPassages,
    retriever_base: &BaseModel,
    questions: &[Question],
    retrieved: &[Vec<String>],
    examples: &[Example],
) -> anyhow::Result<Vec<Vec<f32>>> {
    let texts = |e: &Example| -> Vec<&str> {
        let q = &questions[e.question];
        let own = q.context.as_ref().map_or("", |c| c.text.as_str());
        std::iter::once(own)
            .chain(retrieved[e.question].iter().map(String::as_str))
            .collect()
    };
    // In a fixed order (a HashSet's differs between processes): the chunks' padding, and so
    // the vectors' last bits, must be the same in a resumed run.
    let missing: Vec<&str> = examples
        .iter()
        .flat_map(texts)
        .filter(|t| fixed.vector_of(t).is_none())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut embedded = std::collections::HashMap::new();
    if !missing.is_empty() {
        eprintln!(
            "finetune: {} training paragraphs are not in --corpus: embedding them with the fixed passage embedder",
            missing.len()
        );
        let frozen = frozen_sentence_model(retriever_base, Precision::F32)?;
        for chunk in missing.chunks(16) {
            let vectors = embed(&frozen, chunk, 128)?;
            for (text, v) in chunk.iter().zip(vectors.chunks_exact(fixed.dim)) {
                embedded.insert(*text, v.to_vec());
            }
        }
    }
    Ok(examples
        .iter()
        .map(|e| {
            texts(e)
                .into_iter()
                .flat_map(|t| match fixed.vector_of(t) {
                    Some(v) => v.to_vec(),
                    None => embedded[t].clone(),
                })
                .collect()
        })
        .collect())
}

/// A featurised question: its id and its rows, its own paragraph first, then the retrieved
/// passages.
struct Example {
    id: String,
    /// Its position in the questions it was featurised from.
    question: usize,
    rows: Vec<ReaderFeatures>,
}

/// For every question, the texts of the first `negatives` passages the base model's sentence
/// embedding retrieves from `corpus` that are neither the question's own paragraph nor one of
/// the `unseen` (held-out) paragraphs; `beside_squad` (SQuAD files in the run): one more for a
/// question without a paragraph, so that every question reads as many passages.
fn retrieve_negatives(
    base: &BaseModel,
    questions: &[Question],
    corpus: &IndexedCorpus,
    unseen: &HashSet<String>,
    negatives: usize,
    beside_squad: bool,
) -> anyhow::Result<Vec<Vec<String>>> {
    if negatives == 0 {
        bail!("--negatives must be at least 1 with --index");
    }
    // Held-out paragraphs can fill the top of the list: look deep enough past them.
    let depth = (negatives + 1 + 32).min(corpus.index.len());
    // The retriever stays fixed while the reader trains: the frozen forward, at f32 (the
    // negatives do not depend on the CPU's precision).
    let retriever = frozen_sentence_model(base, Precision::F32)?;
    let bar = ProgressBar::new(questions.len() as u64);
    bar.set_style(ProgressStyle::with_template(
        "finetune: retrieving negatives {bar:40} {pos}/{len} [{elapsed_precise}, {eta} left]",
    )?);
    let mut out = Vec::with_capacity(questions.len());
    for chunk in questions.chunks(32) {
        let texts: Vec<&str> = chunk.iter().map(|q| q.question.as_str()).collect();
        let queries = embed(&retriever, &texts, 128)?;
        let dim = queries.len() / chunk.len();
        let hits = corpus.index.search(&queries, depth)?;
        for (n, (q, hits)) in chunk.iter().zip(hits).enumerate() {
            let own = q.context.as_ref().map(|c| c.text.trim());
            let wanted = negatives + usize::from(beside_squad && own.is_none());
            let pick = |hits: &[realm_core::index::reference::Hit]| -> Vec<String> {
                hits.iter()
                    .map(|h| &corpus.passages[corpus.ids[h.id as usize] as usize].text)
                    .filter(|text| Some(text.trim()) != own && !unseen.contains(text.trim()))
                    .take(wanted)
                    .cloned()
                    .collect()
            };
            let mut picked = pick(&hits);
            if picked.len() < wanted && depth < corpus.index.len() {
                // The top was all excluded passages (a held-out article's): the whole corpus.
                let query = &queries[n * dim..(n + 1) * dim];
                let all = corpus.index.search(query, corpus.index.len())?;
                picked = pick(&all[0]);
            }
            if picked.len() < wanted {
                bail!(
                    "question {}: only {} passages of the corpus besides its own paragraph and the held-out ones came back; it reads {wanted} retrieved (--negatives {negatives})",
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

/// Featurises each question with its paragraph (annotated spans; none for NQ-open,
/// WebQuestions and CuratedTrec questions) and its retrieved passages (answer strings or
/// patterns found in them); questions with no gold span in any row are dropped.
fn featurize_all(
    tokenizer: &realm_core::text::wordpiece::WordPieceTokenizer,
    questions: &[Question],
    retrieved: Option<&[Vec<String>]>,
    max_length: usize,
    max_span_width: usize,
) -> anyhow::Result<Vec<Example>> {
    let mut out = Vec::new();
    for (n, q) in questions.iter().enumerate() {
        let mut rows = match &q.context {
            Some(context) => vec![featurize(
                tokenizer,
                &q.question,
                &context.text,
                &context.answers,
                max_length,
                max_span_width,
            )?],
            // Read from retrieved passages alone (`check_open_questions` made sure of them).
            None => Vec::new(),
        };
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
                question: n,
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

/// What the `--squad` files give a run.
struct Training {
    /// Every file's questions of `--split` (its first `--limit`), in order.
    questions: Vec<Question>,
    /// The paragraphs of the SQuAD questions `--split` leaves out, never read.
    unseen: HashSet<String>,
    /// How many of the files are of questions without paragraphs.
    open_files: usize,
}

/// Reads every `--squad` file (each of questions without paragraphs checked by
/// [`check_open_questions`]); with more than one, each question's id is prefixed with its
/// file's name.
fn read_training_questions(args: &FinetuneArgs) -> anyhow::Result<Training> {
    let mut training = Training {
        questions: Vec::new(),
        unseen: HashSet::new(),
        open_files: 0,
    };
    for file in &args.squad {
        let all = read_training_file(file)?;
        if all.iter().all(|q| q.context.is_none()) {
            check_open_questions(file, args)?;
            training.open_files += 1;
        }
        training.unseen.extend(paragraphs_outside(&all, args.split));
        let mut questions = squad_split(all, args.split);
        if args.limit > 0 {
            questions.truncate(args.limit);
        }
        if args.squad.len() > 1 {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
            for q in &mut questions {
                q.id = format!("{name}:{}", q.id);
            }
        }
        training.questions.extend(questions);
    }
    Ok(training)
}

/// The files, as one string for the card: each once, with how often it was named.
fn names(files: &[PathBuf]) -> String {
    let mut counted: Vec<(&PathBuf, usize)> = Vec::new();
    for file in files {
        match counted.iter_mut().find(|(f, _)| *f == file) {
            Some((_, n)) => *n += 1,
            None => counted.push((file, 1)),
        }
    }
    let names: Vec<String> = counted
        .iter()
        .map(|(f, n)| match n {
            1 => f.display().to_string(),
            n => format!("{} x{n}", f.display()),
        })
        .collect();
    names.join(" + ")
}

/// What training on questions without paragraphs needs: passages to read them from and a
/// reader alone (the joint retriever reads each question's own paragraph).
fn check_open_questions(file: &Path, args: &FinetuneArgs) -> anyhow::Result<()> {
    if args.index.is_none() {
        bail!(
            "{}: its questions have no paragraphs; give --index and --corpus to read them from the passages retrieved for them",
            file.display()
        );
    }
    if args.retriever_layers > 0 {
        bail!(
            "--retriever-layers trains on SQuAD files (each question's own paragraph), not on {}",
            file.display()
        );
    }
    Ok(())
}

/// The passages of `corpus` from a held-out SQuAD article (by title), which no run reads.
fn held_out_passages(corpus: &IndexedCorpus) -> impl Iterator<Item = String> + '_ {
    corpus
        .passages
        .iter()
        .filter(|p| squad_article_is_held_out(&p.title.replace(' ', "_")))
        .map(|p| p.text.trim().to_string())
}

fn check_args(args: &FinetuneArgs) -> anyhow::Result<()> {
    check_training_split(args.split)?;
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
    if args.retriever_layers > 0 {
        if args.top_b == 1 {
            bail!(
                "--top-b must be 0 (no retriever loss) or at least 2: the marginal needs passages to choose between"
            );
        }
        if !(args.scale > 0.0 && args.scale.is_finite()) {
            bail!("--scale must be a positive number, not {}", args.scale);
        }
        if !(args.retriever_lr_factor > 0.0 && args.retriever_lr_factor.is_finite()) {
            bail!(
                "--retriever-lr-factor must be a positive number, not {}",
                args.retriever_lr_factor
            );
        }
    }
    if args.max_length < 16 || args.max_length > 512 {
        bail!(
            "--max-length must be in 16..=512 (the model has 512 positions), not {}",
            args.max_length
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[derive(serde::Deserialize)]
    struct Saved {
        #[serde(deserialize_with = "super::one_or_many")]
        squad: Vec<PathBuf>,
    }

    #[test]
    fn a_run_saved_with_one_question_file_or_none_still_resumes() {
        let files =
            |json: &str| -> Vec<PathBuf> { serde_json::from_str::<Saved>(json).unwrap().squad };
        assert_eq!(files(r#"{"squad": "a.json"}"#), [PathBuf::from("a.json")]);
        assert_eq!(files(r#"{"squad": null}"#), Vec::<PathBuf>::new());
        assert_eq!(
            files(r#"{"squad": ["a.json", "b.tsv"]}"#),
            [PathBuf::from("a.json"), PathBuf::from("b.tsv")]
        );
        assert!(serde_json::from_str::<Saved>(r#"{"squad": 3}"#).is_err());
    }

    #[test]
    fn the_card_names_each_file_once_with_how_often_it_was_given() {
        let files = ["s.json", "nq.jsonl", "wq.json", "nq.jsonl", "wq.json"].map(PathBuf::from);
        assert_eq!(super::names(&files), "s.json + nq.jsonl x2 + wq.json x2");
        assert_eq!(super::names(&files[..1]), "s.json");
    }
}
