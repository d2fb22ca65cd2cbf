//! Question files from disk, in any format `realm_core::qa::datasets` reads, and the SQuAD-open
//! split by article (`realm_core::qa::splits`).

use std::collections::HashSet;
use std::path::Path;

use anyhow::Context;
use realm_core::qa::datasets::{Format, Question, parse_questions};
use realm_core::qa::splits::squad_article_is_held_out;

/// Reads a question file, its format guessed from its name and first bytes.
pub fn read_questions(path: &Path) -> anyhow::Result<Vec<Question>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path.display().to_string();
    let format = Format::detect(&name, &bytes)?;
    Ok(parse_questions(&name, &bytes, format)?)
}

/// Which SQuAD-open questions a command takes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum SquadSplit {
    /// The 36 training articles.
    Train,
    /// The 12 held-out articles.
    HeldOut,
    /// Every question.
    All,
}

/// The questions of `split`; questions of other sets (no article) are kept whole: their
/// files are already split.
pub fn squad_split(questions: Vec<Question>, split: SquadSplit) -> Vec<Question> {
    questions
        .into_iter()
        .filter(|q| in_split(q, split))
        .collect()
}

fn in_split(q: &Question, split: SquadSplit) -> bool {
    match (split, &q.context) {
        (SquadSplit::All, _) => true,
        (SquadSplit::Train, Some(c)) => !squad_article_is_held_out(&c.article),
        (SquadSplit::HeldOut, Some(c)) => squad_article_is_held_out(&c.article),
        (_, None) => true,
    }
}

/// The paragraphs (trimmed) of the SQuAD questions `split` leaves out: a trainer on `split`
/// never reads them, not even as another question's negative.
pub fn paragraphs_outside(all: &[Question], split: SquadSplit) -> HashSet<String> {
    all.iter()
        .filter(|q| !in_split(q, split))
        .filter_map(|q| q.context.as_ref().map(|c| c.text.trim().to_string()))
        .collect()
}
