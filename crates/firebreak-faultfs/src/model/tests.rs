//! The model against a real fsync discipline: sequences of file operations
//! and power cuts, checked against what a strict POSIX power cut leaves,
//! and the backing directory checked to hold only durable state.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;

use super::*;
use crate::lcg::Lcg;

/// A model over a temporary backing directory, driven by paths as a
/// process would drive the mount.
struct Fs {
    backing: tempfile::TempDir,
    m: Model,
}

/// A whole tree: path → contents (`None` for a directory).
type Tree = BTreeMap<String, Option<Vec<u8>>>;

impl Fs {
    fn new() -> Fs {
        let backing = tempfile::tempdir().unwrap();
        let m = Model::load(backing.path()).unwrap();
        Fs { backing, m }
    }

    /// A model over a backing directory prepared by `prepare`.
    fn with(prepare: impl FnOnce(&Path)) -> Fs {
        let backing = tempfile::tempdir().unwrap();
        prepare(backing.path());
        let m = Model::load(backing.path()).unwrap();
        Fs { backing, m }
    }

    fn resolve(&self, path: &str) -> Option<Ino> {
        let mut ino = ROOT_INO;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            ino = self.m.lookup(ino, OsStr::new(part)).ok()?.ino;
        }
        Some(ino)
    }

    fn split<'a>(&self, path: &'a str) -> (Ino, &'a OsStr) {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        (self.resolve(dir).expect("parent exists"), OsStr::new(name))
    }

    fn exists(&self, path: &str) -> bool {
        self.resolve(path).is_some()
    }

    /// open(O_CREAT | O_EXCL | O_RDWR)
    fn create(&mut self, path: &str) -> u64 {
        let (dir, name) = self.split(path);
        self.m.create(dir, name, 0o644, 0, 0, true, false).unwrap().1
    }

    /// open(O_RDWR), with O_TRUNC if asked.
    fn open(&mut self, path: &str, truncate: bool) -> u64 {
        let ino = self.resolve(path).expect("file exists");
        self.m.open(ino, truncate).unwrap()
    }

    fn write(&mut self, fh: u64, at: u64, data: &[u8]) {
        assert_eq!(self.m.write(fh, at, data).unwrap() as usize, data.len());
    }

    fn fsync(&mut self, fh: u64) {
        self.m.fsync(fh, false).unwrap();
    }

    fn fdatasync(&mut self, fh: u64) {
        self.m.fsync(fh, true).unwrap();
    }

    fn close(&mut self, fh: u64) {
        self.m.release(fh).unwrap();
    }

    /// `File::open(dir)?.sync_all()`: opendir, fsyncdir, releasedir.
    fn sync_dir(&mut self, path: &str) {
        let ino = self.resolve(path).expect("directory exists");
        let fh = self.m.opendir(ino).unwrap();
        self.m.fsyncdir(fh).unwrap();
        self.m.release(fh).unwrap();
    }

    fn mkdir(&mut self, path: &str) {
        let (dir, name) = self.split(path);
        self.m.mkdir(dir, name, 0o755, 0, 0).unwrap();
    }

    fn rename(&mut self, from: &str, to: &str) {
        let (d1, n1) = self.split(from);
        let (d2, n2) = self.split(to);
        self.m.rename(d1, n1, d2, n2, false).unwrap();
    }

    fn unlink(&mut self, path: &str) {
        let (dir, name) = self.split(path);
        self.m.unlink(dir, name).unwrap();
    }

    fn rmdir(&mut self, path: &str) {
        let (dir, name) = self.split(path);
        self.m.rmdir(dir, name).unwrap();
    }

    /// truncate(2) / `File::set_len`.
    fn set_len(&mut self, path: &str, len: u64) {
        let ino = self.resolve(path).expect("file exists");
        self.m
            .setattr(
                ino,
                SetAttr {
                    size: Some(len),
                    ..SetAttr::default()
                },
            )
            .unwrap();
    }

    /// Writes a whole new file: create, write, optionally fsync, close.
    fn write_file(&mut self, path: &str, data: &[u8], fsync: bool) {
        let fh = self.create(path);
        self.write(fh, 0, data);
        if fsync {
            self.fsync(fh);
        }
        self.close(fh);
    }

    /// The file's contents as a process reads them now, or `None`.
    fn read(&mut self, path: &str) -> Option<Vec<u8>> {
        let ino = self.resolve(path)?;
        let fh = self.m.open(ino, false).unwrap();
        let data = self.m.read(fh, 0, 1 << 30).unwrap();
        self.m.release(fh).unwrap();
        Some(data)
    }

    fn names(&mut self, path: &str) -> Vec<String> {
        let ino = self.resolve(path).expect("directory exists");
        let fh = self.m.opendir(ino).unwrap();
        let entries = self.m.readdir(fh, 0).unwrap();
        self.m.release(fh).unwrap();
        entries
            .into_iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .filter(|n| n != "." && n != "..")
            .collect()
    }

    fn cut(&mut self) -> PowerCut {
        let cut = self.m.power_cut().unwrap();
        // After a power cut what processes see is exactly the backing tree.
        assert_eq!(
            self.view(),
            self.backing_tree(),
            "after a power cut the view is the backing tree"
        );
        assert_eq!(self.orphans(), Vec::<String>::new(), "a power cut wipes the orphans");
        assert_eq!(self.m.stats().dirty_bytes, 0);
        cut
    }

    /// The backing file at `path` (durable contents), or `None`.
    fn backing(&self, path: &str) -> Option<Vec<u8>> {
        std::fs::read(self.backing.path().join(path)).ok()
    }

    fn orphans(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.backing.path().join(ORPHANS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The whole volatile tree, as processes see it.
    fn view(&mut self) -> Tree {
        let mut tree = Tree::new();
        let mut stack = vec![String::new()];
        while let Some(dir) = stack.pop() {
            for name in self.names(&dir) {
                let path = if dir.is_empty() { name } else { format!("{dir}/{name}") };
                let ino = self.resolve(&path).unwrap();
                if self.m.getattr(ino).unwrap().kind == Kind::Dir {
                    tree.insert(path.clone(), None);
                    stack.push(path);
                } else {
                    let data = self.read(&path);
                    tree.insert(path, data);
                }
            }
        }
        tree
    }

    /// The whole backing tree, `.faultfs` and what faultfs ignores aside.
    fn backing_tree(&self) -> Tree {
        fn walk(root: &Path, rel: &str, tree: &mut Tree) {
            for entry in std::fs::read_dir(root.join(rel)).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                if rel.is_empty() && name == ORPHANS_DIR {
                    continue;
                }
                let path = if rel.is_empty() { name } else { format!("{rel}/{name}") };
                let kind = entry.file_type().unwrap();
                if kind.is_dir() {
                    tree.insert(path.clone(), None);
                    walk(root, &path, tree);
                } else if kind.is_file() {
                    tree.insert(path, Some(std::fs::read(entry.path()).unwrap()));
                }
            }
        }
        let mut tree = Tree::new();
        walk(self.backing.path(), "", &mut tree);
        tree
    }
}

/// A durable file `name` holding `data` (created, fsynced, named durably).
fn durable_file(fs: &mut Fs, name: &str, data: &[u8]) {
    fs.write_file(name, data, true);
    let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
    fs.sync_dir(dir);
}

#[test]
fn a_write_without_fsync_is_lost() {
    let mut fs = Fs::new();
    durable_file(&mut fs, "f", b"durable");
    let fh = fs.open("f", false);
    fs.write(fh, 0, b"VOLATILE!");
    assert_eq!(fs.read("f").unwrap(), b"VOLATILE!", "reads see the volatile state");
    assert_eq!(
        fs.backing("f").unwrap(),
        b"durable",
        "the backing holds only what is durable"
    );
    let cut = fs.cut();
    assert_eq!(cut.lost_dirty_bytes, 9);
    assert_eq!(cut.stale_handles, 1);
    assert_eq!(fs.read("f").unwrap(), b"durable");
    assert!(
        matches!(fs.m.write(fh, 0, b"x"), Err(FsError::StaleHandle)),
        "handles die with the power"
    );
    fs.close(fh); // a late release after the cut is harmless
}

#[test]
fn a_write_then_fsync_is_kept() {
    let mut fs = Fs::new();
    durable_file(&mut fs, "f", b"0123456789");
    let fh = fs.open("f", false);
    fs.write(fh, 3, b"abc");
    fs.fsync(fh);
    fs.write(fh, 20, b"tail, not synced");
    assert_eq!(fs.backing("f").unwrap(), b"012abc6789");
    fs.cut();
    assert_eq!(fs.read("f").unwrap(), b"012abc6789");
}

#[test]
fn fdatasync_keeps_data_and_size() {
    let mut fs = Fs::new();
    durable_file(&mut fs, "f", b"");
    let fh = fs.open("f", false);
    fs.write(fh, 0, b"record-1;");
    fs.fdatasync(fh);
    fs.write(fh, 9, b"record-2;");
    fs.fdatasync(fh);
    fs.write(fh, 18, b"record-3 (lost);");
    fs.cut();
    assert_eq!(fs.read("f").unwrap(), b"record-1;record-2;");
}

#[test]
fn truncate_and_extend_become_durable_only_with_fsync() {
    let mut fs = Fs::new();
    durable_file(&mut fs, "f", b"abcdefghij");
    // Cut to 3, extend to 6: the cut-off bytes read as zeros, not as before.
    fs.set_len("f", 3);
    fs.set_len("f", 6);
    assert_eq!(fs.read("f").unwrap(), b"abc\0\0\0");
    fs.cut();
    assert_eq!(
        fs.read("f").unwrap(),
        b"abcdefghij",
        "unsynced truncate and extension undone"
    );

    fs.set_len("f", 3);
    fs.set_len("f", 6);
    let fh = fs.open("f", false);
    fs.fsync(fh);
    fs.close(fh);
    assert_eq!(fs.backing("f").unwrap(), b"abc\0\0\0");
    fs.cut();
    assert_eq!(fs.read("f").unwrap(), b"abc\0\0\0");

    // O_TRUNC is a truncate like any other.
    let fh = fs.open("f", true);
    fs.write(fh, 0, b"new");
    fs.close(fh);
    assert_eq!(fs.read("f").unwrap(), b"new");
    fs.cut();
    assert_eq!(fs.read("f").unwrap(), b"abc\0\0\0");
}

#[test]
fn a_new_file_fsynced_without_its_directory_is_gone() {
    let mut fs = Fs::new();
    fs.write_file("new", b"fsynced data", true);
    assert!(fs.backing("new").is_none(), "no durable name yet");
    assert_eq!(fs.orphans().len(), 1, "its synced data waits in .faultfs");
    let cut = fs.cut();
    assert_eq!(cut.lost_inodes, 1);
    assert!(!fs.exists("new"));
}

#[test]
fn a_new_file_fsynced_with_its_directory_is_kept() {
    let mut fs = Fs::new();
    fs.mkdir("d");
    fs.sync_dir("");
    fs.write_file("d/new", b"fsynced data", true);
    fs.sync_dir("d");
    assert_eq!(fs.backing("d/new").unwrap(), b"fsynced data");
    assert!(fs.orphans().is_empty());
    fs.cut();
    assert_eq!(fs.read("d/new").unwrap(), b"fsynced data");

    // The directory synced but not the file: the name stays, empty.
    fs.write_file("d/empty", b"never synced", false);
    fs.sync_dir("d");
    fs.cut();
    assert_eq!(fs.read("d/empty").unwrap(), b"");
}

#[test]
fn rename_over_a_durable_file_needs_the_directory_fsync() {
    let mut fs = Fs::new();
    durable_file(&mut fs, "snap", b"old snapshot");
    fs.write_file("snap.tmp", b"new snapshot", true);
    fs.rename("snap.tmp", "snap");
    assert_eq!(fs.read("snap").unwrap(), b"new snapshot");
    assert!(!fs.exists("snap.tmp"));
    assert_eq!(fs.backing("snap").unwrap(), b"old snapshot");
    fs.cut();
    assert_eq!(fs.read("snap").unwrap(), b"old snapshot", "old name, old contents");
    assert!(!fs.exists("snap.tmp"), "the temporary name was never durable");

    fs.write_file("snap.tmp", b"new snapshot", true);
    fs.rename("snap.tmp", "snap");
    fs.sync_dir("");
    fs.cut();
    assert_eq!(fs.read("snap").unwrap(), b"new snapshot");
    assert_eq!(fs.names(""), ["snap"]);
}

#[test]
fn an_unlink_not_made_durable_comes_back() {
    let mut fs = Fs::new();
    durable_file(&mut fs, "seg", b"entries");
    fs.unlink("seg");
    assert!(!fs.exists("seg"));
    assert_eq!(fs.backing("seg").unwrap(), b"entries");
    fs.cut();
    assert_eq!(fs.read("seg").unwrap(), b"entries");

    fs.unlink("seg");
    fs.sync_dir("");
    assert!(fs.backing("seg").is_none());
    fs.cut();
    assert!(!fs.exists("seg"));
    assert_eq!(fs.m.stats().inodes, 1, "only the root is left");
}

#[test]
fn mkdir_and_rmdir_need_the_parent_fsync() {
    let mut fs = Fs::new();
    fs.mkdir("a");
    fs.mkdir("a/b");
    fs.write_file("a/b/f", b"x", true);
    fs.sync_dir("a/b");
    fs.sync_dir("a");
    // "a" itself was never named durably: the whole subtree goes.
    fs.cut();
    assert!(!fs.exists("a"));

    fs.mkdir("a");
    fs.mkdir("a/b");
    fs.write_file("a/b/f", b"x", true);
    fs.sync_dir("a/b");
    fs.sync_dir("a");
    fs.sync_dir("");
    fs.cut();
    assert_eq!(fs.read("a/b/f").unwrap(), b"x");

    fs.unlink("a/b/f");
    fs.rmdir("a/b");
    fs.cut();
    assert_eq!(fs.read("a/b/f").unwrap(), b"x", "nothing was synced");

    fs.unlink("a/b/f");
    fs.sync_dir("a/b");
    fs.rmdir("a/b");
    fs.cut();
    assert!(
        fs.exists("a/b") && !fs.exists("a/b/f"),
        "the unlink was synced, the rmdir not"
    );

    fs.write_file("a/b/g", b"y", true);
    fs.sync_dir("a/b");
    fs.rename("a/b/g", "a/g");
    fs.rmdir("a/b");
    fs.sync_dir("a");
    fs.cut();
    assert!(
        !fs.exists("a/b"),
        "the rmdir was synced: b and its durable entries are unreachable"
    );
    assert_eq!(
        fs.read("a/g").unwrap(),
        b"y",
        "g, renamed out and synced in a, survives b"
    );

    fs.unlink("a/g");
    fs.rmdir("a");
    fs.sync_dir("");
    assert_eq!(
        fs.backing_tree(),
        Tree::new(),
        "the dead subtree is removed from the backing"
    );
    fs.cut();
    assert_eq!(fs.view(), Tree::new());
}

#[test]
fn a_rename_across_directories_needs_both_fsyncs() {
    let mut fs = Fs::new();
    fs.mkdir("a");
    fs.mkdir("b");
    fs.sync_dir("");
    durable_file(&mut fs, "a/f", b"moved");

    // Only the destination synced: both names, one inode.
    fs.rename("a/f", "b/f");
    fs.sync_dir("b");
    fs.cut();
    assert_eq!(fs.read("a/f").unwrap(), b"moved");
    assert_eq!(fs.read("b/f").unwrap(), b"moved");
    assert_eq!(fs.resolve("a/f"), fs.resolve("b/f"));
    assert_eq!(fs.m.getattr(fs.resolve("a/f").unwrap()).unwrap().nlink, 2);

    // Only the source synced: no name at all.
    fs.unlink("b/f");
    fs.sync_dir("b");
    fs.rename("a/f", "b/f");
    fs.sync_dir("a");
    fs.cut();
    assert!(!fs.exists("a/f"));
    assert!(!fs.exists("b/f"));

    durable_file(&mut fs, "a/g", b"moved");
    fs.rename("a/g", "b/g");
    fs.sync_dir("a");
    fs.sync_dir("b");
    fs.cut();
    assert!(!fs.exists("a/g"));
    assert_eq!(fs.read("b/g").unwrap(), b"moved");
}

#[test]
fn directories_move_only_within_their_parent() {
    let mut fs = Fs::new();
    fs.mkdir("a");
    fs.mkdir("b");
    let (a, b) = (fs.resolve("").unwrap(), fs.resolve("b").unwrap());
    assert!(matches!(
        fs.m.rename(a, OsStr::new("a"), b, OsStr::new("a"), false),
        Err(FsError::CrossDirRename)
    ));
    fs.write_file("a/f", b"x", true);
    fs.sync_dir("a");
    fs.sync_dir("");
    fs.rename("a", "c");
    fs.cut();
    assert_eq!(fs.read("a/f").unwrap(), b"x");
    fs.rename("a", "c");
    fs.sync_dir("");
    fs.cut();
    assert_eq!(fs.read("c/f").unwrap(), b"x");
    assert!(!fs.exists("a"));
}

#[test]
fn an_unlinked_open_file_stays_readable_until_closed() {
    let mut fs = Fs::new();
    durable_file(&mut fs, "f", b"data");
    let fh = fs.open("f", false);
    fs.unlink("f");
    fs.sync_dir("");
    assert!(fs.backing("f").is_none());
    assert_eq!(fs.orphans().len(), 1, "kept as an orphan while open");
    assert_eq!(fs.m.read(fh, 0, 100).unwrap(), b"data");
    fs.close(fh);
    assert!(fs.orphans().is_empty(), "removed at the last close");
    fs.cut();
    assert!(!fs.exists("f"));
}

#[test]
fn the_raft_log_pattern_survives_a_power_cut_and_keeps_memory_small() {
    // Mirrors firebreak-raft's wal.rs: preallocate `next.wal.prep` with
    // zeros in 256 KiB chunks, fdatasync each; write the segment's first
    // write, fdatasync; rename into place; fsync the directory; append
    // writes with fdatasync; a torn tail cut by set_len + sync_all.
    const CHUNK: usize = 256 << 10;
    const SEGMENT: u64 = 8 << 20;
    let mut fs = Fs::new();
    fs.mkdir("wal");
    fs.sync_dir("");
    durable_file(&mut fs, "wal/0000000000000001.wal", b"first segment");

    let fh = fs.create("wal/next.wal.prep");
    let zeros = vec![0u8; CHUNK];
    let mut at = 0;
    while at < SEGMENT {
        fs.write(fh, at, &zeros);
        fs.fdatasync(fh);
        at += CHUNK as u64;
        assert_eq!(fs.m.stats().dirty_bytes, 0, "synced chunks leave memory");
    }
    fs.fsync(fh);
    fs.close(fh);
    let fh = fs.open("wal/next.wal.prep", false);
    fs.write(fh, 0, b"segment start");
    fs.fdatasync(fh);
    fs.rename("wal/next.wal.prep", "wal/0000000000000002.wal");
    fs.sync_dir("wal");
    fs.write(fh, 13, b"|entry 1");
    fs.fdatasync(fh);
    fs.write(fh, 21, b"|entry 2");
    fs.fdatasync(fh);
    fs.write(fh, 29, b"|entry 3, never synced");
    fs.close(fh);

    fs.cut();
    let segment = fs.read("wal/0000000000000002.wal").unwrap();
    assert_eq!(segment.len() as u64, SEGMENT);
    assert_eq!(&segment[..29], b"segment start|entry 1|entry 2");
    assert!(segment[29..].iter().all(|&b| b == 0), "the unsynced entry is gone");
    assert_eq!(fs.names("wal"), ["0000000000000001.wal", "0000000000000002.wal"]);

    // Replay cuts the torn tail: set_len + sync_all.
    fs.set_len("wal/0000000000000002.wal", 29);
    let fh = fs.open("wal/0000000000000002.wal", false);
    fs.fsync(fh);
    fs.close(fh);
    fs.cut();
    assert_eq!(
        fs.read("wal/0000000000000002.wal").unwrap(),
        b"segment start|entry 1|entry 2"
    );

    // A preallocation cut short by the power is not there at all.
    let fh = fs.create("wal/next.wal.prep");
    fs.write(fh, 0, &zeros);
    fs.fdatasync(fh);
    fs.cut();
    assert_eq!(fs.names("wal"), ["0000000000000001.wal", "0000000000000002.wal"]);
}

#[test]
fn the_snapshot_pattern_keeps_the_last_snapshot_renamed_and_synced() {
    // Mirrors firebreak-raft's state_machine.rs: write a temporary file,
    // sync_all, rename into place, fsync the directory.
    let mut fs = Fs::new();
    fs.mkdir("snap");
    fs.sync_dir("");
    for (i, contents) in [b"snapshot one", b"snapshot two"].iter().enumerate() {
        let tmp = format!("snap/snapshot.bin.7.{i}.tmp");
        fs.write_file(&tmp, *contents, true);
        fs.rename(&tmp, "snap/snapshot.bin");
        fs.sync_dir("snap");
    }
    // A third one whose directory fsync the power cut beats.
    fs.write_file("snap/snapshot.bin.7.2.tmp", b"snapshot three", true);
    fs.rename("snap/snapshot.bin.7.2.tmp", "snap/snapshot.bin");
    fs.cut();
    assert_eq!(fs.read("snap/snapshot.bin").unwrap(), b"snapshot two");
    assert_eq!(fs.names("snap"), ["snapshot.bin"]);
}

#[test]
fn the_backing_directory_is_taken_as_durable_and_stale_orphans_are_dropped() {
    let mut fs = Fs::with(|root| {
        std::fs::create_dir_all(root.join("data/wal")).unwrap();
        std::fs::write(root.join("data/wal/1.wal"), b"log").unwrap();
        std::fs::hard_link(root.join("data/wal/1.wal"), root.join("data/link")).unwrap();
        std::fs::create_dir_all(root.join("odd")).unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("odd/link")).unwrap();
        std::fs::create_dir_all(root.join(".faultfs/17")).unwrap();
        std::fs::write(root.join(".faultfs/23"), b"left by a crashed faultfs").unwrap();
    });
    assert!(fs.orphans().is_empty());
    assert_eq!(fs.read("data/wal/1.wal").unwrap(), b"log");
    assert_eq!(fs.resolve("data/link"), fs.resolve("data/wal/1.wal"));
    assert!(!fs.exists(".faultfs"), "faultfs's own directory is hidden");
    assert_eq!(fs.names(""), ["data", "odd"]);
    assert!(fs.names("odd").is_empty(), "symlinks are ignored");
    fs.cut();
    assert_eq!(fs.read("data/link").unwrap(), b"log");
    fs.rmdir("odd");
    fs.sync_dir("");
    assert!(
        !fs.backing.path().join("odd").exists(),
        "an ignored entry does not block a durable rmdir"
    );
}

#[test]
fn reserved_names_are_refused() {
    let mut fs = Fs::new();
    for name in [ORPHANS_DIR, CONTROL_FILE] {
        let name = OsStr::new(name);
        assert!(matches!(
            fs.m.mkdir(ROOT_INO, name, 0o755, 0, 0),
            Err(FsError::Reserved)
        ));
        assert!(matches!(
            fs.m.create(ROOT_INO, name, 0o644, 0, 0, false, false),
            Err(FsError::Reserved)
        ));
    }
    fs.mkdir("d");
    fs.mkdir(&format!("d/{ORPHANS_DIR}"));
    assert!(fs.exists(&format!("d/{ORPHANS_DIR}")), "reserved only at the root");
}

#[test]
fn rename_and_unlink_follow_posix_errors() {
    let mut fs = Fs::new();
    fs.mkdir("d");
    fs.mkdir("e");
    fs.write_file("e/x", b"", false);
    fs.write_file("f", b"", false);
    let root = ROOT_INO;
    let name = OsStr::new;
    assert!(matches!(
        fs.m.rename(root, name("f"), root, name("d"), false),
        Err(FsError::IsDir)
    ));
    assert!(matches!(
        fs.m.rename(root, name("d"), root, name("f"), false),
        Err(FsError::NotDir)
    ));
    assert!(matches!(
        fs.m.rename(root, name("d"), root, name("e"), false),
        Err(FsError::NotEmpty)
    ));
    assert!(matches!(
        fs.m.rename(root, name("f"), root, name("d"), true),
        Err(FsError::Exists)
    ));
    assert!(matches!(
        fs.m.rename(root, name("nope"), root, name("x"), false),
        Err(FsError::NotFound)
    ));
    assert!(matches!(fs.m.unlink(root, name("d")), Err(FsError::IsDir)));
    assert!(matches!(fs.m.rmdir(root, name("f")), Err(FsError::NotDir)));
    assert!(matches!(fs.m.rmdir(root, name("e")), Err(FsError::NotEmpty)));
    // A directory over an empty one replaces it.
    fs.unlink("e/x");
    fs.rename("d", "e");
    assert_eq!(fs.names(""), ["e", "f"]);
}

/// Random operations on a few names, in rounds: in a round without any
/// fsync, a power cut gives back the tree of the last cut; in a round with
/// random fsyncs and then everything synced (files, then directories
/// bottom-up), a power cut changes nothing.
#[test]
fn random_sequences_revert_to_the_last_synced_tree() {
    const NAMES: [&str; 8] = ["a", "b", "d1", "d1/a", "d1/b", "d2", "d2/a", "d1/d3"];
    for seed in 1..=30 {
        let mut fs = Fs::new();
        let mut rng = Lcg(seed);
        let mut last_cut = fs.view();
        for round in 0..12 {
            let synced = round % 2 == 1;
            for _ in 0..60 {
                let path = NAMES[rng.next(NAMES.len() as u64) as usize];
                let other = NAMES[rng.next(NAMES.len() as u64) as usize];
                let exists = fs.exists(path);
                let parent_ok = path
                    .rsplit_once('/')
                    .is_none_or(|(d, _)| fs.resolve(d).is_some_and(|i| fs.m.dir(i).is_ok()));
                match rng.next(7) {
                    0 if !exists && parent_ok => {
                        if path.starts_with('d') && !path.ends_with('a') && !path.ends_with('b') {
                            fs.mkdir(path);
                        } else {
                            let data: Vec<u8> = (0..rng.next(50)).map(|i| (i as u8) ^ (seed as u8)).collect();
                            fs.write_file(path, &data, synced && rng.next(2) == 0);
                        }
                    }
                    1 | 2 if exists && fs.m.dir(fs.resolve(path).unwrap()).is_err() => {
                        let fh = fs.open(path, false);
                        let data = vec![rng.next(256) as u8; rng.next(40) as usize];
                        fs.write(fh, rng.next(60), &data);
                        if synced && rng.next(3) == 0 {
                            fs.fdatasync(fh);
                        }
                        fs.close(fh);
                    }
                    3 if exists && fs.m.dir(fs.resolve(path).unwrap()).is_err() => fs.set_len(path, rng.next(80)),
                    4 if exists => {
                        let (d, n) = fs.split(path);
                        let _ = fs.m.unlink(d, n).or_else(|_| fs.m.rmdir(d, n));
                    }
                    5 if exists => {
                        if let Some(parent) = other.rsplit_once('/').map_or(Some(ROOT_INO), |(d, _)| fs.resolve(d)) {
                            let (d, n) = fs.split(path);
                            let to = OsStr::new(other.rsplit_once('/').map_or(other, |(_, n)| n));
                            // Any error (EXDEV, ENOTEMPTY, a directory into itself...) leaves things unchanged.
                            if !other.starts_with(&format!("{path}/")) {
                                let _ = fs.m.rename(d, n, parent, to, false);
                            }
                        }
                    }
                    6 if synced && exists && fs.m.dir(fs.resolve(path).unwrap()).is_ok() => fs.sync_dir(path),
                    _ => {}
                }
            }
            if synced {
                // Sync every file, then every directory, deepest first.
                let view = fs.view();
                for (path, contents) in &view {
                    if contents.is_some() {
                        let fh = fs.open(path, false);
                        fs.fsync(fh);
                        fs.close(fh);
                    }
                }
                let mut dirs: Vec<&String> = view.iter().filter(|(_, c)| c.is_none()).map(|(p, _)| p).collect();
                dirs.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
                for dir in dirs {
                    fs.sync_dir(dir);
                }
                fs.sync_dir("");
                assert_eq!(fs.m.stats().dirty_files, 0);
                assert_eq!(fs.m.stats().pending_dirs, 0);
                assert_eq!(
                    fs.backing_tree(),
                    view,
                    "seed {seed} round {round}: all synced, backing = view"
                );
                fs.cut();
                assert_eq!(
                    fs.view(),
                    view,
                    "seed {seed} round {round}: a cut after a full sync changes nothing"
                );
                last_cut = view;
            } else {
                // Nothing was synced this round: the cut reverts everything.
                let cut = fs.cut();
                assert_eq!(
                    fs.view(),
                    last_cut,
                    "seed {seed} round {round}: an unsynced round is undone ({cut:?})"
                );
            }
            assert_eq!(fs.view(), last_cut);
        }
    }
}
