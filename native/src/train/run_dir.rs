//! A training run's directory: `args.json` (the flags it was started with, so `--resume DIR`
//! needs nothing else), `metrics.jsonl`, and checkpoints `checkpoint-<step>/` holding the
//! model and optimiser records, `state.json` (step, seed) and whatever the run adds
//! (pre-training: the index it searched). A checkpoint is written into a
//! temporary directory and renamed into place, then `latest` (written atomically) names it:
//! a crash at any moment leaves the previous checkpoint whole.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use serde::{Deserialize, Serialize};

use crate::files::shard_file::write_atomic;

/// What a run adds to each checkpoint's folder beside the records (pre-training: its index).
pub type CheckpointExtra<'a> = &'a mut dyn FnMut(&Path) -> anyhow::Result<()>;

/// What a checkpoint records beside the records: enough to continue the same run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// Steps completed.
    pub step: usize,
    pub seed: u64,
    /// sha256 of each record file (`model.bpk`, `optim.bpk`), filled in by [`save_checkpoint`]
    /// and checked on loading: burn's records carry no checksum of their own. Empty in
    /// checkpoints written before 2026-12-07, which are loaded unchecked.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub sha256: std::collections::BTreeMap<String, String>,
}

/// The record files a checkpoint's `state.json` keeps the sums of.
const RECORDS: [&str; 2] = ["model.bpk", "optim.bpk"];

/// Lower-case hex sha256 of the file at `path`, streamed (an optimiser's record can be over a
/// gigabyte).
fn file_sha256(path: &Path) -> anyhow::Result<String> {
    use sha2::Digest;
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Writes a checkpoint of `model` and `optim` after `state.step` steps, with whatever
/// `extra(folder)` adds to its folder before it is renamed into place, then points `latest`
/// at it and removes older checkpoints.
pub fn save_checkpoint<M: Module>(
    dir: &Path,
    model: &M,
    optim: &ModuleOptimizer,
    state: &TrainState,
    extra: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let name = format!("checkpoint-{:07}", state.step);
    let tmp = tempfile::Builder::new()
        .prefix(".checkpoint-")
        .tempdir_in(dir)
        .with_context(|| format!("creating a temporary checkpoint in {}", dir.display()))?;
    model
        .clone()
        .into_record()
        .save(tmp.path().join("model.bpk"))
        .map_err(|e| anyhow::anyhow!("saving the model record: {e}"))?;
    optim
        .save(tmp.path().join("optim.bpk"))
        .map_err(|e| anyhow::anyhow!("saving the optimiser record: {e}"))?;
    let mut state = state.clone();
    for record in RECORDS {
        let path = tmp.path().join(record);
        // On disk before `latest` names this checkpoint and the previous one is removed
        // (burn's save does not sync): a power cut cannot leave only a torn one.
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", path.display()))?;
        state.sha256.insert(record.into(), file_sha256(&path)?);
    }
    write_atomic(
        &tmp.path().join("state.json"),
        &serde_json::to_vec_pretty(&state)?,
    )?;
    extra(tmp.path())?;
    let target = dir.join(&name);
    // There already only when a crash came between its rename and the write of `latest`,
    // which then still names the checkpoint the run resumed from (kept until `latest` moves
    // on, below): removing this one first loses nothing a resume needs.
    if target.exists() {
        std::fs::remove_dir_all(&target)?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, &target)
        .with_context(|| format!("renaming the checkpoint into {}", target.display()))?;
    write_atomic(&dir.join("latest"), name.as_bytes())?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if checkpoint_step(file).is_some() && file != name {
            std::fs::remove_dir_all(&path).ok();
        }
    }
    Ok(target)
}

/// The step a checkpoint folder's name (`checkpoint-` and at least seven digits, as
/// `{:07}` writes it) says; None for any other name, which the run never wrote and never
/// removes.
fn checkpoint_step(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("checkpoint-")?;
    (digits.len() >= 7 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The checkpoint `latest` names, if any.
pub fn latest_checkpoint(dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let latest = dir.join("latest");
    if !latest.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&latest)
        .with_context(|| format!("reading {}", latest.display()))?;
    let path = dir.join(name.trim());
    if !path.join("state.json").is_file() {
        bail!(
            "{} names {}, which holds no checkpoint",
            latest.display(),
            path.display()
        );
    }
    Ok(Some(path))
}

/// Restores `model` from a checkpoint, then builds its optimiser with `make_optim` and
/// restores that: the model first, from its own record, so that its parameter ids (which the
/// optimiser's state and parameter groups are keyed by) are the saved ones.
pub fn load_checkpoint<M: Module>(
    path: &Path,
    model: M,
    make_optim: impl FnOnce(&M) -> ModuleOptimizer,
) -> anyhow::Result<(M, ModuleOptimizer, TrainState)> {
    let state_path = path.join("state.json");
    let bytes =
        std::fs::read(&state_path).with_context(|| format!("reading {}", state_path.display()))?;
    let state: TrainState = serde_json::from_slice(&bytes)
        .with_context(|| format!("reading {}", state_path.display()))?;
    let folder = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if checkpoint_step(folder).is_some_and(|step| step != state.step) {
        bail!(
            "{} says step {}, but its folder is {folder}: the checkpoint was altered",
            state_path.display(),
            state.step
        );
    }
    for (record, expected) in &state.sha256 {
        let found = file_sha256(&path.join(record))?;
        if &found != expected {
            bail!(
                "{} has sha256 {found}, but {} says {expected}: the checkpoint is damaged; \
                 start the run again, or resume from a copy",
                path.join(record).display(),
                state_path.display()
            );
        }
    }
    let record = ModuleRecord::load(path.join("model.bpk"))
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.join("model.bpk").display()))?;
    let model = model
        .try_load_record(record)
        .map_err(|e| anyhow::anyhow!("the checkpoint does not fit this model: {e}"))?;
    let optim = make_optim(&model)
        .load(path.join("optim.bpk"))
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.join("optim.bpk").display()))?;
    Ok((model, optim, state))
}

/// A run to train: its directory, the flags it runs with, and whether it resumes.
pub struct Run<A> {
    pub dir: PathBuf,
    pub args: A,
    pub resuming: bool,
    /// The run directory's lock, held while this lives (None for a run that writes no
    /// directory): a second process on the same directory is refused.
    pub lock: Option<RunLock>,
}

/// An exclusive lock on a run directory's `.lock` file: held while the value lives, let go
/// by the system when the process ends in any way (no stale lock after a crash).
pub struct RunLock(#[allow(dead_code)] std::fs::File);

/// Locks `dir` for this process, or says which directory another `realm` is using.
pub fn lock_run(dir: &Path) -> anyhow::Result<RunLock> {
    let path = dir.join(LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(RunLock(file)),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another realm process is training in {} (it holds {}): wait for it to end, or stop it first",
            dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// The lock file's name in a run directory.
const LOCK: &str = ".lock";

/// Removes what a process killed while saving left behind in `dir` (a temporary checkpoint
/// folder, a temporary file of an atomic write): only called with the run's lock held, so
/// nothing else is writing them.
fn remove_leftovers(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(".checkpoint-") || name.starts_with(".realm-") {
            let removed = match path.is_dir() {
                true => std::fs::remove_dir_all(&path),
                false => std::fs::remove_file(&path),
            };
            removed.with_context(|| format!("removing the leftover {}", path.display()))?;
        }
    }
    Ok(())
}

/// The files a trainer's flags name as its input (data, base models, starting weights):
/// fingerprinted into the run's `inputs.json` when it starts and checked when it resumes, so
/// that a resumed run trains on what it started on.
pub trait RunInputs {
    /// The input files and model folders the flags name, as given (None: a flag not given).
    fn inputs(&self) -> Vec<Option<&Path>>;
}

/// A model folder's files a trainer reads (those of them that are there).
const MODEL_FILES: [&str; 6] = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "vocab.txt",
    "reader.json",
    "reader.safetensors",
];

/// The file a run records the fingerprints of its inputs in.
const INPUTS: &str = "inputs.json";

/// What a run records of one input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Fingerprint {
    bytes: u64,
    sha256: String,
}

/// The fingerprint of every file `paths` name (a folder: its [`MODEL_FILES`]), keyed by the
/// file's path as given; paths that are not there are left out (the trainer names them).
fn fingerprint_inputs(
    paths: &[Option<&Path>],
) -> anyhow::Result<std::collections::BTreeMap<String, Fingerprint>> {
    let mut files = Vec::new();
    for path in paths.iter().flatten() {
        if path.is_dir() {
            files.extend(
                MODEL_FILES
                    .iter()
                    .map(|f| path.join(f))
                    .filter(|f| f.is_file()),
            );
        } else if path.is_file() {
            files.push(path.to_path_buf());
        }
    }
    files
        .into_iter()
        .map(|file| {
            let bytes = std::fs::metadata(&file)
                .with_context(|| format!("reading {}", file.display()))?
                .len();
            let sha256 = file_sha256(&file)?;
            Ok((file.display().to_string(), Fingerprint { bytes, sha256 }))
        })
        .collect()
}

/// Refuses to resume the run in `dir` when a file it read at its start has changed, is gone,
/// or has appeared in a model folder since (runs from before `inputs.json` are not checked).
fn check_inputs(dir: &Path, paths: &[Option<&Path>]) -> anyhow::Result<()> {
    let path = dir.join(INPUTS);
    if !path.exists() {
        return Ok(());
    }
    let saved: std::collections::BTreeMap<String, Fingerprint> = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("reading {}", path.display()))?;
    let now = fingerprint_inputs(paths)?;
    let advice = format!(
        "put back what the run started on, or start a new run with --out (deleting {} resumes without this check)",
        path.display()
    );
    for (file, was) in &saved {
        match now.get(file) {
            None => bail!(
                "{file}, which the run in {} read when it started, is not there: resume from the \
                 folder the run was started in (its paths are as they were given); or {advice}",
                dir.display()
            ),
            Some(is) if is != was => bail!(
                "{file} has changed since the run in {} started ({} bytes, sha256 {}; now {} \
                 bytes, sha256 {}): resuming would train on other data; {advice}",
                dir.display(),
                was.bytes,
                was.sha256.get(..12).unwrap_or(&was.sha256),
                is.bytes,
                is.sha256.get(..12).unwrap_or(&is.sha256)
            ),
            Some(_) => {}
        }
    }
    if let Some(file) = now.keys().find(|f| !saved.contains_key(*f)) {
        bail!(
            "{file} was not there when the run in {} started, and the run would read it now; {advice}",
            dir.display()
        );
    }
    Ok(())
}

/// Opens the run a trainer was asked for: with `resume`, the directory's `args.json` (then
/// `keep` carries over what the command line may change on a resume, such as `--quiet`) after
/// checking its inputs against `inputs.json` (a run refused before its first step records them
/// afresh instead); else a new `out` directory with `args` written
/// to its `args.json` and their inputs' fingerprints to `inputs.json`, refused when `out`
/// already holds a run (one that wrote more than those).
pub fn open_run<A: Serialize + serde::de::DeserializeOwned + Clone + RunInputs>(
    out: Option<&Path>,
    resume: Option<&Path>,
    args: &A,
    keep: impl FnOnce(A) -> A,
) -> anyhow::Result<Run<A>> {
    if let Some(dir) = resume {
        let path = dir.join("args.json");
        let bytes = std::fs::read(&path)
            .with_context(|| format!("{} is not a run directory (no args.json)", dir.display()))?;
        let saved: A = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not this command's args.json", path.display()))?;
        let lock = lock_run(dir)?;
        remove_leftovers(dir)?;
        if only_args(dir)? {
            // Refused before its first step (an index not built yet, say): it has read and
            // trained on nothing, so it starts on what is there now, as a fresh run would.
            write_inputs(dir, &saved)?;
        } else {
            check_inputs(dir, &saved.inputs())?;
        }
        return Ok(Run {
            dir: dir.to_path_buf(),
            args: keep(saved),
            resuming: true,
            lock: Some(lock),
        });
    }
    let dir = out.context("--out DIR is needed without --resume")?;
    // Locked before it is looked at: a run that ends between the look and the lock would
    // otherwise be written over.
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let lock = lock_run(dir)?;
    if !only_args(dir)? {
        match dir.join("args.json").exists() {
            true => bail!(
                "{} already holds a run: continue it with --resume {0}, or choose another --out",
                dir.display()
            ),
            // Files of something else: a run would overwrite or remove them.
            false => bail!(
                "{} already holds other files: a run starts in a new or empty folder; choose another --out",
                dir.display()
            ),
        }
    }
    write_atomic(&dir.join("args.json"), &serde_json::to_vec_pretty(args)?)?;
    write_inputs(dir, args)?;
    Ok(Run {
        dir: dir.to_path_buf(),
        args: args.clone(),
        resuming: false,
        lock: Some(lock),
    })
}

/// Records the fingerprints of the inputs `args` name in `dir`'s `inputs.json`.
fn write_inputs(dir: &Path, args: &impl RunInputs) -> anyhow::Result<()> {
    write_atomic(
        &dir.join(INPUTS),
        &serde_json::to_vec_pretty(&fingerprint_inputs(&args.inputs())?)?,
    )
}

/// Whether `dir` holds nothing but an `args.json` and `inputs.json` (and the lock file): a
/// run refused before its first step (bad flags or input), which a corrected command may
/// start again in place; an empty folder too.
fn only_args(dir: &Path) -> anyhow::Result<bool> {
    let mut entries =
        std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    Ok(entries.all(|e| {
        e.is_ok_and(|e| {
            ["args.json", INPUTS, LOCK]
                .iter()
                .any(|n| e.file_name() == *n)
        })
    }))
}

/// The model, its optimiser and the steps done: from the run's latest checkpoint when
/// resuming, else `model` as given with a fresh `make_optim(&model)` at step 0.
pub fn resume_or_start<M: Module>(
    run_dir: &Path,
    resuming: bool,
    model: M,
    make_optim: impl FnOnce(&M) -> ModuleOptimizer,
) -> anyhow::Result<(M, ModuleOptimizer, usize)> {
    let latest = latest_checkpoint(run_dir)?.filter(|_| resuming);
    if resuming && latest.is_none() {
        // Checkpoints without `latest` (deleted by hand): starting over would discard them.
        let newest = std::fs::read_dir(run_dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| Some((checkpoint_step(&n)?, n)))
            .max();
        if let Some((_, newest)) = newest {
            bail!(
                "{} holds {newest} but no `latest` naming it: write its name into {} to resume from it",
                run_dir.display(),
                run_dir.join("latest").display()
            );
        }
        eprintln!(
            "{}: no checkpoint yet, starting from step 0",
            run_dir.display()
        );
    }
    match latest {
        Some(checkpoint) => {
            let (model, optim, state) = load_checkpoint(&checkpoint, model, make_optim)?;
            eprintln!("resumed {} at step {}", checkpoint.display(), state.step);
            Ok((model, optim, state.step))
        }
        None => {
            let optim = make_optim(&model);
            Ok((model, optim, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{RunInputs, open_run};
    use std::path::Path;

    /// Test runs name their inputs in an `inputs` list.
    impl RunInputs for serde_json::Value {
        fn inputs(&self) -> Vec<Option<&Path>> {
            self["inputs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p.as_str().map(Path::new))
                .collect()
        }
    }

    /// `--resume out` with the saved `args`, its refusal as text.
    fn resume_run(out: &Path, args: &serde_json::Value) -> Result<(), String> {
        open_run::<serde_json::Value>(None, Some(out), args, |a| a)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_resume_is_refused_when_an_input_changed_went_or_came() {
        let tmp = tempfile::tempdir().unwrap();
        let (data, model, out) = (
            tmp.path().join("train.json"),
            tmp.path().join("model"),
            tmp.path().join("run"),
        );
        std::fs::write(&data, "{\"data\": []}").unwrap();
        std::fs::create_dir(&model).unwrap();
        std::fs::write(model.join("config.json"), "{}").unwrap();
        std::fs::write(model.join("model.safetensors"), [0u8; 64]).unwrap();
        std::fs::write(model.join("notes.md"), "not read").unwrap();
        let args = serde_json::json!({ "inputs": [data, model] });
        drop(open_run(Some(&out), None, &args, |a| a).unwrap());
        // The run trained: its inputs are what it started on from now on.
        std::fs::write(out.join("metrics.jsonl"), "{\"step\": 1}\n").unwrap();
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("inputs.json")).unwrap()).unwrap();
        assert_eq!(saved.as_object().unwrap().len(), 3, "{saved}");
        let resume = || resume_run(&out, &args);
        resume().unwrap();
        // A folder's other files are not its inputs.
        std::fs::write(model.join("notes.md"), "edited").unwrap();
        resume().unwrap();

        std::fs::write(&data, "{\"data\": [1]}").unwrap();
        let refused = resume().unwrap_err();
        assert!(
            refused.contains("train.json has changed since the run"),
            "{refused}"
        );
        std::fs::write(&data, "{\"data\": []}").unwrap();
        resume().unwrap();

        std::fs::write(model.join("vocab.txt"), "[PAD]").unwrap();
        let refused = resume().unwrap_err();
        assert!(
            refused.contains("vocab.txt was not there when the run"),
            "{refused}"
        );
        std::fs::remove_file(model.join("vocab.txt")).unwrap();

        std::fs::remove_file(model.join("config.json")).unwrap();
        let refused = resume().unwrap_err();
        assert!(
            refused.contains("config.json, which the run in"),
            "{refused}"
        );
        // The way out the message names.
        std::fs::remove_file(out.join("inputs.json")).unwrap();
        resume().unwrap();
    }

    #[test]
    fn a_run_refused_before_its_first_step_may_start_again_but_not_one_that_ran() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let args = serde_json::json!({ "lr": 1e-4 });
        let open = |args: &serde_json::Value| open_run(Some(&out), None, args, |a| a);
        // Written, then (say) refused for its input: only args.json is there.
        assert!(!open(&args).unwrap().resuming);
        let fixed = serde_json::json!({ "lr": 2e-4 });
        let run = open(&fixed).unwrap();
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.dir.join("args.json")).unwrap()).unwrap();
        assert_eq!(saved, fixed);
        drop(run); // its lock: the process "ends"
        // A run that wrote a step is kept: --resume or another --out.
        std::fs::write(out.join("metrics.jsonl"), "{\"step\": 1}\n").unwrap();
        let refused = open(&args).err().unwrap().to_string();
        assert!(refused.contains("already holds a run"), "{refused}");
    }

    #[test]
    fn a_run_refused_before_its_first_step_resumes_on_the_inputs_there_now() {
        let tmp = tempfile::tempdir().unwrap();
        let (data, index, out) = (
            tmp.path().join("train.json"),
            tmp.path().join("corpus.shard"),
            tmp.path().join("run"),
        );
        std::fs::write(&data, "[]").unwrap();
        let args = serde_json::json!({ "inputs": [data, index] });
        // Started before its index was built, and refused for that before a step.
        drop(open_run(Some(&out), None, &args, |a| a).unwrap());
        std::fs::write(&index, [1u8; 32]).unwrap();
        let resume = || resume_run(&out, &args);
        resume().unwrap();
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("inputs.json")).unwrap()).unwrap();
        assert!(
            saved.get(index.display().to_string()).is_some(),
            "the index is recorded once the run starts on it: {saved}"
        );
        // Once it has trained, a changed index is refused as before.
        std::fs::write(out.join("metrics.jsonl"), "{\"step\": 1}\n").unwrap();
        std::fs::write(&index, [2u8; 32]).unwrap();
        let refused = resume().unwrap_err();
        assert!(
            refused.contains("corpus.shard has changed since the run"),
            "{refused}"
        );
    }

    #[test]
    fn only_the_runs_own_checkpoint_names_are_its_and_a_locked_folder_is_refused() {
        use super::{checkpoint_step, lock_run};
        assert_eq!(checkpoint_step("checkpoint-0000050"), Some(50));
        assert_eq!(checkpoint_step("checkpoint-12345678"), Some(12_345_678));
        for other in [
            "checkpoint-backup",
            "checkpoint-50",
            "checkpoint-00005x0",
            "latest",
        ] {
            assert_eq!(checkpoint_step(other), None, "{other}");
        }
        let tmp = tempfile::tempdir().unwrap();
        let held = lock_run(tmp.path()).unwrap();
        let refused = lock_run(tmp.path()).err().unwrap().to_string();
        assert!(
            refused.contains("another realm process is training in"),
            "{refused}"
        );
        drop(held);
        assert!(lock_run(tmp.path()).is_ok());
    }
}
