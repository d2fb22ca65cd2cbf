//! Unfinished outputs removed when the user stops a command that writes one (`index`,
//! `convert`, `bundle`) with Ctrl-C, SIGTERM or SIGHUP: the temporary file or folder an atomic
//! write fills (`.realm-*`, hidden, private, as large as the output) would otherwise stay
//! beside it for good, since a signal ends the process without running its destructors. The
//! trainers stop at a step instead (`train::stop`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the stop handler before it removes anything: an error the main thread meets then
/// (its file gone) is the stop's doing, not one to report.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Whether a stop is removing the unfinished outputs (the process is about to exit 130).
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// The temporary outputs being filled now.
static PARTIALS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A temporary output registered while it is filled; unregistered when dropped (before it is
/// renamed into place, so that a stop never removes a finished file).
pub struct Partial(PathBuf);

impl Partial {
    pub fn new(path: &Path) -> Self {
        lock().push(path.to_path_buf());
        Self(path.to_path_buf())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        lock().retain(|p| p != &self.0);
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    PARTIALS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes every registered temporary output (file or folder); returns those it removed.
pub fn remove_partials() -> Vec<PathBuf> {
    remove_partials_under(None)
}

/// [`remove_partials`] of the outputs under `root` alone, or of all with None (a test removes
/// its own, beside other tests' writes in the same process).
fn remove_partials_under(root: Option<&Path>) -> Vec<PathBuf> {
    let paths: Vec<PathBuf> = {
        let mut registered = lock();
        let (mine, others) = registered
            .drain(..)
            .partition(|p: &PathBuf| root.is_none_or(|r| p.starts_with(r)));
        *registered = others;
        mine
    };
    paths
        .into_iter()
        .filter(|p| match p.is_dir() {
            true => std::fs::remove_dir_all(p).is_ok(),
            false => std::fs::remove_file(p).is_ok(),
        })
        .collect()
}

/// Installs the stop handler of a command that writes outputs: it removes the unfinished ones
/// and ends the process with status 130. (ctrlc runs the handler on a thread of its own, where
/// taking the lock and removing files are safe.)
pub fn remove_partials_on_stop() -> anyhow::Result<()> {
    // A run started under `nohup` keeps ignoring hangups (the handler takes SIGHUP over).
    let keep_ignoring_hangups = crate::train::stop::hangups_ignored();
    ctrlc::set_handler(|| {
        STOPPING.store(true, Ordering::SeqCst);
        let removed = remove_partials();
        eprintln!("\nstopped (Ctrl-C, SIGTERM or SIGHUP)");
        for path in removed {
            eprintln!("removed the unfinished {}", path.display());
        }
        std::process::exit(130);
    })?;
    if keep_ignoring_hangups {
        crate::train::stop::ignore_hangups();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Partial, remove_partials_under};

    #[test]
    fn a_stop_removes_the_outputs_being_filled_and_no_finished_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".realm-x.partial");
        let folder = dir.path().join(".realm-dir-x");
        let done = dir.path().join(".realm-done.partial");
        std::fs::write(&file, "half").unwrap();
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("config.json"), "{}").unwrap();
        std::fs::write(&done, "whole").unwrap();
        let (_file, _folder) = (Partial::new(&file), Partial::new(&folder));
        drop(Partial::new(&done)); // renamed into place: no longer the stop's to remove
        let removed = remove_partials_under(Some(dir.path()));
        assert!(
            removed.contains(&file) && removed.contains(&folder),
            "{removed:?}"
        );
        assert!(!file.exists() && !folder.exists());
        assert!(done.exists());
    }
}
