//! `realm ask`: answers a question (or one per line of stdin) from a corpus. The question is
//! embedded with the sentence model that indexed the corpus, the top passages come from the
//! index shard by inner product, the span reader reads each of them, and the best span is the
//! answer, printed first, then its evidence (title, the sentence with the span marked) and the
//! other passages, with the reader's and the retriever's scores and the time each part took.

use std::io::BufRead;
use std::time::Instant;

use anyhow::bail;
use clap::Args;
use realm_core::qa::engine::AskReport;

use crate::qa::QaFiles;

#[derive(Args, Clone)]
pub struct AskArgs {
    /// The question; without it, one question per line is read from stdin.
    pub question: Option<String>,
    #[command(flatten)]
    pub files: QaFiles,
    /// Print JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &AskArgs) -> anyhow::Result<()> {
    if args.files.top_k == 0 {
        bail!("-k must be at least 1");
    }
    let t_load = Instant::now();
    let engine = args.files.open_engine()?;
    if !args.json {
        eprintln!("(loaded in {:.1} s)", t_load.elapsed().as_secs_f64());
    }
    let answer_one = |question: &str| -> anyhow::Result<()> {
        let report = engine.ask(question, args.files.top_k)?;
        if report.truncated {
            eprintln!(
                "warning: the question has more wordpieces than the reader reads ({}); only its start is used",
                engine.max_length / 2
            );
        }
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print_report(&report);
        }
        Ok(())
    };
    match &args.question {
        Some(q) => answer_one(q),
        None => {
            for (n, line) in std::io::stdin().lock().split(b'\n').enumerate() {
                let line = line?;
                let q = String::from_utf8(line).map_err(|_| {
                    anyhow::anyhow!("stdin line {}: the question is not UTF-8", n + 1)
                })?;
                if q.trim().is_empty() {
                    continue;
                }
                answer_one(q.trim_end_matches('\r'))?;
            }
            Ok(())
        }
    }
}

fn print_report(r: &AskReport) {
    match &r.answer {
        Some(a) => {
            println!("{}", a.text);
            println!("  from: {} (passage {})", a.title, a.passage_id);
            println!("  \"{}\"", a.evidence);
            println!(
                "  score {:.2} (reader {:.2}, retriever {:.3})",
                a.score, a.reader_score, a.retriever_score
            );
        }
        None => println!("(no answer: the retrieved passages hold no readable span)"),
    }
    println!("  other passages:");
    for p in r
        .passages
        .iter()
        .filter(|p| r.answer.as_ref().is_none_or(|a| a.passage_id != p.id))
    {
        println!(
            "    {:.3}  {}{}",
            p.retriever_score,
            p.title,
            p.best_span
                .as_ref()
                .map(|s| format!("  -> {s}"))
                .unwrap_or_default()
        );
    }
    println!(
        "  {:.0} ms (embed {:.0}, search {:.0}, read {:.0})",
        r.seconds.total * 1e3,
        r.seconds.embed * 1e3,
        r.seconds.search * 1e3,
        r.seconds.read * 1e3
    );
}
