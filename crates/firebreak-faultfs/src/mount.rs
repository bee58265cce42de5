//! Mounting and unmounting: [`FaultFs::mount`] returns a [`Mounted`]
//! handle, which unmounts on drop; [`unmount_lazy`] and [`faultfs_mounts`]
//! clean up after a process that died with a mount.
//!
//! faultfs mounts with mount(2) itself, as root, the way libfuse does when
//! it runs as root: it opens `/dev/fuse`, mounts `fuse.faultfs` with
//! `fd=N,rootmode=…,user_id=…,group_id=…,allow_other,default_permissions`,
//! and hands the descriptor to `fuser::Session::from_fd`. No `fusermount`,
//! no libfuse, no pkg-config: none of them needs to be installed. (fuser's
//! own mount would also call mount(2) as root, but falls back to
//! `fusermount3` on `EPERM`, and its unmount-on-drop would unmount by path
//! whatever is mounted there later; so faultfs keeps both in its hands.)
//!
//! # Correctness
//! - A [`Mounted`] unmounts only its own mount: the path must still show
//!   the device it was mounted with, so a later mount at the same path is
//!   never taken down.
//! - Unmounting never hangs: a busy mount is detached lazily
//!   (`MNT_DETACH`), and if its users keep the session alive for
//!   [`UNMOUNT_WAIT`], the connection is aborted through fusectl where it
//!   is mounted, else the session threads are left to end with the users.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuser::{BackgroundSession, Session, SessionACL};

use crate::error::FaultFsError;
use crate::fuse::{FuseFs, Shared};
use crate::model::{Model, PowerCut, Stats, CONTROL_FILE};

/// The filesystem type as `/proc/self/mountinfo` shows it.
pub const FSTYPE: &str = "fuse.faultfs";

/// How long unmounting waits for the session threads to end.
pub const UNMOUNT_WAIT: Duration = Duration::from_secs(5);

/// FUSE threads serving one mount.
const FUSE_THREADS: usize = 2;

/// faultfs: [`FaultFs::mount`] mounts one.
#[derive(Debug, Clone, Copy)]
pub struct FaultFs;

impl FaultFs {
    /// Mounts a faultfs at `mountpoint` over `backing`, whose tree is taken
    /// as the durable state, and serves it on background threads until the
    /// returned handle is dropped. Both must be existing directories, neither
    /// inside the other. Needs root and `/dev/fuse`.
    pub fn mount(backing: impl AsRef<Path>, mountpoint: impl AsRef<Path>) -> Result<Mounted, FaultFsError> {
        let backing = usable_dir(backing.as_ref())?;
        let mountpoint = usable_dir(mountpoint.as_ref())?;
        if backing.starts_with(&mountpoint) || mountpoint.starts_with(&backing) {
            return Err(FaultFsError::Overlap { mountpoint, backing });
        }
        let model = Model::load(&backing).map_err(|source| FaultFsError::Backing {
            path: backing.clone(),
            source,
        })?;
        let shared = Arc::new(Shared::new(model));
        let device = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .map_err(|e| match e.kind() {
                io::ErrorKind::PermissionDenied => FaultFsError::NotPermitted {
                    mountpoint: mountpoint.clone(),
                    source: e,
                },
                _ => FaultFsError::NoFuseDevice(e),
            })?;
        mount_fuse(&device, &mountpoint)?;
        let mount_error = |source| {
            // The kernel waits for an answer nobody will give: detach.
            let _ = unmount_lazy(&mountpoint);
            FaultFsError::Mount {
                mountpoint: mountpoint.clone(),
                source,
            }
        };
        let mut config = fuser::Config::default();
        config.acl = SessionACL::All;
        config.n_threads = Some(FUSE_THREADS);
        let fs = FuseFs::new(shared.clone(), backing.clone());
        // from_fd answers the kernel's INIT, sent at mount(2), before returning.
        let session = Session::from_fd(fs, OwnedFd::from(device), SessionACL::All, config).map_err(mount_error)?;
        let session = session.spawn().map_err(mount_error)?;
        let device = fs::metadata(&mountpoint).map(|m| m.dev()).ok();
        tracing::info!(mountpoint = %mountpoint.display(), backing = %backing.display(), "faultfs mounted");
        Ok(Mounted {
            shared,
            session: Some(session),
            mountpoint,
            backing,
            device,
        })
    }
}

/// A mounted faultfs. Dropping it unmounts it.
#[derive(Debug)]
pub struct Mounted {
    /// The model, shared with the FUSE threads.
    shared: Arc<Shared>,
    /// The FUSE threads; `None` once unmounted.
    session: Option<BackgroundSession>,
    /// Where it is mounted (canonical).
    mountpoint: PathBuf,
    /// The backing directory (canonical).
    backing: PathBuf,
    /// The mount's `st_dev`, to recognise it at unmount time and find its
    /// fusectl connection.
    device: Option<u64>,
}

impl Mounted {
    /// Cuts the power: the whole filesystem goes back to its durable state
    /// at once (see the crate doc); every open handle becomes stale. Call
    /// it once the processes using the mount are dead; the mount stays up.
    pub fn power_cut(&self) -> Result<PowerCut, FaultFsError> {
        let cut = self.shared.lock().power_cut().map_err(FaultFsError::PowerCut)?;
        tracing::info!(mountpoint = %self.mountpoint.display(), ?cut, "faultfs: power cut");
        Ok(cut)
    }

    /// The volatile state's size now.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats()
    }

    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The backing directory, which holds exactly the durable state (and
    /// `.faultfs/`, the data of files not yet durably named).
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// The control file, through which another process can cut the power.
    pub fn control_file(&self) -> PathBuf {
        self.mountpoint.join(CONTROL_FILE)
    }

    /// Unmounts now, reporting a failure (dropping does the same silently).
    pub fn unmount(mut self) -> Result<(), FaultFsError> {
        self.unmount_now()
    }

    fn unmount_now(&mut self) -> Result<(), FaultFsError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        // A path that no longer shows our device is someone else's mount.
        let ours = fs::metadata(&self.mountpoint).map_or(true, |m| Some(m.dev()) == self.device);
        let result = if ours {
            match umount2(&self.mountpoint, 0) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => umount2(&self.mountpoint, libc::MNT_DETACH),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
                other => other,
            }
        } else {
            Ok(())
        };
        let started = Instant::now();
        let mut aborted = false;
        while !session.guard.is_finished() {
            if !aborted && started.elapsed() > UNMOUNT_WAIT / 5 {
                abort_connection(self.device);
                aborted = true;
            }
            if started.elapsed() > UNMOUNT_WAIT {
                tracing::warn!(mountpoint = %self.mountpoint.display(), "faultfs: still in use after unmounting; leaving its threads to the last user");
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if session.guard.is_finished() {
            if let Err(e) = session.join() {
                tracing::warn!(error = %e, "faultfs: the FUSE session ended with an error");
            }
        }
        result.map_err(|source| FaultFsError::Unmount {
            path: self.mountpoint.clone(),
            source,
        })
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_now() {
            tracing::warn!(error = %e, "faultfs: unmounting failed");
        }
    }
}

/// Detaches whatever is mounted at `path` (umount2 with `MNT_DETACH`), for
/// a stale mount whose faultfs process died ("Transport endpoint is not
/// connected"). Returns false if nothing was mounted there.
pub fn unmount_lazy(path: impl AsRef<Path>) -> Result<bool, FaultFsError> {
    let path = path.as_ref();
    match umount2(path, libc::MNT_DETACH) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => Ok(false),
        Err(source) => Err(FaultFsError::Unmount {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The mount points of every faultfs mounted in this mount namespace (live
/// or stale), from `/proc/self/mountinfo`: for a sweep of leftovers, with
/// [`unmount_lazy`] (filter them by path: another process's live mounts are
/// listed too).
pub fn faultfs_mounts() -> Result<Vec<PathBuf>, FaultFsError> {
    let path = Path::new("/proc/self/mountinfo");
    let text = fs::read_to_string(path).map_err(|source| FaultFsError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(parse_mountinfo(&text))
}

/// Mount points whose filesystem type is [`FSTYPE`].
fn parse_mountinfo(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            let mountpoint = left.split(' ').nth(4)?;
            (fstype == FSTYPE).then(|| PathBuf::from(unescape_octal(mountpoint)))
        })
        .collect()
}

/// Undoes mountinfo's `\040`-style escapes.
fn unescape_octal(s: &str) -> std::ffi::OsString {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    std::ffi::OsStr::from_bytes(&out).to_owned()
}

/// Canonicalizes a path that must be a directory.
fn usable_dir(path: &Path) -> Result<PathBuf, FaultFsError> {
    let bad = |source| FaultFsError::NotADirectory {
        path: path.to_owned(),
        source,
    };
    let canonical = path.canonicalize().map_err(bad)?;
    if !fs::metadata(&canonical).map_err(bad)?.is_dir() {
        return Err(bad(io::Error::from(io::ErrorKind::NotADirectory)));
    }
    Ok(canonical)
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// mount(2) of a FUSE filesystem served through `device`.
fn mount_fuse(device: &File, mountpoint: &Path) -> Result<(), FaultFsError> {
    let failed = |source: io::Error| match source.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => FaultFsError::NotPermitted {
            mountpoint: mountpoint.to_owned(),
            source,
        },
        _ => FaultFsError::Mount {
            mountpoint: mountpoint.to_owned(),
            source,
        },
    };
    let mode = fs::metadata(mountpoint).map_err(failed)?.mode();
    // SAFETY: getuid and getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let options = format!(
        "fd={},rootmode={mode:o},user_id={uid},group_id={gid},allow_other,default_permissions",
        device.as_raw_fd()
    );
    let target = c_path(mountpoint).map_err(failed)?;
    let data = CString::new(options).expect("no NUL in the options");
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            c"faultfs".as_ptr(),
            target.as_ptr(),
            c"fuse.faultfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(failed(io::Error::last_os_error()));
    }
    Ok(())
}

fn umount2(path: &Path, flags: libc::c_int) -> io::Result<()> {
    let target = c_path(path)?;
    // SAFETY: `target` is a NUL-terminated path that outlives the call.
    if unsafe { libc::umount2(target.as_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Aborts a FUSE connection through fusectl, if fusectl is mounted (best
/// effort: unblocks a session whose users never let go).
fn abort_connection(device: Option<u64>) {
    let Some(dev) = device else { return };
    // glibc's dev_t encoding; fusectl names a connection by the kernel's
    // (major << 20 | minor).
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let path = format!("/sys/fs/fuse/connections/{}/abort", (major << 20) | minor);
    if fs::write(&path, "1").is_ok() {
        tracing::warn!(connection = %path, "faultfs: aborted a FUSE connection still in use");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Mounted>();
    }

    #[test]
    fn mountinfo_lists_faultfs_mounts_only() {
        let text = "\
36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
120 27 0:63 / /tmp/a\\040b/mnt rw,nosuid,nodev,relatime - fuse.faultfs faultfs rw,user_id=0,group_id=0,allow_other
121 27 0:64 / /tmp/other rw,nosuid,nodev,relatime - fuse.sshfs host: rw,user_id=0,group_id=0
";
        assert_eq!(parse_mountinfo(text), vec![PathBuf::from("/tmp/a b/mnt")]);
    }

    #[test]
    fn unmounting_a_path_that_is_no_mount_says_so() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping: umount2 needs root to say EINVAL rather than EPERM");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(!unmount_lazy(dir.path()).unwrap());
        assert!(!unmount_lazy(dir.path().join("missing")).unwrap());
    }

    #[test]
    fn overlapping_directories_are_refused_before_mounting() {
        let dir = tempfile::tempdir().unwrap();
        let inner = dir.path().join("mnt");
        std::fs::create_dir(&inner).unwrap();
        assert!(matches!(
            FaultFs::mount(dir.path(), &inner),
            Err(FaultFsError::Overlap { .. })
        ));
        assert!(matches!(
            FaultFs::mount(&inner, dir.path()),
            Err(FaultFsError::Overlap { .. })
        ));
        assert!(matches!(
            FaultFs::mount(dir.path().join("missing"), &inner),
            Err(FaultFsError::NotADirectory { .. })
        ));
    }
}
