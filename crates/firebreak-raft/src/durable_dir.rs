//! Directories that survive a power cut.
//!
//! `mkdir` makes a directory's entry in its parent only as durable as the
//! parent's next fsync: on a power cut before it, a strict POSIX file
//! system (and the drill's FUSE layer, which models one) loses the new
//! directory with everything written into it, fsynced or not. A member that
//! lost its `raft/` directory that way would restart empty after having
//! voted and acknowledged entries.
//!
//! # Correctness
//! [`create_dir_durably`] creates every missing component of a path and
//! fsyncs the parent of each one it created, deepest last, before it
//! returns; a path that already exists costs nothing more than a `stat`.

//!
//! Files are written the same way: [`write_temporary`] writes and fsyncs a
//! temporary file of the caller's own next to the target, and
//! [`rename_into_place`] renames it and fsyncs the directory, so a reader
//! (or a restart after a power cut) sees the old file or the new one,
//! whole.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Temporary files written by this process, for unique temporary names.
static TEMP_FILES: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to a new temporary file next to `dir/name`, fsynced, and
/// returns its path and how long the fsync took. Every call gets its own
/// file, so concurrent writers never share one; on an error the file is
/// removed.
pub fn write_temporary(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<(PathBuf, Duration)> {
    let n = TEMP_FILES.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("{name}.{}.{n}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        let started = Instant::now();
        file.sync_all()?;
        Ok(started.elapsed())
    })();
    match written {
        Ok(sync) => Ok((tmp, sync)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Renames `tmp` to `dir/name` and fsyncs `dir`.
pub fn rename_into_place(tmp: &Path, dir: &Path, name: &str) -> std::io::Result<()> {
    if let Err(e) = std::fs::rename(tmp, dir.join(name)) {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `bytes` to `dir/name` atomically and durably.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let (tmp, _) = write_temporary(dir, name, bytes)?;
    rename_into_place(&tmp, dir, name)
}

/// Removes the temporary files of `name` that a crash left behind in `dir`
/// (from any process: the directory belongs to one member).
pub fn remove_temporaries(dir: &Path, name: &str) -> std::io::Result<()> {
    let prefix = format!("{name}.");
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file = entry.file_name();
        let file = file.to_string_lossy();
        if file.starts_with(&prefix) && file.ends_with(".tmp") {
            tracing::info!(file = %file, "removing a stale temporary file");
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Creates `dir` and its missing parents, each durably (see the module
/// documentation).
pub fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    // The missing components, outermost first.
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(p) = at {
        if p.as_os_str().is_empty() || p.is_dir() {
            break;
        }
        missing.push(p);
        at = p.parent();
    }
    for p in missing.into_iter().rev() {
        match std::fs::create_dir(p) {
            Ok(()) => {}
            // Made meanwhile by someone else: still make its entry durable.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && p.is_dir() => {}
            Err(e) => return Err(e),
        }
        let parent = match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_every_missing_component() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        create_dir_durably(&deep).unwrap();
        assert!(deep.is_dir());
        // Existing: nothing to do, no error.
        create_dir_durably(&deep).unwrap();
        let file = root.path().join("a/f");
        std::fs::write(&file, b"x").unwrap();
        assert!(
            create_dir_durably(&file.join("d")).is_err(),
            "a file in the way is an error"
        );
    }
}
