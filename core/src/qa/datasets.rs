//! The question sets REALM is evaluated on, in the formats they are published in:
//! NaturalQuestions-Open (JSON lines), WebQuestions (a JSON array, brmson's packaging),
//! CuratedTrec (TSV with regex answers) and SQuAD v1.1 (JSON, read as SQuAD-open: questions,
//! answer strings, and the gold paragraph for reader training). Every error names the file
//! and the 1-based line.

use serde::Deserialize;

use crate::Error;
use crate::qa::answer::{Gold, compile_pattern};

/// One question with its gold answers.
#[derive(Debug, Clone)]
pub struct Question {
    pub id: String,
    pub question: String,
    pub gold: Gold,
    /// SQuAD only: the paragraph the question was written on.
    pub context: Option<Context>,
}

/// A SQuAD question's paragraph and where its answers start in it.
#[derive(Debug, Clone)]
pub struct Context {
    /// The Wikipedia article (SQuAD's title, `_` kept).
    pub article: String,
    pub text: String,
    /// Byte ranges of the annotated answers in `text`.
    pub answers: Vec<(usize, usize)>,
}

/// The formats [`parse_questions`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"question": str, "answer": [str, ...]}` per line.
    NqOpen,
    /// `[{"qId", "qText", "answers": [str, ...]}, ...]`.
    WebQuestions,
    /// `id <TAB> type <TAB> question <TAB> regex` per line (a regex may hold a TAB).
    CuratedTrec,
    /// The official `{"version", "data": [{"title", "paragraphs": [...]}]}`.
    Squad,
}

impl Format {
    /// Guesses the format from the file name and its first bytes.
    pub fn detect(name: &str, bytes: &[u8]) -> Result<Self, Error> {
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
        let start = head.trim_start();
        Ok(if name.ends_with(".tsv") {
            Format::CuratedTrec
        } else if name.ends_with(".jsonl") {
            Format::NqOpen
        } else if start.starts_with('{') && start.contains("\"data\"") {
            Format::Squad
        } else if start.starts_with('[') {
            Format::WebQuestions
        } else if start.starts_with('{') {
            Format::NqOpen
        } else {
            return Err(data_error(
                name,
                1,
                "not a question file this build knows (NQ-open JSON lines, WebQuestions JSON, \
                 CuratedTrec TSV, SQuAD JSON)",
            ));
        })
    }
}

/// Parses a question file of `format`; `name` is used in errors.
pub fn parse_questions(name: &str, bytes: &[u8], format: Format) -> Result<Vec<Question>, Error> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        data_error(name, line, "not UTF-8")
    })?;
    let questions = match format {
        Format::NqOpen => parse_nq(name, text)?,
        Format::WebQuestions => parse_webquestions(name, text)?,
        Format::CuratedTrec => parse_curatedtrec(name, text)?,
        Format::Squad => parse_squad(name, text)?,
    };
    if questions.is_empty() {
        return Err(data_error(name, 1, "the file holds no questions"));
    }
    Ok(questions)
}

fn data_error(file: &str, line: usize, message: impl Into<String>) -> Error {
    Error::Data {
        file: file.to_string(),
        line,
        message: message.into(),
    }
}

fn json_error(file: &str, e: &serde_json::Error) -> Error {
    data_error(file, e.line().max(1), e.to_string())
}

fn check_question(file: &str, line: usize, question: &str) -> Result<(), Error> {
    if question.trim().is_empty() {
        return Err(data_error(file, line, "the question is empty"));
    }
    Ok(())
}

fn check_answers(file: &str, line: usize, answers: &[String]) -> Result<(), Error> {
    if answers.iter().all(|a| a.trim().is_empty()) {
        return Err(data_error(file, line, "the question has no answer"));
    }
    Ok(())
}

fn parse_nq(file: &str, text: &str) -> Result<Vec<Question>, Error> {
    #[derive(Deserialize)]
    struct Line {
        question: String,
        answer: Vec<String>,
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let row: Line = serde_json::from_str(line).map_err(|e| {
            data_error(
                file,
                n,
                format!("expected {{\"question\", \"answer\": [..]}}: {e}"),
            )
        })?;
        check_question(file, n, &row.question)?;
        check_answers(file, n, &row.answer)?;
        out.push(Question {
            id: format!("{}", out.len()),
            question: row.question,
            gold: Gold::Strings(row.answer),
            context: None,
        });
    }
    Ok(out)
}

fn parse_webquestions(file: &str, text: &str) -> Result<Vec<Question>, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Row {
        q_id: String,
        q_text: String,
        answers: Vec<String>,
    }
    let rows: Vec<Row> = serde_json::from_str(text).map_err(|e| json_error(file, &e))?;
    // Lines for errors: the n-th `"qId"` in the file.
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("\"qId\""))
        .map(|(i, _)| i + 1)
        .collect();
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            let n = lines.get(i).copied().unwrap_or(1);
            check_question(file, n, &row.q_text)?;
            check_answers(file, n, &row.answers)?;
            Ok(Question {
                id: row.q_id,
                question: row.q_text,
                gold: Gold::Strings(row.answers),
                context: None,
            })
        })
        .collect()
}

fn parse_curatedtrec(file: &str, text: &str) -> Result<Vec<Question>, Error> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < 4 {
            return Err(data_error(
                file,
                n,
                format!(
                    "expected 4 tab-separated fields (id, type, question, answer regex), found {}",
                    fields.len()
                ),
            ));
        }
        // A pattern may itself hold a TAB (train id 462): the fields from the 4th on are it.
        let pattern = fields[3..].join("\t");
        check_question(file, n, fields[2])?;
        if pattern.trim().is_empty() {
            return Err(data_error(file, n, "the answer pattern is empty"));
        }
        out.push(Question {
            id: fields[0].to_string(),
            question: fields[2].to_string(),
            gold: Gold::Pattern(compile_pattern(&pattern, file, n)?),
            context: None,
        });
    }
    Ok(out)
}

/// The line (from 1) of the first `"id"` string in `text`; 1 where it is not found as
/// written (an id JSON had to escape).
fn line_of(text: &str, id: &str) -> usize {
    text.find(&format!("\"{id}\"")).map_or(1, |at| {
        1 + text[..at].bytes().filter(|&b| b == b'\n').count()
    })
}

fn parse_squad(file: &str, text: &str) -> Result<Vec<Question>, Error> {
    #[derive(Deserialize)]
    struct File {
        data: Vec<Article>,
    }
    #[derive(Deserialize)]
    struct Article {
        title: String,
        paragraphs: Vec<Paragraph>,
    }
    #[derive(Deserialize)]
    struct Paragraph {
        context: String,
        qas: Vec<Qa>,
    }
    #[derive(Deserialize)]
    struct Qa {
        id: String,
        question: String,
        answers: Vec<SquadAnswer>,
    }
    #[derive(Deserialize)]
    struct SquadAnswer {
        text: String,
        answer_start: usize,
    }
    let parsed: File = serde_json::from_str(text).map_err(|e| json_error(file, &e))?;
    let mut out = Vec::new();
    for article in parsed.data {
        for paragraph in article.paragraphs {
            // answer_start counts characters; keep byte ranges.
            let byte_at: Vec<usize> = paragraph
                .context
                .char_indices()
                .map(|(b, _)| b)
                .chain(std::iter::once(paragraph.context.len()))
                .collect();
            for qa in paragraph.qas {
                let mut spans = Vec::new();
                // Where errors point: the line that holds the question's id (the official
                // files are one line; a pretty-printed one has a line per field), looked up
                // only for an error (a scan of the file from its start).
                let at_id = |e: Error| match e {
                    Error::Data { file, message, .. } => Error::Data {
                        line: line_of(text, &qa.id),
                        file,
                        message,
                    },
                    e => e,
                };
                for a in &qa.answers {
                    let Some(end_char) = (a.answer_start)
                        .checked_add(a.text.chars().count())
                        .filter(|&end| end < byte_at.len())
                    else {
                        return Err(at_id(data_error(
                            file,
                            1,
                            format!(
                                "question {}: answer {:?} starts past its paragraph",
                                qa.id, a.text
                            ),
                        )));
                    };
                    let span = (byte_at[a.answer_start], byte_at[end_char]);
                    if paragraph.context[span.0..span.1] != a.text {
                        return Err(at_id(data_error(
                            file,
                            1,
                            format!(
                                "question {}: answer {:?} is not at answer_start {}",
                                qa.id, a.text, a.answer_start
                            ),
                        )));
                    }
                    spans.push(span);
                }
                spans.sort_unstable();
                spans.dedup();
                let answers: Vec<String> = qa.answers.iter().map(|a| a.text.clone()).collect();
                check_question(file, 1, &qa.question).map_err(at_id)?;
                check_answers(file, 1, &answers).map_err(at_id)?;
                out.push(Question {
                    id: qa.id,
                    question: qa.question,
                    gold: Gold::Strings(answers),
                    context: Some(Context {
                        article: article.title.clone(),
                        text: paragraph.context.clone(),
                        answers: spans,
                    }),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(result: Result<Vec<Question>, Error>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn nq_lines_parse_and_bad_lines_are_named() {
        let good = b"{\"question\": \"who?\", \"answer\": [\"me\", \"you\"]}\n\n{\"question\": \"when?\", \"answer\": [\"now\"]}\n";
        let q = parse_questions("nq.jsonl", good, Format::NqOpen).unwrap();
        assert_eq!(q.len(), 2);
        assert!(q[0].gold.is_correct("You"));
        let bad = b"{\"question\": \"who?\", \"answer\": [\"me\"]}\n{\"question\": \"x\"}\n";
        assert!(err(parse_questions("nq.jsonl", bad, Format::NqOpen)).starts_with("nq.jsonl:2: "));
        let empty = b"{\"question\": \" \", \"answer\": [\"me\"]}\n";
        assert!(
            err(parse_questions("nq.jsonl", empty, Format::NqOpen))
                .contains("nq.jsonl:1: the question is empty")
        );
        assert!(err(parse_questions("nq.jsonl", b"\xff\n", Format::NqOpen)).contains("not UTF-8"));
    }

    #[test]
    fn webquestions_parse_and_errors_name_the_line() {
        let good = br#"[
 {"qId": "wqs0", "answers": ["Jamaican English"], "qText": "what does jamaican people speak?"},
 {"qId": "wqs1", "answers": ["Lawyer"], "qText": "what did james k polk do?"}
]"#;
        let q = parse_questions("test.json", good, Format::WebQuestions).unwrap();
        assert_eq!(q[1].id, "wqs1");
        let bad = b"[\n {\"qId\": \"wqs0\", \"answers\": [], \"qText\": \"q\"}\n]";
        assert!(
            err(parse_questions("t.json", bad, Format::WebQuestions)).starts_with("t.json:2: ")
        );
        let broken = b"[\n {\"qId\": \"wqs0\",\n \"answers\": [\"a\"] \"qText\": \"q\"}\n]";
        assert!(
            err(parse_questions("t.json", broken, Format::WebQuestions)).starts_with("t.json:3: ")
        );
    }

    #[test]
    fn curatedtrec_keeps_a_tab_inside_a_pattern_and_names_bad_regexes() {
        let tsv = b"1\tfactoid\tWhat is measured in curies?\tradioactiv\tity\n2\tfactoid\tWho?\tBob|Rob\n";
        let q = parse_questions("t.tsv", tsv, Format::CuratedTrec).unwrap();
        match &q[0].gold {
            Gold::Pattern(p) => assert_eq!(p.source, "radioactiv\tity"),
            other => panic!("expected a pattern, got {other:?}"),
        }
        assert!(q[1].gold.is_correct("rob"));
        let bad = b"1\tfactoid\tq\tok\n2\tfactoid\tq2\t(oops\n";
        assert!(
            err(parse_questions("t.tsv", bad, Format::CuratedTrec))
                .starts_with("t.tsv:2: answer pattern does not compile")
        );
        assert!(
            err(parse_questions(
                "t.tsv",
                b"1\tfactoid\tq\n",
                Format::CuratedTrec
            ))
            .starts_with("t.tsv:1: expected 4")
        );
    }

    #[test]
    fn squad_questions_keep_their_paragraph_and_byte_spans() {
        let json = r#"{"version": "1.1", "data": [{"title": "Caf\u00e9", "paragraphs": [
            {"context": "Le café est né en 1686.", "qas": [{"id": "q1", "question": "When?",
             "answers": [{"text": "1686", "answer_start": 18}]}]}]}]}"#;
        let q = parse_questions("s.json", json.as_bytes(), Format::Squad).unwrap();
        let c = q[0].context.as_ref().unwrap();
        assert_eq!(&c.text[c.answers[0].0..c.answers[0].1], "1686");
        assert_eq!(c.article, "Café");
        let wrong = json.replace("\"answer_start\": 18", "\"answer_start\": 3");
        let e = err(parse_questions("s.json", wrong.as_bytes(), Format::Squad));
        // The question's id is on the file's second line.
        assert!(
            e.starts_with("s.json:2: ")
                && e.contains("question q1: answer \"1686\" is not at answer_start 3"),
            "{e}"
        );
        // An answer_start so large that its end wraps around is past the paragraph, not a
        // wrapped index.
        let huge = json.replace(
            "\"answer_start\": 18",
            "\"answer_start\": 18446744073709551615",
        );
        let e = err(parse_questions("s.json", huge.as_bytes(), Format::Squad));
        assert!(
            e.starts_with("s.json:2: ") && e.contains("starts past its paragraph"),
            "{e}"
        );
    }

    #[test]
    fn formats_are_detected_from_name_and_content() {
        assert_eq!(
            Format::detect("a.tsv", b"1\t").unwrap(),
            Format::CuratedTrec
        );
        assert_eq!(Format::detect("a.jsonl", b"{").unwrap(), Format::NqOpen);
        assert_eq!(
            Format::detect("a.json", b" {\"version\": 1, \"data\": []}").unwrap(),
            Format::Squad
        );
        assert_eq!(
            Format::detect("a.json", b"[{}]").unwrap(),
            Format::WebQuestions
        );
        assert!(Format::detect("a.txt", b"hello").is_err());
    }
}
