//! `realm ict`: the inverse cloze task of ORQA (Lee et al., 2019), REALM's warm start for a
//! BERT that does not retrieve yet. A sentence of a passage is the query and the passage is
//! its block, with the sentence removed from it 90% of the time (`--keep-rate` 0.1) so the
//! embedder learns more than word overlap; the loss is the softmax over the batch's blocks,
//! -log softmax_b(scale * Embed(query) . Embed(block))[own], one embedder for both as in
//! REALM's default. The last `--held-out` passages are never trained on: every
//! `--eval-every` steps, each of their first sentences retrieves among their blocks (sentence
//! removed), and the share that finds its own block first is logged.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::bail;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use clap::Args;
use realm_core::model::embedder::RealmEmbedder;
use realm_core::qa::splits::squad_article_is_held_out;
use realm_core::rng::SplitMix64;
use realm_core::text::corpus::Passage;
use realm_core::text::sentences::sentences;
use realm_core::text::wordpiece::WordPieceTokenizer;
use realm_core::train::optim::bert_adamw;
use realm_core::train::reader::logsumexp_rows;
use serde::{Deserialize, Serialize};

use crate::commands::finetune::DeviceKind;
use crate::embed::read_passages;
use crate::files::model_dir::{read_base, sentence_model, write_model_dir};
use crate::files::shard_file::write_atomic;
use crate::train::order::Order;
use crate::train::run_dir::{Run, RunInputs, open_run, resume_or_start};
use crate::train::steps::{Ended, MicroLoss, Schedule, run_steps};

#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct IctArgs {
    /// The run directory to create (checkpoints, metrics.jsonl, embedder.safetensors).
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR from its latest checkpoint, with the flags it was started with
    /// (refused when a file they name changed since: DIR/inputs.json has their sha256).
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Base BERT directory (mean-pooled, normalised embeddings, as sentence-transformers).
    #[arg(long, default_value = "data/all-minilm-l6-v2")]
    pub model: PathBuf,
    /// Passages: JSON lines of {"title", "text"}, or a JSON object of Wikipedia summaries.
    #[arg(long, required_unless_present = "resume")]
    pub corpus: Option<PathBuf>,
    /// Passages held out for the retrieval accuracy (the corpus's last ones).
    #[arg(long, default_value_t = 200)]
    pub held_out: usize,
    /// Share of queries whose sentence stays in its block (ORQA: 0.1).
    #[arg(long, default_value_t = 0.1)]
    pub keep_rate: f64,
    /// The inner products are multiplied by this before the softmax (the embeddings are unit
    /// length, so their products lie in [-1, 1]).
    #[arg(long, default_value_t = 20.0)]
    pub scale: f32,
    /// Optimiser steps.
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Queries (and blocks) per micro-batch: the softmax runs over this many blocks.
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
    /// Wordpieces of a query.
    #[arg(long, default_value_t = 64)]
    pub query_length: usize,
    /// Wordpieces of a block (title and text).
    #[arg(long, default_value_t = 128)]
    pub block_length: usize,
    /// Steps between evaluations of the held-out retrieval accuracy.
    #[arg(long, default_value_t = 100)]
    pub eval_every: usize,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: usize,
    /// Seed of the data order and of each passage's query sentence.
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

impl RunInputs for IctArgs {
    fn inputs(&self) -> Vec<Option<&Path>> {
        vec![Some(self.model.as_path()), self.corpus.as_deref()]
    }
}

/// A passage cut into its sentences.
struct Block {
    title: String,
    text: String,
    sentences: Vec<(usize, usize)>,
}

impl Block {
    /// The block as the embedder sees it, sentence `removed` cut out.
    fn without(&self, removed: Option<usize>) -> String {
        let text = match removed {
            Some(k) => {
                let (s, e) = self.sentences[k];
                format!(
                    "{} {}",
                    self.text[..s].trim_end(),
                    self.text[e..].trim_start()
                )
            }
            None => self.text.clone(),
        };
        Passage {
            title: self.title.clone(),
            text: text.trim().to_string(),
        }
        .embedding_text()
    }

    fn sentence(&self, k: usize) -> &str {
        &self.text[self.sentences[k].0..self.sentences[k].1]
    }
}

pub fn run(args: &IctArgs) -> anyhow::Result<()> {
    // `_lock` (not `_`) keeps the run directory locked to the end of the run.
    let Run {
        dir,
        args,
        resuming,
        lock: _lock,
    } = open_run(args.out.as_deref(), args.resume.as_deref(), args, |saved| {
        IctArgs {
            quiet: args.quiet,
            ..saved
        }
    })?;
    if args.steps == 0 || args.batch < 2 || args.accumulate == 0 || args.checkpoint_every == 0 {
        bail!(
            "--steps, --accumulate and --checkpoint-every must be at least 1 and --batch at least 2 (the softmax runs over the batch's blocks)"
        );
    }
    if !(0.0..=1.0).contains(&args.keep_rate) {
        bail!("--keep-rate is a share in [0, 1], not {}", args.keep_rate);
    }
    let corpus = args
        .corpus
        .clone()
        .expect("clap requires --corpus without --resume");
    let device = args.device.device();
    let train_device = device.clone().autodiff();
    let base = read_base(&args.model)?;

    // Passages with at least two sentences: a query and something left of its block; none of
    // a held-out SQuAD article, whose questions open QA is scored on.
    let blocks: Vec<Block> = read_passages(&corpus, 0)?
        .into_iter()
        .filter(|p| !squad_article_is_held_out(&p.title.replace(' ', "_")))
        .map(|p| Block {
            sentences: sentences(&p.text),
            title: p.title,
            text: p.text,
        })
        .filter(|b| b.sentences.len() >= 2)
        .collect();
    if blocks.len() < args.held_out + args.batch {
        bail!(
            "{} has {} passages of two or more sentences: too few for --held-out {} and --batch {}",
            corpus.display(),
            blocks.len(),
            args.held_out,
            args.batch
        );
    }
    let (train, held_out) = blocks.split_at(blocks.len() - args.held_out);
    eprintln!(
        "ict: {} training passages, {} held out; {} steps of {} x {}",
        train.len(),
        held_out.len(),
        args.steps,
        args.batch,
        args.accumulate
    );

    let model = sentence_model(&base, &device)?;
    let tokenizer = model.tokenizer.clone();
    let embedder: RealmEmbedder = model.embedder.fork(&train_device).train();
    let (embedder, optim, start) = resume_or_start(&dir, resuming, embedder, bert_adamw)?;

    let lengths: Vec<usize> = train.iter().map(|b| b.text.len()).collect();
    // New batches each epoch: a passage's negatives are the rest of its batch.
    let mut order = Order::regrouped(&lengths, args.batch, args.seed);
    let schedule = Schedule {
        name: "ict",
        dir: &dir,
        steps: args.steps,
        accumulate: args.accumulate,
        batch: args.batch,
        lr: args.lr,
        warmup: (args.warmup * args.steps as f64).round() as usize,
        clip: args.clip,
        checkpoint_every: args.checkpoint_every,
        seed: args.seed,
        plot_title: "realm ict: inverse cloze loss",
        quiet: args.quiet,
        eval_every: args.eval_every,
        rates: Vec::new(),
    };
    let micro = |model: &RealmEmbedder, position: usize| {
        let t = Instant::now();
        // The sentence of each passage and whether it stays: drawn from the seed and the data
        // cursor, so a resumed run draws the same.
        let mut rng =
            SplitMix64::new(args.seed ^ (position as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
        let picked = order.batch(position).to_vec();
        let mut queries = Vec::with_capacity(picked.len());
        let mut contexts = Vec::with_capacity(picked.len());
        for &i in &picked {
            let block = &train[i];
            let k = (rng.next_u64() % block.sentences.len() as u64) as usize;
            let keep = (rng.next_u64() as f64 / u64::MAX as f64) < args.keep_rate;
            queries.push(block.sentence(k).to_string());
            contexts.push(block.without((!keep).then_some(k)));
        }
        let data_seconds = t.elapsed().as_secs_f64();
        let loss = in_batch_loss(model, &tokenizer, &queries, &contexts, &args, &train_device)?
            .div_scalar(args.accumulate as f64);
        Ok(MicroLoss {
            loss,
            data_seconds,
            describe: format!("passages {picked:?}"),
            extra: serde_json::Value::Null,
        })
    };
    let mut evaluate = |model: &RealmEmbedder| -> anyhow::Result<serde_json::Value> {
        let accuracy = held_out_accuracy(&model.valid(), &tokenizer, held_out, &args, &device)?;
        Ok(serde_json::json!({ "held_out_accuracy": accuracy }))
    };
    let evaluate: Option<crate::train::steps::Evaluate<RealmEmbedder>> =
        (args.eval_every > 0).then_some(&mut evaluate);
    let embedder = match run_steps(&schedule, embedder, optim, start, micro, evaluate, None)? {
        Ended::Finished(model) => model,
        Ended::Stopped(_) => return Ok(()),
    };
    let weights = realm_core::checkpoint::module_io::export_params(&embedder.valid(), |_| true);
    write_atomic(
        &dir.join("embedder.safetensors"),
        &realm_core::checkpoint::safetensors_file::write_safetensors(&weights)?,
    )?;
    write_model_dir(
        &dir.join("embedder"),
        &args.model,
        &embedder.valid().bert.hf_weights(""),
    )?;
    eprintln!(
        "ict: done; the embedder is in {} (embedder.safetensors, by module path; embedder/, a model directory for --model)",
        dir.display()
    );
    Ok(())
}

/// The in-batch softmax loss: query `i`'s own block is `contexts[i]`, the others are its
/// negatives.
fn in_batch_loss(
    model: &RealmEmbedder,
    tokenizer: &WordPieceTokenizer,
    queries: &[String],
    contexts: &[String],
    args: &IctArgs,
    device: &Device,
) -> anyhow::Result<Tensor<1>> {
    let b = queries.len();
    let q: Vec<&str> = queries.iter().map(String::as_str).collect();
    let c: Vec<&str> = contexts.iter().map(String::as_str).collect();
    let q = model.embed(&tokenizer.encode_batch(&q, args.query_length)?, device); // [b, dim]
    let c = model.embed(&tokenizer.encode_batch(&c, args.block_length)?, device); // [b, dim]
    let scores = q.matmul(c.transpose()).mul_scalar(args.scale); // [b, b]
    let own: Tensor<2> = scores.clone() * Tensor::<2>::eye(b, device); // [b, b]
    let own = own.sum_dim(1).reshape([b]); // [b]
    Ok((logsumexp_rows(scores) - own).mean())
}

/// Share of held-out passages whose first sentence, as a query, scores its own block (with
/// the sentence removed) highest among all held-out blocks.
fn held_out_accuracy(
    model: &RealmEmbedder,
    tokenizer: &WordPieceTokenizer,
    held_out: &[Block],
    args: &IctArgs,
    device: &Device,
) -> anyhow::Result<f64> {
    let mut queries = Vec::new();
    let mut blocks = Vec::new();
    for chunk in held_out.chunks(32) {
        let q: Vec<&str> = chunk.iter().map(|b| b.sentence(0)).collect();
        let c: Vec<String> = chunk.iter().map(|b| b.without(Some(0))).collect();
        let c: Vec<&str> = c.iter().map(String::as_str).collect();
        queries.push(model.embed(&tokenizer.encode_batch(&q, args.query_length)?, device));
        blocks.push(model.embed(&tokenizer.encode_batch(&c, args.block_length)?, device));
    }
    let scores = Tensor::cat(queries, 0).matmul(Tensor::cat(blocks, 0).transpose()); // [n, n]
    let n = held_out.len();
    let values: Vec<f32> = scores
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 scores");
    let right = (0..n)
        .filter(|&i| {
            let row = &values[i * n..(i + 1) * n];
            row.iter().enumerate().all(|(j, &v)| j == i || v < row[i])
        })
        .count();
    Ok(right as f64 / n as f64)
}
