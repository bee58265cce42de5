//! etcd's snapshot format, both ways.
//!
//! A snapshot (what `Maintenance.Snapshot` streams and `etcdctl snapshot
//! save` writes) is etcd's backend database, a bbolt file, followed by the
//! SHA-256 of that file. This crate writes one from Firebreak's store and
//! auth state, so that `etcdctl snapshot status` and `etcdctl snapshot
//! restore` (`etcdutl` from 3.5 on) take a Firebreak backup, and reads one
//! that etcd wrote into the state a restored Firebreak member starts from:
//! keys with their revision history, the compaction revision, leases,
//! alarms, users, roles and the auth flag and revision.
//!
//! - [`bbolt`]: the page format, read and written by hand (see
//!   `docs/snapshots.md` for why no bbolt crate).
//! - [`etcd`]: etcd's buckets and the encoding of their keys and values
//!   (small prost messages of etcd's `mvccpb`, `leasepb` and `authpb`).
//! - [`encode`] / [`decode`]: the whole snapshot, trailer included.
//!
//! # Correctness
//! - [`decode`] of [`encode`] gives back the same store (records, revision,
//!   compaction, leases with their keys, alarms) and auth state (without
//!   tokens): `tests/round_trip.rs`.
//! - A snapshot etcd wrote reads as etcd serves it after a restore, and
//!   one Firebreak wrote restores into etcd and serves the same data:
//!   `crates/firebreak/tests/snapshot_format.rs`, against a real etcd.
//! - [`decode`] never panics and allocates in proportion to its input:
//!   every length read from the file is checked against the bytes present
//!   ([`bbolt::read`], prost), `tests/hostile.rs`.

pub mod bbolt;
pub mod etcd;

use sha2::{Digest, Sha256};

pub use bbolt::FormatError;
pub use etcd::{Contents, Position, Restored};

/// Bytes of the SHA-256 trailer.
pub const TRAILER: usize = 32;

/// Whether to check the SHA-256 trailer when reading a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashCheck {
    /// Refuse a snapshot whose trailer does not match, or that has none
    /// (as `etcdutl snapshot restore` does).
    Verify,
    /// Take the file as it is (a trailer, if there is one, is dropped
    /// unchecked): `--skip-hash-check`, for a `db` file copied out of a
    /// data directory.
    Skip,
}

/// Why a snapshot could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "snapshot integrity check failed: the SHA-256 at its end does not match its contents \
         (the file is damaged or truncated)"
    )]
    HashMismatch,
    #[error(
        "the snapshot has no SHA-256 trailer (its size is not whole 512-byte blocks plus 32 bytes): \
         a db file copied from a data directory? Restore it with --skip-hash-check"
    )]
    MissingHash,
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("not an etcd snapshot Firebreak can read: {0}")]
    Schema(String),
}

/// Whether `bytes` start like a bbolt database (an etcd snapshot) rather
/// than some other file.
pub fn looks_like_etcd_snapshot(bytes: &[u8]) -> bool {
    bbolt::looks_like_bbolt(bytes)
}

/// Whether a file of `len` bytes ends with a SHA-256 trailer: etcd's test,
/// the database being whole pages (a multiple of 512 bytes).
pub fn has_trailer(len: usize) -> bool {
    len % 512 == TRAILER
}

/// The snapshot of `contents`: a bbolt database in etcd's schema, then
/// its SHA-256.
pub fn encode(contents: &Contents) -> Vec<u8> {
    let txid = contents.position.consistent_index.max(1);
    let mut out = bbolt::write(&contents.to_buckets(), txid);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// The store and auth state of a snapshot etcd (or Firebreak) wrote.
pub fn decode(bytes: &[u8], check: HashCheck) -> Result<Restored, SnapshotError> {
    let db = if has_trailer(bytes.len()) {
        let (db, sum) = bytes.split_at(bytes.len() - TRAILER);
        if check == HashCheck::Verify && Sha256::digest(db).as_slice() != sum {
            return Err(SnapshotError::HashMismatch);
        }
        db
    } else if check == HashCheck::Verify {
        return Err(SnapshotError::MissingHash);
    } else {
        bytes
    };
    let root = bbolt::read(db)?;
    etcd::from_buckets(&root)
}
