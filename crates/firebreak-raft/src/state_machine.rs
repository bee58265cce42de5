//! The Raft state machine: the MVCC store, plus durable snapshots of it.
//!
//! The store lives in memory, behind a lock that readers share. Its
//! durable form is the latest snapshot file plus the Raft log after it: on
//! start-up the snapshot is loaded and openraft re-applies the committed
//! entries that follow.
//!
//! # Correctness
//! - A snapshot file is written to a temporary file of its own (unique per
//!   write), fsynced, renamed into place and the directory fsynced, so a
//!   crash leaves either the old or the new snapshot, never a torn one; the
//!   temporary files a crash leaves are removed at [`StateMachine::open`].
//! - The store, the last applied log id and the membership live under one
//!   lock ([`Replica`]), so a snapshot always describes one state.
//! - openraft purges log entries only up to a snapshot it has built or
//!   installed, and both are on disk before that happens.
//! - The snapshot file never goes backwards: it is replaced only by a
//!   snapshot whose `last_log_id` is strictly newer than the file's. The
//!   compare and the rename happen under one lock (`SnapshotSlot`) shared
//!   by every builder and the installer, and each writer has its own
//!   temporary file. A builder runs on its own task, concurrently with
//!   applying and installing, so it can finish after the install of a newer
//!   snapshot; without the rule its older file would replace the newer one
//!   while openraft purges the log up to the newer one, and a restart would
//!   load the older state with a gap behind it. An equal `last_log_id`
//!   means the same state (same log prefix), so the file on disk is kept. A
//!   discarded build returns the snapshot that is on disk, so the meta
//!   openraft records is always that of the file (see
//!   [`SnapshotBuilder::build_snapshot`]).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use firebreak_auth::AuthState;
use firebreak_mvcc::Store;
use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};

use crate::durable_dir;
use crate::types::{Applied, LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig};

const SNAPSHOT_FILE: &str = "snapshot.bin";

/// The applied state of this node. A clone is cheap: the store's maps are
/// persistent (see [`Store`]).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Replica {
    pub store: Store,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// Users, roles, permissions and tokens, applied beside the store
    /// (see [`crate::apply`]). Snapshots written before auth existed lack
    /// it and load with the default (auth disabled, no users): see
    /// [`decode_snapshot_file`].
    pub auth: AuthState,
}

/// The replica, shared by the state machine (which writes) and readers.
pub type SharedReplica = Arc<RwLock<Replica>>;

pub struct StateMachine {
    replica: SharedReplica,
    /// The store's revision after each applied batch, for watchers.
    revisions: tokio::sync::watch::Sender<i64>,
    /// The snapshot file, shared with the builders.
    slot: SnapshotSlot,
    /// Snapshots handed out by this process, for unique snapshot ids.
    serial: u64,
    /// The largest size the store reached since this member last
    /// defragmented (or started): what etcd's database file would have
    /// grown to, as `db_size` reports it.
    allocated: Arc<AtomicU64>,
}

fn invalid(e: bincode::Error) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

/// [`durable_dir::write_temporary`] for the snapshot file: its fsync is
/// the store's durable copy, what etcd's backend commit is to bbolt.
fn write_snapshot_temporary(dir: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let (tmp, sync) = durable_dir::write_temporary(dir, SNAPSHOT_FILE, bytes)?;
    firebreak_metrics::metrics()
        .backend_commit_duration
        .observe(sync.as_secs_f64());
    Ok(tmp)
}

/// The snapshot file of one state machine, shared by its builders and its
/// installer: the only way the file is replaced once the state machine is
/// open.
#[derive(Clone)]
struct SnapshotSlot {
    dir: PathBuf,
    /// The `last_log_id` of the file on disk; `None` while there is no
    /// file. Held around every compare and rename.
    on_disk: Arc<Mutex<Option<Option<LogId>>>>,
}

impl SnapshotSlot {
    /// Makes `bytes`, a snapshot through `last_log_id`, the snapshot file if
    /// it is strictly newer than the file on disk (or there is none).
    /// Returns whether it did; an older or equal snapshot is discarded.
    fn replace_if_newer(&self, last_log_id: Option<LogId>, bytes: &[u8]) -> std::io::Result<bool> {
        let started = std::time::Instant::now();
        // The slow part, writing and syncing the data, happens outside the
        // lock, in a temporary file of this call's own.
        let tmp = write_snapshot_temporary(&self.dir, bytes)?;
        let mut on_disk = self.on_disk.lock().expect("snapshot slot lock");
        if matches!(&*on_disk, Some(current) if last_log_id <= *current) {
            drop(on_disk);
            std::fs::remove_file(&tmp)?;
            return Ok(false);
        }
        if let Err(e) = std::fs::rename(&tmp, self.dir.join(SNAPSHOT_FILE)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // The file is in place (if not yet durable): record it before the
        // directory sync can fail.
        *on_disk = Some(last_log_id);
        std::fs::File::open(&self.dir)?.sync_all()?;
        firebreak_metrics::metrics()
            .snapshot_save_total_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(true)
    }
}

/// Writes the snapshot a restored member starts from: `replica` with no
/// log behind it.
pub fn write_initial_snapshot(dir: &Path, replica: &Replica) -> std::io::Result<()> {
    durable_dir::create_dir_durably(dir)?;
    let meta = FileMeta {
        last_log_id: None,
        last_membership: replica.membership.clone(),
        snapshot_id: "restored".into(),
    };
    let bytes = bincode::serialize(&(&meta, replica)).map_err(std::io::Error::other)?;
    let tmp = write_snapshot_temporary(dir, &bytes)?;
    durable_dir::rename_into_place(&tmp, dir, SNAPSHOT_FILE)
}

/// A snapshot's meta as its file holds it (the layout of openraft 0.9's
/// `SnapshotMeta`, which named each snapshot; openraft 0.10 no longer
/// does, and files keep the name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileMeta {
    pub last_log_id: Option<LogId>,
    pub last_membership: StoredMembership,
    pub snapshot_id: String,
}

impl FileMeta {
    /// The meta openraft knows the snapshot by.
    pub(crate) fn to_openraft(&self) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: self.last_log_id,
            last_membership: self.last_membership.clone(),
        }
    }
}

/// A snapshot file: its meta, then the replica.
#[derive(Deserialize)]
struct SnapshotFile {
    meta: FileMeta,
    replica: Replica,
}

/// A snapshot file written before the replica held auth state.
#[derive(Deserialize)]
struct SnapshotFileBeforeAuth {
    meta: FileMeta,
    replica: ReplicaBeforeAuth,
}

#[derive(Deserialize)]
struct ReplicaBeforeAuth {
    store: Store,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// Decodes a snapshot file (or a snapshot sent by the leader), also one
/// written before the replica held auth state.
///
/// bincode is not self-describing and a snapshot must decode exactly
/// (no bytes left over), so a missing field cannot fall back to a default
/// (`#[serde(default)]` does nothing here): an old snapshot fails to decode
/// as the current layout, for want of the auth state at its end, and is
/// then decoded as the old one; a current snapshot never decodes as the
/// old layout, whose end comes before the auth state.
fn decode_snapshot_file(bytes: &[u8]) -> Result<SnapshotFile, bincode::Error> {
    crate::codec::decode::<SnapshotFile>(bytes).or_else(|current| {
        let old: SnapshotFileBeforeAuth = crate::codec::decode(bytes).map_err(|_| current)?;
        Ok(SnapshotFile {
            meta: old.meta,
            replica: Replica {
                store: old.replica.store,
                last_applied: old.replica.last_applied,
                membership: old.replica.membership,
                auth: AuthState::default(),
            },
        })
    })
}

fn read_snapshot_file(dir: &Path) -> std::io::Result<Option<(Vec<u8>, SnapshotFile)>> {
    let bytes = match std::fs::read(dir.join(SNAPSHOT_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let file = decode_snapshot_file(&bytes).map_err(invalid)?;
    Ok(Some((bytes, file)))
}

/// The last log id the snapshot file in `dir` covers (`None`: no snapshot,
/// or one of a restored member, which covers no log).
pub(crate) fn snapshot_last_log_id(dir: &Path) -> Result<Option<LogId>, String> {
    Ok(read_snapshot_file(dir)
        .map_err(|e| e.to_string())?
        .and_then(|(_, file)| file.meta.last_log_id))
}

impl StateMachine {
    /// Opens the state machine in `dir`, loading the latest snapshot.
    /// Temporary files left by a crash are removed.
    pub fn open(dir: &Path) -> std::io::Result<StateMachine> {
        durable_dir::create_dir_durably(dir)?;
        durable_dir::remove_temporaries(dir, SNAPSHOT_FILE)?;
        let (replica, on_disk) = match read_snapshot_file(dir)? {
            Some((_, file)) => (file.replica, Some(file.meta.last_log_id)),
            None => (Replica::default(), None),
        };
        let (revisions, _) = tokio::sync::watch::channel(replica.store.current_revision());
        let allocated = Arc::new(AtomicU64::new(replica.store.size_bytes()));
        Ok(StateMachine {
            allocated,
            revisions,
            replica: Arc::new(RwLock::new(replica)),
            slot: SnapshotSlot {
                dir: dir.to_owned(),
                on_disk: Arc::new(Mutex::new(on_disk)),
            },
            serial: 0,
        })
    }

    /// The replica, for readers.
    pub fn replica(&self) -> SharedReplica {
        self.replica.clone()
    }

    /// The applied revision, updated after every applied batch.
    pub fn revisions(&self) -> tokio::sync::watch::Receiver<i64> {
        self.revisions.subscribe()
    }

    /// The store's high-water size since the last defragmentation.
    pub fn allocated(&self) -> Arc<AtomicU64> {
        self.allocated.clone()
    }
}

/// Builds a snapshot on its own task, from a handle on the replica.
pub struct SnapshotBuilder {
    replica: SharedReplica,
    slot: SnapshotSlot,
    serial: u64,
    /// Tests: signal once the replica is captured, then wait to go on.
    #[cfg(test)]
    pause_after_capture: Option<(tokio::sync::oneshot::Sender<()>, tokio::sync::oneshot::Receiver<()>)>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    /// Captures the replica and makes it the snapshot file, unless the file
    /// is already at least as new (an install of a newer snapshot, or
    /// another build, overtook this one).
    ///
    /// What it returns: openraft uses only the meta of the returned
    /// snapshot (`sm::Response::BuildSnapshot(meta)`), in
    /// `Engine::finish_building_snapshot`, which records it as its
    /// snapshot (and purges the log up to it) only if it is newer than the
    /// one it already has. A discarded build therefore returns the snapshot
    /// that is on disk, not the one it built: openraft's snapshot meta then
    /// always names the file `get_current_snapshot` serves, in every order
    /// of events (an install updates openraft's meta before the file, a
    /// build the file before openraft's meta), and no log entry is purged
    /// that the file does not cover.
    async fn build_snapshot(&mut self) -> std::io::Result<Snapshot> {
        let (meta, bytes) = {
            // A copy-on-write view, taken in an instant: writes go on
            // applying while it is encoded.
            let replica = self.replica.read().expect("replica lock").clone();
            let last = replica.last_applied;
            let meta = FileMeta {
                snapshot_id: format!(
                    "{}-{}-{}",
                    last.as_ref().map_or(0, |l| l.leader_id.term),
                    last.as_ref().map_or(0, |l| l.index),
                    self.serial
                ),
                last_log_id: last,
                last_membership: replica.membership.clone(),
            };
            // Encoding a large store takes a while: off the async workers.
            let encode_meta = meta.clone();
            let bytes = tokio::task::spawn_blocking(move || bincode::serialize(&(&encode_meta, &replica)))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .map_err(std::io::Error::other)?;
            (meta, bytes)
        };
        #[cfg(test)]
        if let Some((captured, resume)) = self.pause_after_capture.take() {
            let _ = captured.send(());
            let _ = resume.await;
        }
        let (slot, last) = (self.slot.clone(), meta.last_log_id);
        let (replaced, bytes) = tokio::task::spawn_blocking(move || {
            let replaced = slot.replace_if_newer(last, &bytes);
            (replaced, bytes)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        if replaced? {
            tracing::info!(snapshot_id = %meta.snapshot_id, bytes = bytes.len(), "snapshot built");
            return Ok(Snapshot {
                meta: meta.to_openraft(),
                snapshot: Cursor::new(bytes),
            });
        }
        // The file is at least as new as this build and is never removed.
        let (bytes, file) = read_snapshot_file(&self.slot.dir)?
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "the snapshot file disappeared"))?;
        tracing::info!(
            snapshot_id = %meta.snapshot_id,
            on_disk = %file.meta.snapshot_id,
            "snapshot built but discarded: the one on disk is at least as new"
        );
        Ok(Snapshot {
            meta: file.meta.to_openraft(),
            snapshot: Cursor::new(bytes),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> std::io::Result<(Option<LogId>, StoredMembership)> {
        let replica = self.replica.read().expect("replica lock");
        Ok((replica.last_applied, replica.membership.clone()))
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> std::io::Result<()>
    where
        Strm: Stream<Item = std::io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        // openraft hands over the committed entries it has in one stream;
        // they are applied under one hold of the replica lock.
        let entries: Vec<EntryResponder<TypeConfig>> = entries
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        // Failpoint `apply-delay` (the `failpoints` feature only):
        // `apply-delay=return(MS)` holds every batch back MS milliseconds
        // before it is applied, as on a member that lags behind the commit.
        #[cfg(feature = "failpoints")]
        if let Some(ms) = fail::eval("apply-delay", |arg| {
            arg.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0)
        }) {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        let mut answers = Vec::with_capacity(entries.len());
        {
            let mut replica = self.replica.write().expect("replica lock");
            for (entry, responder) in entries {
                let index = entry.log_id.index;
                replica.last_applied = Some(entry.log_id);
                let applied = match entry.payload {
                    EntryPayload::Blank => Applied(None),
                    EntryPayload::Normal(cmd) => {
                        let answer = Applied(Some(replica.apply(&cmd, index)));
                        self.allocated.fetch_max(replica.store.size_bytes(), Ordering::Relaxed);
                        answer
                    }
                    EntryPayload::Membership(m) => {
                        replica.membership = StoredMembership::new(Some(entry.log_id), m);
                        Applied(None)
                    }
                };
                answers.extend(responder.map(|r| (r, applied)));
            }
            self.revisions.send_replace(replica.store.current_revision());
        }
        for (responder, applied) in answers {
            responder.send(applied);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.serial += 1;
        SnapshotBuilder {
            replica: self.replica.clone(),
            slot: self.slot.clone(),
            serial: self.serial,
            #[cfg(test)]
            pause_after_capture: None,
        }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotData) -> std::io::Result<()> {
        let bytes = snapshot.into_inner();
        let file = decode_snapshot_file(&bytes).map_err(invalid)?;
        // openraft installs only a snapshot newer than its committed log
        // id (`FollowingHandler::install_full_snapshot` drops one that is
        // not), and what is applied never passes what is committed; the
        // state machine worker runs applies and installs in order. So the
        // replica is behind the snapshot, and so is the file on disk, which
        // only ever holds a state this replica had. Installing anything else
        // would move the replica backwards: refuse, as a storage error.
        let applied = self.replica.read().expect("replica lock").last_applied;
        if meta.last_log_id <= applied {
            return Err(std::io::Error::other(format!(
                "refusing to install a snapshot through {:?}, not newer than the applied {applied:?}",
                meta.last_log_id
            )));
        }
        let replaced = self.slot.replace_if_newer(meta.last_log_id, &bytes)?;
        debug_assert!(replaced, "the snapshot file is ahead of the applied state");
        let mut replica = self.replica.write().expect("replica lock");
        *replica = file.replica;
        replica.last_applied = meta.last_log_id;
        replica.membership = meta.last_membership.clone();
        self.allocated.fetch_max(replica.store.size_bytes(), Ordering::Relaxed);
        self.revisions.send_replace(replica.store.current_revision());
        tracing::info!(snapshot_id = %file.meta.snapshot_id, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> std::io::Result<Option<Snapshot>> {
        Ok(read_snapshot_file(&self.slot.dir)?.map(|(bytes, file)| Snapshot {
            meta: file.meta.to_openraft(),
            snapshot: Cursor::new(bytes),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Entry;
    use firebreak_mvcc::{PutRequest, WriteCommand};
    use std::time::{Duration, Instant};
    use tokio::sync::oneshot;

    fn log_id(index: u64) -> LogId {
        crate::types::log_id(1, 1, index)
    }

    fn put(index: u64, value_len: usize) -> WriteCommand {
        WriteCommand::Put(PutRequest {
            key: format!("k{index}").into(),
            value: vec![b'v'; value_len].into(),
            ..Default::default()
        })
    }

    /// Applies `entries` as openraft hands them over, with nobody waiting
    /// for their answers.
    async fn apply(sm: &mut StateMachine, entries: impl IntoIterator<Item = Entry>) {
        let entries: Vec<_> = entries.into_iter().map(|e| Ok((e, None))).collect();
        let stream = futures::stream::iter(entries);
        sm.apply(stream).await.expect("apply");
    }

    /// Applies puts with log indexes `from..=to`.
    async fn apply_puts(sm: &mut StateMachine, from: u64, to: u64) {
        let entries = (from..=to).map(|i| Entry {
            log_id: log_id(i),
            payload: EntryPayload::Normal(put(i, 16)),
        });
        apply(sm, entries).await;
    }

    /// A snapshot, as a leader would send it, of a replica that applied puts
    /// `1..=index` of `value_len` bytes each.
    fn snapshot_through(index: u64, value_len: usize) -> (FileMeta, Vec<u8>) {
        let mut replica = Replica::default();
        for i in 1..=index {
            replica.store.apply(&put(i, value_len)).expect("put");
        }
        replica.last_applied = Some(log_id(index));
        let meta = FileMeta {
            last_log_id: replica.last_applied,
            last_membership: replica.membership.clone(),
            snapshot_id: format!("leader-{index}"),
        };
        let bytes = bincode::serialize(&(&meta, &replica)).expect("encode");
        (meta, bytes)
    }

    async fn install(sm: &mut StateMachine, (meta, bytes): (FileMeta, Vec<u8>)) {
        sm.install_snapshot(&meta.to_openraft(), Cursor::new(bytes))
            .await
            .expect("install");
    }

    fn temporaries(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".tmp"))
            .collect()
    }

    async fn reopened_last_applied(dir: &Path) -> Option<LogId> {
        StateMachine::open(dir)
            .expect("reopen")
            .applied_state()
            .await
            .expect("applied")
            .0
    }

    /// A build that captured index 3 and renames after the install of a
    /// snapshot through index 10 must leave the file at 10: openraft has
    /// purged the log up to 10, so a restart from 3 would lose 4..=10.
    #[tokio::test]
    async fn an_older_build_never_replaces_a_newer_install() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sm = StateMachine::open(dir.path()).expect("open");
        apply_puts(&mut sm, 1, 3).await;

        let mut builder = sm.get_snapshot_builder().await;
        let (captured_tx, captured) = oneshot::channel();
        let (resume, resume_rx) = oneshot::channel();
        builder.pause_after_capture = Some((captured_tx, resume_rx));
        let build = tokio::spawn(async move { builder.build_snapshot().await });
        captured.await.expect("the builder captured the replica");

        let newer = snapshot_through(10, 16);
        let newer_meta = newer.0.to_openraft();
        install(&mut sm, newer).await;
        resume.send(()).expect("resume the builder");
        let built = build.await.expect("build task").expect("build");

        // openraft is told about the file on disk, not the discarded build.
        assert_eq!(built.meta, newer_meta);
        let current = sm.get_current_snapshot().await.expect("current").expect("a snapshot");
        assert_eq!(current.meta, newer_meta);
        drop(sm);
        assert_eq!(reopened_last_applied(dir.path()).await, Some(log_id(10)));
    }

    /// Issue 14: a snapshot must not stop writes. While a snapshot of a
    /// large store is built, a writer applies one put after another; the
    /// longest of those applies is a small part of the build. Encoding the
    /// store under the replica's lock (as before the copy-on-write view)
    /// held one apply for most of the build.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_go_on_while_a_snapshot_of_a_large_store_is_built() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sm = StateMachine::open(dir.path()).expect("open");
        const KEYS: u64 = 300_000;
        for from in (1..=KEYS).step_by(10_000) {
            let entries = (from..from + 10_000).map(|i| Entry {
                log_id: log_id(i),
                payload: EntryPayload::Normal(put(i, 200)),
            });
            apply(&mut sm, entries).await;
        }
        let mut builder = sm.get_snapshot_builder().await;
        let started = Instant::now();
        let build = tokio::spawn(async move { builder.build_snapshot().await });
        let (mut longest, mut applied, mut next) = (Duration::ZERO, 0u64, KEYS + 1);
        while !build.is_finished() {
            let t = Instant::now();
            apply_puts(&mut sm, next, next).await;
            longest = longest.max(t.elapsed());
            applied += 1;
            next += 1;
        }
        let built = build.await.expect("build task").expect("build");
        let took = started.elapsed();
        eprintln!("build of {KEYS} keys took {took:?}; {applied} puts applied meanwhile, the longest in {longest:?}");
        assert!(built.meta.last_log_id.is_some_and(|l| l.index >= KEYS));
        assert!(
            longest < took / 4,
            "an apply waited {longest:?} during a snapshot build of {took:?}: the build stops writes"
        );
    }

    /// Builders on several threads and an installer write at once: every
    /// write succeeds (no two share a temporary file, which one of them
    /// would find renamed away or truncated), every returned snapshot
    /// decodes, and the file left is the newest.
    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn concurrent_builds_and_installs_leave_the_newest_snapshot() {
        const BUILDERS: usize = 6;
        const ROUNDS: usize = 15;
        const INSTALLS: u64 = 15;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sm = StateMachine::open(dir.path()).expect("open");
        let installs: Vec<_> = (1..=INSTALLS).map(|i| snapshot_through(i * 10, 4096)).collect();

        let start = Arc::new(tokio::sync::Barrier::new(BUILDERS + 1));
        let mut tasks = Vec::new();
        for _ in 0..BUILDERS {
            let mut builder = sm.get_snapshot_builder().await;
            let start = start.clone();
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                for _ in 0..ROUNDS {
                    let snap = builder.build_snapshot().await.expect("build");
                    let file: SnapshotFile = bincode::deserialize(snap.snapshot.get_ref()).expect("decodes");
                    assert_eq!(file.meta.to_openraft(), snap.meta);
                    assert_eq!(file.replica.last_applied, snap.meta.last_log_id);
                }
            }));
        }
        start.wait().await;
        for snapshot in installs {
            install(&mut sm, snapshot).await;
        }
        for task in tasks {
            task.await.expect("builder task");
        }

        let newest = Some(log_id(INSTALLS * 10));
        let current = sm.get_current_snapshot().await.expect("current").expect("a snapshot");
        assert_eq!(current.meta.last_log_id, newest);
        let file: SnapshotFile = bincode::deserialize(current.snapshot.get_ref()).expect("decodes");
        assert_eq!(file.replica.last_applied, newest);
        assert_eq!(temporaries(dir.path()), Vec::<String>::new());
        drop(sm);
        assert_eq!(reopened_last_applied(dir.path()).await, newest);
    }

    /// A snapshot file of a build before auth (the replica without its
    /// auth state) still loads, with auth disabled and no users; a current
    /// one keeps its users.
    #[tokio::test]
    async fn snapshots_from_before_auth_still_load() {
        #[derive(Serialize)]
        struct OldReplica<'a> {
            store: &'a Store,
            last_applied: Option<LogId>,
            membership: &'a StoredMembership,
        }
        let (meta, _) = snapshot_through(3, 8);
        let mut replica = Replica::default();
        for i in 1..=3 {
            replica.store.apply(&put(i, 8)).expect("put");
        }
        let old = OldReplica {
            store: &replica.store,
            last_applied: meta.last_log_id,
            membership: &replica.membership,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(SNAPSHOT_FILE),
            bincode::serialize(&(&meta, &old)).expect("encode"),
        )
        .expect("write");
        let sm = StateMachine::open(dir.path()).expect("an old snapshot opens");
        {
            let loaded = sm.replica.read().unwrap();
            assert_eq!(loaded.store, replica.store);
            assert_eq!(loaded.last_applied, meta.last_log_id);
            assert_eq!(loaded.auth, AuthState::default());
        }
        drop(sm);

        replica
            .apply(
                &WriteCommand::Auth(firebreak_auth::AuthCommand::UserAdd {
                    name: "root".into(),
                    password_hash: b"hash".to_vec(),
                    no_password: false,
                }),
                4,
            )
            .expect("user add");
        replica.last_applied = Some(log_id(4));
        let meta = FileMeta {
            last_log_id: replica.last_applied,
            ..meta
        };
        std::fs::write(
            dir.path().join(SNAPSHOT_FILE),
            bincode::serialize(&(&meta, &replica)).expect("encode"),
        )
        .expect("write");
        let sm = StateMachine::open(dir.path()).expect("a current snapshot opens");
        assert_eq!(sm.replica.read().unwrap().auth.user_names(), vec!["root".to_string()]);
    }

    #[tokio::test]
    async fn stale_temporary_files_are_removed_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sm = StateMachine::open(dir.path()).expect("open");
        apply_puts(&mut sm, 1, 2).await;
        sm.get_snapshot_builder().await.build_snapshot().await.expect("build");
        drop(sm);
        // What a crash mid-write leaves, in the old and the current naming.
        for stale in ["snapshot.bin.tmp", "snapshot.bin.4242.7.tmp"] {
            std::fs::write(dir.path().join(stale), b"torn").expect("write");
        }
        std::fs::write(dir.path().join("unrelated"), b"kept").expect("write");

        assert_eq!(reopened_last_applied(dir.path()).await, Some(log_id(2)));
        assert_eq!(temporaries(dir.path()), Vec::<String>::new());
        assert!(dir.path().join("unrelated").exists());
    }
}
