//! The `realm` command line: a thin layer that turns flags into `realm-core` and
//! `realm-shaders` calls and prints their results.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use realm_native::commands::{
    ask, bundle, convert, demo, eval, finetune, finetune_retriever, ict, index, pretrain, serve,
    skeleton, tag,
};

/// mimalloc keeps freed pages for the next tensor of the same size; glibc returned the large
/// ones to the system after each use (a batch of 8 through MiniLM: a quarter less time).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v3's `mi_option_purge_delay` (its `mimalloc.h`; the Rust bindings do not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory is never purged (handed back to the kernel) unless `MIMALLOC_PURGE_DELAY` says
/// otherwise. Purged pages come back zeroed by the kernel on their next touch: in a training
/// step, whose tensors are freed and allocated again each step, that zeroing was a fifth of the
/// time, and a step with purging off took 26% less (Intel Xeon, `realm finetune`, one thread).
/// The cost: the process keeps its peak memory until it exits.
fn keep_freed_pages() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option; mimalloc allows it at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

/// A closed standard output (`realm ask < questions.txt | head -1`) ends the process quietly,
/// as it ends `cat` or `grep`, instead of a panic in `println!` or an "error: Broken pipe":
/// Rust ignores SIGPIPE, this gives it back its default action. Not for `serve`, which writes
/// to sockets a client may close at any time.
fn end_quietly_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: sets the disposition of one signal, before any other thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[derive(Parser)]
#[command(
    name = "realm",
    version,
    about = "REALM retrieval-augmented language models, natively and on your GPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Answer a question (or one per line of stdin) from a corpus: retrieve passages from its
    /// index, read them with the trained span reader, print the answer and its evidence.
    Ask(ask::AskArgs),
    /// Pack what the browser engine loads (base model, reader and its question embedder, index
    /// shard, passages) into one tar file, for the npm package's `bundle` option and
    /// `<realm-qa bundle="...">`.
    Bundle(bundle::BundleArgs),
    /// Retrieve Wikipedia passages for questions with all-MiniLM-L6-v2: exact search on the
    /// CPU and, where a GPU adapter exists, on the WGSL kernel.
    Demo(demo::DemoArgs),
    /// Convert a Hugging Face REALM checkpoint directory (pytorch_model.bin or
    /// model.safetensors, block_records.npy) into realm-rs's safe format, executing no pickle
    /// code; it must load strictly first.
    Convert(convert::ConvertArgs),
    /// Exact match and retrieval recall@1/5/20/100 on a question file (NQ-open, WebQuestions,
    /// CuratedTrec, SQuAD), over the corpus's index or each SQuAD question's own paragraph.
    Eval(eval::EvalArgs),
    /// Fine-tune the span reader on question/paragraph pairs (SQuAD v1.1 JSON) or on
    /// NQ-open, WebQuestions or CuratedTrec questions read from retrieved passages, from a
    /// plain BERT such as all-MiniLM-L6-v2 or a trained reader, and with --retriever-layers the
    /// question embedder beside it; checkpoints, Ctrl-C and --resume DIR continue the run.
    Finetune(finetune::FinetuneArgs),
    /// Fine-tune the question embedder on SQuAD questions against the fixed passage
    /// embeddings of an index (REALM's retriever marginal over the top B); writes
    /// query.safetensors and query.json, which ask and eval use beside the reader.
    FinetuneRetriever(finetune_retriever::RetrieverArgs),
    /// Warm-start an embedder with ORQA's inverse cloze task on a corpus (a sentence retrieves
    /// its passage among the batch's); held-out retrieval accuracy is logged as it trains.
    Ict(ict::IctArgs),
    /// Embed a corpus with a sentence model into an index shard (f32, f16 or int8), or
    /// re-write an existing shard in another element type (--from).
    Index(index::IndexArgs),
    /// REALM pre-training: salient-span masked sentences, candidates retrieved from an index
    /// refreshed in the background, the null document, and the marginal masked-LM loss whose
    /// gradient reaches the retriever.
    Pretrain(pretrain::PretrainArgs),
    /// Draw a training run's loss curve (DIR/loss.svg and .png) and its held-out evaluations
    /// (DIR/eval.svg and .png) from its metrics.jsonl; the trainers draw them as they run.
    /// With --metric, one evaluation of several runs in one chart (e.g. an ablation's runs).
    Plot(PlotArgs),
    /// Answer questions over HTTP on this machine: GET / is a page with the <realm-qa>
    /// widget, POST /ask takes {"question": "...", "top_k": 5} and returns the answer as JSON.
    Serve(serve::ServeArgs),
    /// Walking skeleton: a tiny seeded REALM embedder over ten built-in passages, searched on
    /// the CPU reference and the WGSL kernel (the browser tests compare against its --json).
    Skeleton(skeleton::SkeletonArgs),
    /// The salient spans (entities, dates) pre-training would mask in a corpus's sentences: a
    /// summary, and every sentence with --json.
    Tag(tag::TagArgs),
}

#[derive(clap::Args)]
struct PlotArgs {
    /// The run directory; with --metric, the runs to compare: run directories, or files of
    /// their evaluation lines (as native/results/ keeps them).
    #[arg(required = true, value_name = "RUN")]
    runs: Vec<std::path::PathBuf>,
    /// One held-out evaluation to compare across the runs (e.g. retrieval_utility, ICT's
    /// accuracy): a curve per run, named by its folder or file, in the chart --out names.
    #[arg(long, requires = "out")]
    metric: Option<String>,
    /// With --metric: the chart's SVG file (a PNG goes beside it when a font is found).
    #[arg(long, requires = "metric", value_name = "FILE.svg")]
    out: Option<std::path::PathBuf>,
    /// Replace an existing --out chart (never a run's own files).
    #[arg(long, requires = "out")]
    force: bool,
}

fn plot(args: &PlotArgs) -> anyhow::Result<()> {
    use realm_native::train::plot::{plot_compare, plot_evals, plot_losses};
    let files = match (&args.metric, &args.out, args.runs.as_slice()) {
        (Some(metric), Some(out), runs) => plot_compare(runs, metric, out, args.force)?,
        (_, _, [dir]) => {
            if dir.is_file() {
                anyhow::bail!(
                    "{} is a file: realm plot redraws a run directory; to chart a file of evaluation lines, add --metric NAME --out FILE.svg",
                    dir.display()
                );
            }
            let mut files = plot_losses(dir, "realm: training loss")?;
            files.extend(plot_evals(dir, "realm: held-out evaluation")?);
            if files.is_empty() {
                anyhow::bail!(
                    "{}: no step logged yet, nothing to draw",
                    dir.join("metrics.jsonl").display()
                );
            }
            files
        }
        _ => anyhow::bail!(
            "realm plot: one run directory, or --metric NAME --out FILE.svg to compare several"
        ),
    };
    files.iter().for_each(|f| println!("{}", f.display()));
    Ok(())
}

/// A trainer's `--resume DIR` continues with the flags saved in `DIR/args.json`: any other flag
/// but `--quiet` would be ignored, so it is refused, naming it.
fn refuse_flags_beside_resume(matches: &clap::ArgMatches) {
    let Some((name, sub)) = matches.subcommand() else {
        return;
    };
    let mut command = Cli::command();
    let Some(command) = command.find_subcommand_mut(name) else {
        return;
    };
    let given = |id: &str| sub.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    let has_resume = command.get_arguments().any(|a| a.get_id() == "resume");
    if !has_resume || !given("resume") {
        return;
    }
    let others: Vec<String> = command
        .get_arguments()
        .filter(|a| {
            !["resume", "quiet"].contains(&a.get_id().as_str()) && given(a.get_id().as_str())
        })
        .map(|a| match a.get_long() {
            Some(long) => format!("--{long}"),
            None => a.get_id().to_string(),
        })
        .collect();
    if !others.is_empty() {
        command.set_bin_name(format!("realm {name}"));
        let message = format!(
            "--resume DIR continues with the flags saved in DIR/args.json; {} would be ignored: drop {}, or start a new run with --out",
            others.join(", "),
            if others.len() == 1 { "it" } else { "them" }
        );
        command
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit();
    }
}

fn main() {
    keep_freed_pages();
    let matches = Cli::command().get_matches();
    refuse_flags_beside_resume(&matches);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if !matches!(cli.command, Command::Serve(_)) {
        end_quietly_on_closed_stdout();
    }
    // Commands that write large outputs: a stop removes the unfinished one (the trainers
    // install their own handler, which stops at a step).
    if matches!(
        cli.command,
        Command::Index(_) | Command::Convert(_) | Command::Bundle(_)
    ) && let Err(e) = realm_native::files::partial::remove_partials_on_stop()
    {
        eprintln!("warning: no stop handler ({e}): a stop may leave a .realm-* file behind");
    }
    let result = match cli.command {
        Command::Ask(args) => ask::run(&args),
        Command::Bundle(args) => bundle::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Finetune(args) => finetune::run(&args),
        Command::FinetuneRetriever(args) => finetune_retriever::run(&args),
        Command::Ict(args) => ict::run(&args),
        Command::Index(args) => index::run(&args),
        Command::Pretrain(args) => pretrain::run(&args),
        Command::Plot(args) => plot(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Skeleton(args) => skeleton::run(&args),
        Command::Tag(args) => tag::run(&args),
    };
    if let Err(error) = result {
        if realm_native::files::partial::stopping() {
            // The stop handler removed the file this error is about, and exits 130.
            std::thread::sleep(std::time::Duration::from_secs(5));
        }
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option number is purge_delay's: it holds v3's default of 1,000 ms (no other option
    /// defaults to that), and keep_freed_pages sets it to -1.
    #[test]
    fn purge_delay_is_the_option_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads one integer option.
        let read = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(read(), 1000);
        keep_freed_pages();
        assert_eq!(read(), -1);
    }
}
