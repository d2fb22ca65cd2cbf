//! Every question set in the shared data parses with the counts its SOURCE.md gives, every
//! CuratedTrec pattern compiles, and the SQuAD-open split holds out the 12 listed articles.

use realm_core::qa::datasets::{Format, parse_questions};
use realm_core::qa::splits::{SQUAD_HELD_OUT_ARTICLES, squad_article_is_held_out};
use realm_tests::shared_data;

fn count(folder: &str, file: &str) -> usize {
    let Some(dir) = shared_data(folder) else {
        return usize::MAX;
    };
    let path = dir.join(file);
    let bytes = std::fs::read(&path).unwrap();
    let name = path.display().to_string();
    let format = Format::detect(&name, &bytes).unwrap();
    parse_questions(&name, &bytes, format)
        .unwrap_or_else(|e| panic!("{e}"))
        .len()
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
