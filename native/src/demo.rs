//! `realm demo`: real retrieval. all-MiniLM-L6-v2 embeds Wikipedia leads and questions; the
//! top passages for each question come from exact inner-product search on the CPU reference
//! and, where wgpu finds an adapter, the WGSL kernel, which must agree.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use realm_core::corpus::{Passage, parse_corpus};
use serde::Serialize;

use crate::model_dir::{SentenceModel, load_sentence_model};
use crate::search::{Search, check_agreement, search};

/// Questions whose answers the first 2,000 passages of the default corpus hold.
const DEFAULT_QUESTIONS: &[&str] = &[
    "Who painted the Mona Lisa?",
    "What is the largest living bird?",
    "Which hormone regulates blood sugar?",
    "Who wrote Pride and Prejudice?",
    "What is the fastest land animal?",
];

#[derive(Args)]
pub struct DemoArgs {
    /// A sentence-transformers BERT directory (config.json, model.safetensors, tokenizer).
    #[arg(long, default_value = "data/all-minilm-l6-v2")]
    model: PathBuf,
    /// Passages: JSON lines of {"title", "text"}, or a JSON object {title: {"extract"}}.
    #[arg(long, default_value = "data/wiki-leads/summaries_en-us.json")]
    corpus: PathBuf,
    /// Embed only the first N passages (0: all of them).
    #[arg(long, default_value_t = 2000)]
    limit: usize,
    /// Wordpieces per passage, [CLS] and [SEP] included; longer passages are truncated.
    #[arg(long, default_value_t = 128)]
    max_length: usize,
    /// Passages embedded per forward pass.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// How many passages to retrieve per question (on the GPU, k > 32 runs the two-stage
    /// kernel: scores, then a radix-select top-k).
    #[arg(short, long, default_value_t = 3)]
    k: usize,
    /// A question to ask (repeat for several); built-in questions when absent.
    #[arg(short, long = "question")]
    questions: Vec<String>,
    /// Where the top-k search runs besides the CPU reference.
    #[arg(long, value_enum, default_value_t = Search::Auto)]
    search: Search,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    model: String,
    passages: usize,
    questions: Vec<Answer>,
    gpu_adapter: Option<String>,
}

#[derive(Serialize)]
struct Answer {
    question: String,
    hits: Vec<Retrieved>,
    gpu_agrees: Option<bool>,
}

#[derive(Serialize)]
struct Retrieved {
    id: u32,
    score: f32,
    title: String,
    text: String,
}

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    check_embedding_flags(args.batch, args.max_length)?;
    let device = realm_core::device::cpu_device();
    let model = load_sentence_model(&args.model, &device)?;
    let passages = read_passages(&args.corpus, args.limit)?;
    let questions: Vec<&str> = if args.questions.is_empty() {
        DEFAULT_QUESTIONS.to_vec()
    } else {
        args.questions.iter().map(String::as_str).collect()
    };

    let documents = embed_passages(&model, &passages, args.max_length, args.batch, !args.json)?;
    let queries = embed(&model, &questions, args.max_length)?;
    let dim = model.embedder.dim();
    let searched = search(args.search, &queries, &documents, dim, args.k)?;

    let report = Report {
        model: args.model.display().to_string(),
        passages: passages.len(),
        questions: questions
            .iter()
            .zip(&searched.cpu)
            .enumerate()
            .map(|(q, (question, hits))| Answer {
                question: question.to_string(),
                hits: hits
                    .iter()
                    .map(|h| {
                        let p = &passages[h.id as usize];
                        Retrieved {
                            id: h.id,
                            score: h.score,
                            title: p.title.clone(),
                            text: p.text.clone(),
                        }
                    })
                    .collect(),
                gpu_agrees: searched.gpu_agrees(q),
            })
            .collect(),
        gpu_adapter: searched.adapter(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    check_agreement(&searched, report.questions.len())
}

/// The `--batch` and `--max-length` every embedding command takes.
pub fn check_embedding_flags(batch: usize, max_length: usize) -> anyhow::Result<()> {
    if batch == 0 || max_length < 3 {
        bail!("--batch must be at least 1 and --max-length at least 3");
    }
    Ok(())
}

/// The passages of a corpus file: the first `limit` (0: all of them), at least one.
pub fn read_passages(corpus: &Path, limit: usize) -> anyhow::Result<Vec<Passage>> {
    let bytes = std::fs::read(corpus).with_context(|| {
        format!(
            "reading {} (run `scripts/setup.sh --demo-data`, or pass --corpus FILE)",
            corpus.display()
        )
    })?;
    let mut passages =
        parse_corpus(&bytes).with_context(|| format!("parsing {}", corpus.display()))?;
    if limit > 0 {
        passages.truncate(limit);
    }
    if passages.is_empty() {
        bail!("{} holds no passages", corpus.display());
    }
    Ok(passages)
}

/// Embeds texts as one flat `[texts, dim]` buffer.
pub fn embed(model: &SentenceModel, texts: &[&str], max_length: usize) -> anyhow::Result<Vec<f32>> {
    let input = model.tokenizer.encode_batch(texts, max_length)?;
    let device = realm_core::device::cpu_device();
    Ok(model
        .embedder
        .embed(&input, &device)
        .into_data()
        .try_into_vec::<f32>()
        .expect("f32 embeddings"))
}

/// Embeds every passage's title and text, `batch` at a time (shortest first, to pad little),
/// as one flat `[passages, dim]` buffer in corpus order; a progress bar on stderr if asked.
pub fn embed_passages(
    model: &SentenceModel,
    passages: &[Passage],
    max_length: usize,
    batch: usize,
    progress: bool,
) -> anyhow::Result<Vec<f32>> {
    let bar = if progress {
        ProgressBar::new(passages.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "embedding passages {bar:40} {pos}/{len} [{elapsed_precise}, {eta} left]",
        )
        .expect("a valid template"),
    );
    let mut documents = Vec::with_capacity(passages.len() * model.embedder.dim());
    // Sorting by length keeps padding low inside each batch; results go back in corpus order.
    let mut order: Vec<usize> = (0..passages.len()).collect();
    order.sort_by_key(|&i| passages[i].text.len());
    let mut rows = vec![Vec::new(); passages.len()];
    for chunk in order.chunks(batch) {
        let texts: Vec<String> = chunk
            .iter()
            .map(|&i| passages[i].embedding_text())
            .collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let values = embed(model, &texts, max_length)?;
        for (&i, row) in chunk.iter().zip(values.chunks_exact(model.embedder.dim())) {
            rows[i] = row.to_vec();
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    rows.into_iter().for_each(|row| documents.extend(row));
    Ok(documents)
}

fn print_report(report: &Report) {
    println!(
        "all-MiniLM-L6-v2 ({}) over {} Wikipedia passages, exact inner-product search.\n",
        report.model, report.passages
    );
    for answer in &report.questions {
        println!("Q: {}", answer.question);
        for (rank, hit) in answer.hits.iter().enumerate() {
            let snippet: String = hit.text.chars().take(110).collect();
            println!(
                "  {}. {:.3}  {} — {}…",
                rank + 1,
                hit.score,
                hit.title,
                snippet
            );
        }
        match answer.gpu_agrees {
            Some(true) => println!("  (GPU kernel: same passages)\n"),
            Some(false) => println!("  (GPU kernel: DIFFERENT passages)\n"),
            None => println!(),
        }
    }
    match &report.gpu_adapter {
        Some(adapter) => println!("GPU search ran on {adapter}."),
        None => println!("GPU search did not run (no adapter, or --search cpu)."),
    }
}
