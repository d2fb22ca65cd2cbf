//! Files on disk: model directories read into a sentence model, and outputs written
//! atomically (temporary file, fsync, rename) or shards read through a memory map.

pub mod model_dir;
pub mod partial;
pub mod shard_file;

/// The demo corpus `scripts/setup.sh --demo-data` builds (10,033 Wikipedia leads, then SQuAD
/// dev's 2,067 paragraphs): every `--corpus` flag's default.
pub const DEMO_CORPUS: &str = "data/demo-corpus/passages.jsonl";

/// The folder `path` is in: its parent, or "." for a bare name.
pub fn folder_of(path: &std::path::Path) -> &std::path::Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    }
}

/// The files of a model or run folder that commands read by name: an `--out` onto one of them
/// inside an input folder is refused (other files there, e.g. an index beside its model, are
/// the user's to replace).
const READ_BY_NAME: [&str; 12] = [
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "tokenizer.json",
    "vocab.txt",
    "reader.json",
    "reader.safetensors",
    "query.json",
    "query.safetensors",
    "block_records.npy",
    "metrics.jsonl",
    "args.json",
];

/// Refuses an `--out` that would replace one of `inputs` (the same file, a folder holding it,
/// or a file an input folder is read by: `--force` would destroy what the command reads), that
/// is a folder where a file is written, or whose nearest existing folder is a file or cannot
/// be written in: all found before the work, not at the rename after it. Makes no folder.
pub fn check_out(
    out: &std::path::Path,
    file: bool,
    inputs: &[&std::path::Path],
) -> anyhow::Result<()> {
    use anyhow::Context;
    if file && out.is_dir() {
        anyhow::bail!(
            "--out {} is a folder: name the file to write",
            out.display()
        );
    }
    let mut existing = folder_of(out);
    while !existing.exists() {
        existing = folder_of(existing);
    }
    if !existing.is_dir() {
        anyhow::bail!(
            "--out {}: {} is not a folder",
            out.display(),
            existing.display()
        );
    }
    tempfile::Builder::new()
        .prefix(".realm-probe-")
        .tempfile_in(existing)
        .with_context(|| {
            format!(
                "--out {}: cannot write in {}",
                out.display(),
                existing.display()
            )
        })?;
    // A path that does not exist yet replaces nothing.
    let Ok(replaced) = out.canonicalize() else {
        return Ok(());
    };
    let read_by_name = replaced
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| READ_BY_NAME.contains(&n));
    for input in inputs {
        let Ok(input_path) = input.canonicalize() else {
            continue;
        };
        if input_path.starts_with(&replaced)
            || (input_path.is_dir() && read_by_name && replaced.starts_with(&input_path))
        {
            anyhow::bail!(
                "--out {} would replace {}, which this command reads: choose another --out",
                out.display(),
                input.display()
            );
        }
    }
    Ok(())
}

/// The demo corpus's sha256 (`scripts/setup.sh` checks what it builds against the same).
const DEMO_CORPUS_SHA256: &str = "fd25c7160785994aa3628d7a9c7df0e9ba146f039cb8462f2c79837604ff5bc1";

/// Whether `path` holds the demo corpus, under whatever name or directory (by its bytes).
pub fn is_demo_corpus(path: &std::path::Path) -> bool {
    // The corpus is 7.9 MB: read only a file of its size.
    const BYTES: u64 = 7_900_685;
    std::fs::metadata(path).is_ok_and(|m| m.len() == BYTES)
        && std::fs::read(path)
            .is_ok_and(|bytes| realm_core::qa::models::sha256_hex(&bytes) == DEMO_CORPUS_SHA256)
}

/// Its int8 index (`realm index` with MiniLM; `scripts/demo.sh` builds it): the default `--index`.
pub const DEMO_INDEX: &str = "data/demo-corpus.int8.shard";

/// The reader the repository ships: the default `--reader`.
pub const DEMO_READER: &str = "native/models/demo-reader";

#[cfg(test)]
mod tests {
    use super::{check_out, is_demo_corpus};

    #[test]
    fn an_out_that_would_replace_an_input_or_is_a_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = dir.path().join("passages.jsonl");
        std::fs::write(&corpus, "{}").unwrap();
        let new = dir.path().join("new.shard");
        assert!(check_out(&new, true, &[&corpus]).is_ok());
        let same = check_out(&corpus, true, &[&corpus])
            .unwrap_err()
            .to_string();
        assert!(same.contains("which this command reads"), "{same}");
        // The folder holding an input (convert's --out over its source's parent).
        assert!(check_out(dir.path(), false, &[&corpus]).is_err());
        let folder = check_out(dir.path(), true, &[]).unwrap_err().to_string();
        assert!(folder.contains("is a folder"), "{folder}");
        // A file an input folder is read by (a model directory's weights) is refused; another
        // file in it, new or there already (a rerun with --force), is not.
        let model = dir.path().join("model");
        std::fs::create_dir(&model).unwrap();
        std::fs::write(model.join("model.safetensors"), "weights").unwrap();
        let inside = check_out(&model.join("model.safetensors"), true, &[&model])
            .unwrap_err()
            .to_string();
        assert!(inside.contains("which this command reads"), "{inside}");
        assert!(check_out(&model.join("index.shard"), true, &[&model]).is_ok());
        std::fs::write(model.join("index.shard"), "an earlier index").unwrap();
        assert!(check_out(&model.join("index.shard"), true, &[&model]).is_ok());
        // No folder is made by the check (a mistyped path leaves nothing behind).
        let deep = dir.path().join("new/dir/out.shard");
        assert!(check_out(&deep, true, &[]).is_ok());
        assert!(!dir.path().join("new").exists());
        // Found before the work: a folder that is a file, or that cannot be written in.
        let e = check_out(&corpus.join("x.shard"), true, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a folder"), "{e}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let locked = dir.path().join("locked");
            std::fs::create_dir(&locked).unwrap();
            std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
            // Root writes anywhere: the check only holds for other users.
            let probe = locked.join("probe");
            if std::fs::write(&probe, "").is_err() {
                let e = check_out(&locked.join("x.shard"), true, &[])
                    .unwrap_err()
                    .to_string();
                assert!(e.contains("cannot write in"), "{e}");
            }
        }
    }

    #[test]
    fn the_demo_corpus_is_known_by_its_bytes_not_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passages.jsonl");
        assert!(!is_demo_corpus(&path), "a missing file");
        // Its size, other bytes.
        std::fs::write(&path, vec![b'x'; 7_900_685]).unwrap();
        assert!(!is_demo_corpus(&path));
        let shared = std::env::var_os("REALM_SHARED_DATA").map_or_else(
            || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
            std::path::PathBuf::from,
        );
        let real = shared.join("demo-corpus/passages.jsonl");
        if !real.exists() {
            eprintln!("skipped the real corpus: no {}", real.display());
            return;
        }
        // Under another name and directory.
        std::fs::copy(&real, &path).unwrap();
        assert!(is_demo_corpus(&path));
    }
}
