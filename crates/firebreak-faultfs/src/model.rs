//! The durability state machine: a filesystem's volatile state (what
//! processes see) over its durable state (what a power cut leaves), with no
//! FUSE in sight. [`Model`] takes inode numbers, names and file handles and
//! answers as the kernel expects; `crate::fuse` only translates.
//!
//! **Durable state** is, per directory, a map of *durable entries* (name →
//! inode) and, per file, its *durable contents*. The backing directory
//! holds exactly that: every durable entry is a real entry there (a file
//! with two durable names is hard-linked), every file's backing file holds
//! its durable contents. An inode that has no durable name yet (a new file
//! or directory) or no longer has one while it is still in use keeps its
//! durable contents at `.faultfs/<ino>` in the backing directory, an
//! *orphan*, unreachable as it would be on a disk after a crash.
//!
//! **Volatile state** is in memory: per directory, its *volatile entries*;
//! per file, an [`Overlay`] of what was written since its last fsync.
//!
//! What makes what durable:
//! - `fsync`/`fdatasync` of a file: its contents and size (and, for
//!   `fsync`, its mode and owner). Never its name.
//! - `fsyncdir` of a directory: its entries, all of them, as they are
//!   (creates, unlinks, renames in or out, mkdir, rmdir). A file renamed
//!   from A to B keeps its durable name in A until A is synced and gets one
//!   in B when B is: syncing only B leaves two names, only A none.
//! - A power cut ([`Model::power_cut`]) makes the volatile state the
//!   durable one: what is reachable from the root through durable entries
//!   survives with its durable contents; everything else (the orphans
//!   included) is gone, and every open handle is stale.
//!
//! # Correctness
//! - The backing directory, `.faultfs/` aside, always holds exactly the
//!   durable state: a namespace change touches it only at `fsyncdir`,
//!   contents only at `fsync`. So a power cut only drops memory and wipes
//!   `.faultfs/`, and a crash of faultfs itself is a power cut too.
//! - Every inode with a durable name has its backing at that name; every
//!   other inode that is still in use (a volatile name or an open handle)
//!   has it at `.faultfs/<ino>`. An inode with neither a durable name nor a
//!   use is removed, backing and all (recursively for a directory, whose
//!   durable entries are then given up one by one, moving those still in
//!   use to `.faultfs/`).
//! - An inode with durable names but neither a volatile name nor an open
//!   handle can never be synced again: its dirty contents are dropped at
//!   once, and its record stays only to answer the next `fsyncdir` or to
//!   come back at a power cut.
//! - A directory has at most one durable name: a directory is renamed only
//!   within its parent ([`FsError::CrossDirRename`] otherwise), so the
//!   durable namespace stays a tree.
//! - A backing-directory error in the middle of an fsync leaves that
//!   fsync partly applied, as a crash during a real fsync may; the
//!   operation reports the error (`EIO` or the backing's errno).
//! - Inode and handle numbers are never reused, so a handle or inode from
//!   before a power cut is refused, never mistaken for a new one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::FsError;
use crate::overlay::Overlay;

#[cfg(test)]
mod tests;

/// An inode number, as the kernel knows it.
pub(crate) type Ino = u64;

/// The root directory's inode number (FUSE's).
pub(crate) const ROOT_INO: Ino = 1;

/// The directory of orphans in the backing directory (hidden from the mount).
pub(crate) const ORPHANS_DIR: &str = ".faultfs";

/// The name of the control file at the root of the mount (see the crate doc).
pub const CONTROL_FILE: &str = ".faultfs-control";

/// Whether a name at the root is faultfs's own.
fn is_reserved(name: &OsStr) -> bool {
    name == ORPHANS_DIR || name == CONTROL_FILE
}

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
}

/// The attributes of an inode, as `stat` shows them (volatile state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attr {
    pub(crate) ino: Ino,
    pub(crate) kind: Kind,
    pub(crate) size: u64,
    pub(crate) perm: u16,
    pub(crate) nlink: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) atime: SystemTime,
    pub(crate) mtime: SystemTime,
    pub(crate) ctime: SystemTime,
}

/// The changes of one `setattr` (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub(crate) struct SetAttr {
    pub(crate) size: Option<u64>,
    pub(crate) mode: Option<u32>,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) atime: Option<SystemTime>,
    pub(crate) mtime: Option<SystemTime>,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirEntry {
    pub(crate) ino: Ino,
    pub(crate) kind: Kind,
    pub(crate) name: OsString,
}

/// What a power cut threw away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PowerCut {
    /// Bytes written and never fsynced (truncations not counted).
    pub lost_dirty_bytes: u64,
    /// Files whose contents or size went back to their durable state.
    pub reverted_files: usize,
    /// Directories whose entries went back to their durable state.
    pub reverted_dirs: usize,
    /// Inodes gone for good: never durably named, or unreachable.
    pub lost_inodes: usize,
    /// Open handles made stale.
    pub stale_handles: usize,
}

/// The volatile state's size, at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Power cuts so far.
    pub power_cuts: u64,
    /// Bytes written and not yet fsynced, held in memory.
    pub dirty_bytes: u64,
    /// Files whose volatile contents or size differ from their durable ones.
    pub dirty_files: usize,
    /// Directories with entry changes not yet fsynced.
    pub pending_dirs: usize,
    /// Inodes known (volatile or durable).
    pub inodes: usize,
    /// Open file and directory handles.
    pub open_handles: usize,
}

/// Mode, owner and times of an inode.
#[derive(Debug, Clone)]
struct Meta {
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
}

impl Meta {
    fn new(perm: u16, uid: u32, gid: u32) -> Meta {
        let now = SystemTime::now();
        Meta {
            perm: perm & 0o7777,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }

    fn of(m: &fs::Metadata) -> Meta {
        let time =
            |secs: i64, nanos: i64| UNIX_EPOCH + Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32);
        Meta {
            perm: (m.mode() & 0o7777) as u16,
            uid: m.uid(),
            gid: m.gid(),
            atime: time(m.atime(), m.atime_nsec()),
            mtime: time(m.mtime(), m.mtime_nsec()),
            ctime: time(m.ctime(), m.ctime_nsec()),
        }
    }
}

/// One inode: its use, its durable names and its contents.
#[derive(Debug)]
struct Node {
    meta: Meta,
    /// Mode or owner changed since the last fsync: written to the backing
    /// at the next one.
    meta_dirty: bool,
    /// Volatile names (entries in volatile directory maps).
    links: u32,
    /// Open handles.
    open: u32,
    /// Durable names: (directory, name) pairs whose durable entry is this inode.
    durable_links: BTreeSet<(Ino, OsString)>,
    body: Body,
}

#[derive(Debug)]
enum Body {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Debug)]
struct FileNode {
    /// The size of the durable contents, which the backing file holds.
    durable_size: u64,
    overlay: Overlay,
    /// The backing file, opened read-write while the file is in use; it
    /// follows the backing file through renames and links.
    backing: Option<File>,
}

#[derive(Debug)]
struct DirNode {
    /// The parent directory (for `..`; a directory never changes parent).
    parent: Ino,
    /// Entries as processes see them.
    volatile: BTreeMap<OsString, Ino>,
    /// Entries as of the last `fsyncdir` (as the backing directory has them).
    durable: BTreeMap<OsString, Ino>,
}

impl Node {
    fn new(meta: Meta, body: Body) -> Node {
        Node {
            meta,
            meta_dirty: false,
            links: 0,
            open: 0,
            durable_links: BTreeSet::new(),
            body,
        }
    }

    fn kind(&self) -> Kind {
        match self.body {
            Body::File(_) => Kind::File,
            Body::Dir(_) => Kind::Dir,
        }
    }

    fn in_use(&self) -> bool {
        self.links > 0 || self.open > 0
    }
}

impl DirNode {
    fn new(parent: Ino) -> DirNode {
        DirNode {
            parent,
            volatile: BTreeMap::new(),
            durable: BTreeMap::new(),
        }
    }
}

/// An open file or directory.
#[derive(Debug)]
struct Handle {
    ino: Ino,
    /// A directory's listing, taken at the `readdir` at offset 0, so that
    /// offsets stay stable while the directory changes.
    listing: Vec<DirEntry>,
}

/// The whole filesystem: volatile and durable state over one backing
/// directory (see the module doc).
#[derive(Debug)]
pub(crate) struct Model {
    /// The backing directory.
    root: PathBuf,
    nodes: HashMap<Ino, Node>,
    next_ino: Ino,
    handles: HashMap<u64, Handle>,
    next_handle: u64,
    power_cuts: u64,
}

impl Model {
    /// Takes the backing directory's tree as the durable state (and the
    /// volatile one), after removing orphans a previous run left: they were
    /// unreachable, as after a power cut.
    pub(crate) fn load(root: &Path) -> Result<Model, FsError> {
        let orphans = root.join(ORPHANS_DIR);
        match fs::remove_dir_all(&orphans) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        fs::create_dir(&orphans)?;
        let mut model = Model {
            root: root.to_owned(),
            nodes: HashMap::new(),
            next_ino: ROOT_INO + 1,
            handles: HashMap::new(),
            next_handle: 1,
            power_cuts: 0,
        };
        let mut root_node = Node::new(Meta::of(&fs::metadata(root)?), Body::Dir(DirNode::new(ROOT_INO)));
        root_node.links = 1;
        model.nodes.insert(ROOT_INO, root_node);
        // Hard links in the backing directory are one inode with two names.
        let mut seen: HashMap<(u64, u64), Ino> = HashMap::new();
        let mut stack = vec![(ROOT_INO, root.to_owned())];
        while let Some((dir, path)) = stack.pop() {
            let mut entries = Vec::new();
            for entry in fs::read_dir(&path)? {
                let entry = entry?;
                let name = entry.file_name();
                if dir == ROOT_INO && is_reserved(&name) {
                    continue;
                }
                let m = fs::symlink_metadata(entry.path())?;
                let ino = if m.is_file() {
                    match seen.get(&(m.dev(), m.ino())) {
                        Some(&ino) => ino,
                        None => {
                            let ino = model.alloc_ino();
                            let body = Body::File(FileNode {
                                durable_size: m.len(),
                                overlay: Overlay::clean(m.len()),
                                backing: None,
                            });
                            model.nodes.insert(ino, Node::new(Meta::of(&m), body));
                            seen.insert((m.dev(), m.ino()), ino);
                            ino
                        }
                    }
                } else if m.is_dir() {
                    let ino = model.alloc_ino();
                    model
                        .nodes
                        .insert(ino, Node::new(Meta::of(&m), Body::Dir(DirNode::new(dir))));
                    stack.push((ino, entry.path()));
                    ino
                } else {
                    tracing::warn!(path = %entry.path().display(), "faultfs ignores what is neither a file nor a directory");
                    continue;
                };
                let node = model.nodes.get_mut(&ino).expect("inserted above");
                node.links += 1;
                node.durable_links.insert((dir, name.clone()));
                entries.push((name, ino));
            }
            let d = model.dir_mut(dir)?;
            for (name, ino) in entries {
                d.durable.insert(name.clone(), ino);
                d.volatile.insert(name, ino);
            }
        }
        Ok(model)
    }

    // ---- lookups ----------------------------------------------------------

    /// The inode `name` names in `parent`.
    pub(crate) fn lookup(&self, parent: Ino, name: &OsStr) -> Result<Attr, FsError> {
        let ino = *self.dir(parent)?.volatile.get(name).ok_or(FsError::NotFound)?;
        self.getattr(ino)
    }

    pub(crate) fn getattr(&self, ino: Ino) -> Result<Attr, FsError> {
        let node = self.node(ino)?;
        let (size, nlink) = match &node.body {
            Body::File(f) => (f.overlay.size(), node.links),
            Body::Dir(_) => (4096, 2),
        };
        Ok(Attr {
            ino,
            kind: node.kind(),
            size,
            perm: node.meta.perm,
            nlink,
            uid: node.meta.uid,
            gid: node.meta.gid,
            atime: node.meta.atime,
            mtime: node.meta.mtime,
            ctime: node.meta.ctime,
        })
    }

    pub(crate) fn setattr(&mut self, ino: Ino, set: SetAttr) -> Result<Attr, FsError> {
        let now = SystemTime::now();
        let node = self.node_mut(ino)?;
        if let Some(size) = set.size {
            let Body::File(f) = &mut node.body else {
                return Err(FsError::IsDir);
            };
            f.overlay.truncate(size);
            node.meta.mtime = now;
            node.meta.ctime = now;
        }
        if let Some(mode) = set.mode {
            node.meta.perm = (mode & 0o7777) as u16;
            node.meta_dirty = true;
        }
        if let Some(uid) = set.uid {
            node.meta.uid = uid;
            node.meta_dirty = true;
        }
        if let Some(gid) = set.gid {
            node.meta.gid = gid;
            node.meta_dirty = true;
        }
        if set.mode.is_some() || set.uid.is_some() || set.gid.is_some() {
            node.meta.ctime = now;
        }
        if let Some(atime) = set.atime {
            node.meta.atime = atime;
        }
        if let Some(mtime) = set.mtime {
            node.meta.mtime = mtime;
        }
        self.getattr(ino)
    }

    // ---- namespace --------------------------------------------------------

    pub(crate) fn mkdir(&mut self, parent: Ino, name: &OsStr, perm: u16, uid: u32, gid: u32) -> Result<Attr, FsError> {
        self.check_name(parent, name)?;
        if self.dir(parent)?.volatile.contains_key(name) {
            return Err(FsError::Exists);
        }
        let ino = self.alloc_ino();
        let path = self.orphan_path(ino);
        fs::create_dir(&path)?;
        let meta = Meta::new(perm, uid, gid);
        set_mode_and_owner(&path, &meta)?;
        self.link_new(parent, name, ino, Node::new(meta, Body::Dir(DirNode::new(parent))))?;
        self.getattr(ino)
    }

    /// Creates a regular file (`mknod`).
    pub(crate) fn mknod(&mut self, parent: Ino, name: &OsStr, perm: u16, uid: u32, gid: u32) -> Result<Attr, FsError> {
        self.check_name(parent, name)?;
        if self.dir(parent)?.volatile.contains_key(name) {
            return Err(FsError::Exists);
        }
        let ino = self.new_file(parent, name, perm, uid, gid)?;
        self.getattr(ino)
    }

    /// Creates and opens a file; opens it if it exists and `exclusive` is
    /// not set (truncating it if `truncate` is).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create(
        &mut self,
        parent: Ino,
        name: &OsStr,
        perm: u16,
        uid: u32,
        gid: u32,
        exclusive: bool,
        truncate: bool,
    ) -> Result<(Attr, u64), FsError> {
        self.check_name(parent, name)?;
        let ino = match self.dir(parent)?.volatile.get(name) {
            Some(_) if exclusive => return Err(FsError::Exists),
            Some(&ino) => {
                let fh = self.open(ino, truncate)?;
                return Ok((self.getattr(ino)?, fh));
            }
            None => self.new_file(parent, name, perm, uid, gid)?,
        };
        let fh = self.open(ino, false)?;
        Ok((self.getattr(ino)?, fh))
    }

    pub(crate) fn unlink(&mut self, parent: Ino, name: &OsStr) -> Result<(), FsError> {
        self.check_name(parent, name)?;
        let ino = *self.dir(parent)?.volatile.get(name).ok_or(FsError::NotFound)?;
        if self.node(ino)?.kind() == Kind::Dir {
            return Err(FsError::IsDir);
        }
        self.dir_mut(parent)?.volatile.remove(name);
        self.touch(parent);
        self.unlink_volatile(ino)
    }

    pub(crate) fn rmdir(&mut self, parent: Ino, name: &OsStr) -> Result<(), FsError> {
        self.check_name(parent, name)?;
        let ino = *self.dir(parent)?.volatile.get(name).ok_or(FsError::NotFound)?;
        if !self.dir(ino)?.volatile.is_empty() {
            return Err(FsError::NotEmpty);
        }
        self.dir_mut(parent)?.volatile.remove(name);
        self.touch(parent);
        self.unlink_volatile(ino)
    }

    /// Renames `parent/name` to `new_parent/new_name`, replacing what is
    /// there (unless `no_replace`), as rename(2) does.
    pub(crate) fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        new_parent: Ino,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<(), FsError> {
        self.check_name(parent, name)?;
        self.check_name(new_parent, new_name)?;
        let ino = *self.dir(parent)?.volatile.get(name).ok_or(FsError::NotFound)?;
        let replaced = self.dir(new_parent)?.volatile.get(new_name).copied();
        let is_dir = self.node(ino)?.kind() == Kind::Dir;
        if is_dir && parent != new_parent {
            return Err(FsError::CrossDirRename);
        }
        if let Some(old) = replaced {
            if old == ino {
                // Two names of one inode (or the same name): nothing to do.
                return Ok(());
            }
            if no_replace {
                return Err(FsError::Exists);
            }
            match (is_dir, self.node(old)?.kind()) {
                (true, Kind::File) => return Err(FsError::NotDir),
                (false, Kind::Dir) => return Err(FsError::IsDir),
                (true, Kind::Dir) if !self.dir(old)?.volatile.is_empty() => return Err(FsError::NotEmpty),
                _ => {}
            }
        }
        self.dir_mut(parent)?.volatile.remove(name);
        self.dir_mut(new_parent)?.volatile.insert(new_name.to_owned(), ino);
        self.touch(parent);
        self.touch(new_parent);
        self.node_mut(ino)?.meta.ctime = SystemTime::now();
        match replaced {
            Some(old) => self.unlink_volatile(old),
            None => Ok(()),
        }
    }

    // ---- handles and contents ----------------------------------------------

    /// Opens a file (truncating it if asked); returns the handle.
    pub(crate) fn open(&mut self, ino: Ino, truncate: bool) -> Result<u64, FsError> {
        let node = self.node_mut(ino)?;
        let Body::File(f) = &mut node.body else {
            return Err(FsError::IsDir);
        };
        if truncate && f.overlay.size() != 0 {
            f.overlay.truncate(0);
            let now = SystemTime::now();
            node.meta.mtime = now;
            node.meta.ctime = now;
        }
        node.open += 1;
        Ok(self.new_handle(ino))
    }

    pub(crate) fn opendir(&mut self, ino: Ino) -> Result<u64, FsError> {
        self.dir(ino)?;
        self.node_mut(ino)?.open += 1;
        Ok(self.new_handle(ino))
    }

    /// Closes a handle; one from before a power cut is ignored.
    pub(crate) fn release(&mut self, fh: u64) -> Result<(), FsError> {
        let Some(handle) = self.handles.remove(&fh) else {
            return Ok(());
        };
        let node = self.node_mut(handle.ino)?;
        node.open -= 1;
        if node.open == 0 {
            if let Body::File(f) = &mut node.body {
                f.backing = None;
            }
        }
        self.reap(handle.ino)
    }

    pub(crate) fn read(&mut self, fh: u64, offset: u64, len: usize) -> Result<Vec<u8>, FsError> {
        let ino = self.handle(fh)?;
        self.open_backing(ino)?;
        let Body::File(f) = &self.node(ino)?.body else {
            return Err(FsError::IsDir);
        };
        let backing = f.backing.as_ref().expect("opened above");
        Ok(f.overlay.read(offset, len, |at, buf| backing.read_exact_at(buf, at))?)
    }

    pub(crate) fn write(&mut self, fh: u64, offset: u64, data: &[u8]) -> Result<u32, FsError> {
        let ino = self.handle(fh)?;
        let node = self.node_mut(ino)?;
        let Body::File(f) = &mut node.body else {
            return Err(FsError::IsDir);
        };
        f.overlay.write(offset, data);
        let now = SystemTime::now();
        node.meta.mtime = now;
        node.meta.ctime = now;
        Ok(data.len() as u32)
    }

    /// `fallocate`: mode 0 extends the file (with zeros) to cover the range,
    /// `FALLOC_FL_KEEP_SIZE` does nothing visible; other modes are refused.
    pub(crate) fn fallocate(&mut self, fh: u64, offset: u64, len: u64, mode: i32) -> Result<(), FsError> {
        let ino = self.handle(fh)?;
        let node = self.node_mut(ino)?;
        let Body::File(f) = &mut node.body else {
            return Err(FsError::IsDir);
        };
        match mode {
            0 => {
                let end = offset + len;
                if end > f.overlay.size() {
                    f.overlay.truncate(end);
                    node.meta.mtime = SystemTime::now();
                }
                Ok(())
            }
            libc::FALLOC_FL_KEEP_SIZE => Ok(()),
            _ => Err(FsError::Unsupported),
        }
    }

    /// `fsync` (`datasync`: `fdatasync`) of a file: its contents and size
    /// become durable, and for `fsync` its mode and owner. For a directory
    /// handle, as `fsyncdir`.
    pub(crate) fn fsync(&mut self, fh: u64, datasync: bool) -> Result<(), FsError> {
        let ino = self.handle(fh)?;
        if self.node(ino)?.kind() == Kind::Dir {
            return self.sync_dir(ino);
        }
        self.open_backing(ino)?;
        let Node {
            body, meta, meta_dirty, ..
        } = self.node_mut(ino)?;
        let Body::File(f) = body else {
            unreachable!("checked above")
        };
        let backing = f.backing.as_ref().expect("opened above");
        if f.overlay.is_dirty(f.durable_size) {
            f.overlay.flush(backing, f.durable_size)?;
            f.durable_size = f.overlay.size();
        }
        if !datasync && *meta_dirty {
            backing.set_permissions(Permissions::from_mode(u32::from(meta.perm)))?;
            chown_lenient(std::os::unix::fs::fchown(backing, Some(meta.uid), Some(meta.gid)))?;
            *meta_dirty = false;
        }
        Ok(())
    }

    /// `fsyncdir`: the directory's entries become durable.
    pub(crate) fn fsyncdir(&mut self, fh: u64) -> Result<(), FsError> {
        let ino = self.handle(fh)?;
        self.sync_dir(ino)
    }

    /// The directory's entries from `offset` on (`.` and `..` first); the
    /// listing is taken anew at offset 0.
    pub(crate) fn readdir(&mut self, fh: u64, offset: u64) -> Result<Vec<DirEntry>, FsError> {
        let ino = self.handle(fh)?;
        if offset == 0 {
            let d = self.dir(ino)?;
            let mut listing = vec![
                DirEntry {
                    ino,
                    kind: Kind::Dir,
                    name: ".".into(),
                },
                DirEntry {
                    ino: d.parent,
                    kind: Kind::Dir,
                    name: "..".into(),
                },
            ];
            for (name, &child) in &d.volatile {
                listing.push(DirEntry {
                    ino: child,
                    kind: self.node(child)?.kind(),
                    name: name.clone(),
                });
            }
            self.handles.get_mut(&fh).expect("checked above").listing = listing;
        }
        let listing = &self.handles[&fh].listing;
        Ok(listing.iter().skip(offset as usize).cloned().collect())
    }

    // ---- power ------------------------------------------------------------

    /// The power cut: the volatile state becomes the durable one, every
    /// handle goes stale, orphans are wiped (see the module doc).
    pub(crate) fn power_cut(&mut self) -> Result<PowerCut, FsError> {
        let before = self.stats();
        let stale_handles = self.handles.len();
        self.handles.clear();
        let mut keep = HashSet::from([ROOT_INO]);
        let mut stack = vec![ROOT_INO];
        while let Some(dir) = stack.pop() {
            if let Body::Dir(d) = &self.nodes[&dir].body {
                for &child in d.durable.values() {
                    if keep.insert(child) {
                        stack.push(child);
                    }
                }
            }
        }
        let lost_inodes = self.nodes.len() - keep.len();
        self.nodes.retain(|ino, _| keep.contains(ino));
        for node in self.nodes.values_mut() {
            // Names in unreachable (orphan) directories are wiped with them.
            node.durable_links.retain(|(dir, _)| keep.contains(dir));
            node.links = node.durable_links.len() as u32;
            node.open = 0;
            node.meta_dirty = false;
            match &mut node.body {
                Body::File(f) => {
                    f.overlay = Overlay::clean(f.durable_size);
                    f.backing = None;
                }
                Body::Dir(d) => {
                    d.volatile = d.durable.clone();
                    if let Some((parent, _)) = node.durable_links.first() {
                        d.parent = *parent;
                    }
                }
            }
        }
        self.nodes.get_mut(&ROOT_INO).expect("the root stays").links = 1;
        self.power_cuts += 1;
        let orphans = self.root.join(ORPHANS_DIR);
        fs::remove_dir_all(&orphans)?;
        fs::create_dir(&orphans)?;
        // Modes, owners and times as the backing has them (what was synced).
        let inos: Vec<Ino> = self.nodes.keys().copied().collect();
        for ino in inos {
            let m = fs::symlink_metadata(self.backing_path(ino))?;
            self.node_mut(ino)?.meta = Meta::of(&m);
        }
        Ok(PowerCut {
            lost_dirty_bytes: before.dirty_bytes,
            reverted_files: before.dirty_files,
            reverted_dirs: before.pending_dirs,
            lost_inodes,
            stale_handles,
        })
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut stats = Stats {
            power_cuts: self.power_cuts,
            inodes: self.nodes.len(),
            open_handles: self.handles.len(),
            ..Stats::default()
        };
        for node in self.nodes.values() {
            match &node.body {
                Body::File(f) => {
                    if f.overlay.is_dirty(f.durable_size) {
                        stats.dirty_files += 1;
                        stats.dirty_bytes += f.overlay.dirty_bytes();
                    }
                }
                Body::Dir(d) => {
                    if d.volatile != d.durable {
                        stats.pending_dirs += 1;
                    }
                }
            }
        }
        stats
    }

    // ---- durability of the namespace --------------------------------------

    /// Makes a directory's entries durable: the backing directory is made
    /// to hold its volatile entries, removals first (so that a name freed
    /// and taken again is never in the way), then additions.
    fn sync_dir(&mut self, dir: Ino) -> Result<(), FsError> {
        let dir_path = self.backing_path(dir);
        let (durable, volatile) = {
            let d = self.dir(dir)?;
            (d.durable.clone(), d.volatile.clone())
        };
        for (name, &old) in &durable {
            if volatile.get(name) != Some(&old) {
                self.dir_mut(dir)?.durable.remove(name);
                self.unlink_durable(dir, &dir_path, name, old)?;
            }
        }
        for (name, &new) in &volatile {
            if durable.get(name) == Some(&new) {
                continue;
            }
            let target = dir_path.join(name);
            let node = self.node(new)?;
            match (node.kind(), node.durable_links.first().cloned()) {
                // A file durably named elsewhere gets a second name.
                (Kind::File, Some((other_dir, other_name))) => {
                    fs::hard_link(self.backing_path(other_dir).join(&other_name), &target)?;
                }
                // Never happens (a directory moves only within its parent,
                // and its old name went in the loop above); kept general.
                (Kind::Dir, Some((other_dir, other_name))) => {
                    fs::rename(self.backing_path(new), &target)?;
                    self.dir_mut(other_dir)?.durable.remove(&other_name);
                    self.node_mut(new)?.durable_links.remove(&(other_dir, other_name));
                }
                (_, None) => fs::rename(self.orphan_path(new), &target)?,
            }
            self.dir_mut(dir)?.durable.insert(name.clone(), new);
            self.node_mut(new)?.durable_links.insert((dir, name.clone()));
        }
        let node = self.node_mut(dir)?;
        if node.meta_dirty {
            let meta = node.meta.clone();
            node.meta_dirty = false;
            set_mode_and_owner(&dir_path, &meta)?;
        }
        Ok(())
    }

    /// Gives up the durable entry `name` → `child` of `dir` (whose backing
    /// is at `dir_path`; the caller removed the entry from its map). The
    /// child's durable contents stay if something still needs them.
    fn unlink_durable(&mut self, dir: Ino, dir_path: &Path, name: &OsStr, child: Ino) -> Result<(), FsError> {
        let path = dir_path.join(name);
        let orphan = self.orphan_path(child);
        let node = self.node_mut(child)?;
        node.durable_links.remove(&(dir, name.to_owned()));
        if !node.durable_links.is_empty() {
            // Another durable name (a file) keeps the contents.
            fs::remove_file(&path)?;
        } else if node.in_use() {
            fs::rename(&path, &orphan)?;
        } else {
            self.destroy(child, &path)?;
        }
        Ok(())
    }

    /// Removes an inode used by nothing, and its backing at `path`.
    fn destroy(&mut self, ino: Ino, path: &Path) -> Result<(), FsError> {
        let node = self.nodes.remove(&ino).expect("destroyed once");
        match node.body {
            Body::File(_) => fs::remove_file(path)?,
            Body::Dir(d) => {
                for (name, child) in d.durable {
                    self.unlink_durable(ino, path, &name, child)?;
                }
                // What is left is only what faultfs ignores (symlinks,
                // special files found in the backing directory).
                fs::remove_dir_all(path)?;
            }
        }
        Ok(())
    }

    /// After a use of `ino` ended: removes it if nothing needs it any more,
    /// or drops its dirty contents if nothing can sync them any more.
    fn reap(&mut self, ino: Ino) -> Result<(), FsError> {
        let Some(node) = self.nodes.get_mut(&ino) else {
            return Ok(());
        };
        if ino == ROOT_INO || node.in_use() {
            return Ok(());
        }
        if !node.durable_links.is_empty() {
            if let Body::File(f) = &mut node.body {
                f.overlay = Overlay::clean(f.durable_size);
                f.backing = None;
            }
            return Ok(());
        }
        let path = self.orphan_path(ino);
        self.destroy(ino, &path)
    }

    // ---- helpers ----------------------------------------------------------

    fn alloc_ino(&mut self) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        ino
    }

    fn new_handle(&mut self, ino: Ino) -> u64 {
        let fh = self.next_handle;
        self.next_handle += 1;
        self.handles.insert(
            fh,
            Handle {
                ino,
                listing: Vec::new(),
            },
        );
        fh
    }

    fn handle(&self, fh: u64) -> Result<Ino, FsError> {
        self.handles.get(&fh).map(|h| h.ino).ok_or(FsError::StaleHandle)
    }

    fn node(&self, ino: Ino) -> Result<&Node, FsError> {
        self.nodes.get(&ino).ok_or(FsError::NotFound)
    }

    fn node_mut(&mut self, ino: Ino) -> Result<&mut Node, FsError> {
        self.nodes.get_mut(&ino).ok_or(FsError::NotFound)
    }

    fn dir(&self, ino: Ino) -> Result<&DirNode, FsError> {
        match &self.node(ino)?.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(FsError::NotDir),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> Result<&mut DirNode, FsError> {
        match &mut self.node_mut(ino)?.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(FsError::NotDir),
        }
    }

    /// Refuses faultfs's own names at the root.
    fn check_name(&self, parent: Ino, name: &OsStr) -> Result<(), FsError> {
        if parent == ROOT_INO && is_reserved(name) {
            return Err(FsError::Reserved);
        }
        Ok(())
    }

    fn touch(&mut self, dir: Ino) {
        if let Some(node) = self.nodes.get_mut(&dir) {
            let now = SystemTime::now();
            node.meta.mtime = now;
            node.meta.ctime = now;
        }
    }

    /// Where an orphan keeps its backing.
    fn orphan_path(&self, ino: Ino) -> PathBuf {
        self.root.join(ORPHANS_DIR).join(ino.to_string())
    }

    /// Where an inode's backing is: at its first durable name, or orphaned.
    fn backing_path(&self, ino: Ino) -> PathBuf {
        if ino == ROOT_INO {
            return self.root.clone();
        }
        match self.nodes.get(&ino).and_then(|n| n.durable_links.first()) {
            Some((dir, name)) => self.backing_path(*dir).join(name),
            None => self.orphan_path(ino),
        }
    }

    /// Opens a file's backing file if it is not open.
    fn open_backing(&mut self, ino: Ino) -> Result<(), FsError> {
        match &self.node(ino)?.body {
            Body::File(f) if f.backing.is_none() => {}
            Body::File(_) => return Ok(()),
            Body::Dir(_) => return Err(FsError::IsDir),
        }
        let file = OpenOptions::new().read(true).write(true).open(self.backing_path(ino))?;
        if let Body::File(f) = &mut self.node_mut(ino)?.body {
            f.backing = Some(file);
        }
        Ok(())
    }

    /// A new empty file, orphaned until its name is synced.
    fn new_file(&mut self, parent: Ino, name: &OsStr, perm: u16, uid: u32, gid: u32) -> Result<Ino, FsError> {
        self.dir(parent)?;
        let ino = self.alloc_ino();
        let path = self.orphan_path(ino);
        let meta = Meta::new(perm, uid, gid);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(u32::from(meta.perm))
            .open(&path)?;
        set_mode_and_owner(&path, &meta)?;
        let body = Body::File(FileNode {
            durable_size: 0,
            overlay: Overlay::clean(0),
            backing: Some(file),
        });
        self.link_new(parent, name, ino, Node::new(meta, body))?;
        Ok(ino)
    }

    /// Gives a new inode its first (volatile) name.
    fn link_new(&mut self, parent: Ino, name: &OsStr, ino: Ino, mut node: Node) -> Result<(), FsError> {
        node.links = 1;
        self.nodes.insert(ino, node);
        self.dir_mut(parent)?.volatile.insert(name.to_owned(), ino);
        self.touch(parent);
        Ok(())
    }

    /// One volatile name of `ino` is gone.
    fn unlink_volatile(&mut self, ino: Ino) -> Result<(), FsError> {
        let node = self.node_mut(ino)?;
        node.links -= 1;
        node.meta.ctime = SystemTime::now();
        self.reap(ino)
    }
}

/// Sets a backing entry's mode and owner (the owner only where permitted:
/// a faultfs not run as root keeps its own).
fn set_mode_and_owner(path: &Path, meta: &Meta) -> Result<(), FsError> {
    fs::set_permissions(path, Permissions::from_mode(u32::from(meta.perm)))?;
    chown_lenient(std::os::unix::fs::chown(path, Some(meta.uid), Some(meta.gid)))
}

fn chown_lenient(result: io::Result<()>) -> Result<(), FsError> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Ok(()),
        other => Ok(other?),
    }
}
