//! `realm finetune`: trains the span reader on question/paragraph pairs (REALM section 3.5's
//! reader loss, the marginal over gold spans of width <= 10), starting from a plain BERT such
//! as all-MiniLM-L6-v2 with a fresh span head. The loop reads top to bottom: learning rate,
//! micro-batches (forward, backward, accumulate), global-norm clipping, the optimiser step,
//! one metrics line, and a checkpoint every `--checkpoint-every` steps and on Ctrl-C.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::Device;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use realm_core::model::config::ReaderConfig;
use realm_core::model::reader::SpanReader;
use realm_core::rng::SplitMix64;
use realm_core::train::optim::{bert_adamw, clip_global_norm};
use realm_core::train::reader::{ReaderFeatures, featurize, read_rows, reader_batch, span_loss};
use realm_core::train::schedule::lr_at;
use serde::{Deserialize, Serialize};

use crate::files::model_dir::read_base;
use crate::qa::data::{SquadSplit, read_questions, squad_split};
use crate::qa::reader_model::{ReaderCard, export_reader, freeze_word_embeddings, fresh_reader};
use crate::train::metrics::{MetricsLog, Phases, StepLine};
use crate::train::plot::plot_losses;
use crate::train::run_dir::{TrainState, latest_checkpoint, load_checkpoint, save_checkpoint};
use crate::train::stop::StopFlag;

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
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR from its latest checkpoint, with the flags it was started with.
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
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// Print no progress bar.
    #[arg(long)]
    #[serde(skip)]
    pub quiet: bool,
}

/// Training batches in a fixed order per epoch, drawn from the seed: examples sorted by
/// length are cut into batches (little padding inside a batch), and each epoch shuffles the
/// batches. The data cursor is the step, so a resumed run reads exactly what the
/// uninterrupted one would have.
struct Order {
    /// Example indices of every batch, shortest batch first.
    batches: Vec<Vec<usize>>,
    seed: u64,
    epochs: HashMap<usize, Vec<usize>>,
}

impl Order {
    fn new(lengths: &[usize], batch: usize, seed: u64) -> Self {
        let mut sorted: Vec<usize> = (0..lengths.len()).collect();
        sorted.sort_by_key(|&i| (lengths[i], i));
        let batches = sorted.chunks(batch).map(<[usize]>::to_vec).collect();
        Self {
            batches,
            seed,
            epochs: HashMap::new(),
        }
    }

    /// The examples of the `position`-th batch of the run.
    fn batch(&mut self, position: usize) -> &[usize] {
        let n = self.batches.len();
        let (epoch, i) = (position / n, position % n);
        let seed = self.seed;
        let perm = self.epochs.entry(epoch).or_insert_with(|| {
            let mut rng =
                SplitMix64::new(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut p: Vec<usize> = (0..n).collect();
            for j in (1..n).rev() {
                p.swap(j, (rng.next_u64() % (j as u64 + 1)) as usize);
            }
            p
        });
        &self.batches[perm[i]]
    }
}

pub fn run(args: &FinetuneArgs) -> anyhow::Result<()> {
    let (dir, args, resuming) = match &args.resume {
        Some(dir) => {
            let saved: FinetuneArgs =
                serde_json::from_slice(&std::fs::read(dir.join("args.json")).with_context(
                    || format!("{} is not a run directory (no args.json)", dir.display()),
                )?)?;
            (
                dir.clone(),
                FinetuneArgs {
                    quiet: args.quiet,
                    ..saved
                },
                true,
            )
        }
        None => {
            let dir = args
                .out
                .clone()
                .expect("clap requires --out without --resume");
            if dir.join("args.json").exists() {
                bail!(
                    "{} already holds a run: continue it with --resume {0}, or choose another --out",
                    dir.display()
                );
            }
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            crate::files::shard_file::write_atomic(
                &dir.join("args.json"),
                &serde_json::to_vec_pretty(args)?,
            )?;
            (dir, args.clone(), false)
        }
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
    let mut questions = squad_split(read_questions(squad)?, args.split);
    if args.limit > 0 {
        questions.truncate(args.limit);
    }
    let examples = featurize_all(
        &base.tokenizer,
        &questions,
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
        "finetune: {} of {} questions have a gold span within {} wordpieces; {} steps of {} x {}",
        examples.len(),
        questions.len(),
        args.max_length,
        args.steps,
        args.batch,
        args.accumulate
    );

    let mut model = fresh_reader(&base, &reader_config, args.seed, &device)?;
    if !args.train_word_embeddings {
        model = freeze_word_embeddings(model);
    }
    let mut model: SpanReader = model.fork(&train_device).train();
    let mut optim;
    let mut start = 0;
    match latest_checkpoint(&dir)?.filter(|_| resuming) {
        Some(checkpoint) => {
            let state;
            (model, optim, state) = load_checkpoint(&checkpoint, model, bert_adamw)?;
            start = state.step;
            eprintln!("finetune: resumed {} at step {start}", checkpoint.display());
        }
        None => optim = bert_adamw(&model),
    }
    let mut metrics = MetricsLog::open(&dir, start)?;
    let stop = StopFlag::install()?;
    let warmup = (args.warmup * args.steps as f64).round() as usize;
    let lengths: Vec<usize> = examples.iter().map(|e| e.encoded.ids.len()).collect();
    let mut order = Order::new(&lengths, args.batch, args.seed);
    let bar = progress_bar(args.steps, start, args.quiet);
    let mut step = start;
    while step < args.steps {
        let lr = lr_at(step, args.lr, warmup, args.steps);
        let t_step = Instant::now();
        let mut phases = Phases::default();
        let mut accumulator = GradientsAccumulator::<SpanReader>::new();
        let mut loss_sum = 0.0f64;
        for micro in 0..args.accumulate {
            let t = Instant::now();
            let picked = order.batch(step * args.accumulate + micro).to_vec();
            let rows: Vec<&_> = picked.iter().map(|&i| &examples[i].encoded).collect();
            let gold: Vec<Vec<(u32, u32)>> =
                picked.iter().map(|&i| examples[i].gold.clone()).collect();
            let batch = reader_batch(&rows, base.tokenizer.pad_id, reader_config.max_span_width);
            phases.data += t.elapsed().as_secs_f64();

            let t = Instant::now();
            let output = read_rows(&model, &batch, &train_device);
            let loss = span_loss(&output, &gold).div_scalar(args.accumulate as f64);
            let value: f32 = loss.clone().into_scalar::<f32>();
            phases.forward += t.elapsed().as_secs_f64();
            if !value.is_finite() {
                bail!(
                    "step {step}, micro-batch {micro}: the loss is {value} (questions {}); no checkpoint was written past step {}: \
                     lower --lr or check the data, then --resume {}",
                    picked
                        .iter()
                        .map(|&i| examples[i].id.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    (step / args.checkpoint_every) * args.checkpoint_every,
                    dir.display()
                );
            }
            loss_sum += f64::from(value);

            let t = Instant::now();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            accumulator.accumulate(&model, grads);
            phases.backward += t.elapsed().as_secs_f64();
        }
        let t = Instant::now();
        let mut grads = accumulator.grads();
        let grad_norm = clip_global_norm(&model, &mut grads, args.clip);
        if !grad_norm.is_finite() {
            bail!(
                "step {step}: the gradient norm is {grad_norm}; the weights were not updated and no checkpoint was \
                 written past step {}: lower --lr or check the data, then --resume {}",
                (step / args.checkpoint_every) * args.checkpoint_every,
                dir.display()
            );
        }
        model = optim.step(lr, model, grads);
        phases.optimizer = t.elapsed().as_secs_f64();
        step += 1;

        let seconds = t_step.elapsed().as_secs_f64();
        metrics.write(&StepLine {
            step: step - 1,
            loss: loss_sum,
            lr,
            grad_norm: f64::from(grad_norm),
            examples_per_s: (args.batch * args.accumulate) as f64 / seconds,
            seconds: phases,
        })?;
        bar.set_message(format!("loss {loss_sum:.3}"));
        bar.inc(1);

        let stopping = stop.requested();
        if step % args.checkpoint_every == 0 || step == args.steps || stopping {
            save_checkpoint(
                &dir,
                &model,
                &optim,
                &TrainState {
                    step,
                    seed: args.seed,
                },
            )?;
            plot_losses(&dir, "realm finetune: span-reader loss")?;
        }
        if stopping {
            bar.abandon();
            eprintln!(
                "finetune: stopped at step {step}; continue with `realm finetune --resume {}`",
                dir.display()
            );
            return Ok(());
        }
    }
    bar.finish_and_clear();
    let card = ReaderCard {
        base_sha256: String::new(),
        sha256: String::new(),
        head_seed: args.seed,
        reader: reader_config,
        max_length: args.max_length,
        trained: serde_json::json!({
            "data": format!("{} ({:?} split), {} questions with a gold span", squad.display(), args.split, examples.len()),
            "steps": args.steps,
            "batch": args.batch * args.accumulate,
            "lr": args.lr,
        }),
    };
    export_reader(&dir, &model.valid(), &base, card)?;
    eprintln!(
        "finetune: done; the reader is in {} (reader.safetensors, reader.json), metrics in {}, the loss curve in {}",
        dir.display(),
        metrics.path().display(),
        dir.join("loss.png").display()
    );
    Ok(())
}

/// A featurised question and its id.
struct Example {
    id: String,
    encoded: realm_core::text::wordpiece::Encoded,
    gold: Vec<(u32, u32)>,
}

fn featurize_all(
    tokenizer: &realm_core::text::wordpiece::WordPieceTokenizer,
    questions: &[realm_core::qa::datasets::Question],
    max_length: usize,
    max_span_width: usize,
) -> anyhow::Result<Vec<Example>> {
    let mut out = Vec::new();
    for q in questions {
        let Some(context) = &q.context else {
            bail!(
                "question {} has no paragraph: the reader trains on SQuAD-style files",
                q.id
            );
        };
        let ReaderFeatures { encoded, gold } = featurize(
            tokenizer,
            &q.question,
            &context.text,
            &context.answers,
            max_length,
            max_span_width,
        )?;
        if !gold.is_empty() {
            out.push(Example {
                id: q.id.clone(),
                encoded,
                gold,
            });
        }
    }
    Ok(out)
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

fn progress_bar(total: usize, start: usize, quiet: bool) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "finetune {bar:40} step {pos}/{len} {msg} [{elapsed_precise}, {eta} left]",
        )
        .expect("a valid template"),
    );
    bar.set_position(start as u64);
    bar
}
