//! `realm convert` on a REALM-format checkpoint directory built from the tiny fixture
//! (pytorch_model.bin + block_records.npy, as the published checkpoints ship), and the
//! PyTorch reader against a file torch itself wrote.

use std::path::Path;

use realm_core::checkpoint::family::{Family, detect_family};
use realm_core::checkpoint::safetensors_file::read_safetensors;
use realm_core::model::config::read_config;
use realm_core::model::strict::check_strict_load;
use realm_native::commands::convert::{convert, read_pytorch};
use realm_native::files::shard_file::read_shard;
use realm_tests::legacy_formats::{numpy_object_array, torch_state_dict};
use realm_tests::{read_tensors, shared_data};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

#[test]
fn reads_a_state_dict_that_torch_wrote() {
    let w = read_pytorch(&fixture("torch_state_dict.bin")).unwrap();
    let get = |name: &str| (w[name].shape.clone(), w[name].data.clone());
    assert_eq!(
        get("dense.weight"),
        (vec![2, 3], vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25])
    );
    assert_eq!(get("offset"), (vec![4], vec![5.0, 6.0, 7.0, 8.0]));
    assert_eq!(
        get("transposed"),
        (vec![3, 2], vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0])
    );
    assert_eq!(get("ids"), (vec![3], vec![3.0, -1.0, 7.0]));
    assert_eq!(get("half"), (vec![2], vec![0.5, -2.0]));
    assert_eq!(get("shared_a"), (vec![4], vec![0.0, 1.0, 2.0, 3.0]));
}

/// `weights` with `prefix` taken off the names that have it, the others dropped.
fn sub_checkpoint(
    weights: &realm_core::checkpoint::weights::WeightMap,
    prefix: &str,
) -> realm_core::checkpoint::weights::WeightMap {
    weights
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
        .collect()
}

#[test]
fn every_family_is_detected_and_loads_strictly() {
    let Some(fixture) = shared_data("realm-parity-tiny") else {
        return;
    };
    let weights = read_tensors(&fixture.join("realm_tiny.safetensors"));
    let config_json = std::fs::read(fixture.join("config.json")).unwrap();
    let (config, reader) = (
        read_config(&config_json).unwrap(),
        serde_json::from_slice(&config_json).unwrap(),
    );
    let device = realm_core::device::cpu_device();
    let load = |w: &realm_core::checkpoint::weights::WeightMap| {
        let family = detect_family(w).unwrap();
        check_strict_load(family, &config, &reader, w, &device).map(|r| (family, r.tensors))
    };

    // RealmEmbedder, RealmReader and RealmKnowledgeAugEncoder as saved on their own.
    let embedder = sub_checkpoint(&weights, "embedder.");
    assert_eq!(load(&embedder).unwrap(), (Family::Embedder, embedder.len()));
    let reader_ckpt = sub_checkpoint(&weights, "reader.");
    assert_eq!(
        load(&reader_ckpt).unwrap(),
        (Family::Reader, reader_ckpt.len())
    );
    let encoder: realm_core::checkpoint::weights::WeightMap = reader_ckpt
        .iter()
        .filter(|(k, _)| k.starts_with("realm.") || k.starts_with("cls."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(load(&encoder).unwrap(), (Family::Encoder, encoder.len()));

    // RealmScorer: its embedder under `embedder.`, and a separate query embedder if any.
    let scorer: realm_core::checkpoint::weights::WeightMap = weights
        .iter()
        .filter(|(k, _)| k.starts_with("embedder."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(load(&scorer).unwrap(), (Family::Scorer, scorer.len()));
    let mut two_sided = scorer.clone();
    for (k, v) in &scorer {
        two_sided.insert(format!("query_{k}"), v.clone());
    }
    assert_eq!(
        load(&two_sided).unwrap(),
        (Family::Scorer, 2 * scorer.len())
    );
    // A stray tensor, or a query embedder missing one, is refused by name.
    let mut stray = scorer.clone();
    stray.insert(
        "extra.weight".into(),
        scorer.values().next().unwrap().clone(),
    );
    let err = load(&stray).unwrap_err().to_string();
    assert!(err.contains("extra.weight"), "{err}");
    two_sided.remove("query_embedder.cls.dense.weight");
    let err = load(&two_sided).unwrap_err().to_string();
    assert!(err.contains("cls.dense.weight"), "{err}");
}

/// A REALM checkpoint directory as Hugging Face publishes one, from the tiny fixture.
fn realm_dir(
    fixture: &Path,
    dir: &Path,
) -> (realm_core::checkpoint::weights::WeightMap, Vec<String>) {
    let weights = read_tensors(&fixture.join("realm_tiny.safetensors"));
    let blocks: Vec<String> =
        serde_json::from_slice(&std::fs::read(fixture.join("openqa_blocks.json")).unwrap())
            .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(fixture.join("config.json"), dir.join("config.json")).unwrap();
    std::fs::write(dir.join("pytorch_model.bin"), torch_state_dict(&weights)).unwrap();
    let refs: Vec<&str> = blocks.iter().map(String::as_str).collect();
    std::fs::write(dir.join("block_records.npy"), numpy_object_array(&refs)).unwrap();
    (weights, blocks)
}

#[test]
fn an_openqa_checkpoint_converts_and_loads_with_nothing_missing_or_unused() {
    let Some(fixture) = shared_data("realm-parity-tiny") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (source, out) = (tmp.path().join("realm-orqa"), tmp.path().join("converted"));
    let (weights, blocks) = realm_dir(&fixture, &source);

    let manifest = convert(&source, &out, "f32", false).unwrap();
    assert_eq!(manifest.load.family, Family::OpenQa);
    assert_eq!(manifest.load.tensors, weights.len());
    assert_eq!(
        (manifest.load.blocks, manifest.passages),
        (Some(16), Some(16))
    );

    // The converted weights are the original ones, bit for bit, minus block_emb...
    let converted =
        read_safetensors(&std::fs::read(out.join("model.safetensors")).unwrap()).unwrap();
    assert_eq!(converted.len(), weights.len() - 1);
    for (name, t) in &converted {
        assert_eq!(
            (&t.shape, &t.data),
            (&weights[name].shape, &weights[name].data),
            "{name}"
        );
    }
    // ...which lives in the shard with its row ids, and the passages beside it.
    let shard = read_shard(&out.join("index.shard")).unwrap();
    assert_eq!(shard.ids, (0..16).collect::<Vec<u32>>());
    assert_eq!(
        shard.vectors,
        realm_core::index::shard::Vectors::F32(weights["block_emb"].data.clone())
    );
    let passages: Vec<String> = std::fs::read_to_string(out.join("passages.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(passages, blocks);
    // The shard records the fingerprint of those passages as every command reads them.
    let read_back =
        realm_core::text::corpus::parse_corpus(&std::fs::read(out.join("passages.jsonl")).unwrap())
            .unwrap();
    assert_eq!(
        shard.corpus,
        Some(realm_core::text::corpus::fingerprint(&read_back))
    );

    // The converted folder loads strictly again, block_emb restored from the shard.
    let mut reloaded = converted.clone();
    reloaded.insert("block_emb".into(), weights["block_emb"].clone());
    let config_json = std::fs::read(out.join("config.json")).unwrap();
    let report = check_strict_load(
        Family::OpenQa,
        &read_config(&config_json).unwrap(),
        &serde_json::from_slice(&config_json).unwrap(),
        &reloaded,
        &realm_core::device::cpu_device(),
    )
    .unwrap();
    assert_eq!(report.blocks, Some(16));

    // An existing output is not replaced without --force; with it, it is.
    let again = convert(&source, &out, "int8", false).unwrap_err();
    assert!(format!("{again:#}").contains("--force"), "{again:#}");
    let manifest = convert(&source, &out, "int8", true).unwrap();
    assert_eq!(manifest.element.as_deref(), Some("int8"));
}

#[test]
fn broken_checkpoints_are_refused_and_leave_no_output() {
    let Some(fixture) = shared_data("realm-parity-tiny") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("src");
    let (mut weights, _) = realm_dir(&fixture, &source);
    let out = tmp.path().join("out");

    // A tensor missing: the strict load names it.
    weights.remove("reader.qa_outputs.dense_intermediate.weight");
    std::fs::write(source.join("pytorch_model.bin"), torch_state_dict(&weights)).unwrap();
    let err = format!("{:#}", convert(&source, &out, "f32", false).unwrap_err());
    assert!(err.contains("dense_intermediate"), "{err}");
    assert!(!out.exists());

    // A truncated pytorch_model.bin.
    let bytes = torch_state_dict(&read_tensors(&fixture.join("realm_tiny.safetensors")));
    std::fs::write(source.join("pytorch_model.bin"), &bytes[..bytes.len() / 2]).unwrap();
    let err = format!("{:#}", convert(&source, &out, "f32", false).unwrap_err());
    assert!(err.contains("pytorch_model.bin"), "{err}");

    // Records that do not match block_emb's rows.
    std::fs::write(source.join("pytorch_model.bin"), &bytes).unwrap();
    std::fs::write(
        source.join("block_records.npy"),
        numpy_object_array(&["only one"]),
    )
    .unwrap();
    let err = format!("{:#}", convert(&source, &out, "f32", false).unwrap_err());
    assert!(err.contains("1 blocks but block_emb has 16 rows"), "{err}");
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no temporary folders left: {leftovers:?}"
    );
}
