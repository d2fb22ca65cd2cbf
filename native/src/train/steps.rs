//! The optimiser-step loop every trainer runs, top to bottom: the learning rate of the step,
//! its micro-batches (forward, a NaN/inf guard, backward, accumulate), global-norm clipping,
//! the optimiser step, one metrics line, a checkpoint every `checkpoint_every` steps and on
//! Ctrl-C. What a micro-batch is and how its loss is computed is the trainer's closure.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use anyhow::bail;
use burn::module::{Module, ParamId};
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;
use indicatif::{ProgressBar, ProgressStyle};
use realm_core::train::optim::{clip_global_norm, split_grads};
use realm_core::train::schedule::lr_at;

use crate::train::metrics::{MetricsLog, Phases, StepLine};
use crate::train::plot::plot_losses;
use crate::train::run_dir::{CheckpointExtra, TrainState, save_checkpoint};
use crate::train::stop::StopFlag;

/// The schedule and bookkeeping of a run.
pub struct Schedule<'a> {
    /// The command's name, for messages (`finetune`).
    pub name: &'a str,
    pub dir: &'a Path,
    pub steps: usize,
    pub accumulate: usize,
    /// Examples in one micro-batch (for examples/s).
    pub batch: usize,
    pub lr: f64,
    /// Warm-up steps.
    pub warmup: usize,
    pub clip: f32,
    pub checkpoint_every: usize,
    pub seed: u64,
    pub plot_title: &'a str,
    pub quiet: bool,
    /// Steps between evaluations (0: none); with evaluations there is one before the first
    /// step and one after the last.
    pub eval_every: usize,
    /// Groups of parameters that step at `lr` times a factor of their own (a freshly drawn
    /// head on a pre-trained body learns faster; a retriever fed a noisy gradient, slower);
    /// empty: every parameter at `lr`.
    pub rates: Vec<(Vec<ParamId>, f64)>,
}

/// An evaluation of the model between steps: one metrics line `{"step", "after_steps",
/// "eval": {...}}` and one line on stderr.
pub type Evaluate<'a, M> = &'a mut dyn FnMut(&M) -> anyhow::Result<serde_json::Value>;

/// One micro-batch's loss (already divided by the micro-batches of a step) and what it held,
/// named in the error when the loss is not finite.
pub struct MicroLoss {
    pub loss: Tensor<1>,
    /// Seconds spent assembling the batch.
    pub data_seconds: f64,
    pub describe: String,
    /// Logged in the step's metrics line (`Value::Null`: nothing).
    pub extra: serde_json::Value,
}

/// How a run ended.
pub enum Ended<M> {
    /// Every step ran: the trained model.
    Finished(M),
    /// Ctrl-C: the step finished and a checkpoint was written; the model as it stands.
    Stopped(M),
}

/// Runs steps `start..steps` of `model`, `micro(model, position)` giving the loss of the
/// `position`-th micro-batch of the run (the data cursor, so a resumed run reads what the
/// uninterrupted one would have); `checkpoint_extra` adds to each checkpoint.
pub fn run_steps<M: Module>(
    schedule: &Schedule,
    mut model: M,
    mut optim: ModuleOptimizer,
    start: usize,
    mut micro: impl FnMut(&M, usize) -> anyhow::Result<MicroLoss>,
    mut evaluate: Option<Evaluate<M>>,
    mut checkpoint_extra: Option<CheckpointExtra>,
) -> anyhow::Result<Ended<M>> {
    let s = schedule;
    let mut metrics = MetricsLog::open(s.dir, start)?;
    let stop = StopFlag::install()?;
    let bar = progress_bar(s.name, s.steps, start, s.quiet);
    let mut eval_now = |model: &M, done: usize, metrics: &mut MetricsLog| -> anyhow::Result<()> {
        if let Some(evaluate) = evaluate.as_mut() {
            let result = evaluate(model)?;
            metrics.write(&serde_json::json!({
                "step": done.saturating_sub(1),
                "after_steps": done,
                "eval": result,
            }))?;
            crate::train::plot::plot_evals(
                s.dir,
                &format!("realm {}: held-out evaluation", s.name),
            )?;
            let line = format!("{}: after {done} steps: {result}", s.name);
            match (s.quiet, std::io::stderr().is_terminal()) {
                (true, _) => {}
                (false, true) => bar.println(line),
                (false, false) => eprintln!("{line}"),
            }
        }
        Ok(())
    };
    if start == 0 && s.eval_every > 0 {
        eval_now(&model, 0, &mut metrics)?;
    }
    // The step of the newest checkpoint (the one resumed from, or 0 before any).
    let mut saved_at = start;
    let started = Instant::now();
    let mut step = start;
    while step < s.steps {
        let lr = lr_at(step, s.lr, s.warmup, s.steps);
        let t_step = Instant::now();
        let mut phases = Phases::default();
        let mut accumulator = GradientsAccumulator::<M>::new();
        let mut loss_sum = 0.0f64;
        let mut extra = serde_json::Value::Null;
        for m in 0..s.accumulate {
            let t = Instant::now();
            let MicroLoss {
                loss,
                data_seconds,
                describe,
                extra: micro_extra,
            } = micro(&model, step * s.accumulate + m)?;
            extra = micro_extra;
            let value: f32 = loss.clone().into_scalar::<f32>();
            phases.data += data_seconds;
            phases.forward += t.elapsed().as_secs_f64() - data_seconds;
            if !value.is_finite() {
                bail!(
                    "step {step}, micro-batch {m}: the loss is {value} ({describe}); no checkpoint was written past step {}: \
                     {}",
                    saved_at,
                    start_again(s.dir)
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
        let grad_norm = clip_global_norm(&model, &mut grads, s.clip);
        if !grad_norm.is_finite() {
            bail!(
                "step {step}: the gradient norm is {grad_norm}; the weights were not updated and no checkpoint was \
                 written past step {}: {}",
                saved_at,
                start_again(s.dir)
            );
        }
        // A group at factor 1 steps with the rest: one optimiser pass fewer.
        let groups: Vec<_> = s
            .rates
            .iter()
            .filter(|(_, factor)| *factor != 1.0)
            .map(|(ids, factor)| (split_grads(&model, &mut grads, ids), *factor))
            .collect();
        model = optim.step(lr, model, grads);
        for (grads, factor) in groups {
            model = optim.step(lr * factor, model, grads);
        }
        phases.optimizer = t.elapsed().as_secs_f64();
        step += 1;

        let seconds = t_step.elapsed().as_secs_f64();
        metrics.write(&StepLine {
            step: step - 1,
            loss: loss_sum,
            lr,
            grad_norm: f64::from(grad_norm),
            examples_per_s: (s.batch * s.accumulate) as f64 / seconds,
            seconds: phases,
            extra: extra.clone(),
        })?;
        bar.set_message(format!("loss {loss_sum:.3}"));
        bar.inc(1);

        if s.eval_every > 0 && (step.is_multiple_of(s.eval_every) || step == s.steps) {
            eval_now(&model, step, &mut metrics)?;
        }
        let stopping = stop.requested();
        if step.is_multiple_of(s.checkpoint_every) || step == s.steps || stopping {
            if !s.quiet && !std::io::stderr().is_terminal() {
                // No bar off a terminal (a log file under nohup): a line per checkpoint instead.
                eprintln!(
                    "{}: step {step}/{} loss {loss_sum:.4} ({:.2} s/step, {:.0} s so far)",
                    s.name,
                    s.steps,
                    seconds,
                    started.elapsed().as_secs_f64()
                );
            }
            let state = TrainState {
                step,
                seed: s.seed,
                ..TrainState::default()
            };
            let extra = |folder: &Path| match checkpoint_extra.as_mut() {
                Some(extra) => extra(folder),
                None => Ok(()),
            };
            save_checkpoint(s.dir, &model, &optim, &state, extra)?;
            saved_at = step;
            plot_losses(s.dir, s.plot_title)?;
        }
        // A stop asked for during the last step comes too late to stop anything: the run ends
        // as finished (its exports written), not as stopped.
        if stopping && step < s.steps {
            bar.abandon();
            eprintln!(
                "{}: stopped at step {step}; continue with `realm {} --resume {}`",
                s.name,
                s.name,
                s.dir.display()
            );
            return Ok(Ended::Stopped(model));
        }
    }
    bar.finish_and_clear();
    eprintln!(
        "{}: metrics in {}, the loss curve in {}",
        s.name,
        metrics.path().display(),
        s.dir.join("loss.png").display()
    );
    Ok(Ended::Finished(model))
}

/// What to do after a loss or gradient that is not finite: `--resume` would replay the same
/// batches with the same flags (it refuses others), and meet the same step again.
fn start_again(dir: &Path) -> String {
    format!(
        "lower --lr or check the data, and start a new run (--resume {} keeps the run's flags \
         and data, and would meet this step again)",
        dir.display()
    )
}

fn progress_bar(name: &str, total: usize, start: usize, quiet: bool) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{name} {{bar:40}} step {{pos}}/{{len}} {{msg}} [{{elapsed_precise}}, {{eta}} left]"
        ))
        .expect("a valid template"),
    );
    bar.set_position(start as u64);
    bar
}
