//! The `realm` binary as a user runs it: help text, the skeleton demo, and errors.

use std::process::Command;

fn realm(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_realm"))
        .args(args)
        .output()
        .expect("the realm binary runs")
}

#[test]
fn help_lists_the_commands() {
    let out = realm(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("demo"), "{text}");
}

#[test]
fn the_skeleton_prints_json_answers_for_every_question() {
    let out = realm(&["skeleton", "--json", "--search", "cpu", "-k", "4"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let questions = report["questions"].as_array().unwrap();
    assert_eq!(questions.len(), realm_core::skeleton::QUESTIONS.len());
    for answer in questions {
        let hits = answer["hits"].as_array().unwrap();
        assert_eq!(hits.len(), 4);
        let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "best first: {scores:?}"
        );
    }
}

#[test]
fn a_bad_argument_is_a_clear_error() {
    let out = realm(&["skeleton", "-k", "0", "--search", "cpu"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("k must be at least 1"), "{err}");
}
