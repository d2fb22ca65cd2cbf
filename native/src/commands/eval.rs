//! `realm eval`: exact match and retrieval recall on a question file, as the paper computes
//! them. With `--gold-passages` the reader reads each SQuAD question's own paragraph (the
//! reader's ceiling); otherwise the top passages come from the corpus's index (or BM25, the
//! baseline, with `--retriever bm25`), recall@k counts the questions with an answer in the top
//! k (the answerability ceiling of reading k), and the reader reads the top `-k`.
//! Predictions go to `--out DIR/predictions.jsonl`, the table to stdout (Markdown) and
//! `DIR/table.json`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use realm_core::qa::datasets::Question;
use realm_core::qa::read::{AnswerRule, read_passages};
use serde::Serialize;

use crate::files::model_dir::read_base;
use crate::files::shard_file::write_atomic;
use crate::qa::QaFiles;
use crate::qa::data::{SquadSplit, read_questions, squad_split};
use crate::qa::reader_model::load_reader;
use crate::qa::retriever::{Retrieval, RetrieverKind};

#[derive(Args, Clone)]
pub struct EvalArgs {
    /// Questions: NQ-open JSON lines, WebQuestions JSON, CuratedTrec TSV or SQuAD JSON.
    #[arg(long)]
    pub questions: PathBuf,
    /// For SQuAD files: which articles (`held-out`: the 12 never trained on); other files are
    /// used whole.
    #[arg(long, value_enum, default_value = "held-out")]
    pub split: SquadSplit,
    /// Read each question's own paragraph instead of retrieving (SQuAD only).
    #[arg(long)]
    pub gold_passages: bool,
    /// Measure retrieval only (recall@k), reading nothing (the reader is not loaded): no EM,
    /// and seconds instead of minutes.
    #[arg(long, conflicts_with = "gold_passages")]
    pub recall_only: bool,
    #[command(flatten)]
    pub files: QaFiles,
    /// The retriever of open reading: the dense one `ask` uses (fine-tuned when the reader
    /// directory holds query.json), the base model's zero-shot one, or the BM25 baseline.
    #[arg(long, value_enum, default_value = "dense")]
    pub retriever: RetrieverKind,
    /// Weight of the retriever's score in picking the answer (REALM's marginal; see `realm
    /// ask`). Default: the reader card's for the dense retrievers, 0 for BM25 (another scale)
    /// and for --gold-passages.
    #[arg(long, conflicts_with = "recall_only")]
    pub retriever_weight: Option<f32>,
    /// Only every Nth question, from the first (a sample spread over the whole file; before
    /// --limit).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub every: u64,
    /// Only the first N questions (0: all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// The folder predictions.jsonl and table.json go to (made first; files already there
    /// are replaced).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Serialize)]
struct Prediction<'a> {
    id: &'a str,
    question: &'a str,
    /// None with `--recall-only` (nothing read).
    #[serde(skip_serializing_if = "Option::is_none")]
    prediction: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correct: Option<bool>,
    /// Rank of the first retrieved passage holding an answer (open retrieval only).
    answer_rank: Option<usize>,
    /// What the reader found in each passage read, in retrieval order.
    read: Vec<PassageRead>,
}

/// One passage the reader read: its retriever score and its best spans.
#[derive(Serialize)]
struct PassageRead {
    retriever_score: f32,
    /// (text, reader logit), best first.
    spans: Vec<(String, f32)>,
}

#[derive(Serialize)]
pub struct Table {
    pub questions_file: String,
    /// The questions taken of the file: `--split` (SQuAD files; null for the others),
    /// `--every` and `--limit` (0: no limit).
    pub split: Option<SquadSplit>,
    pub every: u64,
    pub limit: usize,
    pub questions: usize,
    pub mode: String,
    /// Weight of the retriever's score in picking the answer (`--retriever-weight`); None
    /// with `--recall-only`.
    pub retriever_weight: Option<f32>,
    /// None with `--recall-only`.
    pub exact_match: Option<f64>,
    /// How recall tells a passage holds an answer: `dpr-has-answer` (`Gold::has_answer`, DPR's
    /// token sequences); None with `--gold-passages`.
    pub recall_match: Option<&'static str>,
    /// recall@1/5/20/100 (open retrieval only): share with an answer in the top k.
    pub recall: Vec<(usize, f64)>,
    pub seconds: f64,
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    // Made before the evaluation, so that a bad --out fails in seconds, not after it.
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--out {}: cannot make this folder", dir.display()))?;
    }
    if let Some(w) = args.retriever_weight.filter(|w| !w.is_finite()) {
        bail!("--retriever-weight {w}: must be a finite number");
    }
    if args.files.top_k == 0 {
        bail!("-k must be at least 1");
    }
    let mut questions = squad_split(read_questions(&args.questions)?, args.split);
    if questions.is_empty() {
        bail!(
            "no questions in {} for --split {}",
            args.questions.display(),
            clap::ValueEnum::to_possible_value(&args.split)
                .map_or_else(|| format!("{:?}", args.split), |v| v.get_name().to_string())
        );
    }
    if args.every > 1 {
        let every = args.every as usize;
        questions = questions.into_iter().step_by(every).collect();
    }
    if args.limit > 0 {
        questions.truncate(args.limit);
    }
    if args.gold_passages && questions.iter().any(|q| q.context.is_none()) {
        bail!(
            "--gold-passages needs a SQuAD file: {} has no paragraphs",
            args.questions.display()
        );
    }
    let device = args.files.device.device();
    let base = read_base(&args.files.model)?;
    // The reader, the length it reads and how it picks an answer; --recall-only reads nothing,
    // so it loads no reader (nor needs one trained).
    let dense = !args.gold_passages && args.retriever != RetrieverKind::Bm25;
    let reading = match args.recall_only {
        true => None,
        false => {
            let (mut reader, card) = load_reader(&args.files.reader, &base, &device)?;
            let precision = args.files.precision.resolve()?;
            reader.freeze(base.config.layer_norm_eps, precision);
            let rule = AnswerRule {
                retriever_weight: args.retriever_weight.unwrap_or(if dense {
                    card.retriever_weight
                } else {
                    0.0
                }),
            };
            eprintln!(
                "eval: answers by REALM's marginal over the passages read, retriever weight {}",
                rule.retriever_weight
            );
            Some((reader, card.max_length, rule))
        }
    };
    let tokenizer = base.tokenizer.clone();

    let started = Instant::now();
    // What the progress shows: exact match, or with nothing read (`--recall-only`) R@5.
    let so_far = if reading.is_some() { "EM" } else { "R@5" };
    let bar = ProgressBar::new(questions.len() as u64);
    bar.set_style(ProgressStyle::with_template(&format!(
        "eval {{bar:40}} {{pos}}/{{len}} {so_far} {{msg}} [{{elapsed_precise}}, {{eta}} left]"
    ))?);
    let mut predictions = Vec::with_capacity(questions.len());
    let depths = [1usize, 5, 20, 100];
    let mut found_at = vec![0usize; depths.len()];
    let mut correct = 0usize;
    // Open retrieval needs the retriever and the indexed corpus; --gold-passages neither.
    let open = match args.gold_passages {
        true => None,
        false => Some(Retrieval::open(args.retriever, &base, &args.files)?),
    };
    for q in &questions {
        let (read, retriever_scores, rank): (Vec<&str>, Vec<f32>, Option<usize>) = match &open {
            None => (
                vec![q.context.as_ref().expect("checked above").text.as_str()],
                vec![0.0],
                None,
            ),
            Some(retrieval) => {
                let hits = retrieval.scored(&q.question, 100.max(args.files.top_k))?;
                let docs: Vec<&str> = hits
                    .iter()
                    .map(|&(i, _)| retrieval.passages[i].text.as_str())
                    .collect();
                let rank = docs.iter().position(|d| q.gold.has_answer(d));
                for (slot, &d) in found_at.iter_mut().zip(&depths) {
                    *slot += usize::from(rank.is_some_and(|r| r < d));
                }
                let top = args.files.top_k.min(docs.len());
                let scores = hits[..top].iter().map(|&(_, s)| s).collect();
                (docs[..top].to_vec(), scores, rank.map(|r| r + 1))
            }
        };
        let prediction = match &reading {
            Some((reader, max_length, rule)) => {
                let spans =
                    read_passages(reader, &tokenizer, &q.question, &read, *max_length, &device)?;
                let text = rule
                    .choose(&spans, &retriever_scores)
                    .map(|c| spans[c.span].text.clone())
                    .unwrap_or_default();
                let mut prediction = score(q, Some(text), rank);
                prediction.read = retriever_scores
                    .iter()
                    .enumerate()
                    .map(|(p, &retriever_score)| PassageRead {
                        retriever_score,
                        spans: spans
                            .iter()
                            .filter(|s| s.passage == p)
                            .map(|s| (s.text.clone(), s.reader_score))
                            .collect(),
                    })
                    .collect();
                prediction
            }
            None => score(q, None, rank),
        };
        predictions.push(prediction);
        correct += usize::from(predictions.last().is_some_and(|p| p.correct == Some(true)));
        // found_at[1] counts the answers in the top 5 (depths[1]).
        let shown = if reading.is_some() {
            correct
        } else {
            found_at[1]
        };
        let em = 100.0 * shown as f64 / predictions.len() as f64;
        bar.set_message(format!("{em:.1}"));
        bar.inc(1);
        let done = predictions.len();
        if !std::io::stderr().is_terminal() && done % 100 == 0 {
            // No bar off a terminal (a log file under nohup): a line per 100 questions.
            eprintln!(
                "eval: {done}/{} questions, {so_far} {em:.1} so far, {:.0} s",
                questions.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    bar.finish_and_clear();
    let n = questions.len() as f64;
    let table = Table {
        questions_file: args.questions.display().to_string(),
        split: questions
            .iter()
            .any(|q| q.context.is_some())
            .then_some(args.split),
        every: args.every,
        limit: args.limit,
        questions: questions.len(),
        mode: if args.gold_passages {
            "gold paragraph".into()
        } else {
            let by = open.as_ref().map_or("", |r| r.name.as_str());
            format!("open, {by}, top-{}", args.files.top_k)
        },
        retriever_weight: reading.as_ref().map(|(_, _, rule)| rule.retriever_weight),
        exact_match: reading.is_some().then_some(100.0 * correct as f64 / n),
        recall_match: (!args.gold_passages).then_some("dpr-has-answer"),
        recall: if args.gold_passages {
            Vec::new()
        } else {
            depths
                .iter()
                .zip(&found_at)
                .map(|(&d, &f)| (d, 100.0 * f as f64 / n))
                .collect()
        },
        seconds: started.elapsed().as_secs_f64(),
    };
    print_table(&table);
    if let Some(dir) = &args.out {
        let mut lines = Vec::new();
        for p in &predictions {
            serde_json::to_writer(&mut lines, p)?;
            lines.write_all(b"\n")?;
        }
        write_atomic(&dir.join("predictions.jsonl"), &lines)?;
        write_atomic(&dir.join("table.json"), &serde_json::to_vec_pretty(&table)?)?;
    }
    Ok(())
}

/// What `eval` writes of one question: with the reader's `prediction`, whether it is correct.
fn score(q: &Question, prediction: Option<String>, answer_rank: Option<usize>) -> Prediction<'_> {
    let correct = prediction.as_ref().map(|p| q.gold.is_correct(p));
    Prediction {
        id: &q.id,
        question: &q.question,
        prediction,
        correct,
        answer_rank,
        read: Vec::new(),
    }
}

fn print_table(t: &Table) {
    let recall: String = t.recall.iter().map(|(_, r)| format!(" {r:.1} |")).collect();
    let recall_head: String = t.recall.iter().map(|(k, _)| format!(" R@{k} |")).collect();
    let recall_rule: String = t.recall.iter().map(|_| "---|").collect();
    println!("| questions | n | mode | EM |{recall_head}");
    println!("|---|---|---|---|{recall_rule}");
    println!(
        "| {} | {} | {} | {} |{recall}",
        t.questions_file,
        t.questions,
        t.mode,
        t.exact_match.map_or(String::new(), |em| format!("{em:.1}"))
    );
}
