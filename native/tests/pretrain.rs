//! `realm pretrain` as a user runs it, on the tiny BERT and SQuAD paragraphs indexed with it:
//! the marginal masked-LM loss falls; a run killed with SIGKILL after a checkpoint and resumed
//! gives the uninterrupted run's losses (with the index never refreshed, the run is
//! deterministic, and so is a stale one resumed: the checkpoint keeps the index); with a
//! refresh every 5 steps, new indexes land while training runs and every step logs its
//! staleness.

mod common;

use std::path::Path;

use realm_core::checkpoint::safetensors_file::{read_safetensors, strip_prefix, write_safetensors};

use common::{
    assert_ok, assert_same_losses, kill_then_resume, losses, realm, squad_paragraphs,
    start_until_a_step, stop_with, tiny_base, write_indexed_corpus,
};

fn pretrain_args(
    base: &Path,
    corpus: &Path,
    shard: &Path,
    out: &Path,
    refresh: &str,
) -> Vec<String> {
    [
        "pretrain",
        "--out",
        out.to_str().unwrap(),
        "--model",
        base.to_str().unwrap(),
        "--corpus",
        corpus.to_str().unwrap(),
        "--index",
        shard.to_str().unwrap(),
        "--steps",
        "30",
        "--batch",
        "4",
        "--candidates",
        "4",
        "--max-length",
        "96",
        "--lr",
        "5e-3",
        "--refresh",
        refresh,
        "--held-out",
        "20",
        "--eval-every",
        "10",
        "--mlm-warmup",
        "0",
        "--quiet",
    ]
    .map(String::from)
    .to_vec()
}

fn lines(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_marginal_loss_falls_resumes_exactly_and_the_index_refreshes_while_training_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((base, squad)) = tiny_base(tmp.path()) else {
        return;
    };
    let paragraphs = squad_paragraphs(&squad, 40);
    let (corpus, shard) = write_indexed_corpus(tmp.path(), "corpus.jsonl", &base, &paragraphs);

    let whole = tmp.path().join("whole");
    let mut args = pretrain_args(&base, &corpus, &shard, &whole, "never");
    args.extend(["--checkpoint-every".into(), "100".into()]);
    assert_ok(&realm(&args));
    let reference = losses(&whole);
    assert_eq!(reference.len(), 30);
    let mean = |s: &[(usize, f64)]| s.iter().map(|l| l.1).sum::<f64>() / s.len() as f64;
    assert!(
        mean(&reference[20..]) < mean(&reference[..10]) - 0.5,
        "the loss falls: {reference:?}"
    );
    assert!(whole.join("realm.safetensors").is_file());
    // The held-out sentences' retrieval utility and masked accuracy: before, at 10, 20, 30.
    let evals = |run: &Path| -> Vec<serde_json::Value> {
        lines(run)
            .into_iter()
            .filter_map(|l| l.get("eval").cloned())
            .collect()
    };
    let reference_evals = evals(&whole);
    assert_eq!(reference_evals.len(), 4, "{reference_evals:?}");
    for e in &reference_evals {
        assert!(e["retrieval_utility"].as_f64().unwrap().is_finite(), "{e}");
        let accuracy = e["masked_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&accuracy), "{e}");
        assert!(e["held_out_queries"].as_u64().unwrap() > 0);
    }

    // The null document scored as REALM's released code scores it (an empty block's
    // embedding): the first step's loss already differs from f(x, null) = 0's, and it falls.
    let embedded = tmp.path().join("embedded-null");
    let mut args = pretrain_args(&base, &corpus, &shard, &embedded, "never");
    args.extend(["--null-document".into(), "embedded".into()]);
    assert_ok(&realm(&args));
    let with_null = losses(&embedded);
    assert!(
        (with_null[0].1 - reference[0].1).abs() > 1e-6,
        "{:?} against {:?}",
        with_null[0],
        reference[0]
    );
    assert!(
        mean(&with_null[20..]) < mean(&with_null[..10]) - 0.5,
        "the loss falls: {with_null:?}"
    );

    let killed = tmp.path().join("killed");
    let mut args = pretrain_args(&base, &corpus, &shard, &killed, "never");
    args.extend(["--checkpoint-every".into(), "5".into()]);
    kill_then_resume(&args, &killed);
    assert_same_losses(&losses(&killed), &reference);

    assert_eq!(
        evals(&killed).last(),
        reference_evals.last(),
        "the resumed run evaluates the same"
    );

    // A stale index survives a resume (`--stale-30x` makes every:1 every 30 steps: no refresh
    // in 30): the resumed run searches the index its checkpoint saved, not one rebuilt from
    // the weights it resumed with, and so gives the never-refreshed run's losses.
    let stale = tmp.path().join("stale");
    let mut args = pretrain_args(&base, &corpus, &shard, &stale, "every:1");
    args.extend(["--stale-30x", "--checkpoint-every", "5"].map(String::from));
    kill_then_resume(&args, &stale);
    assert_same_losses(&losses(&stale), &reference);
    for line in lines(&stale).iter().filter(|l| l.get("loss").is_some()) {
        assert_eq!(line["extra"]["index_step"], 0, "{line}");
    }

    let refreshed = tmp.path().join("refreshed");
    let mut args = pretrain_args(&base, &corpus, &shard, &refreshed, "every:5");
    args.extend(["--checkpoint-every".into(), "100".into()]);
    assert_ok(&realm(&args));
    let steps: Vec<serde_json::Value> = lines(&refreshed)
        .into_iter()
        .filter(|l| l.get("loss").is_some())
        .collect();
    assert_eq!(steps.len(), 30);
    for line in &steps {
        let step = line["step"].as_u64().unwrap();
        let built = line["extra"]["index_step"].as_u64().unwrap();
        assert_eq!(
            line["extra"]["staleness"].as_u64().unwrap(),
            step - built,
            "{line}"
        );
    }
    let newest = steps
        .iter()
        .map(|l| l["extra"]["index_step"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(newest > 0, "no refreshed index landed in 30 steps");

    // A corpus with no more passages than candidates is a clear error before training starts.
    let (tiny, tiny_shard) = write_indexed_corpus(tmp.path(), "two.jsonl", &base, &paragraphs[..2]);
    let out = realm(&pretrain_args(
        &base,
        &tiny,
        &tiny_shard,
        &tmp.path().join("two"),
        "never",
    ));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--candidates 4"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `args` with the value of `flag` replaced.
fn with(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    match args.iter().position(|a| a == flag) {
        Some(i) => args[i + 1] = value.to_string(),
        None => args.extend([flag.to_string(), value.to_string()]),
    }
    args
}

#[test]
fn micro_batches_are_dumped_phases_timed_and_the_trained_networks_leave_as_model_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((base, squad)) = tiny_base(tmp.path()) else {
        return;
    };
    let paragraphs = squad_paragraphs(&squad, 40);
    let (corpus, shard) = write_indexed_corpus(tmp.path(), "corpus.jsonl", &base, &paragraphs);

    let run = tmp.path().join("run");
    let dump = tmp.path().join("batches.jsonl");
    let mut args = with(
        pretrain_args(&base, &corpus, &shard, &run, "never"),
        "--steps",
        "4",
    );
    args.extend(["--dump-batches".into(), dump.to_str().unwrap().into()]);
    assert_ok(&realm(&args));
    // One dumped micro-batch per step, shaped as the step read it: 4 candidates a query.
    let batches: Vec<serde_json::Value> = std::fs::read_to_string(&dump)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(batches.len(), 4);
    for b in &batches {
        let queries = b["queries"]["input_ids"].as_array().unwrap().len();
        let rows = b["rows"]["input_ids"].as_array().unwrap().len();
        assert_eq!(b["candidates_per_query"], 4);
        assert_eq!(rows, 4 * queries, "{b}");
        assert_eq!(
            b["candidates"]["input_ids"].as_array().unwrap().len(),
            3 * queries
        );
        let targets = b["targets"].as_u64().unwrap() as usize;
        assert_eq!(b["positions"].as_array().unwrap().len(), rows * targets);
        assert_eq!(b["labels"].as_array().unwrap().len(), queries * targets);
    }
    // Every step's forward is split into its three parts.
    for line in lines(&run).iter().filter(|l| l.get("loss").is_some()) {
        let parts = &line["extra"]["seconds"];
        let sum: f64 = ["retrieval", "embed_candidates", "encoder"]
            .iter()
            .map(|p| parts[*p].as_f64().unwrap())
            .sum();
        assert!(
            sum > 0.0 && sum <= line["seconds"]["forward"].as_f64().unwrap() + 1e-9,
            "{line}"
        );
    }
    // The retriever and the encoder's BERT load strictly wherever a --model goes.
    for part in ["embedder", "encoder"] {
        let out = tmp.path().join(format!("{part}.shard"));
        assert_ok(&realm(&[
            "index".into(),
            "--model".into(),
            run.join(part).to_str().unwrap().into(),
            "--corpus".into(),
            corpus.to_str().unwrap().into(),
            "--out".into(),
            out.to_str().unwrap().into(),
        ]));
        assert!(out.is_file());
    }

    // Retrieval off (the ablation's baseline): the null document alone, no refresh, and the
    // embedder never changes.
    let off = tmp.path().join("off");
    let args = with(
        with(
            pretrain_args(&base, &corpus, &shard, &off, "every:2"),
            "--steps",
            "4",
        ),
        "--candidates",
        "1",
    );
    assert_ok(&realm(&args));
    let steps: Vec<serde_json::Value> = lines(&off)
        .into_iter()
        .filter(|l| l.get("loss").is_some())
        .collect();
    assert_eq!(steps.len(), 4);
    assert!(
        steps.iter().all(|l| l["extra"]["index_step"] == 0),
        "no refresh without retrieval"
    );
    // The same corpus indexed by the base, the retrieval-off run's and REALM's embedders
    // (`index` as `write_indexed_corpus` ran it): only REALM's embedding differs.
    let off_shard = tmp.path().join("off.shard");
    assert_ok(&realm(&[
        "index".into(),
        "--model".into(),
        off.join("embedder").to_str().unwrap().into(),
        "--corpus".into(),
        corpus.to_str().unwrap().into(),
        "--out".into(),
        off_shard.to_str().unwrap().into(),
    ]));
    let bytes = |p: &Path| std::fs::read(p).unwrap();
    assert_eq!(
        bytes(&off_shard),
        bytes(&shard),
        "retrieval off, the embedder never trains"
    );
    assert_ne!(
        bytes(&tmp.path().join("embedder.shard")),
        bytes(&shard),
        "with retrieval, it does"
    );
}

#[test]
fn a_corpus_window_keeps_evaluation_articles_out_and_a_converted_realm_encoder_is_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((base, squad)) = tiny_base(tmp.path()) else {
        return;
    };
    let tiny = common::shared_data("realm-parity-tiny").unwrap();
    // 5 passages to skip, 30 of a training article, 10 of an article SQuAD-open holds out.
    let paragraphs = squad_paragraphs(&squad, 45);
    let row = |title: &str, text: &str| {
        format!("{}\n", serde_json::json!({"title": title, "text": text}))
    };
    let corpus = tmp.path().join("corpus.jsonl");
    let lines: String = paragraphs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            row(
                if i >= 35 {
                    "Nikola Tesla"
                } else {
                    "Super Bowl 50"
                },
                t,
            )
        })
        .collect();
    std::fs::write(&corpus, lines).unwrap();
    let shard = tmp.path().join("window.shard");
    let index = |skip: &str, out: &Path| {
        realm(&[
            "index".into(),
            "--model".into(),
            base.to_str().unwrap().into(),
            "--corpus".into(),
            corpus.to_str().unwrap().into(),
            "--skip".into(),
            skip.into(),
            "--element".into(),
            "f32".into(),
            "--out".into(),
            out.to_str().unwrap().into(),
        ])
    };
    assert_ok(&index("5", &shard));

    // A REALM reader checkpoint as Hugging Face saves it, through `realm convert`.
    let all =
        read_safetensors(&std::fs::read(tiny.join("realm_tiny.safetensors")).unwrap()).unwrap();
    // A Hugging Face checkpoint directory: the tiny config, the base's vocabulary, `weights`.
    let hf_dir = |name: &str, weights: &realm_core::checkpoint::weights::WeightMap| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("model.safetensors"),
            write_safetensors(weights).unwrap(),
        )
        .unwrap();
        std::fs::copy(tiny.join("config.json"), dir.join("config.json")).unwrap();
        std::fs::copy(base.join("vocab.txt"), dir.join("vocab.txt")).unwrap();
        dir
    };
    let reader = strip_prefix(&all, "reader.");
    let hf = hf_dir("hf-reader", &reader);
    let converted = tmp.path().join("converted");
    assert_ok(&realm(&[
        "convert".into(),
        hf.to_str().unwrap().into(),
        "--out".into(),
        converted.to_str().unwrap().into(),
    ]));

    let run = tmp.path().join("run");
    let dump = tmp.path().join("batches.jsonl");
    let mut args = with(
        with(
            with(
                pretrain_args(&base, &corpus, &shard, &run, "never"),
                "--steps",
                "3",
            ),
            "--lr",
            "1e-12",
        ),
        "--held-out",
        "5",
    );
    args.extend(
        [
            "--skip",
            "5",
            "--encoder",
            converted.to_str().unwrap(),
            "--dump-batches",
            dump.to_str().unwrap(),
        ]
        .map(String::from),
    );
    let out = realm(&args);
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("10 passages of the SQuAD-open articles held out for evaluation"),
        "{stderr}"
    );
    // The held-out article is never a query nor a candidate: its title, which every candidate
    // the embedder reads begins with, is in no dumped input.
    let tokenizer = realm_core::text::wordpiece::WordPieceTokenizer::from_vocab(
        &std::fs::read_to_string(base.join("vocab.txt")).unwrap(),
    )
    .unwrap();
    let tesla = tokenizer.encode("tesla", None).unwrap().ids[1];
    let batches = std::fs::read_to_string(&dump).unwrap();
    assert_eq!(batches.lines().count(), 3);
    for b in batches.lines() {
        let b: serde_json::Value = serde_json::from_str(b).unwrap();
        for part in ["queries", "candidates", "rows"] {
            let ids = b[part]["input_ids"].as_array().unwrap();
            assert!(
                ids.iter()
                    .flat_map(|r| r.as_array().unwrap())
                    .all(|id| id.as_u64() != Some(u64::from(tesla))),
                "an evaluation-only passage in {part}"
            );
        }
    }
    // The encoder started from the converted checkpoint's masked-LM head (at lr 1e-12 three
    // steps move no weight by 1e-9), and its pooler goes with the encoder directory.
    let trained = read_safetensors(&std::fs::read(run.join("realm.safetensors")).unwrap()).unwrap();
    let encoder_dir =
        read_safetensors(&std::fs::read(run.join("encoder/model.safetensors")).unwrap()).unwrap();
    for (ours, theirs, from) in [
        ("encoder.mlm.bias", "cls.predictions.bias", &trained),
        (
            "encoder.mlm.transform.bias",
            "cls.predictions.transform.dense.bias",
            &trained,
        ),
        ("pooler.dense.bias", "realm.pooler.dense.bias", &encoder_dir),
    ] {
        let (a, b) = (&from[ours].data, &reader[theirs].data);
        assert_eq!(a.len(), b.len(), "{ours}");
        let gap = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(gap < 1e-6, "{ours} is {gap} from {theirs}");
    }

    // --init starts both networks from a run's realm.safetensors, every parameter of it; a
    // file lacking one is refused.
    let again = tmp.path().join("again");
    let mut init = with(
        with(args.clone(), "--out", again.to_str().unwrap()),
        "--steps",
        "1",
    );
    let at = init.iter().position(|a| a == "--encoder").unwrap();
    init.drain(at..at + 2);
    init.extend([
        "--init".into(),
        run.join("realm.safetensors").to_str().unwrap().into(),
    ]);
    assert_ok(&realm(&init));
    let resumed =
        read_safetensors(&std::fs::read(again.join("realm.safetensors")).unwrap()).unwrap();
    assert_eq!(resumed.len(), trained.len());
    for (name, t) in &trained {
        let gap = t
            .data
            .iter()
            .zip(&resumed[name].data)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(gap < 1e-6, "{name} moved {gap}");
    }
    let mut partial = trained.clone();
    partial.remove("encoder.mlm.bias");
    let partial_file = tmp.path().join("partial.safetensors");
    std::fs::write(&partial_file, write_safetensors(&partial).unwrap()).unwrap();
    let refused = |args: Vec<String>, flag: &str, value: &Path, out: &str, says: &str| {
        let out = realm(&with(
            with(args, flag, value.to_str().unwrap()),
            "--out",
            tmp.path().join(out).to_str().unwrap(),
        ));
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{stderr}");
    };
    refused(init, "--init", &partial_file, "partial", "encoder.mlm.bias");

    // An index not built with the same --skip is refused, naming the command that builds it;
    // an embedder checkpoint is no encoder.
    let whole = tmp.path().join("whole.shard");
    assert_ok(&index("0", &whole));
    refused(args.clone(), "--index", &whole, "bad-index", "--skip 5");
    // So is one of another corpus as long (a passage before the window edited): only the
    // fingerprint the shard records tells.
    let edited = tmp.path().join("edited.jsonl");
    let text = std::fs::read_to_string(&corpus).unwrap();
    std::fs::write(&edited, text.replacen("Super Bowl 50", "Super Bowl 51", 1)).unwrap();
    refused(
        with(args.clone(), "--corpus", edited.to_str().unwrap()),
        "--index",
        &shard,
        "other-corpus",
        "built from another corpus",
    );
    let embedder_dir = hf_dir("hf-embedder", &strip_prefix(&all, "embedder."));
    refused(
        args,
        "--encoder",
        &embedder_dir,
        "bad-encoder",
        "not a REALM encoder",
    );
}

#[test]
fn ctrl_c_stops_after_a_step_and_leaves_the_weights_so_far() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((base, squad)) = tiny_base(tmp.path()) else {
        return;
    };
    let paragraphs = squad_paragraphs(&squad, 40);
    let (corpus, shard) = write_indexed_corpus(tmp.path(), "corpus.jsonl", &base, &paragraphs);
    let run = tmp.path().join("run");
    let args = with(
        with(
            pretrain_args(&base, &corpus, &shard, &run, "never"),
            "--steps",
            "100000",
        ),
        "--held-out",
        "0",
    );
    let child = start_until_a_step(&args, &run, false);
    let stderr = stop_with(child, "INT");
    assert!(stderr.contains("stopped; the weights so far"), "{stderr}");
    let steps = losses(&run).len();
    assert!((1..100000).contains(&steps), "{steps} steps");
    for file in [
        "realm.safetensors",
        "embedder/model.safetensors",
        "encoder/model.safetensors",
        "latest",
    ] {
        assert!(run.join(file).is_file(), "{file} is missing: {stderr}");
    }
}

#[test]
fn the_built_in_warm_up_is_the_two_stage_run_and_resumes_from_a_kill_inside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((base, squad)) = tiny_base(tmp.path()) else {
        return;
    };
    let paragraphs = squad_paragraphs(&squad, 40);
    let (corpus, shard) = write_indexed_corpus(tmp.path(), "corpus.jsonl", &base, &paragraphs);
    let args = |out: &Path| {
        with(
            with(
                pretrain_args(&base, &corpus, &shard, out, "never"),
                "--steps",
                "4",
            ),
            "--held-out",
            "0",
        )
    };

    // One command, given no index (it embeds the passages itself), killed (SIGKILL) after
    // the warm-up's first checkpoint; the warm-up resumed on its own, then the whole run.
    let one = tmp.path().join("one");
    let mut one_args = with(
        with(args(&one), "--mlm-warmup", "4"),
        "--checkpoint-every",
        "1",
    );
    let at = one_args.iter().position(|a| a == "--index").unwrap();
    one_args.drain(at..at + 2);
    kill_then_resume(&one_args, &one.join("warm-up"));
    let f32_index = tmp.path().join("corpus.f32.shard");
    assert_ok(&realm(
        &[
            "index",
            "--model",
            base.to_str().unwrap(),
            "--corpus",
            corpus.to_str().unwrap(),
            "--element",
            "f32",
            "--out",
            f32_index.to_str().unwrap(),
        ]
        .map(String::from),
    ));
    assert_eq!(
        std::fs::read(one.join("start.f32.shard")).unwrap(),
        std::fs::read(&f32_index).unwrap(),
        "the run's own starting index is `realm index --element f32`'s"
    );
    assert!(
        !one.join("latest").exists(),
        "REALM's steps began before the warm-up ended"
    );
    assert_ok(&realm(
        &["pretrain", "--resume", one.to_str().unwrap(), "--quiet"].map(String::from),
    ));

    // By hand, over that index: a retrieval-off run, then REALM from its weights with the
    // next seed.
    let by_hand = |out: &Path| with(args(out), "--index", f32_index.to_str().unwrap());
    let mlm = tmp.path().join("mlm");
    assert_ok(&realm(&with(by_hand(&mlm), "--candidates", "1")));
    let realm_run = tmp.path().join("realm");
    let init = mlm.join("realm.safetensors");
    assert_ok(&realm(&with(
        with(by_hand(&realm_run), "--init", init.to_str().unwrap()),
        "--seed",
        "2",
    )));

    assert_same_losses(&losses(&one.join("warm-up")), &losses(&mlm));
    assert_same_losses(&losses(&one), &losses(&realm_run));
    assert_eq!(
        std::fs::read(one.join("realm.safetensors")).unwrap(),
        std::fs::read(realm_run.join("realm.safetensors")).unwrap(),
        "the one-command run ends with the two-stage run's weights"
    );

    // A warm-up with retrieval off is a contradiction, refused before training.
    let out = realm(&with(
        with(args(&tmp.path().join("off")), "--mlm-warmup", "4"),
        "--candidates",
        "1",
    ));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--mlm-warmup needs retrieval on"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
