//! faultfs: a FUSE passthrough filesystem that loses, at a power cut,
//! everything that was not fsynced — file data and directory entries alike —
//! as a strict POSIX reading of fsync allows (the model of LazyFS). It exists
//! for the drill's `power-cut` scenario: every member of the burned
//! datacenter runs on a faultfs, its processes are SIGKILLed, the power is
//! cut, and it restarts on what survived.
//!
//! # Use
//!
//! ```no_run
//! use firebreak_faultfs::FaultFs;
//! # fn main() -> Result<(), firebreak_faultfs::FaultFsError> {
//! // As root, with /dev/fuse; both directories must exist.
//! let fs = FaultFs::mount("/var/lib/drill/backing/dc2-1", "/var/lib/drill/data/dc2-1")?;
//! // ... run a member on /var/lib/drill/data/dc2-1, SIGKILL it ...
//! let cut = fs.power_cut()?; // what was lost: bytes, files, directories, inodes
//! // ... restart the member on the same path: it sees only the durable state.
//! drop(fs); // unmounts
//! # Ok(()) }
//! ```
//!
//! From another process, write `power-cut` to the control file at the root
//! of the mount (`echo power-cut > MOUNT/.faultfs-control`, or
//! [`power_cut_via_control`]); it returns once the cut is done, and reading
//! the file gives the [`Stats`]. The file is hidden from `readdir`.
//!
//! A faultfs left mounted by a process that died (its paths then fail with
//! "Transport endpoint is not connected") is removed with [`unmount_lazy`];
//! [`faultfs_mounts`] lists the mounts of type `fuse.faultfs`.
//!
//! # What is durable when
//!
//! Processes always see the volatile state: every write, truncate, create,
//! unlink, rename, mkdir and rmdir at once. A power cut keeps only:
//! - a file's **contents and size** as of its last `fsync` or `fdatasync`
//!   (`File::sync_all`, `File::sync_data`); `fsync` also keeps its mode and
//!   owner. Nothing else makes file data durable: `sync`/`syncfs` do not
//!   reach a FUSE filesystem.
//! - a directory's **entries** as of its last `fsync` on the directory
//!   itself (`File::open(dir)?.sync_all()`, FUSE's `fsyncdir`): every create,
//!   unlink, rename into or out of it, mkdir and rmdir in it. An fsync of a
//!   file never makes its name durable. A rename across two directories
//!   needs both synced: only the target synced leaves two names (a hard
//!   link), only the source none.
//! - only what is **reachable** through durable entries from the root: a
//!   file fsynced under a name that was never made durable, or in a new
//!   directory whose own name was never made durable, is gone with its data.
//!
//! The backing directory holds exactly the durable state at all times
//! (plus `.faultfs/`, where the synced data of files without a durable name
//! waits), so a crash of faultfs itself is a power cut too, and a new mount
//! of the same backing directory starts from it. Volatile state is in
//! memory: a file's data written since its last fsync (a log that syncs as
//! it goes holds only its last unsynced write), and pending namespace
//! changes. faultfs never fsyncs the backing directory itself: it simulates
//! power cuts on a machine whose power stays on.
//!
//! Supported: regular files and directories; create, open, read, write at
//! any offset, truncate, `fallocate` (mode 0 and `KEEP_SIZE`), fsync,
//! fdatasync, rename (and `RENAME_NOREPLACE`), unlink, mkdir, rmdir,
//! readdir, stat, chmod, chown, utimes, statfs. Refused with `EOPNOTSUPP`:
//! symlinks, hard links, special files, `RENAME_EXCHANGE`; with `EXDEV`: a
//! directory renamed into another parent (so a directory never has two
//! durable parents; `mv` falls back to copying); extended attributes are
//! unsupported (`EOPNOTSUPP`). Files are opened in direct-I/O mode (no
//! page cache to go stale at a power cut), so no shared writable `mmap`.
//!
//! # Mounting
//!
//! faultfs is built on `fuser` without libfuse: it calls mount(2) itself
//! (type `fuse.faultfs`, `allow_other`, `default_permissions`), which needs
//! root (`CAP_SYS_ADMIN`) and `/dev/fuse`, and nothing installed:
//! no `fusermount`, no libfuse. See [`mount`](crate::FaultFs::mount).
//!
//! # Layout
//! - `model`: the durability state machine (volatile over durable state,
//!   power cuts), unit-tested without FUSE; `overlay`: a file's unsynced
//!   bytes over its durable ones.
//! - `fuse`: the `fuser::Filesystem` glue; `control`: the control file.
//! - `mount`: mount(2), the [`Mounted`] handle, unmounting.
//! - `lcg` (tests only): the seeded generator of the randomized tests.

mod control;
mod error;
mod fuse;
#[cfg(test)]
mod lcg;
mod model;
mod mount;
mod overlay;

pub use control::{power_cut_via_control, POWER_CUT_COMMAND};
pub use error::{FaultFsError, FsError};
pub use model::{PowerCut, Stats, CONTROL_FILE};
pub use mount::{faultfs_mounts, unmount_lazy, FaultFs, Mounted, FSTYPE, UNMOUNT_WAIT};
