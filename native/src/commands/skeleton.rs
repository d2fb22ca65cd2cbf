//! `realm skeleton`: the walking skeleton end to end, with the CPU reference and the GPU kernel
//! compared on every question.

use anyhow::Context;
use clap::Args;
use realm_core::index::reference::Hit;
use realm_core::skeleton::{PASSAGES, QUESTIONS, SkeletonRetriever};
use serde::Serialize;

use crate::search::{Search, check_agreement, search};

#[derive(Args)]
pub struct SkeletonArgs {
    /// How many passages to retrieve per question (any k, on the GPU too).
    #[arg(short, long, default_value_t = 3)]
    k: usize,
    /// Where the top-k search runs besides the CPU reference: `auto` uses a GPU when wgpu
    /// finds one, `gpu` fails without one, `cpu` skips it.
    #[arg(long, value_enum, default_value_t = Search::Auto)]
    search: Search,
    /// A question to ask (repeat for several); the built-in questions when absent.
    #[arg(short, long = "question")]
    questions: Vec<String>,
    /// Print one JSON document instead of text (the browser tests compare against it).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    questions: Vec<Answer>,
    /// The adapter the GPU search ran on, when it ran.
    gpu_adapter: Option<String>,
}

#[derive(Serialize)]
struct Answer {
    question: String,
    hits: Vec<Hit>,
    /// Whether the GPU kernel returned the same ids as the CPU reference (None: not run).
    gpu_agrees: Option<bool>,
}

pub fn run(args: &SkeletonArgs) -> anyhow::Result<()> {
    let questions: Vec<&str> = if args.questions.is_empty() {
        QUESTIONS.to_vec()
    } else {
        args.questions.iter().map(String::as_str).collect()
    };
    let retriever = SkeletonRetriever::new(realm_core::device::cpu_device())?;
    let documents = retriever.embed(PASSAGES)?;
    let queries = retriever
        .embed(&questions)
        .context("embedding the questions")?;
    let searched = search(args.search, &queries, &documents, retriever.dim, args.k)?;

    let report = Report {
        questions: questions
            .iter()
            .enumerate()
            .map(|(q, question)| Answer {
                question: question.to_string(),
                hits: searched.cpu[q].clone(),
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
        "REALM walking skeleton: a tiny embedder with seeded (untrained) weights over {} passages.",
        PASSAGES.len()
    );
    println!(
        "Rankings are arbitrary until real weights are loaded; the point is that every path agrees.\n"
    );
    for answer in &report.questions {
        println!("Q: {}", answer.question);
        for (rank, hit) in answer.hits.iter().enumerate() {
            println!(
                "  {}. [{:>2}] score {:>8.4}  {}",
                rank + 1,
                hit.id,
                hit.score,
                PASSAGES[hit.id as usize]
            );
        }
        match answer.gpu_agrees {
            Some(true) => println!("  GPU kernel: same passages\n"),
            Some(false) => println!("  GPU kernel: DIFFERENT passages\n"),
            None => println!(),
        }
    }
    match &report.gpu_adapter {
        Some(adapter) => println!("GPU search ran on {adapter}."),
        None => println!("GPU search did not run (no adapter, or --search cpu)."),
    }
}
