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
use crate::transport::ForwardError;
use openraft::async_runtime::WatchReceiver as _;

/// First bytes of a backup in Firebreak's own format, which
/// `Maintenance.Snapshot` streamed before it streamed etcd's;
/// [`decode_backup`] still reads it.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"FBSNAP1\n";

pub use firebreak_snapshot::HashCheck;

/// What a backup in Firebreak's own format holds: the store and the auth
/// state (users, roles, permissions; no tokens) of one replica.
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
    #[error(transparent)]
    Etcd(#[from] firebreak_snapshot::SnapshotError),
    #[error("snapshot checksum mismatch: the file is damaged or truncated")]
    Checksum,
    #[error("cannot decode snapshot: {0}")]
    Decode(String),
}

/// Decodes a backup snapshot into the state a restored member starts
/// from, checking its SHA-256 trailer: see [`decode_backup_with`].
pub fn decode_backup(bytes: &[u8]) -> Result<Replica, BackupError> {
    decode_backup_with(bytes, HashCheck::Verify)
}

/// Decodes a backup snapshot into the state a restored member starts
/// from. Two formats:
/// - etcd's (what `Maintenance.Snapshot` streams, and what `etcdctl
///   snapshot save` writes against etcd): a bbolt database and its
///   SHA-256, read by `firebreak-snapshot`; `check` says whether to
///   insist on the SHA-256.
/// - Firebreak's own, which it streamed before: magic, payload length
///   (u64, big-endian), the bincode payload, its CRC-32, zero padding to a
///   multiple of 512 bytes, and the SHA-256 of all that (always checked).
pub fn decode_backup_with(bytes: &[u8], check: HashCheck) -> Result<Replica, BackupError> {
    let (store, auth) = if bytes.starts_with(SNAPSHOT_MAGIC) {
        decode_own_backup(bytes)?
    } else {
        let restored = firebreak_snapshot::decode(bytes, check)?;
        (restored.store, restored.auth)
    };
    Ok(Replica {
        store,
        last_applied: None,
        membership: Default::default(),
        auth,
    })
}

/// Decodes a backup in Firebreak's own format (it starts with the magic).
fn decode_own_backup(bytes: &[u8]) -> Result<(firebreak_mvcc::Store, AuthState), BackupError> {
    if bytes.len() % 512 != 32 {
        return Err(BackupError::Checksum);
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err(BackupError::Checksum);
    }
    let rest = &body[SNAPSHOT_MAGIC.len()..];
    let len = rest
        .get(..8)
        .map(|l| u64::from_be_bytes(l.try_into().expect("eight bytes")))
        .and_then(|l| usize::try_from(l).ok())
        .ok_or(BackupError::Checksum)?;
    let payload = rest.get(8..8usize.saturating_add(len)).ok_or(BackupError::Checksum)?;
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
    Ok((backup.store, backup.auth))
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

    /// A backup of this replica in etcd's snapshot format (a bbolt
    /// database in etcd's schema, then its SHA-256): the state as of the
    /// last applied entry. The replica is held only for an instant, while
    /// a copy-on-write view of it is taken; its records are copied out and
    /// the file laid out from that view while writes go on.
    pub fn backup(&self) -> Vec<u8> {
        let contents = {
            let replica = self.replica.read().expect("replica lock").clone();
            let position = firebreak_snapshot::Position {
                consistent_index: replica.last_applied.map_or(0, |l| l.index),
                term: replica.last_applied.map_or(0, |l| l.leader_id.term),
                voters: replica.membership.membership().voter_ids().collect(),
            };
            firebreak_snapshot::Contents::capture(
                &replica.store,
                &replica.auth,
                position,
                firebreak_metrics::ETCD_VERSION,
            )
        };
        firebreak_snapshot::encode(&contents)
    }

    /// Moves the leadership to `target` (a voter), as etcd's leader
    /// transfer: once the target holds this leader's whole log, openraft's
    /// leader transfer tells every member that the leadership goes to it
    /// (the followers drop their leader lease for it, and the target
    /// campaigns at once); the call returns when the new leader serves a
    /// read index. Only the leader accepts it, as in etcd.
    pub async fn move_leader(&self, target: u64) -> Result<(), NodeError> {
        if self.serving_term_soon().await.is_none() {
            return Err(NodeError::NotLeader);
        }
        if target == self.id {
            return Ok(());
        }
        let membership = self.raft.metrics().borrow_watched().membership_config.clone();
        if membership.membership().get_node(&target).is_none() {
            return Err(NodeError::BadTarget(format!("{target:x} is not a member")));
        }
        if !membership.membership().voter_ids().any(|v| v == target) {
            return Err(NodeError::BadTarget(format!("{target:x} is a learner")));
        }
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        while tokio::time::Instant::now() < deadline {
            // The target's vote request must carry a log at least as long
            // as every voter's: wait (a little) until it holds all of ours.
            let _ = self
                .raft
                .wait(Some(self.election_timeout))
                .metrics(
                    |m| {
                        let matched = crate::placement::matched_index(m, target);
                        m.current_leader != Some(self.id) || matched >= m.last_log_index
                    },
                    "the transfer target caught up",
                )
                .await;
            self.raft
                .trigger()
                .transfer_leader(target)
                .await
                .map_err(|e| NodeError::Stopped(e.to_string()))?;
            let waited = self
                .raft
                .wait(Some(self.election_timeout * 2))
                .metrics(|m| m.current_leader == Some(target), "leader moved")
                .await;
            if waited.is_ok() {
                // Answered when the new leader serves: a read index from it.
                return self.read_barrier().await;
            }
        }
        Err(Unavailable::Timeout.into())
    }

    /// Starts an election here at once: what a member running a release
    /// built on openraft 0.9 asks of the target of its MoveLeader. Its
    /// followers refuse votes while their leader lease lasts (half an
    /// election timeout after the old leader's last message), and the old
    /// leader stops sending once it has seen this member's higher term: so
    /// if the first election is refused, the next one, a lease later, is
    /// not. Returns once this member leads, or after three tries.
    pub(crate) async fn start_election(&self) -> Result<(), ForwardError> {
        for _ in 0..3 {
            self.raft
                .trigger()
                .elect(false)
                .await
                .map_err(|e| ForwardError::Unavailable(e.to_string()))?;
            let won = self
                .raft
                .wait(Some(self.election.lease + Duration::from_millis(50)))
                .metrics(
                    |m| m.state == openraft::ServerState::Leader,
                    "won the election MoveLeader asked for",
                )
                .await;
            if won.is_ok() {
                return Ok(());
            }
            let m = self.raft.metrics().borrow_watched().clone();
            if m.current_leader.is_some_and(|l| l != self.id) && !self.election_state.leader_silent() {
                return Ok(()); // someone else leads: nothing to retry
            }
        }
        Ok(())
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
/// restored from the same backup. `check` as in [`decode_backup_with`].
pub fn restore_backup(bytes: &[u8], data_dir: &std::path::Path, check: HashCheck) -> Result<Replica, RestoreError> {
    let replica = decode_backup_with(bytes, check)?;
    if data_dir.join("raft").exists() || data_dir.join("snapshot").exists() {
        return Err(RestoreError::NotEmpty(data_dir.display().to_string()));
    }
    let dir = data_dir.join("snapshot");
    crate::state_machine::write_initial_snapshot(&dir, &replica).map_err(|source| RestoreError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    Ok(replica)
}

#[cfg(test)]
mod tests {
    use firebreak_mvcc::{PutRequest, Store, WriteCommand};

    use super::*;

    fn store() -> Store {
        let mut store = Store::new();
        for i in 0..5 {
            let put = PutRequest {
                key: format!("k{i}").into(),
                value: "v".into(),
                ..Default::default()
            };
            store.apply(&WriteCommand::Put(put)).unwrap();
        }
        store
    }

    /// A backup as Firebreak wrote them before it wrote etcd's format.
    fn own_format(store: &Store) -> Vec<u8> {
        let payload = bincode::serialize(&Backup {
            store: store.clone(),
            auth: AuthState::default(),
        })
        .unwrap();
        let mut out = SNAPSHOT_MAGIC.to_vec();
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        out.extend_from_slice(&payload);
        out.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        out.resize(out.len().div_ceil(512) * 512, 0);
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    #[test]
    fn both_formats_restore() {
        let store = store();
        assert_eq!(decode_backup(&own_format(&store)).unwrap().store, store);
        let contents = firebreak_snapshot::Contents::capture(
            &store,
            &AuthState::default(),
            firebreak_snapshot::Position::default(),
            "3.5.0",
        );
        let etcd = firebreak_snapshot::encode(&contents);
        assert_eq!(decode_backup(&etcd).unwrap().store, store);
        // Without its trailer, only when told to skip the check.
        let db = &etcd[..etcd.len() - 32];
        assert!(decode_backup(db).is_err());
        assert_eq!(decode_backup_with(db, HashCheck::Skip).unwrap().store, store);
    }
}
