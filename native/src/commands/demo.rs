//! `realm demo`: real retrieval. all-MiniLM-L6-v2 embeds Wikipedia leads and questions; the
//! top passages for each question come from exact inner-product search on the CPU reference
//! and, where wgpu finds an adapter, the WGSL kernel, which must agree.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::embed::{check_embedding_flags, embed, embed_passages, read_passages};
use crate::files::model_dir::load_sentence_model;
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
    #[arg(long, default_value = crate::files::DEMO_CORPUS)]
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
    corpus: String,
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
        corpus: args.corpus.display().to_string(),
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

fn print_report(report: &Report) {
    println!(
        "{} over {} passages of {}, exact inner-product search.\n",
        report.model, report.passages, report.corpus
    );
    for answer in &report.questions {
        println!("Q: {}", answer.question);
        for (rank, hit) in answer.hits.iter().enumerate() {
            let mut snippet: String = hit.text.chars().take(110).collect();
            if snippet.len() < hit.text.len() {
                snippet.push('…');
            }
            println!(
                "  {}. {:.3}  {} — {snippet}",
                rank + 1,
                hit.score,
                hit.title,
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
