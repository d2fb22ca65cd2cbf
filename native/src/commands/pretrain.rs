//! `realm pretrain`: REALM's pre-training loop (sections 2-3) on one machine. A query is a
//! corpus sentence with a salient span masked (`train::masking`); the current index (refreshed
//! in the background, `train::refresh`) gives its top candidates by MIPS, from which the
//! query's own passage and any passage holding the sentence verbatim are dropped, and the null
//! document goes first. The candidates are re-embedded with the current weights, so the
//! gradient reaches Embed_doc as well as Embed_input (one embedder for both), and
//! p(z|x) = softmax_z f(x, z) with f(x, null) = 0. The knowledge-augmented encoder reads
//! `[CLS] x [SEP] z_body [SEP]` (title dropped) and its masked-LM head scores the masked
//! positions only; the loss is -log sum_z p(y_j|z,x) p(z|x) per masked token.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use clap::{Args, ValueEnum};
use realm_core::checkpoint::family::{Family, detect_family};
use realm_core::checkpoint::safetensors_file::strip_prefix;
use realm_core::checkpoint::weights::WeightLoader;
use realm_core::checkpoint::weights::WeightMap;
use realm_core::index::MipsIndex;
use realm_core::index::exact::ExactIndex;
use realm_core::index::shard::{ElementType, Shard};
use realm_core::model::config::BertConfig;
use realm_core::model::embedder::RealmEmbedder;
use realm_core::model::encoder::{
    ENCODER_UNUSED, IGNORE_LABEL, KnowledgeAugEncoder, marginal_log_likelihood,
};
use realm_core::qa::splits::squad_article_is_held_out;
use realm_core::rng::SplitMix64;
use realm_core::text::BertInput;
use realm_core::text::corpus::Passage;
use realm_core::text::salient::{Gazetteer, salient_spans};
use realm_core::text::sentences::sentences;
use realm_core::train::init::encoder_from_bert;
use realm_core::train::masking::{
    MaskedQuery, Masking, document_uid, keeps_candidate, mask_sentence,
};
use realm_core::train::optim::bert_adamw;
use serde::{Deserialize, Serialize};

use crate::commands::finetune::DeviceKind;
use crate::commands::index::widened;
use crate::embed::{embed_passages, read_fingerprinted_window};
use crate::files::model_dir::{
    BaseModel, SentenceModel, read_base, sentence_model, write_model_dir,
};
use crate::files::shard_file::{read_shard, write_atomic, write_shard};
use crate::train::order::Order;
use crate::train::refresh::{Built, RefreshSchedule, Refresher};
use crate::train::run_dir::{
    CheckpointExtra, Run, RunInputs, latest_checkpoint, open_run, resume_or_start,
};
use crate::train::steps::{Ended, MicroLoss, Schedule, run_steps};

/// How queries are masked (the paper's ablation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum MaskingArg {
    Salient,
    RandomToken,
    RandomSpan,
}

/// How the null document is scored among the candidates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum NullDocument {
    /// f(x, null) = 0, fixed.
    #[default]
    Zero,
    /// f(x, null) = `--scale` x Embed_input(x) . Embed_doc(empty block), as REALM's released
    /// code scores it: the null document's score trains with the embedder.
    Embedded,
}

#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct PretrainArgs {
    /// The run directory to create (checkpoints, metrics.jsonl, the trained weights).
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR from its latest checkpoint, with the flags it was started with
    /// (refused when a file they name changed since: DIR/inputs.json has their sha256).
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Base BERT directory: the embedder and the encoder start from it (fresh MLM head).
    #[arg(long, default_value = "data/all-minilm-l6-v2")]
    pub model: PathBuf,
    /// Start the knowledge-augmented encoder, masked-LM head included, from a REALM
    /// checkpoint `realm convert` wrote (a RealmKnowledgeAugEncoder, RealmReader or
    /// RealmForOpenQA's reader) instead of `--model` with a fresh head; it must share
    /// `--model`'s vocabulary.
    #[arg(long, value_name = "DIR")]
    #[serde(default)]
    pub encoder: Option<PathBuf>,
    /// Start both networks, masked-LM head included, from the `realm.safetensors` of an
    /// earlier pretrain run with the same `--model` (e.g. a retrieval-off run, `--candidates
    /// 1`, as a masked-LM warm-up); it must hold every parameter.
    #[arg(long, value_name = "FILE", conflicts_with = "encoder")]
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// Masked-LM warm-up steps before REALM's: first a retrieval-off run (the null document
    /// only, as `--candidates 1`) in OUT/warm-up teaches the fresh masked-LM head and the BERT
    /// under it to predict masked spans; REALM's `--steps` then start from its weights (as
    /// `--init` would), with a fresh optimiser and `--seed` + 1. 0: retrieval from the first
    /// step (default: the `--config` preset's, 1,200 for the demo and 0 for the paper's; 0
    /// with `--init` or `--encoder`, which bring a trained head, and with `--candidates 1`,
    /// which is retrieval off throughout).
    #[arg(long, value_name = "STEPS")]
    #[serde(default = "no_mlm_warmup")]
    pub mlm_warmup: Option<usize>,
    /// Passages: JSON lines of {"title", "text"}, or a JSON object of Wikipedia summaries
    /// (the default is the demo corpus `scripts/setup.sh --demo-data` builds: 10,033
    /// Wikipedia leads, then from passage 10,033 on SQuAD dev's 2,067 paragraphs).
    #[arg(long, default_value = crate::files::DEMO_CORPUS)]
    pub corpus: Option<PathBuf>,
    /// The starting index: a shard of the passages read, built with `--model` (`realm index
    /// --skip --limit`); without it the run embeds them itself, once, into OUT/start.f32.shard.
    #[arg(long)]
    pub index: Option<PathBuf>,
    /// The sizes below, for a demo on two CPU cores or for the paper's run (batch 512 as
    /// 16 x 32, 200k steps; a GPU's work: `--device wgpu`). Flags given override the preset.
    #[arg(long, value_enum, default_value = "demo")]
    pub config: Preset,
    /// Use only the first N passages (0: all), counted after `--skip`; the index must hold
    /// them all (default: the `--config` preset's; the demo's on the demo corpus: all of its
    /// SQuAD paragraphs, else 2,000).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Leave out the corpus's first N passages (`realm index --skip N` builds the matching
    /// index) (default: 0, but for `--config demo` on the demo corpus, recognised by its
    /// sha256 wherever it lies, 10,033: the demo reads its SQuAD paragraphs, whose articles
    /// repeat their entities, not its Wikipedia leads).
    #[arg(long)]
    #[serde(default = "no_skip")]
    pub skip: Option<usize>,
    /// Candidates per query, the null document included; 1 turns retrieval off (the null
    /// document only: the ablation's baseline) (default: the `--config` preset's).
    #[arg(long)]
    pub candidates: Option<usize>,
    /// Wordpieces of a query (`[CLS] sentence [SEP]`) (default: the `--config` preset's).
    #[arg(long)]
    pub query_length: Option<usize>,
    /// Wordpieces of `[CLS] query [SEP] body [SEP]` the encoder reads (default: the `--config` preset's).
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Wordpieces of a passage as the embedder reads it (default: the `--config` preset's).
    #[arg(long)]
    pub block_length: Option<usize>,
    /// When the background index refresh runs: back-to-back, every:N (steps) or never (default: the `--config` preset's).
    #[arg(long)]
    pub refresh: Option<String>,
    /// Optimiser steps (default: the `--config` preset's).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Queries per micro-batch (default: the `--config` preset's).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Micro-batches whose gradients are summed into one step (default: the `--config` preset's).
    #[arg(long)]
    pub accumulate: Option<usize>,
    /// Peak learning rate (default: the `--config` preset's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Query sentences held out for the retrieval utility (the corpus's last passages'; 0:
    /// no evaluation) (default: the `--config` preset's, 500 for both).
    #[arg(long)]
    pub held_out: Option<usize>,
    /// Steps between evaluations of the held-out sentences (default: the `--config`
    /// preset's: demo 200, paper 1,000).
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// f(x, z) is this times the inner product of the unit-length embeddings (which lies in
    /// [-1, 1]), so that p(z|x) can tell candidates apart.
    #[arg(long, default_value_t = 20.0)]
    #[serde(default = "default_scale")]
    pub scale: f32,
    /// How the null document scores: `zero` (f(x, null) = 0: near no share of p(z|x) once
    /// passages score above 0; the README's runs) or `embedded` (REALM's released code: the
    /// embedding of an empty block, scored as a passage is, its score learnt).
    #[arg(long, value_enum, default_value = "zero")]
    #[serde(default)]
    pub null_document: NullDocument,
    /// The fresh masked-LM head (transform, its LayerNorm, the output bias; the decoder is the
    /// word embeddings) learns at this times the learning rate: it starts from nothing while
    /// the BERT under it is pre-trained.
    #[arg(long, default_value_t = 10.0)]
    #[serde(default = "default_head_lr_factor")]
    pub head_lr_factor: f64,
    /// The embedder (Embed_input and Embed_doc) learns at this times the learning rate. Its
    /// gradient comes through p(z|x) from a handful of queries a step; at the demo's batch of
    /// 2 a full-rate step moves the retriever faster than it learns (default: the `--config`
    /// preset's: 0.1 for the demo, 1 for the paper's batch of 512).
    #[arg(long)]
    #[serde(default = "default_retriever_lr_factor")]
    pub retriever_lr_factor: Option<f64>,
    /// What a query masks: `salient` spans (REALM's entities and dates), or for the
    /// ablations `random-token` (BERT's 15% of wordpieces, at most 10) or `random-span`.
    #[arg(long, value_enum, default_value = "salient")]
    pub masking: MaskingArg,
    /// The ablation: refresh 30 times less often.
    #[arg(long)]
    pub stale_30x: bool,
    /// Share of the steps spent warming up (linear warm-up, then linear decay).
    #[arg(long, default_value_t = 0.1)]
    pub warmup: f64,
    /// Global gradient-norm clip.
    #[arg(long, default_value_t = 1.0)]
    pub clip: f32,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 50)]
    pub checkpoint_every: usize,
    /// Seed of the data order and the masked spans.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where training runs.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// Print no progress: no bar, no line per evaluation or checkpoint (metrics.jsonl has
    /// every step).
    #[arg(long)]
    #[serde(skip)]
    pub quiet: bool,
    /// Also write every micro-batch's inputs (queries, candidates, encoder rows, masked
    /// positions, labels) to FILE as JSON lines, in training order: the PyTorch peer
    /// (scripts/bench-pretrain.sh) trains on exactly these.
    #[arg(long, value_name = "FILE", hide = true)]
    #[serde(skip)]
    pub dump_batches: Option<PathBuf>,
}

impl RunInputs for PretrainArgs {
    fn inputs(&self) -> Vec<Option<&Path>> {
        vec![
            Some(self.model.as_path()),
            self.encoder.as_deref(),
            self.init.as_deref(),
            self.corpus.as_deref(),
            self.index.as_deref(),
        ]
    }
}

/// The `--scale` of runs started before it existed (their args.json has none): 1.
fn default_scale() -> f32 {
    1.0
}

/// The `--retriever-lr-factor` of runs started before it existed (their args.json has none):
/// the full rate they trained at, so that a resume follows the same trajectory.
fn default_retriever_lr_factor() -> Option<f64> {
    Some(1.0)
}

/// The `--skip` of runs started before it had a preset: none.
fn no_skip() -> Option<usize> {
    Some(0)
}

/// The `--mlm-warmup` of runs started before it existed: none.
fn no_mlm_warmup() -> Option<usize> {
    Some(0)
}

/// The `--head-lr-factor` of runs started before it existed: 1.
fn default_head_lr_factor() -> f64 {
    1.0
}

/// Size presets of `--config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum Preset {
    /// The demo corpus's 2,067 SQuAD paragraphs (another corpus's first 2,000 passages),
    /// 1,200 masked-LM warm-up steps with retrieval off, then 1,200 REALM
    /// steps of 2 queries with 4 candidates, the retriever at a tenth of the rate, the index
    /// refreshed every 50 steps, 500 held-out sentences evaluated every 200 steps: sized for
    /// two CPU cores (about 85 minutes on an AMD EPYC Zen 4: 14 of warm-up, 70 of REALM).
    Demo,
    /// REALM's configuration: every passage, 8 candidates, 288-wordpiece blocks, batch 512,
    /// 200,000 steps, learning rate 3e-5, the index refreshed back to back, no warm-up (start
    /// from a BERT with a masked-LM head: `--encoder`).
    Paper,
}

impl Preset {
    /// The preset's sizes on any corpus.
    fn sizes(self) -> Sizes {
        match self {
            Preset::Demo => Sizes {
                skip: 0,
                limit: 2000,
                candidates: 4,
                query_length: 64,
                max_length: 160,
                block_length: 128,
                refresh: "every:50".into(),
                steps: 1200,
                batch: 2,
                accumulate: 1,
                lr: 1e-4,
                held_out: 500,
                eval_every: 200,
                retriever_lr_factor: 0.1,
                mlm_warmup: 1200,
            },
            Preset::Paper => Sizes {
                skip: 0,
                limit: 0,
                candidates: 8,
                query_length: 96,
                max_length: 288,
                block_length: 288,
                refresh: "back-to-back".into(),
                steps: 200_000,
                batch: 16,
                accumulate: 32,
                lr: 3e-5,
                held_out: 500,
                eval_every: 1000,
                retriever_lr_factor: 1.0,
                mlm_warmup: 0,
            },
        }
    }
}

/// The sizes a run uses: the flags given, else the preset's.
#[derive(Debug, Clone)]
struct Sizes {
    skip: usize,
    limit: usize,
    candidates: usize,
    query_length: usize,
    max_length: usize,
    block_length: usize,
    refresh: String,
    steps: usize,
    batch: usize,
    accumulate: usize,
    lr: f64,
    held_out: usize,
    eval_every: usize,
    retriever_lr_factor: f64,
    mlm_warmup: usize,
}

/// Where the demo corpus's SQuAD paragraphs start (after its 10,033 Wikipedia leads).
const DEMO_CORPUS_SQUAD: usize = 10_033;

impl PretrainArgs {
    fn sizes(&self) -> Sizes {
        let preset = match self.config {
            // On the demo corpus (wherever it lies): its SQuAD paragraphs, all of them.
            Preset::Demo
                if self
                    .corpus
                    .as_deref()
                    .is_some_and(crate::files::is_demo_corpus) =>
            {
                Sizes {
                    skip: DEMO_CORPUS_SQUAD,
                    limit: 0,
                    ..Preset::Demo.sizes()
                }
            }
            other => other.sizes(),
        };
        Sizes {
            skip: self.skip.unwrap_or(preset.skip),
            limit: self.limit.unwrap_or(preset.limit),
            candidates: self.candidates.unwrap_or(preset.candidates),
            query_length: self.query_length.unwrap_or(preset.query_length),
            max_length: self.max_length.unwrap_or(preset.max_length),
            block_length: self.block_length.unwrap_or(preset.block_length),
            refresh: self.refresh.clone().unwrap_or(preset.refresh),
            steps: self.steps.unwrap_or(preset.steps),
            batch: self.batch.unwrap_or(preset.batch),
            accumulate: self.accumulate.unwrap_or(preset.accumulate),
            lr: self.lr.unwrap_or(preset.lr),
            held_out: self.held_out.unwrap_or(preset.held_out),
            eval_every: self.eval_every.unwrap_or(preset.eval_every),
            retriever_lr_factor: self
                .retriever_lr_factor
                .unwrap_or(preset.retriever_lr_factor),
            mlm_warmup: self.mlm_warmup.unwrap_or(
                if self.init.is_some()
                    || self.encoder.is_some()
                    || self.candidates.unwrap_or(preset.candidates) == 1
                {
                    0
                } else {
                    preset.mlm_warmup
                },
            ),
        }
    }
}

/// How many retrieved passages beyond the candidates needed are searched first, to make up
/// for those dropped (the query's own, verbatim copies, evaluation-only articles).
const SEARCH_SLACK: usize = 32;

/// How deep the first search for `want` candidates goes in an index of `rows`.
fn first_depth(want: usize, rows: usize) -> usize {
    (want + SEARCH_SLACK).min(rows)
}

/// The first `want` passages by MIPS that `docs.keeps` for each query (`queries`: their
/// embeddings, flat): the top `want + SEARCH_SLACK`, searched 8 times deeper, up to the whole
/// index, for a query whose top ones are all dropped (a sentence about an evaluation-only
/// article finds that article's passages first). Fewer than `want` only when the whole index
/// has no more.
fn candidates(
    index: &dyn MipsIndex,
    queries: &[f32],
    masked: &[(usize, MaskedQuery)],
    docs: &Documents,
    want: usize,
) -> anyhow::Result<Vec<Vec<usize>>> {
    let first = first_depth(want, index.len());
    let dim = index.dim();
    let hits = index.search(queries, first)?;
    masked
        .iter()
        .zip(hits)
        .enumerate()
        .map(|(i, ((p, m), hits))| {
            let keep = |hits: &[realm_core::index::reference::Hit]| -> Vec<usize> {
                hits.iter()
                    .map(|h| h.id as usize)
                    .filter(|&z| docs.keeps(m, *p, z))
                    .take(want)
                    .collect()
            };
            let (mut picked, mut depth) = (keep(&hits), first);
            while picked.len() < want && depth < index.len() {
                depth = (depth * 8).min(index.len());
                let deeper = index.search(&queries[i * dim..(i + 1) * dim], depth)?;
                picked = keep(&deeper[0]);
            }
            Ok(picked)
        })
        .collect()
}

/// The passages a run reads, with what decides whether one may be a candidate.
struct Documents<'a> {
    passages: &'a [Passage],
    /// REALM's document uid of each.
    uids: Vec<u64>,
    /// Passages of the SQuAD-open articles held out for evaluation (`qa::splits`, matched by
    /// title): pre-training never reads them, so that fine-tuning from its weights is scored
    /// on text it has not seen.
    evaluation_only: Vec<bool>,
}

impl<'a> Documents<'a> {
    fn new(passages: &'a [Passage]) -> Self {
        Self {
            passages,
            uids: passages
                .iter()
                .map(|p| document_uid(&p.title, &p.text))
                .collect(),
            evaluation_only: passages
                .iter()
                .map(|p| squad_article_is_held_out(&p.title.replace(' ', "_")))
                .collect(),
        }
    }

    /// Whether passage `z` may be a candidate for `query`, a sentence of passage `p`.
    fn keeps(&self, query: &MaskedQuery, p: usize, z: usize) -> bool {
        !self.evaluation_only[z]
            && keeps_candidate(query, self.uids[p], self.uids[z], &self.passages[z].text)
    }
}

/// `model` with every parameter from `file`, a run's `realm.safetensors`.
fn init_from(model: RealmModel, file: &std::path::Path) -> anyhow::Result<RealmModel> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let weights = realm_core::checkpoint::safetensors_file::read_safetensors(&bytes)
        .with_context(|| format!("reading {}", file.display()))?;
    let mut missing: Vec<String> =
        realm_core::checkpoint::module_io::export_params(&model, |_| true)
            .into_keys()
            .filter(|name| !weights.contains_key(name))
            .collect();
    if !missing.is_empty() {
        missing.sort();
        bail!(
            "{} lacks {} of the model's parameters (first: {}): give the realm.safetensors of a \
             pretrain run with the same --model",
            file.display(),
            missing.len(),
            missing[0]
        );
    }
    realm_core::checkpoint::module_io::import_params(model, &weights)
        .with_context(|| format!("{} does not fit the model", file.display()))
}

/// Where the knowledge-augmented encoder starts.
struct EncoderStart {
    config: BertConfig,
    /// Under `RealmKnowledgeAugEncoder`'s names (`realm.*`, `cls.predictions.*`).
    weights: WeightMap,
    /// The BERT pooler (`pooler.*`), which the encoder does not run but its model directory keeps.
    pooler: WeightMap,
    /// The directory whose config and tokenizer go with the trained encoder.
    dir: PathBuf,
}

impl EncoderStart {
    /// `--encoder`'s checkpoint, else `--model`'s BERT with a fresh masked-LM head.
    fn new(args: &PretrainArgs, base: &BaseModel) -> anyhow::Result<Self> {
        let pooler = |weights: &WeightMap, prefix: &str| -> WeightMap {
            weights
                .iter()
                .filter_map(|(name, t)| {
                    let rest = name.strip_prefix(prefix)?;
                    rest.starts_with("pooler.")
                        .then(|| (rest.to_string(), t.clone()))
                })
                .collect()
        };
        let Some(dir) = &args.encoder else {
            return Ok(Self {
                config: base.config.clone(),
                weights: encoder_from_bert(&base.config, &base.weights, args.seed),
                pooler: pooler(&base.weights, ""),
                dir: args.model.clone(),
            });
        };
        let source = read_base(dir)?;
        let weights = match detect_family(&source.weights)? {
            Family::Encoder | Family::Reader => source.weights,
            Family::OpenQa => strip_prefix(&source.weights, "reader."),
            other => bail!(
                "{} holds a {other:?} checkpoint, not a REALM encoder: give `realm convert`'s \
                 output of a RealmKnowledgeAugEncoder, RealmReader or RealmForOpenQA checkpoint",
                dir.display()
            ),
        };
        let (a, b) = (&source.tokenizer, &base.tokenizer);
        if !crate::files::model_dir::shares_vocabulary(a, b) {
            bail!(
                "{}'s vocabulary ({} wordpieces) is not {}'s ({}): the encoder reads the queries \
                 the embedder's tokenizer makes",
                dir.display(),
                a.vocab_size(),
                args.model.display(),
                b.vocab_size()
            );
        }
        let mut own_pooler = pooler(&weights, "realm.");
        if own_pooler.is_empty() && source.config.hidden_size == base.config.hidden_size {
            // Checkpoints saved without one: the base's keeps the directory a whole BertModel.
            own_pooler = pooler(&base.weights, "");
        }
        Ok(Self {
            config: source.config,
            pooler: own_pooler,
            weights,
            dir: dir.clone(),
        })
    }
}

/// The two networks REALM pre-trains together.
#[derive(Module, Debug)]
pub struct RealmModel {
    /// Embed_input and Embed_doc (shared).
    pub embedder: RealmEmbedder,
    /// p(y | z, x).
    pub encoder: KnowledgeAugEncoder,
}

pub fn run(args: &PretrainArgs) -> anyhow::Result<()> {
    train(args).map(|_finished| ())
}

/// The run `args` names, its warm-up first when it has one: whether every step ran (not
/// stopped with Ctrl-C).
fn train(args: &PretrainArgs) -> anyhow::Result<bool> {
    // `_lock` (not `_`) keeps the run directory locked to the end of the run.
    let Run {
        dir,
        args,
        resuming,
        lock: _lock,
    } = open_run(args.out.as_deref(), args.resume.as_deref(), args, |saved| {
        PretrainArgs {
            quiet: args.quiet,
            ..saved
        }
    })?;
    let z = args.sizes();
    if z.steps == 0 || z.batch == 0 || z.accumulate == 0 || args.checkpoint_every == 0 {
        bail!("--steps, --batch, --accumulate and --checkpoint-every must be at least 1");
    }
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        bail!("--scale must be a positive number");
    }
    if !(z.retriever_lr_factor >= 0.0 && z.retriever_lr_factor.is_finite()) {
        bail!("--retriever-lr-factor must be a number >= 0 (0: the retriever stays as it starts)");
    }
    if !(args.head_lr_factor > 0.0 && args.head_lr_factor.is_finite()) {
        bail!("--head-lr-factor must be a positive number");
    }
    if z.candidates == 0 {
        bail!("--candidates counts the null document: it must be at least 1 (1: retrieval off)");
    }
    if z.query_length + 2 > z.max_length || z.max_length > 512 {
        bail!("--max-length must leave room for a body after --query-length, and be at most 512");
    }
    if z.mlm_warmup > 0 && z.candidates == 1 {
        bail!(
            "--mlm-warmup needs retrieval on (--candidates 2 or more): it is what comes before it"
        );
    }
    // Checked before the starting index is embedded (minutes), not after.
    let mut schedule_kind = RefreshSchedule::parse(&z.refresh, args.stale_30x)?;
    let args = match args.index {
        Some(_) => args,
        None => PretrainArgs {
            index: Some(starting_index(&dir, &args, &z)?),
            ..args
        },
    };
    let args = if z.mlm_warmup > 0 {
        match warm_up(&dir, &args, z.mlm_warmup)? {
            Some(weights) => PretrainArgs {
                init: Some(weights),
                mlm_warmup: Some(0),
                seed: args.seed.wrapping_add(1),
                ..args
            },
            None => return Ok(false),
        }
    } else {
        args
    };
    if z.candidates == 1 {
        // Retrieval off: the starting index only serves the held-out evaluation.
        schedule_kind = RefreshSchedule::Never;
    }
    let given = |p: &Option<PathBuf>| p.clone().expect("clap requires it without --resume");
    let (corpus_path, index_path) = (given(&args.corpus), given(&args.index));
    let device = args.device.device();
    let train_device = device.clone().autodiff();
    let base = read_base(&args.model)?;
    let tokenizer = base.tokenizer.clone();

    let (passages, corpus_fingerprint) = read_fingerprinted_window(&corpus_path, z.skip, z.limit)?;
    if passages.len() <= z.candidates {
        bail!(
            "{} has {} passages: too few for --candidates {} (the query's own passage is never one)",
            corpus_path.display(),
            passages.len(),
            z.candidates
        );
    }
    let passages = Arc::new(passages);
    let docs = Documents::new(&passages);
    let evaluation_only = docs.evaluation_only.iter().filter(|&&e| e).count();
    if evaluation_only > 0 {
        eprintln!(
            "pretrain: {evaluation_only} passages of the SQuAD-open articles held out for evaluation \
             (qa::splits) are left out: never a query, never a candidate"
        );
    }
    let gazetteer = Gazetteer::from_titles(passages.iter().map(|p| p.title.as_str()))
        .with_common_words(passages.iter().map(|p| p.text.as_str()));
    // Every sentence that can become a query: (passage, byte range).
    let queries: Vec<(usize, (usize, usize))> = passages
        .iter()
        .enumerate()
        .filter(|&(i, _)| !docs.evaluation_only[i])
        .flat_map(|(i, p)| sentences(&p.text).into_iter().map(move |s| (i, s)))
        .filter(|&(i, (s, e))| {
            args.masking != MaskingArg::Salient
                || !salient_spans(&passages[i].text[s..e], &gazetteer).is_empty()
        })
        .collect();
    if queries.is_empty() {
        bail!(
            "no sentence of {} has a salient span to mask",
            corpus_path.display()
        );
    }

    // The starting index, whose rows must name passages we read.
    let shard = read_shard(&index_path)?;
    let rebuild = if index_path.file_name() == Some(STARTING_INDEX.as_ref()) {
        // Made by this run (no --index) from the corpus as it was then.
        "delete it and the run embeds the passages again, or start a new run with another --out"
            .to_string()
    } else {
        format!(
            "build it with `realm index --corpus {} --skip {} --limit {} --out ...`",
            corpus_path.display(),
            z.skip,
            passages.len()
        )
    };
    // Row r holds passage r of those read (the file's passage `--skip` + r), as `realm index`
    // writes them.
    let ids: Vec<u32> = (0..passages.len() as u32).collect();
    if shard.ids.len() != passages.len()
        || shard
            .ids
            .iter()
            .zip(&ids)
            .any(|(&id, &r)| id as usize != z.skip + r as usize)
    {
        bail!(
            "{} holds {} vectors, not one for each of the {} passages read from {} after --skip {}, in order: {rebuild}",
            index_path.display(),
            shard.ids.len(),
            passages.len(),
            corpus_path.display(),
            z.skip,
        );
    }
    realm_core::qa::engine::check_fingerprint(shard.corpus, corpus_fingerprint).with_context(
        || {
            format!(
                "{} does not index {}: {rebuild}",
                index_path.display(),
                corpus_path.display(),
            )
        },
    )?;
    let initial = ExactIndex::new(widened(&shard), shard.dim)?;
    let build = {
        let (passages, tokenizer, ids, length) = (
            passages.clone(),
            tokenizer.clone(),
            ids.clone(),
            z.block_length,
        );
        let eps = base.config.layer_norm_eps;
        move |_step: usize,
              mut embedder: RealmEmbedder|
              -> anyhow::Result<Box<dyn MipsIndex + Send + Sync>> {
            // The snapshot's weights no longer change: the frozen forward, at f32.
            // Bert's own freeze, not burn's `Module::freeze` (which only stops gradients).
            let f32 = realm_core::linalg::Precision::F32;
            realm_core::model::bert::Bert::freeze(&mut embedder.bert, eps, f32);
            let model = SentenceModel {
                embedder,
                tokenizer: tokenizer.clone(),
            };
            let dim = model.embedder.dim();
            let all = embed_passages(&model, &passages, length, 16, false)?;
            // Rows in the index's id order, as the starting shard had them.
            let rows: Vec<f32> = ids
                .iter()
                .flat_map(|&id| {
                    all[id as usize * dim..(id as usize + 1) * dim]
                        .iter()
                        .copied()
                })
                .collect();
            Ok(Box::new(ExactIndex::new(rows, dim)?))
        }
    };
    let mut refresher = Refresher::start(
        Built {
            index: Box::new(initial),
            step: 0,
        },
        schedule_kind,
        build,
    );

    let embedder = sentence_model(&base, &device)?.embedder;
    let start_from = EncoderStart::new(&args, &base)?;
    let mut loader = WeightLoader::new(start_from.weights, &device);
    let encoder = KnowledgeAugEncoder::load(&start_from.config, &mut loader, &device)
        .with_context(|| format!("{} does not hold an encoder", start_from.dir.display()))?;
    loader.finish(&[ENCODER_UNUSED, &["realm.embeddings.position_ids"]].concat())?;
    let mut model = RealmModel { embedder, encoder };
    if let Some(init) = &args.init {
        model = init_from(model, init)?;
    }
    let model: RealmModel = model.fork(&train_device).train();
    let (model, optim, start) = resume_or_start(&dir, resuming, model, bert_adamw)?;
    if start > 0 && schedule_kind != RefreshSchedule::Never {
        // A resumed run searches the index its checkpoint saved, and asks again for the build
        // that was still to land then (from the weights it resumed with). A checkpoint that
        // saved none (written before 2026-12-07) has the index rebuilt from those weights;
        // until that lands the run searches the starting index.
        let checkpoint = latest_checkpoint(&dir)?.context("a resumed run has a checkpoint")?;
        let snapshot = || {
            model
                .embedder
                .valid()
                .fork(&realm_core::device::cpu_device())
        };
        match read_checkpoint_index(&checkpoint, &shard)? {
            Some((built, last_request)) => {
                let waiting = last_request > built.step;
                refresher.restore(built, last_request);
                if waiting {
                    refresher.request(start, snapshot());
                    refresher
                        .last_request
                        .store(last_request, Ordering::Relaxed);
                }
            }
            None => refresher.request(start, snapshot()),
        }
    }
    eprintln!(
        "pretrain: {} passages, {} query sentences; {} candidates per query; refresh {:?}; {} steps of {} x {}",
        passages.len(),
        queries.len(),
        z.candidates,
        schedule_kind,
        z.steps,
        z.batch,
        z.accumulate
    );

    // The held-out sentences: those of the last passages, whole passages only, never trained on.
    let split = match z.held_out.min(queries.len() / 2) {
        0 => queries.len(),
        held => {
            let first = queries[queries.len() - held].0;
            queries
                .iter()
                .position(|&(p, _)| p >= first)
                .expect("a held-out query")
        }
    };
    let (queries, held_out) = queries.split_at(split);
    let mut held_rng = SplitMix64::new(0x5EED_0F_4E1D);
    let held_out: Vec<(usize, MaskedQuery)> = held_out
        .iter()
        .filter_map(|&(p, (s, e))| {
            mask_sentence(
                &tokenizer,
                &passages[p].text[s..e],
                masking_of(args.masking),
                &gazetteer,
                z.query_length,
                &mut held_rng,
            )
            .transpose()
            .map(|m| m.map(|m| (p, m)))
        })
        .collect::<Result<_, _>>()?;
    let lengths: Vec<usize> = queries.iter().map(|&(_, (s, e))| e - s).collect();
    let mut order = Order::new(&lengths, z.batch, args.seed);
    let masking = masking_of(args.masking);
    let head = realm_core::checkpoint::module_io::param_ids(&model, |path| {
        path.starts_with("encoder.mlm.")
    });
    assert_eq!(
        head.len(),
        5,
        "the masked-LM head's transform, LayerNorm and bias"
    );
    let retriever =
        realm_core::checkpoint::module_io::param_ids(&model, |path| path.starts_with("embedder."));
    let schedule = Schedule {
        name: "pretrain",
        dir: &dir,
        steps: z.steps,
        accumulate: z.accumulate,
        batch: z.batch,
        lr: z.lr,
        warmup: (args.warmup * z.steps as f64).round() as usize,
        clip: args.clip,
        checkpoint_every: args.checkpoint_every,
        seed: args.seed,
        plot_title: "realm pretrain: masked-LM marginal loss",
        quiet: args.quiet,
        eval_every: if held_out.is_empty() { 0 } else { z.eval_every },
        rates: vec![
            (head, args.head_lr_factor),
            (retriever, z.retriever_lr_factor),
        ],
    };
    let cpu = realm_core::device::cpu_device();
    let eval_refresher = refresher.current.clone();
    let requested = refresher.last_request.clone();
    let mut dump = match &args.dump_batches {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let micro = |model: &RealmModel, position: usize| {
        if position.is_multiple_of(z.accumulate) {
            let step = position / z.accumulate;
            refresher.after_step(step, || model.embedder.valid().fork(&cpu))?;
        }
        let t = Instant::now();
        let mut rng =
            SplitMix64::new(args.seed ^ (position as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93));
        // Sentences whose every span is cut off by --query-length give no query; when a whole
        // micro-batch gives none, the next ones in the order are read (the same on a resume).
        let mut picked = Vec::new();
        let mut masked: Vec<(usize, MaskedQuery)> = Vec::new();
        for next in 0..64 {
            for &q in order.batch(position + next) {
                let (p, (s, e)) = queries[q];
                let sentence = &passages[p].text[s..e];
                if let Some(m) = mask_sentence(
                    &tokenizer,
                    sentence,
                    masking,
                    &gazetteer,
                    z.query_length,
                    &mut rng,
                )? {
                    picked.push(q);
                    masked.push((p, m));
                }
            }
            if !masked.is_empty() {
                break;
            }
        }
        if masked.is_empty() {
            bail!(
                "no query of micro-batches {position}..{} could be masked within --query-length {}: raise it",
                position + 64,
                z.query_length
            );
        }
        let built = refresher.current();
        let data_seconds = t.elapsed().as_secs_f64();
        let mut record = serde_json::json!({});
        let (loss, phases) = realm_loss(
            model,
            &masked,
            &docs,
            &built,
            &tokenizer,
            &z,
            (args.scale, args.null_document),
            &train_device,
            dump.as_ref().map(|_| &mut record),
        )?;
        if let Some(file) = dump.as_mut() {
            record["position"] = serde_json::json!(position);
            serde_json::to_writer(&mut *file, &record)?;
            file.write_all(b"\n")?;
            file.flush()?;
        }
        Ok(MicroLoss {
            loss: loss.div_scalar(z.accumulate as f64),
            data_seconds,
            describe: format!("queries {picked:?}, index of step {}", built.step),
            extra: serde_json::json!({
                "staleness": (position / z.accumulate).saturating_sub(built.step),
                "index_step": built.step,
                "queries": masked.len(),
                "seconds": phases,
            }),
        })
    };
    let mut evaluate = |model: &RealmModel| -> anyhow::Result<serde_json::Value> {
        let built = eval_refresher.read().expect("index lock").clone();
        retrieval_utility(
            &model.valid(),
            &held_out,
            &docs,
            &built,
            &tokenizer,
            &z,
            &device,
        )
    };
    let evaluate: Option<crate::train::steps::Evaluate<RealmModel>> = Some(&mut evaluate);
    // Each checkpoint keeps the index searched then, so that a resume searches it too.
    let mut save_index = |folder: &std::path::Path| -> anyhow::Result<()> {
        let built = eval_refresher.read().expect("index lock").clone();
        write_checkpoint_index(folder, &built, requested.load(Ordering::Relaxed), &shard)
    };
    let save_index: Option<CheckpointExtra> =
        (schedule_kind != RefreshSchedule::Never).then_some(&mut save_index);
    // A run stopped with Ctrl-C leaves its weights so far beside its checkpoint (for an
    // evaluation or an ablation cut short); `--resume` overwrites them at the end.
    let (model, ended, finished) =
        match run_steps(&schedule, model, optim, start, micro, evaluate, save_index)? {
            Ended::Finished(model) => (model, "done", true),
            Ended::Stopped(model) => (model, "stopped; the weights so far", false),
        };
    let weights = realm_core::checkpoint::module_io::export_params(&model.valid(), |_| true);
    write_atomic(
        &dir.join("realm.safetensors"),
        &realm_core::checkpoint::safetensors_file::write_safetensors(&weights)?,
    )?;
    // The retriever and the encoder's BERT as model directories, for `realm index --model`,
    // `realm eval --model` and `realm finetune --model`. The encoder has no pooler (it reads
    // token states): its starting point's goes with it, unchanged, so the directory is a
    // whole BertModel.
    let trained = model.valid();
    write_model_dir(
        &dir.join("embedder"),
        &args.model,
        &trained.embedder.bert.hf_weights(""),
    )?;
    let mut encoder = trained.encoder.bert.hf_weights("");
    encoder.extend(start_from.pooler);
    write_model_dir(&dir.join("encoder"), &start_from.dir, &encoder)?;
    eprintln!(
        "pretrain: {ended} in {}: realm.safetensors (embedder and encoder with its masked-LM head, by module path), \
         embedder/ (the retriever) and encoder/ (the encoder's BERT) as model directories for --model",
        dir.display()
    );
    Ok(finished)
}

/// Beside the index a checkpoint saved (`index.f32.shard`, the shard format `realm index`
/// writes, with the starting index's ids and corpus): the step whose weights built it and the
/// newest refresh request then (`index.json`).
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointIndex {
    step: usize,
    last_request: usize,
}

const CHECKPOINT_INDEX: &str = "index.f32.shard";

/// Saves `built` into a checkpoint's `folder` as a shard with `starting`'s ids and corpus
/// (nothing for an index that keeps no f32 rows: its resume rebuilds one).
fn write_checkpoint_index(
    folder: &std::path::Path,
    built: &Built,
    last_request: usize,
    starting: &Shard,
) -> anyhow::Result<()> {
    let Some(rows) = built.index.f32_rows() else {
        return Ok(());
    };
    let mut shard = Shard::from_f32(
        rows,
        built.index.dim(),
        starting.ids.clone(),
        ElementType::F32,
    )?;
    shard.corpus = starting.corpus;
    write_shard(&folder.join(CHECKPOINT_INDEX), &shard)?;
    let meta = CheckpointIndex {
        step: built.step,
        last_request,
    };
    write_atomic(
        &folder.join("index.json"),
        &serde_json::to_vec_pretty(&meta)?,
    )
}

/// The index `checkpoint` saved, with the step of the newest request then; `None` when it
/// saved none. It must index what `starting` does (the same passages, the same width).
fn read_checkpoint_index(
    checkpoint: &std::path::Path,
    starting: &Shard,
) -> anyhow::Result<Option<(Built, usize)>> {
    let (meta_path, shard_path) = (
        checkpoint.join("index.json"),
        checkpoint.join(CHECKPOINT_INDEX),
    );
    if !shard_path.exists() {
        return Ok(None);
    }
    let bytes =
        std::fs::read(&meta_path).with_context(|| format!("reading {}", meta_path.display()))?;
    let meta: CheckpointIndex = serde_json::from_slice(&bytes)
        .with_context(|| format!("reading {}", meta_path.display()))?;
    let shard = read_shard(&shard_path)?;
    if (shard.dim, &shard.ids, shard.corpus) != (starting.dim, &starting.ids, starting.corpus) {
        bail!(
            "{} indexes {} vectors of {} for corpus {:?}, not the starting index's {} of {} for {:?}: \
             the checkpoint is of another corpus or embedder",
            shard_path.display(),
            shard.ids.len(),
            shard.dim,
            shard.corpus,
            starting.ids.len(),
            starting.dim,
            starting.corpus
        );
    }
    let built = Built {
        index: Box::new(ExactIndex::new(widened(&shard), shard.dim)?),
        step: meta.step,
    };
    Ok(Some((built, meta.last_request)))
}

/// The file name of the starting index a run given no `--index` makes in its folder.
const STARTING_INDEX: &str = "start.f32.shard";

/// The starting index of a run given no `--index`: the passages it reads embedded with
/// `--model` at f32, as `realm index --skip --limit --element f32` writes them, made once in
/// `dir/start.f32.shard` (a resumed run and the warm-up find it there).
fn starting_index(
    dir: &std::path::Path,
    args: &PretrainArgs,
    z: &Sizes,
) -> anyhow::Result<PathBuf> {
    let out = dir.join(STARTING_INDEX);
    if !out.exists() {
        eprintln!(
            "pretrain: embedding the passages for the starting index, {}",
            out.display()
        );
        crate::commands::index::run(&crate::commands::index::IndexArgs {
            out: out.clone(),
            element: "f32".into(),
            from: None,
            model: args.model.clone(),
            corpus: args.corpus.clone().expect("clap gives a default"),
            limit: z.limit,
            skip: z.skip,
            max_length: z.block_length,
            batch: 16,
            force: false,
            precision: crate::precision::PrecisionArg::F32,
        })?;
    }
    Ok(out)
}

/// Runs the masked-LM warm-up of the run in `dir` in `dir/warm-up`: `args` with retrieval
/// off for `steps` steps, started, resumed where it stopped, or (finished) resumed with no
/// step left, which only writes its weights again. Their file, or None when the run was
/// stopped with Ctrl-C (in the warm-up, or as it finished).
fn warm_up(
    dir: &std::path::Path,
    args: &PretrainArgs,
    steps: usize,
) -> anyhow::Result<Option<PathBuf>> {
    let warm = dir.join("warm-up");
    let phase = if warm.join("args.json").exists() {
        PretrainArgs {
            out: None,
            resume: Some(warm.clone()),
            ..args.clone()
        }
    } else {
        PretrainArgs {
            out: Some(warm.clone()),
            resume: None,
            candidates: Some(1),
            steps: Some(steps),
            mlm_warmup: Some(0),
            ..args.clone()
        }
    };
    eprintln!(
        "pretrain: the masked-LM warm-up, retrieval off, {steps} steps in {}; then REALM's steps in {}",
        warm.display(),
        dir.display()
    );
    let finished = train(&phase)?;
    // A stop asked for in the warm-up's last step finished it; it still ends the command.
    if finished && crate::train::stop::StopFlag::install()?.requested() {
        eprintln!(
            "pretrain: stopped after the warm-up; continue with `realm pretrain --resume {}`",
            dir.display()
        );
        return Ok(None);
    }
    Ok(finished.then(|| warm.join("realm.safetensors")))
}

fn masking_of(arg: MaskingArg) -> Masking {
    match arg {
        MaskingArg::Salient => Masking::SalientSpan,
        MaskingArg::RandomToken => Masking::RandomToken,
        MaskingArg::RandomSpan => Masking::RandomSpan,
    }
}

/// REALM's retrieval utility on held-out queries: log p(y|z,x) - log p(y|null,x) per masked
/// token for the top retrieved document z (own passage and verbatim copies dropped), and the
/// masked-token accuracy with z and with the null document alone.
#[allow(clippy::too_many_arguments)]
fn retrieval_utility(
    model: &RealmModel,
    held_out: &[(usize, MaskedQuery)],
    docs: &Documents,
    built: &Built,
    tokenizer: &realm_core::text::wordpiece::WordPieceTokenizer,
    z: &Sizes,
    device: &Device,
) -> anyhow::Result<serde_json::Value> {
    let passages = docs.passages;
    let (mut utility, mut right_z, mut right_null, mut tokens) = (0.0f64, 0usize, 0usize, 0usize);
    // The same over the masked wordpieces the top passage's body (as the encoder reads it) holds.
    let (mut utility_in, mut tokens_in) = (0.0f64, 0usize);
    for chunk in held_out.chunks(16) {
        let rows: Vec<(&[u32], &[u32])> = chunk
            .iter()
            .map(|(_, m)| (&m.ids[..], &m.type_ids[..]))
            .collect();
        let query = model
            .embedder
            .embed(&BertInput::padded(&rows, tokenizer.pad_id), device);
        let host: Vec<f32> = query
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32");
        let tops = candidates(&*built.index, &host, chunk, docs, 1)?;
        let mut ids = Vec::new();
        for ((_, m), top) in chunk.iter().zip(&tops) {
            let top = top.first().copied();
            ids.push(encoder_row(m, None, passages, tokenizer, z.max_length)?);
            ids.push(encoder_row(m, top, passages, tokenizer, z.max_length)?);
        }
        let pairs: Vec<(&[u32], &[u32])> = ids.iter().map(|(i, t)| (&i[..], &t[..])).collect();
        let input = BertInput::padded(&pairs, tokenizer.pad_id);
        let targets = chunk
            .iter()
            .map(|(_, m)| m.targets.len())
            .max()
            .unwrap_or(1);
        let positions: Vec<u32> = chunk
            .iter()
            .flat_map(|(_, m)| {
                let row: Vec<u32> = (0..targets)
                    .map(|j| m.targets.get(j).map_or(0, |t| t.0 as u32))
                    .collect();
                [row.clone(), row].concat()
            })
            .collect();
        let logits = model
            .encoder
            .forward_at(&input, &positions, targets, device); // [2 * chunk, targets, vocab]
        let log_probs = burn::tensor::activation::log_softmax(logits, 2);
        let vocab = log_probs.dims()[2];
        let values: Vec<f32> = log_probs
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32");
        for (q, (_, m)) in chunk.iter().enumerate() {
            let body = &ids[2 * q + 1].0[m.ids.len()..];
            for (j, &(_, y)) in m.targets.iter().enumerate() {
                let at = |row: usize| &values[((row * targets) + j) * vocab..][..vocab];
                let (null, with) = (at(2 * q), at(2 * q + 1));
                let gain = f64::from(with[y as usize] - null[y as usize]);
                utility += gain;
                if body.contains(&y) {
                    utility_in += gain;
                    tokens_in += 1;
                }
                let argmax = |v: &[f32]| {
                    v.iter()
                        .enumerate()
                        .fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b })
                        .0
                };
                right_z += usize::from(argmax(with) == y as usize);
                right_null += usize::from(argmax(null) == y as usize);
                tokens += 1;
            }
        }
    }
    let n = tokens.max(1) as f64;
    Ok(serde_json::json!({
        "retrieval_utility": utility / n,
        // Where the top passage holds the masked wordpiece, and how often it does.
        "retrieval_utility_target_in_z": utility_in / tokens_in.max(1) as f64,
        "target_in_z": tokens_in as f64 / n,
        "masked_accuracy": right_z as f64 / n,
        "masked_accuracy_null_only": right_null as f64 / n,
        "held_out_queries": held_out.len(),
        "index_step": built.step,
    }))
}

/// `[CLS] x [SEP] z_body [SEP]` for the query `m` and the passage `z` (`None`: the null
/// document, no body), cut to `max_length`.
fn encoder_row(
    m: &MaskedQuery,
    z: Option<usize>,
    passages: &[Passage],
    tokenizer: &realm_core::text::wordpiece::WordPieceTokenizer,
    max_length: usize,
) -> anyhow::Result<(Vec<u32>, Vec<u32>)> {
    let mut ids = m.ids.clone();
    let mut types = m.type_ids.clone();
    match z {
        Some(z) => {
            let room = max_length - m.ids.len();
            let body = tokenizer.encode(&passages[z].text, Some(room + 1))?;
            // Its wordpieces after [CLS], the final [SEP] included.
            ids.extend(&body.ids[1..]);
            types.extend(std::iter::repeat_n(1, body.ids.len() - 1));
        }
        None => {
            ids.push(tokenizer.sep_id);
            types.push(1);
        }
    }
    Ok((ids, types))
}

/// The marginal masked-LM loss of `masked` queries over their candidates.
#[allow(clippy::too_many_arguments)]
fn realm_loss(
    model: &RealmModel,
    masked: &[(usize, MaskedQuery)],
    docs: &Documents,
    built: &Built,
    tokenizer: &realm_core::text::wordpiece::WordPieceTokenizer,
    z: &Sizes,
    (scale, null_document): (f32, NullDocument),
    device: &Device,
    mut record: Option<&mut serde_json::Value>,
) -> anyhow::Result<(Tensor<1>, Phases)> {
    let (b, k) = (masked.len(), z.candidates);
    let passages = docs.passages;
    let mut phases = Phases::default();
    if k == 1 {
        // Retrieval off: the null document alone, p(null|x) = 1.
        let t = Instant::now();
        let ids = masked
            .iter()
            .map(|(_, m)| encoder_row(m, None, passages, tokenizer, z.max_length))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let loss = encoder_loss(
            model,
            masked,
            &ids,
            Tensor::zeros([b, 1], device),
            tokenizer,
            device,
            record,
        )?;
        phases.encoder = t.elapsed().as_secs_f64();
        return Ok((loss, phases));
    }
    let t = Instant::now();
    let rows: Vec<(&[u32], &[u32])> = masked
        .iter()
        .map(|(_, m)| (&m.ids[..], &m.type_ids[..]))
        .collect();
    let query_input = BertInput::padded(&rows, tokenizer.pad_id);
    let query = model.embedder.embed(&query_input, device); // [b, dim]
    let dim = query.dims()[1];
    let host: Vec<f32> = query
        .clone()
        .detach()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32");
    // The retrieved candidates of each query (passage positions), the null document aside.
    let chosen = candidates(&*built.index, &host, masked, docs, k - 1)?;
    if let Some(short) = chosen.iter().find(|c| c.len() < k - 1) {
        bail!(
            "only {} passages of the whole index may be candidates besides the query's own: \
             the corpus is too small for --candidates {k}",
            short.len()
        );
    }
    phases.retrieval = t.elapsed().as_secs_f64();
    let t = Instant::now();
    // Re-embedded with the current weights: the gradient reaches Embed_doc.
    let texts: Vec<String> = chosen
        .iter()
        .flatten()
        .map(|&z| passages[z].embedding_text())
        .collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let docs_input = tokenizer.encode_batch(&texts, z.block_length)?;
    let docs = model.embedder.embed(&docs_input, device); // [b * (k - 1), dim]
    if let Some(record) = record.as_deref_mut() {
        record["queries"] = input_json(&query_input);
        record["candidates"] = input_json(&docs_input);
        record["scale"] = serde_json::json!(scale);
        record["index_rows"] = serde_json::json!(built.index.len());
        // The first search's depth (deeper ones are rare): the peer searches as deep.
        record["search_depth"] = serde_json::json!(first_depth(k - 1, built.index.len()));
    }
    let null = match null_document {
        NullDocument::Zero => Tensor::<2>::zeros([b, 1], device),
        NullDocument::Embedded => {
            // [CLS] [SEP]: the empty block, embedded as the passages are.
            let empty = tokenizer.encode_batch(&[""], z.block_length)?;
            let empty = model.embedder.embed(&empty, device); // [1, dim]
            query.clone().matmul(empty.transpose()).mul_scalar(scale) // [b, 1]
        }
    };
    let retrieved = (query.reshape([b, 1, dim]) * docs.reshape([b, k - 1, dim]))
        .sum_dim(2)
        .reshape([b, k - 1])
        .mul_scalar(scale);
    let relevance_score = Tensor::cat(vec![null, retrieved], 1); // [b, k]: f(x, null) first
    phases.embed_candidates = t.elapsed().as_secs_f64();
    let t = Instant::now();

    // [CLS] x [SEP] z_body [SEP] for every candidate (the null document has no body).
    let mut ids = Vec::with_capacity(b * k);
    for ((_, m), chosen) in masked.iter().zip(&chosen) {
        for doc in std::iter::once(None).chain(chosen.iter().copied().map(Some)) {
            ids.push(encoder_row(m, doc, passages, tokenizer, z.max_length)?);
        }
    }
    let loss = encoder_loss(
        model,
        masked,
        &ids,
        relevance_score,
        tokenizer,
        device,
        record,
    )?;
    phases.encoder = t.elapsed().as_secs_f64();
    Ok((loss, phases))
}

/// Seconds of a micro-batch's forward, by part (logged in `extra.seconds`).
#[derive(Debug, Default, Clone, Copy, Serialize)]
struct Phases {
    /// Embedding the queries and searching the index.
    retrieval: f64,
    /// Re-embedding the candidates with the current weights.
    embed_candidates: f64,
    /// The knowledge-augmented encoder over every (query, candidate) pair and the loss.
    encoder: f64,
}

/// The per-token marginal loss of `masked` queries, each read with its candidates' encoder
/// rows `ids` (query-major, `k` rows a query) weighted by `relevance_score` [b, k].
fn encoder_loss(
    model: &RealmModel,
    masked: &[(usize, MaskedQuery)],
    ids: &[(Vec<u32>, Vec<u32>)],
    relevance_score: Tensor<2>,
    tokenizer: &realm_core::text::wordpiece::WordPieceTokenizer,
    device: &Device,
    record: Option<&mut serde_json::Value>,
) -> anyhow::Result<Tensor<1>> {
    let (b, k) = (masked.len(), relevance_score.dims()[1]);
    let pairs: Vec<(&[u32], &[u32])> = ids.iter().map(|(i, t)| (&i[..], &t[..])).collect();
    let input = BertInput::padded(&pairs, tokenizer.pad_id);
    // The masked positions of each query, the same in each of its candidates' rows.
    let targets = masked
        .iter()
        .map(|(_, m)| m.targets.len())
        .max()
        .unwrap_or(1);
    let mut positions = Vec::with_capacity(b * k * targets);
    let mut labels = Vec::with_capacity(b * targets);
    let mut mask = Vec::with_capacity(b * targets);
    for (_, m) in masked {
        for _ in 0..k {
            positions.extend((0..targets).map(|j| m.targets.get(j).map_or(0, |t| t.0 as u32)));
        }
        labels.extend(
            (0..targets).map(|j| m.targets.get(j).map_or(IGNORE_LABEL, |t| i64::from(t.1))),
        );
        mask.extend((0..targets).map(|j| if j < m.targets.len() { 1.0f32 } else { 0.0 }));
    }
    if let Some(record) = record {
        record["rows"] = input_json(&input);
        record["candidates_per_query"] = serde_json::json!(k);
        record["targets"] = serde_json::json!(targets);
        record["positions"] = serde_json::json!(positions);
        record["labels"] = serde_json::json!(labels);
    }
    let logits = model
        .encoder
        .forward_at(&input, &positions, targets, device); // [b * k, targets, vocab]
    Ok(marginal_log_likelihood(logits, relevance_score, &labels, &mask).loss)
}

/// A padded batch as JSON (`[batch, seq]` rows of ids, type ids and attention mask).
fn input_json(input: &BertInput) -> serde_json::Value {
    let rows =
        |v: &[u32]| -> Vec<Vec<u32>> { v.chunks(input.seq.max(1)).map(<[u32]>::to_vec).collect() };
    serde_json::json!({
        "input_ids": rows(&input.input_ids),
        "token_type_ids": rows(&input.token_type_ids),
        "attention_mask": rows(&input.attention_mask),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_gives_back_its_index_and_refuses_another_shape() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rng = SplitMix64::new(7);
        let rows: Vec<f32> = (0..5 * 3).map(|_| rng.next_symmetric()).collect();
        let starting = |dim: usize| {
            let mut shard =
                Shard::from_f32(&vec![0.0; 5 * dim], dim, (0..5).collect(), ElementType::F32)
                    .unwrap();
            shard.corpus = Some(9);
            shard
        };
        let built = Built {
            index: Box::new(ExactIndex::new(rows.clone(), 3).unwrap()),
            step: 40,
        };
        assert!(
            read_checkpoint_index(tmp.path(), &starting(3))
                .unwrap()
                .is_none()
        );
        write_checkpoint_index(tmp.path(), &built, 50, &starting(3)).unwrap();
        let (back, last_request) = read_checkpoint_index(tmp.path(), &starting(3))
            .unwrap()
            .unwrap();
        assert_eq!((back.step, last_request), (40, 50));
        assert_eq!(back.index.f32_rows().unwrap(), &rows[..]);
        let other = read_checkpoint_index(tmp.path(), &starting(5))
            .err()
            .unwrap();
        assert!(
            format!("{other:#}").contains("another corpus or embedder"),
            "{other:#}"
        );
        let path = tmp.path().join(CHECKPOINT_INDEX);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
        let cut = read_checkpoint_index(tmp.path(), &starting(3))
            .err()
            .unwrap();
        assert!(format!("{cut:#}").contains(CHECKPOINT_INDEX), "{cut:#}");
    }

    /// Passages 0..n on a line, the query at 0: the nearest are passages 1, 2, ...; `held`
    /// of them (the nearest) belong to an evaluation-only article.
    fn setup(n: usize, held: usize) -> (Vec<Passage>, ExactIndex, Vec<f32>) {
        let passages = (0..n)
            .map(|i| Passage {
                title: if (1..=held).contains(&i) {
                    "Nikola Tesla".into()
                } else {
                    "Super Bowl 50".into()
                },
                text: format!("Passage number {i} of the test corpus."),
            })
            .collect();
        // Unit vectors at growing angles from the query's.
        let rows: Vec<f32> = (0..n)
            .flat_map(|i| {
                let a = i as f32 * 0.01;
                [a.cos(), a.sin()]
            })
            .collect();
        (passages, ExactIndex::new(rows, 2).unwrap(), vec![1.0, 0.0])
    }

    fn query() -> (usize, MaskedQuery) {
        let m = MaskedQuery {
            ids: vec![],
            type_ids: vec![],
            targets: vec![],
            sentence: "The Broncos won Super Bowl 50 in 2016.".into(),
        };
        (0, m)
    }

    #[test]
    fn candidates_search_deeper_past_dropped_passages_and_match_a_plain_scan() {
        for (n, held, want) in [
            (200, 0, 3),
            (200, 50, 3),
            (200, 190, 3),
            (200, 197, 3),
            (60, 58, 3),
        ] {
            let (passages, index, q) = setup(n, held);
            let docs = Documents::new(&passages);
            let got = candidates(&index, &q, &[query()], &docs, want).unwrap();
            // The plain reference: every passage in order of nearness, the dropped ones skipped.
            let expected: Vec<usize> = (0..n)
                .filter(|&z| docs.keeps(&query().1, 0, z))
                .take(want)
                .collect();
            assert_eq!(got, vec![expected.clone()], "n {n}, held {held}");
            assert_eq!(expected.len(), want.min(n - 1 - held));
        }
    }
}
