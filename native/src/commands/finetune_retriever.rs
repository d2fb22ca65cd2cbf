//! `realm finetune-retriever`: fine-tunes the question embedder `Embed_input` as REALM
//! (section 3.5) and ORQA do, with the passages' embeddings fixed (the index from `realm
//! index`): for each training question the current embedder retrieves the top `--top-b`
//! passages, and the loss is the retriever's marginal over those that contain an answer,
//! -log sum_{z in top-B, answer in z} softmax_z(scale * Embed_input(x) . Embed_doc(z)).
//! Questions with no answer in their top B are left out of the step, as ORQA leaves them out.
//! Only the top `--train-layers` layers of the question embedder train (the shipped tensors
//! stay small); the result is `query.safetensors` and `query.json` in the run directory, which
//! `realm ask` and `realm eval` use when they sit beside the reader.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use burn::module::Module;
use clap::Args;
use realm_core::model::embedder::RealmEmbedder;
use realm_core::train::optim::bert_adamw;
use serde::{Deserialize, Serialize};

use crate::commands::finetune::DeviceKind;
use crate::files::model_dir::{SentenceModel, read_base, sentence_model};
use crate::qa::data::{
    SquadSplit, check_training_split, paragraphs_outside, read_training_file, squad_split,
};
use crate::qa::fixed_passages::FixedPassages;
use crate::qa::query_model::{export_query_encoder, top_layers, trainable_embedder};
use crate::train::order::Order;
use crate::train::run_dir::{Run, RunInputs, open_run, resume_or_start};
use crate::train::steps::{Ended, MicroLoss, Schedule, run_steps};

#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct RetrieverArgs {
    /// The run directory to create (checkpoints, metrics.jsonl, query.safetensors).
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR from its latest checkpoint, with the flags it was started with
    /// (refused when a file they name changed since: DIR/inputs.json has their sha256).
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Base BERT directory; the index must have been built with it.
    #[arg(long, default_value = "data/all-minilm-l6-v2")]
    pub model: PathBuf,
    /// Training questions: SQuAD v1.1 JSON (answer strings; the paragraphs are not read). The
    /// open sets' test questions are left out wherever they appear (core/src/qa/splits.rs).
    #[arg(long, required_unless_present = "resume")]
    pub squad: Option<PathBuf>,
    /// The SQuAD articles trained on: always the 36 training ones (not a flag; kept in the
    /// saved arguments of a run).
    #[arg(skip)]
    #[serde(default)]
    pub split: SquadSplit,
    /// The fixed passage embeddings: an index shard of `--corpus` (`realm index`).
    #[arg(long, required_unless_present = "resume")]
    pub index: Option<PathBuf>,
    /// The passages `--index` was built from.
    #[arg(long, required_unless_present = "resume")]
    pub corpus: Option<PathBuf>,
    /// Passages retrieved per question for the marginal (REALM's B; 5,000 at paper scale).
    #[arg(long, default_value_t = 100)]
    pub top_b: usize,
    /// The inner products are multiplied by this before the softmax (the embeddings are unit
    /// length, so their products lie in [-1, 1]).
    #[arg(long, default_value_t = 20.0)]
    pub scale: f32,
    /// How many of the embedder's top layers train; the rest stay the base model's.
    #[arg(long, default_value_t = 2)]
    pub train_layers: usize,
    /// Optimiser steps.
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Questions per micro-batch.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Micro-batches whose gradients are summed into one step.
    #[arg(long, default_value_t = 1)]
    pub accumulate: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-5)]
    pub lr: f64,
    /// Share of the steps spent warming up (linear warm-up, then linear decay).
    #[arg(long, default_value_t = 0.1)]
    pub warmup: f64,
    /// Global gradient-norm clip.
    #[arg(long, default_value_t = 1.0)]
    pub clip: f32,
    /// Wordpieces of a question.
    #[arg(long, default_value_t = 64)]
    pub max_length: usize,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 50)]
    pub checkpoint_every: usize,
    /// Use only the first N training questions (0: all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Seed of the data order.
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
}

impl RunInputs for RetrieverArgs {
    fn inputs(&self) -> Vec<Option<&Path>> {
        vec![
            Some(self.model.as_path()),
            self.squad.as_deref(),
            self.index.as_deref(),
            self.corpus.as_deref(),
        ]
    }
}

pub fn run(args: &RetrieverArgs) -> anyhow::Result<()> {
    // `_lock` (not `_`) keeps the run directory locked to the end of the run.
    let Run {
        dir,
        args,
        resuming,
        lock: _lock,
    } = open_run(args.out.as_deref(), args.resume.as_deref(), args, |saved| {
        RetrieverArgs {
            quiet: args.quiet,
            ..saved
        }
    })?;
    check_training_split(args.split)?;
    if args.steps == 0 || args.batch == 0 || args.accumulate == 0 || args.checkpoint_every == 0 {
        bail!("--steps, --batch, --accumulate and --checkpoint-every must be at least 1");
    }
    if args.top_b < 2 {
        bail!("--top-b must be at least 2: the marginal needs passages to choose between");
    }
    if !(args.lr > 0.0 && args.lr.is_finite()) || !(args.scale > 0.0 && args.scale.is_finite()) {
        bail!("--lr and --scale must be positive numbers");
    }
    let device = args.device.device();
    let train_device = device.clone().autodiff();
    let base = read_base(&args.model)?;
    let given = |p: &Option<PathBuf>| p.clone().expect("clap requires it without --resume");
    let (squad, index_path, corpus) = (given(&args.squad), given(&args.index), given(&args.corpus));
    let layers = base.config.num_hidden_layers;
    if args.train_layers == 0 || args.train_layers > layers {
        bail!("--train-layers must be in 1..={layers} (the base model's layers)");
    }

    let all = read_training_file(&squad)?;
    // Passages that are paragraphs of questions outside the split are never a training target.
    let unseen_text = paragraphs_outside(&all, args.split);
    let mut questions = squad_split(all, args.split);
    if args.limit > 0 {
        questions.truncate(args.limit);
    }
    let fixed = FixedPassages::open(
        &index_path,
        &corpus,
        &args.model,
        base.config.hidden_size,
        &unseen_text,
        args.top_b,
    )?;
    let examples = &questions; // the training questions, in the order `Order` counts them
    if examples.is_empty() {
        bail!("no training questions in {}", squad.display());
    }
    eprintln!(
        "finetune-retriever: {} questions, top {} of {} passages, the top {} of {layers} layers train; {} steps of {} x {}",
        examples.len(),
        args.top_b,
        fixed.len(),
        args.train_layers,
        args.steps,
        args.batch,
        args.accumulate
    );

    let trains = top_layers(layers, args.train_layers);
    let model = sentence_model(&base, &device)?;
    let tokenizer = model.tokenizer.clone();
    let embedder = trainable_embedder(model.embedder, &trains, &train_device);
    let (embedder, optim, start) = resume_or_start(&dir, resuming, embedder, bert_adamw)?;

    let lengths: Vec<usize> = examples.iter().map(|e| e.question.len()).collect();
    let mut order = Order::new(&lengths, args.batch, args.seed);
    let schedule = Schedule {
        name: "finetune-retriever",
        dir: &dir,
        steps: args.steps,
        accumulate: args.accumulate,
        batch: args.batch,
        lr: args.lr,
        warmup: (args.warmup * args.steps as f64).round() as usize,
        clip: args.clip,
        checkpoint_every: args.checkpoint_every,
        seed: args.seed,
        plot_title: "realm finetune-retriever: retriever loss",
        quiet: args.quiet,
        eval_every: 0,
        rates: Vec::new(),
    };
    let micro = |model: &RealmEmbedder, position: usize| {
        let t = Instant::now();
        let picked = order.batch(position).to_vec();
        let texts: Vec<&str> = picked
            .iter()
            .map(|&i| examples[i].question.as_str())
            .collect();
        let input = tokenizer.encode_batch(&texts, args.max_length)?;
        let tokenized = t.elapsed().as_secs_f64();
        let queries = model.embed(&input, &train_device); // [batch, dim]
        let golds: Vec<_> = picked.iter().map(|&i| &examples[i].gold).collect();
        let ids: Vec<_> = picked.iter().map(|&i| examples[i].id.as_str()).collect();
        let retrieved =
            fixed.retriever_loss(queries, &golds, &ids, args.top_b, args.scale, &train_device)?;
        // Tokenising, searching and gathering; the embedding's forward is not data.
        let data_seconds = tokenized + retrieved.search_seconds;
        // A batch where no question has an answer in its top B teaches nothing: loss 0.
        let loss = retrieved
            .sum
            .div_scalar(retrieved.used.max(1) as f32 * args.accumulate as f32);
        Ok(MicroLoss {
            loss,
            data_seconds,
            describe: format!(
                "questions {}",
                picked
                    .iter()
                    .map(|&i| examples[i].id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            extra: serde_json::Value::Null,
        })
    };
    let embedder = match run_steps(&schedule, embedder, optim, start, micro, None, None)? {
        Ended::Finished(model) => model,
        Ended::Stopped(_) => return Ok(()),
    };
    let trained_how = serde_json::json!({
        "data": format!("{} ({:?} split), {} questions", squad.display(), args.split, examples.len()),
        "index": index_path.display().to_string(),
        "top_b": args.top_b,
        "scale": args.scale,
        "train_layers": args.train_layers,
        "steps": args.steps,
        "batch": args.batch * args.accumulate,
        "lr": args.lr,
    });
    let trained = SentenceModel {
        embedder: embedder.valid(),
        tokenizer,
    };
    export_query_encoder(&dir, &trained, &base, trains, trained_how)?;
    eprintln!(
        "finetune-retriever: done; the question embedder is in {} (query.safetensors, query.json): copy both beside a reader to use it",
        dir.display()
    );
    Ok(())
}
