//! Helpers the CLI tests share: the shared data, a tiny BERT base model, and running `realm`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use realm_core::checkpoint::safetensors_file::{read_safetensors, write_safetensors};
use realm_core::checkpoint::weights::WeightMap;

/// `../shared/data/<folder>` (or under `$REALM_SHARED_DATA`); `None` (skip) outside CI.
pub fn shared_data(folder: &str) -> Option<PathBuf> {
    let root = std::env::var_os("REALM_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    let path = root.join(folder);
    if path.is_dir() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} is missing",
        path.display()
    );
    eprintln!("skipping: {} is missing", path.display());
    None
}

/// A BERT directory holding the tiny fixture's reader encoder under `BertModel` names.
pub fn tiny_base(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let tiny = shared_data("realm-parity-tiny")?;
    let minilm = shared_data("all-minilm-l6-v2")?;
    let squad = shared_data("squad-v1.1-dev")?.join("dev-v1.1.reconstructed.json");
    let all =
        read_safetensors(&std::fs::read(tiny.join("realm_tiny.safetensors")).unwrap()).unwrap();
    let bert: WeightMap = all
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("reader.realm.")
                .map(|rest| (rest.to_string(), v.clone()))
        })
        .collect();
    let base = dir.join("tiny-bert");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(
        base.join("model.safetensors"),
        write_safetensors(&bert).unwrap(),
    )
    .unwrap();
    std::fs::copy(tiny.join("config.json"), base.join("config.json")).unwrap();
    std::fs::copy(minilm.join("vocab.txt"), base.join("vocab.txt")).unwrap();
    Some((base, squad))
}

pub fn finetune_args<'a>(
    base: &'a Path,
    squad: &'a Path,
    out: &'a Path,
    steps: &'a str,
) -> Vec<String> {
    [
        "finetune",
        "--out",
        out.to_str().unwrap(),
        "--model",
        base.to_str().unwrap(),
        "--squad",
        squad.to_str().unwrap(),
        "--steps",
        steps,
        "--batch",
        "2",
        "--limit",
        "24",
        "--max-length",
        "64",
        "--lr",
        "1e-3",
        "--warmup",
        "0.1",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub fn realm(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_realm"))
        .args(args)
        .output()
        .expect("the realm binary runs")
}

pub fn losses(run: &Path) -> Vec<(usize, f64)> {
    realm_native::train::metrics::read_losses(&run.join("metrics.jsonl")).unwrap()
}

pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "realm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first `n` distinct paragraphs of a SQuAD file.
pub fn squad_paragraphs(squad: &Path, n: usize) -> Vec<String> {
    let questions = realm_native::qa::data::read_questions(squad).unwrap();
    let mut paragraphs: Vec<String> = Vec::new();
    for q in &questions {
        let text = &q.context.as_ref().unwrap().text;
        if !paragraphs.contains(text) {
            paragraphs.push(text.clone());
        }
        if paragraphs.len() == n {
            break;
        }
    }
    paragraphs
}

/// `dir/name`: JSON lines of `texts` (all titled "Super Bowl 50").
pub fn write_corpus(dir: &Path, name: &str, texts: &[String]) -> PathBuf {
    let path = dir.join(name);
    let lines: String = texts
        .iter()
        .map(|t| {
            format!(
                "{}\n",
                serde_json::json!({"title": "Super Bowl 50", "text": t})
            )
        })
        .collect();
    std::fs::write(&path, lines).unwrap();
    path
}

/// `dir/name` as JSON lines of `texts`, and its index shard built with `base` by `realm index`.
pub fn write_indexed_corpus(
    dir: &Path,
    name: &str,
    base: &Path,
    texts: &[String],
) -> (PathBuf, PathBuf) {
    let path = dir.join(name);
    let lines: String = texts
        .iter()
        .map(|t| {
            format!(
                "{}\n",
                serde_json::json!({"title": "Super Bowl 50", "text": t})
            )
        })
        .collect();
    std::fs::write(&path, lines).unwrap();
    let shard = path.with_extension("shard");
    let index = [
        "index",
        "--model",
        base.to_str().unwrap(),
        "--corpus",
        path.to_str().unwrap(),
        "--out",
        shard.to_str().unwrap(),
    ];
    assert_ok(&realm(&index.map(String::from)));
    (path, shard)
}

/// `realm eval` of the first `limit` training questions of `squad`, open retrieval over
/// `corpus` and its `shard` with the reader in `reader` on `base`.
pub fn eval_args(
    squad: &Path,
    limit: &str,
    base: &Path,
    reader: &Path,
    corpus: &Path,
    shard: &Path,
) -> Vec<String> {
    [
        "eval",
        "--questions",
        squad.to_str().unwrap(),
        "--split",
        "train",
        "--limit",
        limit,
        "--model",
        base.to_str().unwrap(),
        "--reader",
        reader.to_str().unwrap(),
        "--corpus",
        corpus.to_str().unwrap(),
        "--index",
        shard.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// Runs `realm args` and kills it (SIGKILL) as soon as `run/latest` names a checkpoint, then
/// resumes it with `realm <command> --resume run --quiet` to the end.
pub fn kill_then_resume(args: &[String], run: &Path) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_realm"))
        .args(args)
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !run.join("latest").exists() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(300),
            "no checkpoint appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    // Killed, not finished before the kill came: otherwise nothing here resumes.
    assert!(
        !status.success(),
        "the run ended ({status}) before it could be killed: give it more steps"
    );
    let resume = [&args[0], "--resume", run.to_str().unwrap(), "--quiet"];
    assert_ok(&realm(&resume.map(String::from)));
}

/// Starts `realm args` (stderr piped; under `nohup` when `nohup`) and returns once its
/// `run/metrics.jsonl` logs a step.
pub fn start_until_a_step(args: &[String], run: &Path, nohup: bool) -> std::process::Child {
    let mut command = match nohup {
        true => Command::new("nohup"),
        false => Command::new(env!("CARGO_BIN_EXE_realm")),
    };
    if nohup {
        command.arg(env!("CARGO_BIN_EXE_realm"));
    }
    let child = command
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let logged =
        || std::fs::read_to_string(run.join("metrics.jsonl")).is_ok_and(|m| m.contains("\"loss\""));
    while !logged() {
        assert!(started.elapsed().as_secs() < 300, "no step was logged");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child
}

/// Sends `signal` ("INT", "TERM", "HUP") to `child`.
pub fn send(child: &std::process::Child, signal: &str) {
    let sent = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Sends `signal` ("INT", "TERM") to a run started with its stderr piped, waits for it, asserts
/// that it exited 0 (stopped and saved), and gives back its stderr.
pub fn stop_with(child: std::process::Child, signal: &str) -> String {
    send(&child, signal);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// The two runs' losses agree step by step within 1e-6.
pub fn assert_same_losses(resumed: &[(usize, f64)], reference: &[(usize, f64)]) {
    assert_eq!(
        resumed.len(),
        reference.len(),
        "one line per step after the resume: {resumed:?}"
    );
    for (a, b) in resumed.iter().zip(reference) {
        assert_eq!(a.0, b.0);
        assert!(
            (a.1 - b.1).abs() <= 1e-6,
            "step {}: resumed {} vs uninterrupted {}",
            a.0,
            a.1,
            b.1
        );
    }
}
