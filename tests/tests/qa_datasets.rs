//! Every question set in the shared data parses with the counts its SOURCE.md gives, every
//! CuratedTrec pattern compiles, the SQuAD-open split holds out the 12 listed articles, and
//! `core/src/qa/test_questions.txt` holds the key of every test question of the open sets and
//! nothing else (`REALM_WRITE_TEST_QUESTIONS=1 cargo test -p realm-tests --test qa_datasets`
//! writes it afresh from the shared data).

use realm_core::qa::datasets::{Format, Question, parse_questions};
use realm_core::qa::splits::{
    SQUAD_HELD_OUT_ARTICLES, TEST_SETS, question_key, squad_article_is_held_out,
    test_set_of_question,
};
use realm_tests::shared_data;

fn questions(folder: &str, file: &str) -> Option<Vec<Question>> {
    let path = shared_data(folder)?.join(file);
    let bytes = std::fs::read(&path).unwrap();
    let name = path.display().to_string();
    let format = Format::detect(&name, &bytes).unwrap();
    Some(parse_questions(&name, &bytes, format).unwrap_or_else(|e| panic!("{e}")))
}

fn count(folder: &str, file: &str) -> usize {
    questions(folder, file).map_or(usize::MAX, |q| q.len())
}

/// The folder of each open set's test file in the shared data.
fn folder_of(file: &str) -> &'static str {
    match file {
        "NQ-open.dev.jsonl" => "nq-open",
        "test.json" => "webquestions",
        _ => "curatedtrec",
    }
}

#[test]
fn the_test_question_keys_are_the_test_files_questions() {
    if shared_data("nq-open").is_none() {
        return;
    }
    let mut text = String::from(
        "# The test questions of the open sets (core/src/qa/splits.rs), a line each: the first 8 bytes\n\
         # of the sha256 of the question after SQuAD normalisation, in hex, sorted; under each set's name.\n\
         # Written by `REALM_WRITE_TEST_QUESTIONS=1 cargo test -p realm-tests --test qa_datasets`.\n",
    );
    for (file, set) in TEST_SETS {
        let mut keys: Vec<String> = questions(folder_of(file), file)
            .unwrap()
            .iter()
            .map(|q| question_key(&q.question))
            .collect();
        keys.sort();
        keys.dedup();
        text.push_str(&format!("[{set}]\n"));
        for key in keys {
            text.push_str(&key);
            text.push('\n');
        }
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/src/qa/test_questions.txt"
    );
    if std::env::var("REALM_WRITE_TEST_QUESTIONS").as_deref() == Ok("1") {
        std::fs::write(path, &text).unwrap();
        return;
    }
    assert!(
        std::fs::read_to_string(path).unwrap() == text,
        "{path} is not the test files' questions: write it again (REALM_WRITE_TEST_QUESTIONS=1)"
    );
    // Every test question is known by content (3 are in two sets, known by the first);
    // training questions are not, but for the few the training files repeat.
    for (file, set) in TEST_SETS {
        let known: Vec<Option<&str>> = questions(folder_of(file), file)
            .unwrap()
            .iter()
            .map(|q| test_set_of_question(&q.question))
            .collect();
        assert!(known.iter().all(Option::is_some), "{file}");
        let elsewhere = known.iter().filter(|s| **s != Some(set)).count();
        assert!(elsewhere <= 3, "{file}: {elsewhere} known by another set");
    }
    let in_test = |folder: &str, file: &str| {
        questions(folder, file)
            .unwrap()
            .iter()
            .filter(|q| test_set_of_question(&q.question).is_some())
            .count()
    };
    assert_eq!(in_test("nq-open", "NQ-open.efficientqa.dev.1.1.jsonl"), 1);
    assert_eq!(in_test("webquestions", "trainmodel.json"), 6);
    assert_eq!(in_test("webquestions", "val.json"), 2);
    assert_eq!(in_test("webquestions", "devtest.json"), 0);
    assert_eq!(in_test("curatedtrec", "large2180-train.tsv"), 10);
    // One SQuAD question is one of them too, in a held-out article.
    assert_eq!(in_test("squad-v1.1-dev", "dev-v1.1.reconstructed.json"), 1);
    assert_eq!(
        test_set_of_question("How did Bob Marley die?"),
        Some("CuratedTrec")
    );
    assert_eq!(
        test_set_of_question("how did bob marley  die"),
        Some("CuratedTrec")
    );
    assert_eq!(test_set_of_question("How did Bob Marley live?"), None);
}

#[test]
fn every_shared_question_set_parses_with_its_published_count() {
    if shared_data("nq-open").is_none() {
        return;
    }
    assert_eq!(count("nq-open", "NQ-open.dev.jsonl"), 3_610);
    assert_eq!(count("nq-open", "NQ-open.efficientqa.dev.1.1.jsonl"), 1_800);
    assert_eq!(count("webquestions", "test.json"), 2_032);
    assert_eq!(
        count("webquestions", "trainmodel.json")
            + count("webquestions", "val.json")
            + count("webquestions", "devtest.json"),
        3_778
    );
    // Every pattern compiles, including train row 462's TAB and test row 159's `\ě`.
    assert_eq!(count("curatedtrec", "large2180-test.tsv"), 694);
    assert_eq!(count("curatedtrec", "large2180-train.tsv"), 1_479);
    assert_eq!(
        count("squad-v1.1-dev", "dev-v1.1.reconstructed.json"),
        10_570
    );
}

#[test]
fn the_squad_split_holds_out_every_fourth_article() {
    let Some(dir) = shared_data("squad-v1.1-dev") else {
        return;
    };
    let path = dir.join("dev-v1.1.reconstructed.json");
    let questions = parse_questions("squad", &std::fs::read(path).unwrap(), Format::Squad).unwrap();
    let mut articles: Vec<String> = Vec::new();
    for q in &questions {
        let a = &q.context.as_ref().unwrap().article;
        if articles.last() != Some(a) {
            articles.push(a.clone());
        }
    }
    assert_eq!(articles.len(), 48);
    let every_fourth: Vec<&str> = articles
        .iter()
        .skip(3)
        .step_by(4)
        .map(String::as_str)
        .collect();
    assert_eq!(every_fourth, SQUAD_HELD_OUT_ARTICLES);
    let held_out = questions
        .iter()
        .filter(|q| squad_article_is_held_out(&q.context.as_ref().unwrap().article))
        .count();
    assert_eq!(held_out, 2_777);
}
