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
    match file_name {
        "NQ-open.dev.jsonl" => Some("NaturalQuestions-Open"),
        "test.json" => Some("WebQuestions"),
        "large2180-test.tsv" => Some("CuratedTrec"),
        _ => None,
    }
}
