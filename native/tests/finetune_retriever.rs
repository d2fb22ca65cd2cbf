//! `realm finetune-retriever` as a user runs it, on the tiny BERT and a corpus of SQuAD
//! paragraphs indexed with it: the retriever loss falls; a run killed with SIGKILL after a
//! checkpoint and resumed gives the uninterrupted run's losses; the exported question
//! embedder is used by `realm eval` when it sits beside the reader (alone, for `--recall-only`,
//! which loads no reader), and refused when damaged.

mod common;

use std::path::Path;

use common::{
    assert_ok, assert_same_losses, eval_args, finetune_args, kill_then_resume, losses, realm,
    squad_paragraphs, tiny_base, write_indexed_corpus,
};

fn retriever_args(
    base: &Path,
    squad: &Path,
    corpus: &Path,
    shard: &Path,
    out: &Path,
) -> Vec<String> {
    [
        "finetune-retriever",
        "--out",
        out.to_str().unwrap(),
        "--model",
        base.to_str().unwrap(),
        "--squad",
        squad.to_str().unwrap(),
        "--index",
        shard.to_str().unwrap(),
        "--corpus",
        corpus.to_str().unwrap(),
        "--top-b",
        "8",
        "--steps",
        "30",
        "--batch",
        "4",
        "--limit",
        "40",
        "--lr",
        "1e-3",
        "--quiet",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn the_retriever_loss_falls_resumes_exactly_and_the_embedder_is_used_beside_the_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((base, squad)) = tiny_base(tmp.path()) else {
        return;
    };
    let paragraphs = squad_paragraphs(&squad, 30);
    let (corpus, shard) = write_indexed_corpus(tmp.path(), "corpus.jsonl", &base, &paragraphs);

    let whole = tmp.path().join("whole");
    let mut args = retriever_args(&base, &squad, &corpus, &shard, &whole);
    args.extend(["--checkpoint-every".into(), "100".into()]);
    assert_ok(&realm(&args));
    let reference = losses(&whole);
    assert_eq!(reference.len(), 30);
    let mean = |s: &[(usize, f64)]| s.iter().map(|l| l.1).sum::<f64>() / s.len() as f64;
    assert!(
        mean(&reference[20..]) < 0.9 * mean(&reference[..10]),
        "the loss falls: {reference:?}"
    );
    assert!(whole.join("query.json").is_file() && whole.join("query.safetensors").is_file());

    // Killed as soon as its first checkpoint is in place, then resumed.
    let killed = tmp.path().join("killed");
    let mut args = retriever_args(&base, &squad, &corpus, &shard, &killed);
    args.extend(["--checkpoint-every".into(), "5".into()]);
    kill_then_resume(&args, &killed);
    assert_same_losses(&losses(&killed), &reference);

    // A reader with the question embedder beside it: eval retrieves with the fine-tuned one.
    let reader = tmp.path().join("reader");
    assert_ok(&realm(&finetune_args(&base, &squad, &reader, "2")));
    let eval = |reader: &Path, retriever: &str, extra: &[&str]| {
        let mut args = eval_args(&squad, "40", &base, reader, &corpus, &shard);
        args.extend(
            ["--retriever", retriever]
                .iter()
                .chain(extra)
                .map(|a| a.to_string()),
        );
        realm(&args)
    };
    let before = eval(&reader, "dense", &[]);
    assert_ok(&before);
    for file in ["query.json", "query.safetensors"] {
        std::fs::copy(whole.join(file), reader.join(file)).unwrap();
    }
    let after = eval(&reader, "dense", &[]);
    assert_ok(&after);
    let zero_shot = eval(&reader, "zero-shot", &[]);
    assert_ok(&zero_shot);
    let table = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).to_string();
    // The last row's cells: file, n, mode, EM, R@1, R@5, R@20, R@100.
    let cells = |out: &std::process::Output| -> Vec<String> {
        let t = table(out);
        let row = t.lines().last().unwrap().to_string();
        row.split('|')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    };
    assert_eq!(cells(&after)[2], "open, dense (fine-tuned), top-5");
    assert_eq!(cells(&before)[2], "open, dense (zero-shot), top-5");
    let numbers = |out: &std::process::Output| cells(out)[3..].to_vec();
    assert_eq!(
        numbers(&before),
        numbers(&zero_shot),
        "without query.json, dense retrieval is the zero-shot one"
    );
    // Trained on these very questions, the fine-tuned embedder finds more answers first.
    let recall_at_1 = |out: &std::process::Output| -> f64 { cells(out)[4].parse().unwrap() };
    assert!(
        recall_at_1(&after) > recall_at_1(&zero_shot),
        "{} vs {}",
        table(&after),
        table(&zero_shot)
    );

    // --recall-only loads no reader: a folder holding only the question embedder retrieves as
    // the reader's folder with it does, and there is no EM.
    let query_only = tmp.path().join("query-only");
    std::fs::create_dir(&query_only).unwrap();
    for file in ["query.json", "query.safetensors"] {
        std::fs::copy(whole.join(file), query_only.join(file)).unwrap();
    }
    let recall_only = eval(&query_only, "dense", &["--recall-only"]);
    assert_ok(&recall_only);
    assert_eq!(cells(&recall_only)[2], "open, dense (fine-tuned), top-5");
    assert_eq!(
        cells(&recall_only)[3..],
        numbers(&after)[1..],
        "R@1..100 as with the reader"
    );

    // A damaged copy is refused, naming the file.
    let mut bytes = std::fs::read(reader.join("query.safetensors")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(reader.join("query.safetensors"), bytes).unwrap();
    let damaged = eval(&reader, "dense", &[]);
    assert!(!damaged.status.success());
    assert!(
        String::from_utf8_lossy(&damaged.stderr).contains("query.safetensors"),
        "{}",
        String::from_utf8_lossy(&damaged.stderr)
    );
}
