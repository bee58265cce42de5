//! Maintenance of a member: hashes, alarms and the space quota, snapshots
//! for backup, and moving the leadership.

use std::time::Duration;

use firebreak_auth::AuthState;
use firebreak_mvcc::{
    AlarmAction, AlarmMember, AlarmRequest, AlarmResponse, AlarmType, KvError, KvHash, WriteCommand, WriteResponse,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{NodeError, Unavailable};
use crate::node::Node;
use crate::state_machine::Replica;
use crate::transport::{ForwardError, PeerRequest};

/// First bytes of a Firebreak backup snapshot.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"FBSNAP1\n";

/// What a backup snapshot holds: the store and the auth state (users,
/// roles, permissions; no tokens) of one replica.
#[derive(Serialize, Deserialize)]
struct Backup {
    store: firebreak_mvcc::Store,
    auth: AuthState,
}

/// A backup written before backups held the auth state.
#[derive(Deserialize)]
struct BackupBeforeAuth {
    store: firebreak_mvcc::Store,
}

/// Why a backup snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not a Firebreak snapshot (bad magic)")]
    Magic,
    #[error("snapshot checksum mismatch: the file is damaged or truncated")]
    Checksum,
    #[error("cannot decode snapshot: {0}")]
    Decode(String),
}

/// Decodes a backup snapshot (as `Maintenance.Snapshot` streams it) into
/// the state a restored member starts from.
///
/// The layout: magic, payload length (u64, big-endian), the bincode
/// payload, its CRC-32, zero padding to a multiple of 512 bytes, and the
/// SHA-256 of all that. The trailer is etcd's convention: etcdctl checks
/// that a saved snapshot ends with a SHA-256 after whole 512-byte blocks.
pub fn decode_backup(bytes: &[u8]) -> Result<Replica, BackupError> {
    if bytes.len() % 512 != 32 {
        return Err(BackupError::Checksum);
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err(BackupError::Checksum);
    }
    let rest = body.strip_prefix(SNAPSHOT_MAGIC).ok_or(BackupError::Magic)?;
    let len = rest
        .get(..8)
        .map(|l| u64::from_be_bytes(l.try_into().expect("eight bytes")) as usize)
        .ok_or(BackupError::Checksum)?;
    let payload = rest.get(8..8 + len).ok_or(BackupError::Checksum)?;
    let crc = rest.get(8 + len..12 + len).ok_or(BackupError::Checksum)?;
    if crc32fast::hash(payload).to_be_bytes() != crc {
        return Err(BackupError::Checksum);
    }
    // An old backup does not decode as the current layout (it ends before
    // the auth state) and a current one not as the old (bytes left over).
    let backup: Backup = crate::codec::decode(payload).or_else(|current| {
        crate::codec::decode::<BackupBeforeAuth>(payload)
            .map(|old| Backup {
                store: old.store,
                auth: AuthState::default(),
            })
            .map_err(|_| BackupError::Decode(current.to_string()))
    })?;
    Ok(Replica {
        store: backup.store,
        last_applied: None,
        membership: Default::default(),
        auth: backup.auth,
    })
}

impl Node {
    /// Raises NOSPACE (through the log) and refuses the request if adding
    /// `extra` bytes would pass the space quota, as etcd's quota does.
    pub(crate) async fn check_quota(&self, extra: usize) -> Result<(), NodeError> {
        let state = || {
            let replica = self.replica.read().expect("replica lock");
            (replica.store.no_space(), replica.store.size_bytes())
        };
        let (raised, size) = state();
        if !raised && size + extra as u64 <= self.quota_bytes {
            return Ok(());
        }
        // Before refusing, catch up with the leader: this replica may not
        // have applied a disarm, or the deletes and compactions that freed
        // space.
        self.read_barrier().await?;
        let (raised, size) = state();
        if raised {
            return Err(KvError::NoSpace.into());
        }
        if size + extra as u64 <= self.quota_bytes {
            return Ok(());
        }
        tracing::warn!(size, quota = self.quota_bytes, "space quota exceeded; raising NOSPACE");
        self.alarm(AlarmAction::Activate, self.id, AlarmType::NoSpace).await?;
        Err(KvError::NoSpace.into())
    }

    /// Raises or clears an alarm through the log.
    pub async fn alarm(
        &self,
        action: AlarmAction,
        member_id: u64,
        alarm: AlarmType,
    ) -> Result<AlarmResponse, NodeError> {
        let req = AlarmRequest {
            action,
            member_id,
            alarm,
        };
        match self.write(WriteCommand::Alarm(req)).await? {
            WriteResponse::Alarm(r) => Ok(r),
            other => unreachable!("an alarm answered with {other:?}"),
        }
    }

    /// The raised alarms, as of a linearizable read.
    pub async fn alarms(&self) -> Result<Vec<AlarmMember>, NodeError> {
        self.read_barrier().await?;
        Ok(self.replica.read().expect("replica lock").store.alarms())
    }

    /// HashKV of this replica at `revision` (0: current).
    pub fn hash_kv(&self, revision: i64) -> Result<KvHash, KvError> {
        self.replica.read().expect("replica lock").store.hash_kv(revision)
    }

    /// Hash of this replica's whole state.
    pub fn hash(&self) -> (u32, i64) {
        let replica = self.replica.read().expect("replica lock");
        (replica.store.hash_all(), replica.store.current_revision())
    }

    /// A backup of this replica's store, in the layout of [`decode_backup`].
    pub fn backup(&self) -> Vec<u8> {
        let payload = {
            let replica = self.replica.read().expect("replica lock");
            #[derive(Serialize)]
            struct BackupRef<'a> {
                store: &'a firebreak_mvcc::Store,
                auth: AuthState,
            }
            let backup = BackupRef {
                store: &replica.store,
                auth: replica.auth.without_tokens(),
            };
            bincode::serialize(&backup).expect("the store serializes")
        };
        let mut out = Vec::with_capacity(payload.len() + 600);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        out.extend_from_slice(&payload);
        out.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        out.resize(out.len().div_ceil(512) * 512, 0);
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// Moves the leadership to `target` (a voter): it campaigns, and the
    /// call waits until it leads. Only the leader accepts it, as in etcd.
    pub async fn move_leader(&self, target: u64) -> Result<(), NodeError> {
        if self.serving_term_soon().await.is_none() {
            return Err(NodeError::NotLeader);
        }
        if target == self.id {
            return Ok(());
        }
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let Some(member) = membership.membership().get_node(&target).cloned() else {
            return Err(NodeError::BadTarget(format!("{target:x} is not a member")));
        };
        if !membership.membership().voter_ids().any(|v| v == target) {
            return Err(NodeError::BadTarget(format!("{target:x} is a learner")));
        }
        let client = self.peers.get(target, &member.peer_addr);
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        while tokio::time::Instant::now() < deadline {
            let _ = client.call(&PeerRequest::Campaign, Duration::from_secs(1)).await;
            let waited = self
                .raft
                .wait(Some(self.election_timeout * 2))
                .metrics(|m| m.current_leader == Some(target), "leader moved")
                .await;
            if waited.is_ok() {
                return Ok(());
            }
        }
        Err(Unavailable::Timeout.into())
    }

    /// Starts an election here at once (the receiving end of MoveLeader).
    pub(crate) async fn start_election(&self) -> Result<(), ForwardError> {
        self.raft
            .trigger()
            .elect()
            .await
            .map_err(|e| ForwardError::Unavailable(e.to_string()))
    }
}

/// Why a data directory could not be restored from a backup.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error("{0} already holds a member's data; restore into a new, empty data directory")]
    NotEmpty(String),
    #[error("cannot write {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Prepares an empty data directory so that a member started on it (with
/// a new cluster's configuration) begins from the backup's store, as
/// `etcdutl snapshot restore` does. Every member of the new cluster is
/// restored from the same backup.
pub fn restore_backup(bytes: &[u8], data_dir: &std::path::Path) -> Result<(), RestoreError> {
    let replica = decode_backup(bytes)?;
    if data_dir.join("raft").exists() || data_dir.join("snapshot").exists() {
        return Err(RestoreError::NotEmpty(data_dir.display().to_string()));
    }
    let dir = data_dir.join("snapshot");
    crate::state_machine::write_initial_snapshot(&dir, &replica).map_err(|source| RestoreError::Io {
        path: dir.display().to_string(),
        source,
    })
}
