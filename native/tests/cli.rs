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

#[test]
fn flags_that_would_be_ignored_or_unusable_and_a_plot_of_nothing_are_clear_errors() {
    // A resumed run takes its saved flags: others would be ignored, so they are refused.
    let out = realm(&[
        "pretrain", "--resume", "/no/run", "--steps", "5", "--lr", "1", "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--steps, --lr would be ignored"), "{err}");
    let out = realm(&["finetune", "--resume", "/no/run", "--quiet"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("/no/run is not a run directory"), "{err}");

    // `realm serve`'s default top_k beyond what a request may ask: refused at the start, not
    // on every request that gives none.
    let out = realm(&["serve", "-k", "30", "--max-top-k", "20"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("-k 30 is the top_k of a request that gives none"),
        "{err}"
    );

    // More passages a request than one answer reads.
    let out = realm(&["serve", "--max-top-k", "200"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("--max-top-k 200 is more passages than one answer reads (at most 100)"),
        "{err}"
    );

    // `realm plot` of a run with no step yet, and of an evaluation file without --metric.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("metrics.jsonl"), "").unwrap();
    let out = realm(&["plot", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("metrics.jsonl: no step logged yet"), "{err}");
    let file = dir.path().join("metrics.jsonl");
    let out = realm(&["plot", file.to_str().unwrap()]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("is a file: realm plot redraws a run directory"),
        "{err}"
    );
}

#[test]
fn plot_compares_one_evaluation_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    // A run directory (losses and evaluations in metrics.jsonl) and a kept evaluations file.
    let run = dir.path().join("salient");
    std::fs::create_dir(&run).unwrap();
    let eval = |at: u32, u: f64| {
        format!(
            "{{\"after_steps\":{at},\"eval\":{{\"held_out_queries\":9,\"retrieval_utility\":{u},\"target_in_z\":0.3}},\"step\":{at}}}\n"
        )
    };
    let metrics = [
        eval(0, -0.2),
        "{\"step\":0,\"loss\":7.5}\n".to_owned(),
        eval(200, -0.01),
        eval(400, 0.05),
    ]
    .concat();
    std::fs::write(run.join("metrics.jsonl"), metrics).unwrap();
    let kept = dir.path().join("random-span-evals.jsonl");
    std::fs::write(&kept, [eval(0, -0.35), eval(200, -0.02)].concat()).unwrap();
    let out_svg = dir.path().join("charts/utility.svg");
    let args = |metric: &str| {
        [
            "plot",
            "--metric",
            metric,
            "--out",
            out_svg.to_str().unwrap(),
            run.to_str().unwrap(),
            kept.to_str().unwrap(),
        ]
        .map(str::to_owned)
    };

    let out = Command::new(env!("CARGO_BIN_EXE_realm"))
        .args(args("retrieval_utility"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(&out_svg).unwrap();
    // A dot per evaluation of the metric: 3 of the run, 2 of the file.
    assert_eq!(svg.matches("<circle").count(), 5, "{svg}");
    if out_svg.with_extension("png").exists() {
        // A font was found, so the legend names each run: the folder, the file's stem.
        let text: Vec<&str> = svg.lines().map(str::trim).collect();
        assert!(
            text.contains(&"salient") && text.contains(&"random-span"),
            "{svg}"
        );
    }

    let out = Command::new(env!("CARGO_BIN_EXE_realm"))
        .args(args("recall"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("salient/metrics.jsonl: no evaluation named recall; it has retrieval_utility, target_in_z"),
        "{err}"
    );

    // The chart is there now: replaced only with --force.
    let again = |force: bool| {
        let mut args = args("retrieval_utility").to_vec();
        if force {
            args.push("--force".into());
        }
        Command::new(env!("CARGO_BIN_EXE_realm"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = again(false);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("utility.svg exists; pass --force"), "{err}");
    assert!(again(true).status.success());
    // No temporary file is left beside the chart.
    let left: Vec<String> = std::fs::read_dir(out_svg.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
