//! The Raft state machine: the MVCC store, plus durable snapshots of it.
//!
//! The store lives in memory, behind a lock that readers share. Its
//! durable form is the latest snapshot file plus the Raft log after it: on
//! start-up the snapshot is loaded and openraft re-applies the committed
//! entries that follow.
//!
//! # Correctness
//! - A snapshot file is written to a temporary name, fsynced, renamed into
//!   place and the directory fsynced, so a crash leaves either the old or
//!   the new snapshot, never a torn one.
//! - The store, the last applied log id and the membership live under one
//!   lock ([`Replica`]), so a snapshot always describes one state.
//! - openraft purges log entries only up to a snapshot it has built or
//!   installed, and both are on disk before that happens.
//! - An entry is applied only once the local log holds it on disk
//!   ([`Durability`]): a leader's appends may be acknowledged to openraft
//!   before their fsync (see [`crate::log_store`]), and applying is what
//!   makes a commit visible to clients, readers and snapshots.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use firebreak_mvcc::Store;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use crate::log_store::Durability;
use crate::types::{Applied, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

const SNAPSHOT_FILE: &str = "snapshot.bin";

/// The applied state of this node.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Replica {
    pub store: Store,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

/// The replica, shared by the state machine (which writes) and readers.
pub type SharedReplica = Arc<RwLock<Replica>>;

pub struct StateMachine {
    replica: SharedReplica,
    /// The store's revision after each applied batch, for watchers.
    revisions: tokio::sync::watch::Sender<i64>,
    dir: PathBuf,
    /// Snapshots handed out by this process, for unique snapshot ids.
    serial: u64,
    /// The local log's durability, waited for before applying.
    log: Option<Durability>,
}

fn snap_err(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::new(ErrorSubject::Snapshot(None), verb, openraft::AnyError::new(&e)).into()
}

/// Writes `bytes` to `dir/name` atomically and durably.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Writes the snapshot a restored member starts from: `replica` with no
/// log behind it.
pub fn write_initial_snapshot(dir: &Path, replica: &Replica) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let meta = SnapshotMeta {
        last_log_id: None,
        last_membership: replica.membership.clone(),
        snapshot_id: "restored".into(),
    };
    let bytes = bincode::serialize(&(&meta, replica)).map_err(std::io::Error::other)?;
    write_atomically(dir, SNAPSHOT_FILE, &bytes)
}

/// A snapshot file: its meta, then the replica.
#[derive(Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    replica: Replica,
}

fn read_snapshot_file(dir: &Path) -> Result<Option<(Vec<u8>, SnapshotFile)>, StorageError> {
    let bytes = match std::fs::read(dir.join(SNAPSHOT_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(snap_err(ErrorVerb::Read, e)),
    };
    let file = bincode::deserialize(&bytes).map_err(|e| snap_err(ErrorVerb::Read, e))?;
    Ok(Some((bytes, file)))
}

impl StateMachine {
    /// Opens the state machine in `dir`, loading the latest snapshot.
    pub fn open(dir: &Path) -> Result<StateMachine, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        let replica = match read_snapshot_file(dir)? {
            Some((_, file)) => file.replica,
            None => Replica::default(),
        };
        let (revisions, _) = tokio::sync::watch::channel(replica.store.current_revision());
        Ok(StateMachine {
            revisions,
            replica: Arc::new(RwLock::new(replica)),
            dir: dir.to_owned(),
            serial: 0,
            log: None,
        })
    }

    /// Applies entries only once `log` has them on disk: required when the
    /// log answers a leader's appends before their fsync.
    pub fn wait_for_log(mut self, log: Durability) -> StateMachine {
        self.log = Some(log);
        self
    }

    /// The replica, for readers.
    pub fn replica(&self) -> SharedReplica {
        self.replica.clone()
    }

    /// The applied revision, updated after every applied batch.
    pub fn revisions(&self) -> tokio::sync::watch::Receiver<i64> {
        self.revisions.subscribe()
    }
}

/// Builds a snapshot on its own task, from a handle on the replica.
pub struct SnapshotBuilder {
    replica: SharedReplica,
    dir: PathBuf,
    serial: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (meta, bytes) = {
            let replica = self.replica.read().expect("replica lock");
            let last = replica.last_applied;
            let meta = SnapshotMeta {
                last_log_id: last,
                last_membership: replica.membership.clone(),
                snapshot_id: format!(
                    "{}-{}-{}",
                    last.map_or(0, |l| l.leader_id.term),
                    last.map_or(0, |l| l.index),
                    self.serial
                ),
            };
            let bytes = bincode::serialize(&(&meta, &*replica)).map_err(|e| snap_err(ErrorVerb::Write, e))?;
            (meta, bytes)
        };
        write_atomically(&self.dir, SNAPSHOT_FILE, &bytes).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        tracing::info!(snapshot_id = %meta.snapshot_id, bytes = bytes.len(), "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let replica = self.replica.read().expect("replica lock");
        Ok((replica.last_applied, replica.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if let (Some(log), Some(last)) = (&self.log, entries.last()) {
            log.wait_through(last.log_id.index).await.map_err(|e| {
                openraft::StorageIOError::new(
                    ErrorSubject::Logs,
                    ErrorVerb::Write,
                    openraft::AnyError::new(&std::io::Error::other(e)),
                )
            })?;
        }
        let mut out = Vec::with_capacity(entries.len());
        let mut replica = self.replica.write().expect("replica lock");
        for entry in entries {
            replica.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => out.push(Applied(None)),
                EntryPayload::Normal(cmd) => out.push(Applied(Some(replica.store.apply(&cmd)))),
                EntryPayload::Membership(m) => {
                    replica.membership = StoredMembership::new(Some(entry.log_id), m);
                    out.push(Applied(None));
                }
            }
        }
        self.revisions.send_replace(replica.store.current_revision());
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.serial += 1;
        SnapshotBuilder {
            replica: self.replica.clone(),
            dir: self.dir.clone(),
            serial: self.serial,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let file: SnapshotFile = bincode::deserialize(&bytes).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        write_atomically(&self.dir, SNAPSHOT_FILE, &bytes).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let mut replica = self.replica.write().expect("replica lock");
        *replica = file.replica;
        replica.last_applied = meta.last_log_id;
        replica.membership = meta.last_membership.clone();
        self.revisions.send_replace(replica.store.current_revision());
        tracing::info!(snapshot_id = %meta.snapshot_id, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(read_snapshot_file(&self.dir)?.map(|(bytes, file)| Snapshot {
            meta: file.meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}
