//! The evaluation splits, written down so that no run trains on what it is scored on.
//!
//! - SQuAD-open: SQuAD v1.1 dev split by article. The 12 articles below (every fourth in the
//!   file's order, starting with the fourth) are held out for evaluation and never trained
//!   on (2,777 of the 10,570 questions); the other 36 are training data. The demo corpus holds every article's paragraphs.
//! - NaturalQuestions-Open: `NQ-open.efficientqa.dev.1.1.jsonl` (EfficientQA dev) is training
//!   data, `NQ-open.dev.jsonl` its test set (the NQ training set is not available here).
//! - WebQuestions: `trainmodel.json`, `val.json` and `devtest.json` (the original train split)
//!   train, `test.json` is the test set.
//! - CuratedTrec: `large2180-train.tsv` trains, `large2180-test.tsv` is the test set.
//!
//! The test files are refused by name, and their questions by content wherever they appear
//! ([`test_set_of_question`]): the training files repeat a few test questions (CuratedTrec's
//! 10, 7 of them its own; WebQuestions' 8 and EfficientQA's 1 of the other sets'), which a
//! trainer leaves out.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::qa::answer::normalize_answer;

/// SQuAD v1.1 dev articles held out for evaluation (titles as in the file).
pub const SQUAD_HELD_OUT_ARTICLES: [&str; 12] = [
    "Nikola_Tesla",
    "Southern_California",
    "Steam_engine",
    "European_Union_law",
    "Packet_switching",
    "Victoria_and_Albert_Museum",
    "Immune_system",
    "Harvard_University",
    "University_of_Chicago",
    "Chloroplast",
    "Islamism",
    "Force",
];

/// Whether a SQuAD article is held out for evaluation.
pub fn squad_article_is_held_out(article: &str) -> bool {
    SQUAD_HELD_OUT_ARTICLES.contains(&article)
}

/// The question set whose test split a file of paragraph-less questions named `file_name`
/// is (NQ-open, WebQuestions or CuratedTrec, by the names above), if it is one: such a file
/// is scored on, never trained on.
pub fn test_split_of(file_name: &str) -> Option<&'static str> {
    TEST_SETS
        .iter()
        .find(|(file, _)| *file == file_name)
        .map(|(_, set)| *set)
}

/// The open sets' test questions by [`question_key`] (`test_questions.txt`, written from the
/// sets' test files by `tests/tests/qa_datasets.rs`, which checks it against them): a trainer
/// leaves out any question that is one of them, whatever its file is called.
const TEST_QUESTIONS: &str = include_str!("test_questions.txt");

/// The key a question is known by in [`TEST_QUESTIONS`]: the first 8 bytes of the sha256 of
/// its text after [`normalize_answer`] (case, punctuation, articles and spacing aside), as
/// 16 hex digits.
pub fn question_key(question: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(normalize_answer(question).as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The open set whose test split holds `question` (compared by [`question_key`]), if one does
/// (the first of them in [`TEST_SETS`]' order).
pub fn test_set_of_question(question: &str) -> Option<&'static str> {
    static KEYS: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let mut keys = HashMap::new();
        let mut set = "";
        for line in TEST_QUESTIONS.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                set = TEST_SETS
                    .iter()
                    .find(|(_, s)| *s == name)
                    .map_or("", |(_, s)| s);
            } else if !line.is_empty() && !line.starts_with('#') {
                // A question in two test sets (3 are) is known by the first.
                keys.entry(line).or_insert(set);
            }
        }
        keys
    });
    keys.get(question_key(question).as_str()).copied()
}

/// The test files of the open sets and the set each is: (file name, set).
pub const TEST_SETS: [(&str, &str); 3] = [
    ("NQ-open.dev.jsonl", "NaturalQuestions-Open"),
    ("test.json", "WebQuestions"),
    ("large2180-test.tsv", "CuratedTrec"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_question_is_known_by_its_normalised_text() {
        // sha256("how did bob marley die") begins 4a04c881cb6a94ed (Python's hashlib).
        assert_eq!(question_key("How did Bob Marley die?"), "4a04c881cb6a94ed");
        assert_eq!(
            question_key("  how did BOB marley die "),
            "4a04c881cb6a94ed"
        );
        assert_eq!(
            test_set_of_question("How did Bob Marley die?"),
            Some("CuratedTrec")
        );
        assert_eq!(test_set_of_question("How did Bob Marley live?"), None);
        assert_eq!(test_split_of("large2180-test.tsv"), Some("CuratedTrec"));
        assert_eq!(test_split_of("large2180-train.tsv"), None);
    }
}
