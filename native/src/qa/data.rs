//! Question files from disk, in any format `realm_core::qa::datasets` reads, and the SQuAD-open
//! split by article (`realm_core::qa::splits`).

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, bail};
use realm_core::qa::datasets::{Format, Question, parse_questions};
use realm_core::qa::splits::{squad_article_is_held_out, test_set_of_question, test_split_of};

/// Reads a question file, its format guessed from its name and first bytes.
pub fn read_questions(path: &Path) -> anyhow::Result<Vec<Question>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path.display().to_string();
    let format = Format::detect(&name, &bytes)?;
    Ok(parse_questions(&name, &bytes, format)?)
}

/// The questions of training file `path` that no evaluation scores. A file of questions
/// without paragraphs named as an open set's test file is refused
/// (`realm_core::qa::splits::test_split_of`); any question that is a test question by content
/// (`test_set_of_question`) is left out with a note, and a file mostly of them is refused
/// (a test file under another name).
pub fn read_training_file(path: &Path) -> anyhow::Result<Vec<Question>> {
    let all = read_questions(path)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if all.iter().all(|q| q.context.is_none())
        && let Some(set) = test_split_of(name)
    {
        bail!(
            "{} is {set}'s test split, which is scored on and never trained on (core/src/qa/splits.rs names its training files)",
            path.display()
        );
    }
    let total = all.len();
    // Each question's test set, looked up once.
    let mut kept = Vec::with_capacity(total);
    let mut test: Vec<(&str, Question)> = Vec::new();
    for q in all {
        match test_set_of_question(&q.question) {
            Some(set) => test.push((set, q)),
            None => kept.push(q),
        }
    }
    if let Some((_, first)) = test.first() {
        // How many of each set's, most first.
        let mut sets: Vec<(&str, usize)> = Vec::new();
        for &(set, _) in &test {
            match sets.iter_mut().find(|(s, _)| *s == set) {
                Some((_, n)) => *n += 1,
                None => sets.push((set, 1)),
            }
        }
        sets.sort_by(|a, b| b.1.cmp(&a.1));
        if 2 * test.len() > total {
            bail!(
                "{}: {} of its {total} questions are {}'s test questions (a copy of its test split?), which are scored on and never trained on",
                path.display(),
                test.len(),
                sets[0].0
            );
        }
        let of: Vec<String> = sets.iter().map(|(s, n)| format!("{n} of {s}'s")).collect();
        eprintln!(
            "{}: left out {} of its questions that are test questions ({}; the first: \"{}\"): scored on, never trained on",
            path.display(),
            test.len(),
            of.join(", "),
            first.question,
        );
    }
    Ok(kept)
}

/// Refuses a trainer's `--split` other than `train` (only a run saved before the flag left the
/// trainers can hold one): the held-out articles are scored on, never trained on.
pub fn check_training_split(split: SquadSplit) -> anyhow::Result<()> {
    if split != SquadSplit::Train {
        bail!(
            "this run was saved with --split {split:?}, which trains on the held-out SQuAD articles; trainers take the training articles only (start a new run)"
        );
    }
    Ok(())
}

/// Which SQuAD-open questions a command takes.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum SquadSplit {
    /// The 36 training articles.
    #[default]
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

#[cfg(test)]
mod tests {
    use super::read_training_file;

    fn nq_lines(questions: &[&str]) -> String {
        questions
            .iter()
            .map(|q| format!("{{\"question\": \"{q}\", \"answer\": [\"x\"]}}\n"))
            .collect()
    }

    #[test]
    fn test_questions_are_left_out_of_training_files_whatever_their_name() {
        let dir = tempfile::tempdir().unwrap();
        // Three questions of CuratedTrec's test set (its training file repeats them).
        let test = [
            "How did Bob Marley die?",
            "what is the atomic number of uranium",
            "What does CPR stand for?",
        ];
        let mine: Vec<String> = (0..6)
            .map(|i| format!("Who wrote book number {i}?"))
            .collect();
        let mut some: Vec<&str> = mine.iter().map(String::as_str).collect();
        some.push(test[0]);
        let path = dir.path().join("mine.jsonl");
        std::fs::write(&path, nq_lines(&some)).unwrap();
        let kept = read_training_file(&path).unwrap();
        assert_eq!(kept.len(), 6);
        assert!(
            kept.iter()
                .all(|q| q.question.starts_with("Who wrote book"))
        );

        // Mostly test questions: a test file by another name.
        let copy = dir.path().join("copy.jsonl");
        std::fs::write(&copy, nq_lines(&[test[0], test[1], test[2], &mine[0]])).unwrap();
        let e = read_training_file(&copy).unwrap_err().to_string();
        assert!(
            e.contains("3 of its 4 questions are CuratedTrec's test questions"),
            "{e}"
        );
        // A test file by its name, whatever it holds.
        let named = dir.path().join("NQ-open.dev.jsonl");
        std::fs::write(&named, nq_lines(&[&mine[0]])).unwrap();
        let e = read_training_file(&named).unwrap_err().to_string();
        assert!(e.contains("NaturalQuestions-Open's test split"), "{e}");
    }
}
