//! The two error layers: [`FsError`] for one filesystem operation (what the
//! kernel hears as an errno) and [`FaultFsError`] for the library's own API
//! (mounting, power cuts, unmounting).

use std::io;
use std::path::PathBuf;

/// Why one filesystem operation failed. Each variant is one errno
/// ([`FsError::errno`]), which is all a process using the mount sees.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// No such name, inode or handle target (`ENOENT`).
    #[error("no such file or directory")]
    NotFound,
    /// The name is taken (`EEXIST`).
    #[error("file exists")]
    Exists,
    /// A directory was expected (`ENOTDIR`).
    #[error("not a directory")]
    NotDir,
    /// A file operation on a directory (`EISDIR`).
    #[error("is a directory")]
    IsDir,
    /// `rmdir` or a rename over a directory that still has entries (`ENOTEMPTY`).
    #[error("directory not empty")]
    NotEmpty,
    /// A directory renamed into another parent (`EXDEV`): faultfs moves
    /// directories only within their parent, so that a directory never has
    /// two durable parents. Tools such as `mv` fall back to copying.
    #[error("faultfs renames a directory only within its parent")]
    CrossDirRename,
    /// A name faultfs keeps for itself at the root (`EPERM`).
    #[error("the name is reserved by faultfs")]
    Reserved,
    /// A malformed request, such as an unknown control command (`EINVAL`).
    #[error("invalid argument")]
    Invalid,
    /// An operation faultfs does not implement (`EOPNOTSUPP`): symlinks,
    /// hard links, special files, `RENAME_EXCHANGE`, hole punching.
    #[error("operation not supported by faultfs")]
    Unsupported,
    /// A file handle that is not open: opened before a power cut, which
    /// closes every handle, or never opened (`ESTALE`).
    #[error("stale file handle (opened before a power cut)")]
    StaleHandle,
    /// The backing directory failed; its own errno, or `EIO`.
    #[error("backing directory: {0}")]
    Backing(#[from] io::Error),
}

impl FsError {
    /// The errno the kernel passes on to the process.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::Exists => libc::EEXIST,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::CrossDirRename => libc::EXDEV,
            FsError::Reserved => libc::EPERM,
            FsError::Invalid => libc::EINVAL,
            FsError::Unsupported => libc::EOPNOTSUPP,
            FsError::StaleHandle => libc::ESTALE,
            FsError::Backing(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}

/// Why a call of the library's API failed, grouped by what the caller
/// should do next.
#[derive(Debug, thiserror::Error)]
pub enum FaultFsError {
    // This machine cannot mount FUSE: skip, or fix the machine.
    /// `/dev/fuse` is missing (no FUSE module, or a container without the device).
    #[error("/dev/fuse is missing or cannot be opened: {0}")]
    NoFuseDevice(#[source] io::Error),
    /// mount(2) was refused: mounting FUSE without fusermount needs root
    /// (`CAP_SYS_ADMIN`).
    #[error("mounting FUSE at {mountpoint} is not permitted (faultfs mounts with mount(2) and needs root): {source}")]
    NotPermitted {
        /// Where the mount was asked for.
        mountpoint: PathBuf,
        /// mount(2)'s or open(2)'s error.
        source: io::Error,
    },

    // The caller's arguments are wrong: fix them.
    /// The backing directory or the mount point is not a directory (or is
    /// missing, or is a stale mount: see [`crate::unmount_lazy`]).
    #[error("{path} is not a usable directory: {source}")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
        /// What stat(2) or canonicalize said.
        source: io::Error,
    },
    /// One of the two directories lies inside the other, which would make
    /// faultfs read its own mount.
    #[error("the mount point {mountpoint} and the backing directory {backing} must not contain each other")]
    Overlap {
        /// The mount point.
        mountpoint: PathBuf,
        /// The backing directory.
        backing: PathBuf,
    },

    // An operation failed: report it.
    /// mount(2) or the FUSE handshake failed for another reason.
    #[error("mounting faultfs at {mountpoint}: {source}")]
    Mount {
        /// Where the mount was asked for.
        mountpoint: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// Reading or preparing the backing directory failed.
    #[error("backing directory {path}: {source}")]
    Backing {
        /// The backing directory.
        path: PathBuf,
        /// What failed.
        source: FsError,
    },
    /// The power cut could not clean the backing directory (the volatile
    /// state is gone all the same).
    #[error("power cut: {0}")]
    PowerCut(#[source] FsError),
    /// umount2(2) failed.
    #[error("unmounting {path}: {source}")]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// umount2(2)'s error.
        source: io::Error,
    },
    /// Reading `/proc/self/mountinfo` or writing the control file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

impl FaultFsError {
    /// True when this machine or user cannot mount FUSE at all (no
    /// `/dev/fuse`, not root): what a test skips on outside CI.
    pub fn is_unsupported_here(&self) -> bool {
        matches!(self, FaultFsError::NoFuseDevice(_) | FaultFsError::NotPermitted { .. })
    }
}
