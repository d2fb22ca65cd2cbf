//! `realm ict` as a user runs it, on the tiny BERT and SQuAD paragraphs: the inverse-cloze
//! loss falls, the held-out retrieval accuracy rises, and a run killed with SIGKILL after a
//! checkpoint and resumed gives the uninterrupted run's losses.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{assert_ok, losses, realm, squad_paragraphs, tiny_base, write_corpus};

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_realm"))
        .args(ict_args(&base, &corpus, &killed, "5"))
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !killed.join("latest").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let resume = ["ict", "--resume", killed.to_str().unwrap(), "--quiet"];
    assert_ok(&realm(&resume.map(String::from)));
    let resumed = losses(&killed);
    assert_eq!(resumed.len(), reference.len());
    for (a, b) in resumed.iter().zip(&reference) {
        assert!(
            (a.1 - b.1).abs() <= 1e-6,
            "step {}: resumed {} vs uninterrupted {}",
            a.0,
            a.1,
            b.1
        );
    }
    assert_eq!(accuracies(&killed).last(), accuracy.last());
}
