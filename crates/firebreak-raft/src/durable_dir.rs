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

use std::path::Path;

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
