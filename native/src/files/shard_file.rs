//! Index shards and other outputs on disk: written through a temporary file in the same
//! folder and renamed into place (a crash leaves the old file or none, never half of one),
//! and read through a memory map, so opening a large shard costs no read into a buffer first.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use realm_core::index::shard::Shard;

use crate::files::partial::Partial;

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Writes `path` atomically with `write`, which streams into the temporary file (buffered).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let dir = crate::files::folder_of(path);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".realm-")
        .suffix(".partial")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    // Removed by a stop (Ctrl-C) while it is filled; no longer once it is whole.
    let filling = Partial::new(tmp.path());
    {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        write(&mut out)
            .and_then(|()| out.flush())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("writing {}", path.display()))?;
    // Temporary files are private (0600); the finished file is an ordinary one.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("setting the permissions of {}", path.display()))?;
    }
    drop(filling);
    tmp.persist(path)
        .with_context(|| format!("moving the new file into place at {}", path.display()))?;
    sync_folder(dir);
    Ok(())
}

/// Flushes `dir`'s entries (a rename into it) to disk, so that a power cut after the call
/// finds the new name. Best effort: where folders cannot be opened (Windows) it does nothing.
fn sync_folder(dir: &Path) {
    #[cfg(unix)]
    {
        if let Ok(folder) = std::fs::File::open(dir) {
            folder.sync_all().ok();
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Writes the folder `dir` atomically: `fill` writes into a temporary folder beside it, which
/// then replaces `dir` with ordinary permissions. An older `dir` is moved aside first and
/// removed after (put back if the new one cannot take its place), so a crash between the two
/// renames leaves it whole under a `.realm-old-` name rather than gone, until a resumed run
/// clears such leftovers and writes the folder again.
pub fn write_dir_atomic(
    dir: &Path,
    fill: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let parent = crate::files::folder_of(dir);
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".realm-dir-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a temporary folder in {}", parent.display()))?;
    // Removed by a stop while it is filled; not once the old folder may be moved aside.
    let filling = Partial::new(tmp.path());
    fill(tmp.path())?;
    drop(filling);
    // Temporary folders are private (0700); the written one is an ordinary folder.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("setting the permissions of {}", tmp.path().display()))?;
    }
    let old = match dir.exists() {
        true => {
            let aside = tempfile::Builder::new()
                .prefix(".realm-old-")
                .tempdir_in(parent)
                .with_context(|| format!("creating a temporary folder in {}", parent.display()))?
                .keep()
                .join("old");
            std::fs::rename(dir, &aside)
                .with_context(|| format!("moving the old {} aside", dir.display()))?;
            aside.parent().map(Path::to_path_buf)
        }
        false => None,
    };
    let tmp = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp, dir) {
        // The old folder goes back where it was.
        if let Some(old) = &old {
            std::fs::rename(old.join("old"), dir).ok();
        }
        return Err(e).with_context(|| format!("moving the folder to {}", dir.display()));
    }
    sync_folder(parent);
    if let Some(old) = old {
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("removing the old {} ({})", dir.display(), old.display()))?;
    }
    Ok(())
}

/// Writes a shard atomically, streamed: no copy of the file is built in memory.
pub fn write_shard(path: &Path, shard: &Shard) -> anyhow::Result<()> {
    write_atomic_with(path, |out| shard.write_to(out))
}

/// Reads a shard through a memory map, checking every field and checksum.
pub fn read_shard(path: &Path) -> anyhow::Result<Shard> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("opening {} (build one with `realm index`)", path.display()))?;
    // SAFETY: the map is read only for the duration of the parse, which copies what it keeps;
    // a file truncated underneath us would fault, which realm's own writers never do (they
    // rename a finished file into place).
    let map = unsafe { memmap2::Mmap::map(&file) }
        .with_context(|| format!("memory-mapping {}", path.display()))?;
    Shard::from_bytes(&map).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use realm_core::index::shard::ElementType;

    #[test]
    fn a_written_shard_reads_back_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.shard");
        let shard =
            Shard::from_f32(&[1.0, 2.0, 3.0, 4.0], 2, vec![5, 6], ElementType::Int8).unwrap();
        write_shard(&path, &shard).unwrap();
        write_shard(&path, &shard).unwrap(); // replacing an existing file
        assert_eq!(read_shard(&path).unwrap(), shard);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the shard itself remains");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o777,
                0o644,
                "an ordinary file, not the temporary's 0600"
            );
        }
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.shard");
        write_atomic(&path, b"old").unwrap();
        let failed = write_atomic_with(&path, |out| {
            out.write_all(b"half of a new")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(format!("{:#}", failed.unwrap_err()).contains("disk full"));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_folder_is_replaced_whole_and_a_failed_fill_keeps_the_old_one() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("embedder");
        let fill = |text: &'static str| {
            move |p: &Path| -> anyhow::Result<()> { Ok(std::fs::write(p.join("a"), text)?) }
        };
        write_dir_atomic(&dir, fill("one")).unwrap();
        write_dir_atomic(&dir, fill("two")).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "two");
        let failed = write_dir_atomic(&dir, |_| anyhow::bail!("out of space"));
        assert!(failed.is_err());
        assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "two");
        // Nothing beside it: no temporary folder, no old one set aside.
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_and_damaged_files_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let missing = format!("{:#}", read_shard(&dir.path().join("none")).unwrap_err());
        assert!(missing.contains("realm index"), "{missing}");
        let path = dir.path().join("bad.shard");
        std::fs::write(&path, b"REALMIDX\x01").unwrap();
        let damaged = format!("{:#}", read_shard(&path).unwrap_err());
        assert!(damaged.contains("header"), "{damaged}");
    }
}
