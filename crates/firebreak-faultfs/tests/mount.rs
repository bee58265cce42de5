//! faultfs really mounted, driven through `std::fs` as Firebreak drives its
//! data directory, with power cuts in the middle; the mounted view and the
//! backing directory are checked after each.
//!
//! These tests need root and `/dev/fuse`. Without them they skip, saying
//! why, except in CI (`CI` set), where they must run if `/dev/fuse` exists
//! and we are root. Every mount is owned by a guard that unmounts it when
//! the test ends, failed or not; every child process by one that kills it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use firebreak_faultfs::{faultfs_mounts, power_cut_via_control, unmount_lazy, FaultFs, Mounted, UNMOUNT_WAIT};

/// A faultfs mounted over a temporary backing directory.
struct Lab {
    // Fields drop in order: unmount first, then remove the directories.
    fs: Mounted,
    dir: tempfile::TempDir,
}

impl Lab {
    fn mnt(&self) -> &Path {
        self.fs.mountpoint()
    }

    fn backing(&self) -> &Path {
        self.fs.backing()
    }
}

/// Whether this machine can mount FUSE at all; prints why not.
fn can_mount(test: &str) -> bool {
    if !Path::new("/dev/fuse").exists() {
        eprintln!("skipping {test}: /dev/fuse is missing");
        return false;
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping {test}: mounting FUSE with mount(2) needs root");
        return false;
    }
    true
}

fn lab(test: &str) -> Option<Lab> {
    if !can_mount(test) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (backing, mnt) = (dir.path().join("backing"), dir.path().join("mnt"));
    fs::create_dir(&backing).unwrap();
    fs::create_dir(&mnt).unwrap();
    match FaultFs::mount(&backing, &mnt) {
        Ok(fs) => Some(Lab { fs, dir }),
        Err(e) if e.is_unsupported_here() && std::env::var_os("CI").is_none() => {
            eprintln!("skipping {test}: {e}");
            None
        }
        Err(e) => panic!("mounting faultfs: {e}"),
    }
}

/// A whole tree: relative path → contents (`None` for a directory).
type Tree = BTreeMap<String, Option<Vec<u8>>>;

/// The tree under `root`, without faultfs's own `.faultfs`.
fn tree(root: &Path) -> Tree {
    fn walk(root: &Path, rel: &str, out: &mut Tree) {
        for entry in fs::read_dir(root.join(rel)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if rel.is_empty() && name == ".faultfs" {
                continue;
            }
            let path = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            if entry.file_type().unwrap().is_dir() {
                out.insert(path.clone(), None);
                walk(root, &path, out);
            } else {
                out.insert(path, Some(fs::read(entry.path()).unwrap()));
            }
        }
    }
    let mut out = Tree::new();
    walk(root, "", &mut out);
    out
}

fn sync_dir(path: &Path) {
    File::open(path).unwrap().sync_all().unwrap();
}

/// Checks what a power cut must leave: the view is the backing tree, and
/// no orphan is left.
fn check_after_cut(lab: &Lab) {
    assert_eq!(
        tree(lab.mnt()),
        tree(lab.backing()),
        "after a power cut the mount shows the backing tree"
    );
    assert_eq!(
        fs::read_dir(lab.backing().join(".faultfs")).unwrap().count(),
        0,
        "no orphan left"
    );
}

#[test]
fn firebreaks_wal_and_snapshot_patterns_survive_a_power_cut() {
    let Some(lab) = lab("firebreaks_wal_and_snapshot_patterns_survive_a_power_cut") else {
        return;
    };
    const CHUNK: usize = 256 << 10;
    const SEGMENT: u64 = 8 << 20;
    let wal = lab.mnt().join("data/wal");
    let snap = lab.mnt().join("data/snap");
    fs::create_dir_all(&wal).unwrap();
    fs::create_dir_all(&snap).unwrap();
    sync_dir(lab.mnt());
    sync_dir(&lab.mnt().join("data"));

    // The first segment: created, synced, named.
    let first = wal.join("0000000000000001.wal");
    let seg1 = OpenOptions::new().create_new(true).write(true).open(&first).unwrap();
    sync_dir(&wal);
    seg1.write_all_at(b"write one;", 0).unwrap();
    seg1.sync_data().unwrap();

    // Preallocation of the next segment, 256 KiB of zeros at a time, each
    // fdatasynced: nothing piles up in memory.
    let prep = wal.join("next.wal.prep");
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&prep)
        .unwrap();
    let zeros = vec![0u8; CHUNK];
    let mut at = 0;
    while at < SEGMENT {
        file.write_all_at(&zeros, at).unwrap();
        file.sync_data().unwrap();
        at += CHUNK as u64;
        assert_eq!(lab.fs.stats().dirty_bytes, 0, "synced chunks are not kept in memory");
    }
    file.sync_all().unwrap();
    drop(file);
    // Rotation: the segment's first write, then its name.
    let seg2 = OpenOptions::new().write(true).open(&prep).unwrap();
    seg2.write_all_at(b"segment two;", 0).unwrap();
    seg2.sync_data().unwrap();
    let second = wal.join("0000000000000002.wal");
    fs::rename(&prep, &second).unwrap();
    sync_dir(&wal);
    seg2.write_all_at(b"entry;", 12).unwrap();
    seg2.sync_data().unwrap();

    // Snapshots: temporary file, sync_all, rename into place, sync dir.
    for contents in [&b"snapshot 1"[..], b"snapshot 2"] {
        let tmp = snap.join("snapshot.bin.1.0.tmp");
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp).unwrap();
        f.write_all(contents).unwrap();
        f.sync_all().unwrap();
        fs::rename(&tmp, snap.join("snapshot.bin")).unwrap();
        sync_dir(&snap);
    }

    // Then, unsynced: a write, a new snapshot not renamed durably, a new
    // file synced under a name never made durable, a deletion.
    seg2.write_all_at(b"lost entry;", 18).unwrap();
    let tmp = snap.join("snapshot.bin.1.1.tmp");
    fs::write(&tmp, b"snapshot 3").unwrap();
    File::open(&tmp).unwrap().sync_all().unwrap();
    fs::rename(&tmp, snap.join("snapshot.bin")).unwrap();
    let orphan = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(wal.join("orphan"))
        .unwrap();
    orphan.write_all_at(b"synced but unnamed", 0).unwrap();
    orphan.sync_all().unwrap();
    fs::remove_file(&first).unwrap();
    assert_eq!(
        fs::read(snap.join("snapshot.bin")).unwrap(),
        b"snapshot 3",
        "the volatile view"
    );
    assert!(!first.exists());
    let before = lab.fs.stats();
    assert!(before.pending_dirs >= 2 && before.dirty_files >= 1, "{before:?}");

    // The processes die (their files close), then the power goes.
    drop((seg1, seg2, orphan));
    let cut = lab.fs.power_cut().unwrap();
    assert_eq!(cut.lost_dirty_bytes, 11, "{cut:?}");
    check_after_cut(&lab);

    assert_eq!(
        fs::read(&first).unwrap(),
        b"write one;",
        "the unsynced deletion is undone"
    );
    let segment = fs::read(&second).unwrap();
    assert_eq!(segment.len() as u64, SEGMENT);
    assert_eq!(&segment[..18], b"segment two;entry;");
    assert!(segment[18..].iter().all(|&b| b == 0), "the unsynced entry is gone");
    assert_eq!(fs::read(snap.join("snapshot.bin")).unwrap(), b"snapshot 2");
    let mut names: Vec<_> = fs::read_dir(&wal).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["0000000000000001.wal", "0000000000000002.wal"]);
    assert_eq!(fs::read_dir(&snap).unwrap().count(), 1);
    assert_eq!(
        fs::read(lab.backing().join("data/wal/0000000000000001.wal")).unwrap(),
        b"write one;"
    );

    // The mount goes on: a torn tail cut by set_len + sync_all survives the next cut.
    let f = OpenOptions::new().write(true).open(&second).unwrap();
    f.set_len(18).unwrap();
    f.sync_all().unwrap();
    drop(f);
    lab.fs.power_cut().unwrap();
    check_after_cut(&lab);
    assert_eq!(fs::read(&second).unwrap(), b"segment two;entry;");
}

#[test]
fn the_control_file_is_hidden_and_a_killed_process_loses_what_it_did_not_sync() {
    let test = "the_control_file_is_hidden_and_a_killed_process_loses_what_it_did_not_sync";
    let Some(lab) = lab(test) else { return };
    let names: Vec<_> = fs::read_dir(lab.mnt())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.is_empty(),
        "neither .faultfs nor the control file is listed: {names:?}"
    );
    assert!(fs::metadata(lab.fs.control_file()).unwrap().is_file());
    assert!(
        fs::write(lab.fs.control_file(), "bogus").is_err(),
        "unknown commands are refused"
    );
    assert!(File::create(lab.mnt().join(".faultfs")).is_err(), "reserved name");

    let mut child = ChildGuard::spawn("writer", lab.mnt());
    child.wait_ready();
    assert_eq!(fs::read(lab.mnt().join("synced")).unwrap(), b"synced by the child");
    assert_eq!(fs::read(lab.mnt().join("unsynced")).unwrap(), b"lost with the power");
    drop(child); // SIGKILL, as a fire does

    power_cut_via_control(lab.mnt()).unwrap();
    check_after_cut(&lab);
    assert_eq!(fs::read(lab.mnt().join("synced")).unwrap(), b"synced by the child");
    assert!(!lab.mnt().join("unsynced").exists());
    assert_eq!(fs::read(lab.mnt().join("appended")).unwrap(), b"kept;");
    let status = fs::read_to_string(lab.fs.control_file()).unwrap();
    assert!(
        status.contains("power_cuts 1\n") && status.contains("dirty_bytes 0\n"),
        "{status}"
    );
}

#[test]
fn what_faultfs_does_not_support_is_refused_clearly() {
    let Some(lab) = lab("what_faultfs_does_not_support_is_refused_clearly") else {
        return;
    };
    let m = lab.mnt();
    fs::create_dir_all(m.join("a/sub")).unwrap();
    fs::create_dir(m.join("b")).unwrap();
    fs::write(m.join("f"), b"x").unwrap();
    let exdev = fs::rename(m.join("a/sub"), m.join("b/sub")).unwrap_err();
    assert_eq!(
        exdev.raw_os_error(),
        Some(libc::EXDEV),
        "a directory moves only within its parent"
    );
    fs::rename(m.join("a/sub"), m.join("a/sub2")).unwrap();
    let symlink = std::os::unix::fs::symlink("f", m.join("l")).unwrap_err();
    assert_eq!(symlink.raw_os_error(), Some(libc::EOPNOTSUPP));
    let link = fs::hard_link(m.join("f"), m.join("g")).unwrap_err();
    assert_eq!(link.raw_os_error(), Some(libc::EOPNOTSUPP));
}

#[test]
fn unmounting_a_busy_mount_detaches_it_and_ends_with_its_last_user() {
    let Some(lab) = lab("unmounting_a_busy_mount_detaches_it_and_ends_with_its_last_user") else {
        return;
    };
    let mnt = lab.mnt().to_owned();
    let mut busy = File::create(mnt.join("busy")).unwrap();
    let Lab { fs, dir } = lab;
    let started = Instant::now();
    // The last user lets go a little after the (lazy) unmount.
    let user = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        busy.write_all(b"still served after the detach").unwrap();
        drop(busy);
    });
    fs.unmount().unwrap();
    let took = started.elapsed();
    user.join().unwrap();
    assert!(
        took < UNMOUNT_WAIT,
        "the session ended with its last user, after {took:?}"
    );
    assert!(!faultfs_mounts().unwrap().contains(&mnt), "detached from the namespace");
    drop(dir);
}

#[test]
fn a_stale_mount_left_by_a_killed_process_is_swept() {
    let test = "a_stale_mount_left_by_a_killed_process_is_swept";
    if !can_mount(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().canonicalize().unwrap().join("mnt");
    fs::create_dir(dir.path().join("backing")).unwrap();
    fs::create_dir(&mnt).unwrap();
    // Unmounts even if an assertion below fails.
    struct Sweep(PathBuf);
    impl Drop for Sweep {
        fn drop(&mut self) {
            let _ = unmount_lazy(&self.0);
        }
    }
    let _sweep = Sweep(mnt.clone());
    let mut child = ChildGuard::spawn("mounter", dir.path());
    child.wait_ready();
    drop(child);
    let stale = fs::metadata(&mnt).unwrap_err();
    assert_eq!(stale.raw_os_error(), Some(libc::ENOTCONN), "{stale}");
    assert!(faultfs_mounts().unwrap().contains(&mnt));
    assert!(unmount_lazy(&mnt).unwrap());
    assert!(fs::metadata(&mnt).unwrap().is_dir());
    assert!(!faultfs_mounts().unwrap().contains(&mnt));
    assert!(!unmount_lazy(&mnt).unwrap());
}

/// Prints the cost of a 4 KiB pwrite + fdatasync (into a preallocated
/// file, as the Raft log writes) through faultfs and directly on the
/// backing disk. A measurement, not an assertion.
#[test]
fn cost_of_a_4k_write_and_fdatasync() {
    let Some(lab) = lab("cost_of_a_4k_write_and_fdatasync") else {
        return;
    };
    const N: usize = 1000;
    let through = measure(&lab.mnt().join("bench"), N);
    let direct_dir = lab.dir.path().join("direct");
    fs::create_dir(&direct_dir).unwrap();
    let direct = measure(&direct_dir.join("bench"), N);
    println!(
        "4 KiB pwrite + fdatasync, {N} times (µs): {}",
        summary("through faultfs", through)
    );
    println!(
        "4 KiB pwrite + fdatasync, {N} times (µs): {}",
        summary("directly on the backing disk", direct)
    );
}

fn measure(path: &Path, n: usize) -> Vec<Duration> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    file.write_all_at(&vec![0u8; n * 4096], 0).unwrap();
    file.sync_all().unwrap();
    let block = vec![0x5au8; 4096];
    (0..n)
        .map(|i| {
            let t = Instant::now();
            file.write_all_at(&block, (i * 4096) as u64).unwrap();
            file.sync_data().unwrap();
            t.elapsed()
        })
        .collect()
}

fn summary(what: &str, mut times: Vec<Duration>) -> String {
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = times.iter().map(|&d| us(d)).sum::<f64>() / times.len() as f64;
    let pct = |p: f64| us(times[((times.len() as f64 * p) as usize).min(times.len() - 1)]);
    format!("{what}: mean {mean:.0}, p50 {:.0}, p99 {:.0}", pct(0.5), pct(0.99))
}

/// A child process (this test binary, re-run as [`helper_process`]) that
/// is SIGKILLed when dropped.
struct ChildGuard {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl ChildGuard {
    fn spawn(role: &str, dir: &Path) -> ChildGuard {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["helper_process", "--exact", "--nocapture", "--test-threads=1"])
            .env("FAULTFS_HELPER", role)
            .env("FAULTFS_DIR", dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        ChildGuard { child, lines }
    }

    /// Waits until the child says it is done and waiting to be killed.
    fn wait_ready(&mut self) {
        for line in self.lines.by_ref() {
            if line.unwrap().contains("FAULTFS-READY") {
                return;
            }
        }
        panic!("the helper process ended before it was ready");
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Not a test of its own: the child process of the tests above, when this
/// binary is re-run with `FAULTFS_HELPER` set (otherwise it does nothing).
#[test]
fn helper_process() {
    let Ok(role) = std::env::var("FAULTFS_HELPER") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("FAULTFS_DIR").unwrap());
    match role.as_str() {
        "writer" => {
            let mut f = File::create(dir.join("synced")).unwrap();
            f.write_all(b"synced by the child").unwrap();
            f.sync_all().unwrap();
            let a = File::create(dir.join("appended")).unwrap();
            a.write_all_at(b"kept;", 0).unwrap();
            a.sync_data().unwrap();
            sync_dir(&dir);
            a.write_all_at(b"lost;", 5).unwrap();
            fs::write(dir.join("unsynced"), b"lost with the power").unwrap();
            // Keep the files open: a fire kills the process with them.
            println!("FAULTFS-READY");
            std::mem::forget((f, a));
        }
        "mounter" => {
            let fs = FaultFs::mount(dir.join("backing"), dir.join("mnt")).unwrap();
            std::mem::forget(fs);
            println!("FAULTFS-READY");
        }
        other => panic!("unknown helper role {other}"),
    }
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}
