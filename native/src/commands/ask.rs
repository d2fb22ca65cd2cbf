//! `realm ask`: answers a question (or one per line of stdin) from a corpus. The question is
//! embedded with the sentence model that indexed the corpus, the top passages come from the
//! index shard by inner product, the span reader reads each of them, and the best span is the
//! answer, printed first, then its evidence (title, the sentence with the span marked) and the
//! other passages, with the reader's and the retriever's scores and the time each part took.

use std::io::BufRead;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use realm_core::index::MipsIndex;
use realm_core::qa::read::read_passages;
use realm_core::text::corpus::Passage;
use serde::Serialize;

use crate::embed::embed;
use crate::files::model_dir::{SentenceModel, read_base};
use crate::qa::query_model::question_embedder;
use crate::qa::reader_model::load_reader;
use crate::qa::{IndexedCorpus, QaFiles};

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

#[derive(Serialize)]
pub struct AskReport {
    pub question: String,
    /// Whether the question was cut to the model's length.
    pub truncated: bool,
    pub answer: Option<Found>,
    pub passages: Vec<Retrieved>,
    pub seconds: Timings,
}

#[derive(Serialize)]
pub struct Found {
    pub text: String,
    pub passage_id: u32,
    pub title: String,
    /// Byte offsets of the answer in the passage's text.
    pub start: usize,
    pub end: usize,
    /// The sentence holding the answer, the answer between [[ and ]].
    pub evidence: String,
    pub reader_score: f32,
    pub retriever_score: f32,
}

#[derive(Serialize)]
pub struct Retrieved {
    pub id: u32,
    pub title: String,
    pub retriever_score: f32,
    /// The reader's best span in this passage and its score.
    pub best_span: Option<String>,
    pub reader_score: Option<f32>,
}

#[derive(Serialize, Default)]
pub struct Timings {
    pub embed: f64,
    pub search: f64,
    pub read: f64,
    pub total: f64,
}

pub fn run(args: &AskArgs) -> anyhow::Result<()> {
    if args.files.top_k == 0 {
        bail!("-k must be at least 1");
    }
    let t_load = Instant::now();
    let device = args.files.device.device();
    let base = read_base(&args.files.model)?;
    let precision = args.files.precision.resolve()?;
    let eps = base.config.layer_norm_eps;
    let (mut reader, card) = load_reader(&args.files.reader, &base, &device)?;
    reader.bert.freeze(eps, precision);
    let (mut retriever, _) = question_embedder(
        &base,
        Some(&args.files.reader),
        &realm_core::device::cpu_device(),
    )?;
    retriever.embedder.bert.freeze(eps, precision);
    let IndexedCorpus {
        passages,
        index,
        ids,
    } = args.files.open_corpus()?;
    if !args.json {
        eprintln!("(loaded in {:.1} s)", t_load.elapsed().as_secs_f64());
    }
    let engine = Engine {
        retriever,
        reader,
        tokenizer: base.tokenizer,
        index,
        ids,
        passages,
        max_length: card.max_length,
        device,
    };
    let answer_one = |question: &str| -> anyhow::Result<()> {
        let report = engine.ask(question, args.files.top_k)?;
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

/// Everything `ask` needs in memory.
pub struct Engine {
    pub retriever: SentenceModel,
    pub reader: realm_core::model::reader::SpanReader,
    pub tokenizer: realm_core::text::wordpiece::WordPieceTokenizer,
    pub index: Box<dyn MipsIndex + Send + Sync>,
    pub ids: Vec<u32>,
    pub passages: Vec<Passage>,
    pub max_length: usize,
    pub device: burn::tensor::Device,
}

impl Engine {
    pub fn ask(&self, question: &str, k: usize) -> anyhow::Result<AskReport> {
        if question.trim().is_empty() {
            bail!("the question is empty");
        }
        let t0 = Instant::now();
        let cut = realm_core::train::reader::truncate_question(
            &self.tokenizer,
            question,
            self.max_length / 2,
        )?;
        let truncated = cut.len() < question.len();
        if truncated {
            eprintln!(
                "warning: the question has more wordpieces than the reader reads ({}); only its first {} bytes are used",
                self.max_length / 2,
                cut.len()
            );
        }
        let query = embed(&self.retriever, &[&cut], 128)?;
        let t1 = Instant::now();
        let hits = self.index.search(&query, k)?.remove(0);
        let t2 = Instant::now();
        let docs: Vec<&Passage> = hits
            .iter()
            .map(|h| &self.passages[self.ids[h.id as usize] as usize])
            .collect();
        let texts: Vec<&str> = docs.iter().map(|p| p.text.as_str()).collect();
        let spans = read_passages(
            &self.reader,
            &self.tokenizer,
            &cut,
            &texts,
            self.max_length,
            &self.device,
        )
        .context("reading the retrieved passages")?;
        let t3 = Instant::now();
        let answer = spans.first().map(|s| {
            let p = docs[s.passage];
            Found {
                text: s.text.clone(),
                passage_id: self.ids[hits[s.passage].id as usize],
                title: p.title.clone(),
                start: s.start,
                end: s.end,
                evidence: evidence(&p.text, s.start, s.end),
                reader_score: s.reader_score,
                retriever_score: hits[s.passage].score,
            }
        });
        let passages = hits
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let best = spans.iter().find(|s| s.passage == i);
                Retrieved {
                    id: self.ids[h.id as usize],
                    title: docs[i].title.clone(),
                    retriever_score: h.score,
                    best_span: best.map(|s| s.text.clone()),
                    reader_score: best.map(|s| s.reader_score),
                }
            })
            .collect();
        Ok(AskReport {
            question: question.to_string(),
            truncated,
            answer,
            passages,
            seconds: Timings {
                embed: (t1 - t0).as_secs_f64(),
                search: (t2 - t1).as_secs_f64(),
                read: (t3 - t2).as_secs_f64(),
                total: (t3 - t0).as_secs_f64(),
            },
        })
    }
}

/// The sentence of `text` around `start..end`, the span between `[[` and `]]`.
pub fn evidence(text: &str, start: usize, end: usize) -> String {
    let is_end = |c: char| matches!(c, '.' | '!' | '?' | '\n');
    let from = text[..start].rfind(is_end).map_or(0, |i| i + 1);
    let to = text[end..].find(is_end).map_or(text.len(), |i| end + i + 1);
    format!(
        "{}[[{}]]{}",
        text[from..start].trim_start(),
        &text[start..end],
        text[end..to].trim_end()
    )
}

fn print_report(r: &AskReport) {
    match &r.answer {
        Some(a) => {
            println!("{}", a.text);
            println!("  from: {} (passage {})", a.title, a.passage_id);
            println!("  \"{}\"", a.evidence);
            println!(
                "  reader {:.2}, retriever {:.3}",
                a.reader_score, a.retriever_score
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
