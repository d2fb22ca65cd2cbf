//! The answer as a page reads it: the JSON `realm serve` answers and the browser's engine
//! returns (camelCase fields; the answer's passage text; its offsets as JavaScript string
//! indices, UTF-16 code units, not UTF-8 bytes; where the encoders ran).

use serde::Serialize;

use crate::qa::engine::{AskReport, Timings};
use crate::text::corpus::Passage;

/// JavaScript string index (UTF-16 code units) of byte offset `byte` in `text`.
pub fn utf16_index(text: &str, byte: usize) -> usize {
    text[..byte].encode_utf16().count()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageAnswer {
    pub text: String,
    pub passage_id: u32,
    pub title: String,
    pub context: String,
    pub start: usize,
    pub end: usize,
    pub evidence: String,
    pub reader_score: f32,
    pub retriever_score: f32,
    pub score: f32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PagePassage {
    pub id: u32,
    pub title: String,
    pub retriever_score: f32,
    pub best_span: Option<String>,
    pub reader_score: Option<f32>,
}

#[derive(Serialize)]
pub struct PageReport {
    pub question: String,
    pub truncated: bool,
    pub answer: Option<PageAnswer>,
    pub passages: Vec<PagePassage>,
    pub seconds: Timings,
    pub device: &'static str,
}

impl PageReport {
    /// `report` with its answer's passage from `passages` and its offsets as string indices;
    /// `device` says where the encoders ran.
    pub fn new(report: &AskReport, passages: &[Passage], device: &'static str) -> Self {
        let answer = report.answer.as_ref().map(|a| {
            let context = &passages[a.passage_id as usize].text;
            PageAnswer {
                text: a.text.clone(),
                passage_id: a.passage_id,
                title: a.title.clone(),
                context: context.clone(),
                start: utf16_index(context, a.start),
                end: utf16_index(context, a.end),
                evidence: a.evidence.clone(),
                reader_score: a.reader_score,
                retriever_score: a.retriever_score,
                score: a.score,
            }
        });
        PageReport {
            question: report.question.clone(),
            truncated: report.truncated,
            answer,
            passages: report
                .passages
                .iter()
                .map(|p| PagePassage {
                    id: p.id,
                    title: p.title.clone(),
                    retriever_score: p.retriever_score,
                    best_span: p.best_span.clone(),
                    reader_score: p.reader_score,
                })
                .collect(),
            seconds: report.seconds.clone(),
            device,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::utf16_index;

    #[test]
    fn byte_offsets_become_javascript_string_indices() {
        let text = "Île-de-France 😀 Paris";
        let byte = text.find("Paris").unwrap();
        assert_eq!(byte, 20);
        assert_eq!(utf16_index(text, byte), 17);
    }
}
