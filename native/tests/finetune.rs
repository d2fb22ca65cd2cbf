//! `realm finetune` as a user runs it, on a tiny BERT (the parity fixture's reader encoder,
//! 2 layers, 32 wide) and a few SQuAD questions: the loss falls; a run killed with SIGKILL
//! after a checkpoint and resumed gives the uninterrupted run's losses; a diverging run stops
//! with the step named and no checkpoint past it; SIGTERM saves and stops; one process at a
//! time trains in a run folder, which holds nothing else; the wgpu backend's losses agree with
//! the CPU's within 1e-4 (the reader alone and with the question embedder); with retrieved
//! negatives the loss still falls, and a corpus too small to give them is a clear error; with
//! `--retriever-layers` the question embedder trains beside the reader (the loss falls, a
//! killed run resumes to the same curve and files, the reader's marginal alone moves the
//! retriever, `realm eval` uses it); questions without paragraphs (NQ-open lines) train on
//! their retrieved passages, a run can start from a trained reader, and test splits are
//! refused.

mod common;

use common::{
    assert_ok, assert_same_losses, eval_args, finetune_args, kill_then_resume, losses, realm, send,
    squad_paragraphs, start_until_a_step, stop_with, tiny_base, write_indexed_corpus,
};

#[test]
fn the_loss_falls_and_a_killed_run_resumes_to_the_same_curve() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((base, squad)) = tiny_base(tmp.path()) else {
        return;
    };
    let steps = "40";

    let whole = tmp.path().join("whole");
    let mut args = finetune_args(&base, &squad, &whole, steps);
    args.extend(["--checkpoint-every".into(), "100".into()]);
    assert_ok(&realm(&args));
    let reference = losses(&whole);
    assert_eq!(reference.len(), 40);
    let mean = |s: &[(usize, f64)]| s.iter().map(|l| l.1).sum::<f64>() / s.len() as f64;
    assert!(
        mean(&reference[30..]) < 0.8 * mean(&reference[..10]),
        "the loss falls: {reference:?}"
    );
    assert!(whole.join("reader.json").is_file() && whole.join("reader.safetensors").is_file());

    // The same run, killed as soon as its first checkpoint is in place, then resumed.
    let killed = tmp.path().join("killed");
    let mut args = finetune_args(&base, &squad, &killed, steps);
    args.extend(["--checkpoint-every".into(), "5".into()]);
    kill_then_resume(&args, &killed);
    assert_same_losses(&losses(&killed), &reference);
    // The exported readers are the same file.
    assert_eq!(
        std::fs::read(killed.join("reader.safetensors")).unwrap(),
        std::fs::read(whole.join("reader.safetensors")).unwrap()
    );
    // A second run into a used directory is refused with what to do.
    let again = realm(&finetune_args(&base, &squad, &whole, steps));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));

    // What a process killed while saving leaves (a temporary checkpoint folder, a temporary
    // file) is removed by the next resume, here of the finished run, which only exports.
    std::fs::create_dir(whole.join(".checkpoint-left")).unwrap();
    std::fs::write(whole.join(".realm-left.partial"), b"half").unwrap();
    assert_ok(&realm(
        &["finetune", "--resume", whole.to_str().unwrap(), "--quiet"].map(String::from),
    ));
    assert!(
        !whole.join(".checkpoint-left").exists() && !whole.join(".realm-left.partial").exists()
    );

    // A record changed on disk (one byte) is refused by its sum, which burn's format lacks.
    let latest = std::fs::read_to_string(whole.join("latest")).unwrap();
    let record = whole.join(latest.trim()).join("model.bpk");
    let mut bytes = std::fs::read(&record).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&record, bytes).unwrap();
    let out =
        realm(&["finetune", "--resume", whole.to_str().unwrap(), "--quiet"].map(String::from));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("model.bpk has sha256") && stderr.contains("the checkpoint is damaged"),
        "{stderr}"
    );

    // A folder of other files is no place for a run: it would overwrite or remove them.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(other.join("checkpoint-backup")).unwrap();
    let out = realm(&finetune_args(&base, &squad, &other, steps));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already holds other files"), "{stderr}");
    assert!(other.join("checkpoint-backup").is_dir());
}

#[test]
fn sigterm_saves_and_stops_one_process_at_a_time_trains_in_a_folder_and_its_inputs_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((base, shared_squad)) = tiny_base(tmp.path()) else {
        return;
    };
    // A copy, which the test edits.
    let squad = tmp.path().join("squad.json");
    std::fs::copy(&shared_squad, &squad).unwrap();
    // Long enough to be running when stopped; no checkpoint but the one the stop writes.
    let run = tmp.path().join("run");
    let mut args = finetune_args(&base, &squad, &run, "5000");
    args.extend(["--checkpoint-every".into(), "10000".into()]);
    let child = start_until_a_step(&args, &run, false);

    // A second process on the same folder is refused while the first trains.
    let resume = ["finetune", "--resume", run.to_str().unwrap(), "--quiet"].map(String::from);
    let second = realm(&resume);
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another realm process is training in"),
        "{stderr}"
    );

    // SIGTERM (`kill`, `timeout`, a scheduler) stops the run as Ctrl-C does: a checkpoint of
    // the step it was in, exit 0.
    let stderr = stop_with(child, "TERM");
    assert!(stderr.contains("stopped at step"), "{stderr}");
    let latest = std::fs::read_to_string(run.join("latest")).unwrap();
    let step: usize = latest
        .trim()
        .trim_start_matches("checkpoint-")
        .parse()
        .unwrap();
    assert!((1..5000).contains(&step), "{latest}");

    // Its `latest` deleted: a resume names the checkpoint rather than start again from 0.
    std::fs::remove_file(run.join("latest")).unwrap();
    let out = realm(&resume);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("holds {} but no `latest`", latest.trim())),
        "{stderr}"
    );

    // Its --squad file edited since it started: a resume would train on other data.
    std::fs::write(run.join("latest"), &latest).unwrap();
    let original = std::fs::read(&squad).unwrap();
    std::fs::write(&squad, [original.as_slice(), b"\n"].concat()).unwrap();
    let out = realm(&resume);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let changed = format!("{} has changed since the run", squad.display());
    assert!(stderr.contains(&changed), "{stderr}");
    std::fs::write(&squad, original).unwrap();

    // Under `nohup` a hang-up does not stop the run (it outlives its terminal); SIGTERM does.
    let run = tmp.path().join("nohup");
    let mut args = finetune_args(&base, &squad, &run, "5000");
    args.extend(["--checkpoint-every".into(), "10000".into()]);
    let mut child = start_until_a_step(&args, &run, true);
    send(&child, "HUP");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "a SIGHUP stopped a run under nohup"
    );
    let stderr = stop_with(child, "TERM");
    assert!(stderr.contains("stopped at step"), "{stderr}");
}

#[test]
fn a_diverging_run_stops_with_the_step_named_and_no_checkpoint_past_it() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((base, squad)) = tiny_base(tmp.path()) else {
        return;
    };
    let run = tmp.path().join("nan");
    let mut args = finetune_args(&base, &squad, &run, "20");
    // A learning rate this large sends the weights to infinity within a few steps.
    let set = |args: &mut Vec<String>, flag: &str, value: &str| {
        let at = args.iter().position(|a| a == flag).unwrap() + 1;
        args[at] = value.into();
    };
    set(&mut args, "--lr", "1e38");
    set(&mut args, "--warmup", "0");
    args.extend(["--checkpoint-every".into(), "1".into()]);
    let out = realm(&args);
    assert!(!out.status.success(), "a non-finite loss must fail the run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let step: usize = stderr
        .split("step ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("the error names the step: {stderr}"));
    assert!(
        stderr.contains("the loss is") || stderr.contains("the gradient norm is"),
        "{stderr}"
    );
    // Checkpoints exist only for steps whose loss was finite.
    if let Ok(latest) = std::fs::read_to_string(run.join("latest")) {
        let saved: usize = latest
            .trim()
            .trim_start_matches("checkpoint-")
            .parse()
            .unwrap();
        assert!(
            saved <= step,
            "checkpoint {saved} is past the failed step {step}"
        );
    }
    assert!(!run.join("reader.json").exists());
}

#[test]
fn the_wgpu_backend_trains_like_the_cpu() {
    if std::env::var("REALM_REQUIRE_GPU").as_deref() != Ok("1")
        && std::env::var("REALM_TEST_WGPU").is_err()
    {
        eprintln!("skipping: set REALM_REQUIRE_GPU=1 (scripts/test.sh does) to train on wgpu");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some((base, squad)) = tiny_base(tmp.path()) else {
        return;
    };
    // The reader alone, and with the question embedder training beside it.
    let paragraphs = squad_paragraphs(&squad, 30);
    let (corpus, shard) = write_indexed_corpus(tmp.path(), "corpus.jsonl", &base, &paragraphs);
    let joint = joint_flags(&corpus, &shard);
    for (name, extra) in [("reader", &[][..]), ("joint", &joint[..])] {
        let mut runs = Vec::new();
        for device in ["cpu", "wgpu"] {
            let run = tmp.path().join(format!("{name}-{device}"));
            let mut args = finetune_args(&base, &squad, &run, "3");
            args.extend(["--device".into(), device.into()]);
            args.extend_from_slice(extra);
            assert_ok(&realm(&args));
            runs.push(losses(&run));
        }
        assert_eq!(runs[0].len(), 3);
        for (c, g) in runs[0].iter().zip(&runs[1]) {
            assert!(
                (c.1 - g.1).abs() <= 1e-4,
                "{name}, step {}: cpu {} vs wgpu {}",
                c.0,
                c.1,
                g.1
            );
        }
    }
}

#[test]
fn retrieved_negatives_share_the_softmax_and_the_loss_still_falls() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((base, squad)) = tiny_base(tmp.path()) else {
        return;
    };
    // A corpus of the first SQuAD paragraphs, indexed with the tiny model itself.
    let paragraphs = squad_paragraphs(&squad, 12);
    let write_corpus =
        |name: &str, texts: &[String]| write_indexed_corpus(tmp.path(), name, &base, texts);
    let (corpus, shard) = write_corpus("corpus.jsonl", &paragraphs);
    let run = tmp.path().join("negatives");
    let mut args = finetune_args(&base, &squad, &run, "40");
    let retrieval = |corpus: &std::path::Path, shard: &std::path::Path| {
        [
            "--index",
            shard.to_str().unwrap(),
            "--corpus",
            corpus.to_str().unwrap(),
            "--negatives",
            "2",
            "--checkpoint-every",
            "100",
        ]
        .map(String::from)
    };
    args.extend(retrieval(&corpus, &shard));
    assert_ok(&realm(&args));
    assert_falls_reading_three(&run);

    // A corpus holding nothing but the questions' own paragraph has no negative to give.
    let (alone, alone_shard) = write_corpus("alone.jsonl", &paragraphs[..1]);
    let mut args = finetune_args(&base, &squad, &tmp.path().join("alone-run"), "2");
    args.extend(retrieval(&alone, &alone_shard));
    let at = args.iter().position(|a| a == "--limit").unwrap() + 1;
    args[at] = "1".into();
    let out = realm(&args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--negatives 2"), "{stderr}");
}

/// The 40-step run in `run` learned (the last ten losses' mean under 0.8 of the first ten's)
/// reading 3 passages a question; its losses.
fn assert_falls_reading_three(run: &std::path::Path) -> Vec<(usize, f64)> {
    let curve = losses(run);
    assert_eq!(curve.len(), 40);
    let mean = |s: &[(usize, f64)]| s.iter().map(|l| l.1).sum::<f64>() / s.len() as f64;
    assert!(
        mean(&curve[30..]) < 0.8 * mean(&curve[..10]),
        "the loss falls: {curve:?}"
    );
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("reader.json")).unwrap()).unwrap();
    assert_eq!(card["trained"]["passages_per_question"], 3, "{card}");
    curve
}

#[test]
fn questions_without_paragraphs_train_on_their_retrieved_passages() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((base, squad)) = tiny_base(tmp.path()) else {
        return;
    };
    let paragraphs = squad_paragraphs(&squad, 12);
    let (corpus, shard) = write_indexed_corpus(tmp.path(), "corpus.jsonl", &base, &paragraphs);
    // The questions of those paragraphs as NQ-open lines: a question and its answer strings.
    let lines: String = realm_native::qa::data::read_questions(&squad)
        .unwrap()
        .iter()
        .filter(|q| paragraphs.contains(&q.context.as_ref().unwrap().text))
        .map(|q| {
            let realm_core::qa::answer::Gold::Strings(answers) = &q.gold else {
                unreachable!("SQuAD answers are strings")
            };
            format!(
                "{}\n",
                serde_json::json!({"question": q.question, "answer": answers})
            )
        })
        .collect();
    let nq = tmp.path().join("nq-train.jsonl");
    std::fs::write(&nq, &lines).unwrap();
    let flags = |questions: &std::path::Path, out: &std::path::Path, steps: &str| {
        let mut args = finetune_args(&base, questions, out, steps);
        args.extend(
            [
                "--index",
                shard.to_str().unwrap(),
                "--corpus",
                corpus.to_str().unwrap(),
                "--negatives",
                "3",
                "--checkpoint-every",
                "100",
            ]
            .map(String::from),
        );
        let at = args.iter().position(|a| a == "--limit").unwrap() + 1;
        args[at] = "48".into();
        args
    };
    let run = tmp.path().join("open");
    assert_ok(&realm(&flags(&nq, &run, "40")));
    let curve = assert_falls_reading_three(&run);

    // Started from that reader, the first steps' loss is where it ended, not a fresh head's.
    let again = tmp.path().join("again");
    let mut args = flags(&nq, &again, "5");
    args.extend(["--init-reader".into(), run.to_str().unwrap().into()]);
    assert_ok(&realm(&args));
    let started = losses(&again);
    let mean = |s: &[(usize, f64)]| s.iter().map(|l| l.1).sum::<f64>() / s.len() as f64;
    assert!(
        mean(&started) < 0.8 * mean(&curve[..5]),
        "from the trained reader {started:?}, fresh {:?}",
        &curve[..5]
    );

    // A set's test file, a run without passages to read, and the joint retriever are refused.
    let test_file = tmp.path().join("NQ-open.dev.jsonl");
    std::fs::write(&test_file, &lines).unwrap();
    let refused = |args: Vec<String>, why: &str| {
        let out = realm(&args);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{stderr}");
    };
    refused(
        flags(&test_file, &tmp.path().join("t"), "2"),
        "NaturalQuestions-Open's test split",
    );
    refused(
        finetune_args(&base, &nq, &tmp.path().join("u"), "2"),
        "give --index and --corpus",
    );
    let mut joint = flags(&nq, &tmp.path().join("v"), "2");
    joint.extend(["--retriever-layers".into(), "1".into()]);
    refused(joint, "--retriever-layers trains on SQuAD files");

    // One run on the NQ-open lines and a SQuAD file: every question reads 3 passages (a SQuAD
    // question its paragraph and 2 retrieved, an NQ-open one its top 3), the first 48 of each
    // file train, and the loss falls.
    let mixed = tmp.path().join("mixed");
    let mut args = flags(&nq, &mixed, "40");
    let at = args.iter().position(|a| a == "--negatives").unwrap() + 1;
    args[at] = "2".into();
    args.extend(["--questions".into(), squad.to_str().unwrap().into()]);
    let out = realm(&args);
    assert_ok(&out);
    let asked = lines.lines().count().min(48) + 48;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(" of {asked} questions have a gold span")),
        "{stderr}"
    );
    assert_falls_reading_three(&mixed);
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mixed.join("reader.json")).unwrap()).unwrap();
    let data = card["trained"]["data"].as_str().unwrap();
    assert!(
        data.starts_with(&format!("{} + {} ", nq.display(), squad.display())),
        "{card}"
    );
    // A SQuAD question needs a retrieved passage beside its own paragraph.
    args[at] = "0".into();
    let out_at = args.iter().position(|a| a == "--out").unwrap() + 1;
    args[out_at] = tmp.path().join("mixed-none").to_str().unwrap().into();
    refused(args, "--negatives must be at least 1");
}

#[test]
fn the_retriever_trains_beside_the_reader_resumes_exactly_and_is_used_beside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((base, squad)) = tiny_base(tmp.path()) else {
        return;
    };
    let paragraphs = squad_paragraphs(&squad, 30);
    let (corpus, shard) = write_indexed_corpus(tmp.path(), "corpus.jsonl", &base, &paragraphs);
    let joint = |out: &std::path::Path, steps: &str, extra: &[&str]| {
        let mut args = finetune_args(&base, &squad, out, steps);
        args.extend(joint_flags(&corpus, &shard));
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };

    let whole = tmp.path().join("whole");
    assert_ok(&realm(&joint(&whole, "40", &["--checkpoint-every", "100"])));
    let reference = losses(&whole);
    assert_eq!(reference.len(), 40);
    let mean = |s: &[(usize, f64)]| s.iter().map(|l| l.1).sum::<f64>() / s.len() as f64;
    assert!(
        mean(&reference[30..]) < 0.8 * mean(&reference[..10]),
        "the loss falls: {reference:?}"
    );
    // Each step's loss is the reader's marginal plus the retriever's.
    let metrics = std::fs::read_to_string(whole.join("metrics.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    let part = |name: &str| first["extra"][name].as_f64().unwrap();
    assert!(
        (part("reader_loss") + part("retriever_loss") - first["loss"].as_f64().unwrap()).abs()
            < 1e-4,
        "{first}"
    );
    // The reader expects f(x, z) at the training scale, and the question embedder sits beside it.
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(whole.join("reader.json")).unwrap()).unwrap();
    assert_eq!(card["retriever_weight"], 20.0, "{card}");
    let query = std::fs::read(whole.join("query.safetensors")).unwrap();
    let header = String::from_utf8_lossy(&query[8..]);
    assert!(
        header.contains("bert.layers.1.") && !header.contains("bert.layers.0."),
        "only the top layer trains"
    );

    // Killed as soon as its first checkpoint is in place, then resumed: the same run.
    let killed = tmp.path().join("killed");
    kill_then_resume(&joint(&killed, "40", &["--checkpoint-every", "5"]), &killed);
    assert_same_losses(&losses(&killed), &reference);
    for file in ["reader.safetensors", "query.safetensors"] {
        assert_eq!(
            std::fs::read(killed.join(file)).unwrap(),
            std::fs::read(whole.join(file)).unwrap(),
            "{file}"
        );
    }

    // Without the retriever loss the reader's marginal alone moves the question embedder
    // (REALM's gradient through p(z|x)): against a run whose retriever barely learns.
    let alone = |name: &str, factor: &str| {
        let out = tmp.path().join(name);
        let mut args = joint(&out, "3", &["--retriever-lr-factor", factor]);
        let at = args.iter().position(|a| a == "--top-b").unwrap() + 1;
        args[at] = "0".into();
        assert_ok(&realm(&args));
        let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        assert!(!metrics.contains("retriever_loss"), "{metrics}");
        std::fs::read(out.join("query.safetensors")).unwrap()
    };
    assert_ne!(alone("reader-marginal", "1"), alone("still", "1e-30"));

    // `realm eval` retrieves with the trained question embedder beside the reader.
    let out = realm(&eval_args(&squad, "10", &base, &whole, &corpus, &shard));
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("open, dense (fine-tuned), top-5"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A retriever deeper than the model, or a marginal of one passage, is refused.
    for (flag, value, says) in [
        (
            "--retriever-layers",
            "3",
            "--retriever-layers must be in 0..=2",
        ),
        ("--top-b", "1", "--top-b must be 0"),
    ] {
        let mut args = joint(&tmp.path().join(format!("bad{flag}")), "2", &[]);
        let at = args.iter().position(|a| a == flag).unwrap() + 1;
        args[at] = value.into();
        let out = realm(&args);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{stderr}");
    }
}

/// `realm finetune`'s flags for training the question embedder's top layer beside the reader,
/// over `corpus` and its `shard`, with a small top B.
fn joint_flags(corpus: &std::path::Path, shard: &std::path::Path) -> Vec<String> {
    [
        "--index",
        shard.to_str().unwrap(),
        "--corpus",
        corpus.to_str().unwrap(),
        "--negatives",
        "2",
        "--retriever-layers",
        "1",
        "--top-b",
        "8",
    ]
    .map(String::from)
    .to_vec()
}
