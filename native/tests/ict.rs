//! `realm ict` as a user runs it, on the tiny BERT and SQuAD paragraphs: the inverse-cloze
//! loss falls, the held-out retrieval accuracy rises, and a run killed with SIGKILL after a
//! checkpoint and resumed gives the uninterrupted run's losses.

mod common;

use std::path::Path;

use common::{
    assert_ok, assert_same_losses, kill_then_resume, losses, realm, squad_paragraphs, tiny_base,
    write_corpus,
};

fn ict_args(base: &Path, corpus: &Path, out: &Path, every: &str) -> Vec<String> {
    [
        "ict",
        "--out",
        out.to_str().unwrap(),
        "--model",
        base.to_str().unwrap(),
        "--corpus",
        corpus.to_str().unwrap(),
        "--held-out",
        "30",
        "--batch",
        "8",
        "--steps",
        "40",
        "--lr",
        "1e-3",
        "--eval-every",
        "20",
        "--checkpoint-every",
        every,
        "--quiet",
    ]
    .map(String::from)
    .to_vec()
}

/// The held-out accuracies the run logged, in order.
fn accuracies(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["eval"]["held_out_accuracy"].as_f64())
        .collect()
}

#[test]
fn the_inverse_cloze_loss_falls_held_out_accuracy_rises_and_a_killed_run_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((base, squad)) = tiny_base(tmp.path()) else {
        return;
    };
    let corpus = write_corpus(tmp.path(), "corpus.jsonl", &squad_paragraphs(&squad, 120));

    let whole = tmp.path().join("whole");
    assert_ok(&realm(&ict_args(&base, &corpus, &whole, "100")));
    let reference = losses(&whole);
    assert_eq!(reference.len(), 40);
    let mean = |s: &[(usize, f64)]| s.iter().map(|l| l.1).sum::<f64>() / s.len() as f64;
    assert!(
        mean(&reference[30..]) < 0.9 * mean(&reference[..10]),
        "the loss falls: {reference:?}"
    );
    let accuracy = accuracies(&whole);
    assert_eq!(
        accuracy.len(),
        3,
        "before, after 20 and after 40 steps: {accuracy:?}"
    );
    assert!(
        accuracy[2] > accuracy[0],
        "held-out retrieval accuracy rises: {accuracy:?}"
    );
    assert!(whole.join("embedder.safetensors").is_file());

    let killed = tmp.path().join("killed");
    kill_then_resume(&ict_args(&base, &corpus, &killed, "5"), &killed);
    assert_same_losses(&losses(&killed), &reference);
    assert_eq!(accuracies(&killed).last(), accuracy.last());
}
