//! The Raft log, durable in append-only segment files ([`crate::wal`]),
//! with group commit.
//!
//! Appends are visible to readers at once (from an in-memory copy of the
//! unpurged log) and made durable by one writer thread, which gathers every
//! request waiting for it into a single write and a single fsync.
//!
//! # The leader writes in parallel with replication
//! openraft 0.10 replicates an entry once its append is submitted, not once
//! it is flushed, and counts the leader in a commit quorum only after its
//! [`IOFlushed`] callback: a leader does not pay two fsyncs in series per
//! write, and every append here, the leader's included, is acknowledged
//! only after its `fdatasync`.
//!
//! Because followers can hold entries of a term that the leader's disk
//! lost in a crash, a member that led must not resume that term after a
//! restart (it would append new entries under log ids its followers hold
//! with other contents): the node turns off openraft's
//! `enable_leader_restore` ([`crate::node`]).
//!
//! # Correctness
//! - Appends, truncations and purges reach the disk in the order openraft
//!   issued them: they go through one queue to one thread.
//! - An append's [`IOFlushed`] is signalled only after the `fdatasync` that
//!   follows the write of its entries.
//! - A vote is durable before `save_vote` returns (Raft's rule: never vote
//!   twice in one term, even across a crash).
//! - The committed index is saved without waiting, and without waking the
//!   writer: it goes to disk at the end of the next batch written for
//!   another reason, after every entry it covers (those were queued before
//!   it was saved), or in a write of its own once the writer has been idle
//!   for a while. Like every write, that one is synced before the next
//!   starts (`Wal::write` always syncs), so a write that replay finds
//!   damaged but not torn is always one that was synced. openraft
//!   tolerates the committed index being behind after a crash.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use firebreak_mvcc::WriteCommand;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{EntryPayload, OptionalSend};
use tokio::sync::oneshot;

use crate::proposer::OwnProposals;
use crate::types::{Entry, LogId, NodeId, TypeConfig, Vote};
use crate::wal::{Record, Wal};

/// What the writer thread is asked to do, in order.
enum WriteOp {
    /// Encoded entries by index, the sequence number of the append, the
    /// callback owed to openraft, and whether this member appends them as
    /// the leader (for the `leader-log-write` failpoint).
    Append(
        Vec<(u64, Vec<u8>)>,
        u64,
        IOFlushed<TypeConfig>,
        #[cfg_attr(not(feature = "failpoints"), allow(dead_code))] bool,
    ),
    /// Remove entries from this index on.
    Truncate(u64),
    /// Remove entries up to and including this log id.
    Purge(LogId),
    Vote(Vote, oneshot::Sender<Result<(), String>>),
}

/// The unpurged log, shared by the store and its readers.
#[derive(Default)]
struct Cache {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    /// The vote on disk (readers check that it did not change while they
    /// read entries for a leader).
    vote: Option<Vote>,
}

impl Cache {
    /// The id of the last entry, or of the last purged one if none is left.
    fn last_log_id(&self) -> Option<LogId> {
        self.entries.values().next_back().map(|e| e.log_id).or(self.last_purged)
    }
}

/// Which entries of the log are on disk, for the operations plane (a
/// member's report shows how far its disk is behind its log).
#[derive(Clone, Default)]
pub struct Durability {
    /// `(first index, last index, sequence number)` of each append handed
    /// to the writer and not yet on disk, in the order made; ranges are cut
    /// back when the log is truncated, so they describe entries the log
    /// holds now.
    unflushed: Arc<Mutex<VecDeque<(u64, u64, u64)>>>,
}

impl Durability {
    fn appends(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, u64, u64)>> {
        self.unflushed.lock().expect("durability lock")
    }

    fn appended(&self, first: u64, last: u64, seq: u64) {
        self.appends().push_back((first, last, seq));
    }

    /// Entries from `from` on are gone from the log: they are no longer
    /// waited for.
    fn truncated(&self, from: u64) {
        self.appends().retain_mut(|(first, last, _)| {
            *last = (*last).min(from.saturating_sub(1));
            *first < from
        });
    }

    /// Every append up to sequence number `seq` is on disk.
    fn flushed_through(&self, seq: u64) {
        self.appends().retain(|&(_, _, append)| append > seq);
    }

    /// The last index on disk, given that the log ends at `last_index`:
    /// everything before the first append still waiting for its fsync.
    pub fn durable_through(&self, last_index: u64) -> u64 {
        match self.appends().front() {
            Some(&(first, _, _)) => first.saturating_sub(1).min(last_index),
            None => last_index,
        }
    }
}

/// How many appends [`Progress`] remembers the time of.
const APPEND_TIMES_KEPT: usize = 4096;

/// What the operations plane asks of the log: the commit index and when
/// recent entries were appended (so a follower's lag can be told in
/// seconds). Nothing here is used to decide anything in Raft.
#[derive(Clone, Default)]
pub struct Progress {
    state: Arc<Mutex<ProgressState>>,
}

#[derive(Default)]
struct ProgressState {
    committed: u64,
    /// `(last index of an append, when it was made)`, oldest first.
    appended: VecDeque<(u64, Instant)>,
}

impl Progress {
    fn committed(&self, index: u64) {
        let mut state = self.state.lock().expect("progress lock");
        state.committed = state.committed.max(index);
    }

    fn appended(&self, last: u64, at: Instant) {
        let mut state = self.state.lock().expect("progress lock");
        // A truncation followed by an append restarts the indexes: forget
        // the times of entries that are gone.
        while state.appended.back().is_some_and(|&(i, _)| i >= last) {
            state.appended.pop_back();
        }
        if state.appended.len() == APPEND_TIMES_KEPT {
            state.appended.pop_front();
        }
        state.appended.push_back((last, at));
    }

    /// The highest commit index this member has seen.
    pub fn commit_index(&self) -> u64 {
        self.state.lock().expect("progress lock").committed
    }

    /// When the first entry after `index` was appended here, if the log
    /// holds one: how long a member that holds up to `index` has been
    /// behind. With more appends than are remembered, the oldest time
    /// known (an underestimate).
    pub fn appended_after(&self, index: u64) -> Option<Instant> {
        let state = self.state.lock().expect("progress lock");
        state
            .appended
            .iter()
            .find(|&&(last, _)| last > index)
            .map(|&(_, at)| at)
    }
}

/// The Raft log of one node.
pub struct LogStore {
    cache: Arc<Mutex<Cache>>,
    writer: mpsc::Sender<WriteOp>,
    committed: Option<LogId>,
    /// The committed log id not yet handed to the writer.
    unsaved_committed: Arc<Mutex<Option<LogId>>>,
    /// This node's id, to tell its appends as leader (failpoints only).
    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    me: NodeId,
    durability: Durability,
    progress: Progress,
    next_seq: u64,
    /// This member's proposals in flight, told which entries the log held.
    own_proposals: Arc<OwnProposals>,
}

/// A read handle on the log, for replication streams.
#[derive(Clone)]
pub struct LogReader {
    cache: Arc<Mutex<Cache>>,
}

impl LogStore {
    /// Opens (or creates) the log of node `me` in `dir` and loads it.
    pub fn open(dir: &Path, me: NodeId) -> std::io::Result<LogStore> {
        let (wal, recovered) = Wal::open(dir)?;
        let cache = Cache {
            entries: recovered.entries,
            last_purged: recovered.purged,
            vote: recovered.vote,
        };
        let committed = recovered.committed;
        let (writer, queue) = mpsc::channel();
        let durability = Durability::default();
        let flushed = durability.clone();
        let unsaved_committed = Arc::new(Mutex::new(None));
        let committed_slot = unsaved_committed.clone();
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || write_loop(wal, queue, flushed, committed_slot))?;
        Ok(LogStore {
            cache: Arc::new(Mutex::new(cache)),
            writer,
            committed,
            unsaved_committed,
            me,
            durability,
            progress: {
                let progress = Progress::default();
                if let Some(c) = &committed {
                    progress.committed(c.index);
                }
                progress
            },
            next_seq: 0,
            own_proposals: Arc::default(),
        })
    }

    /// The commit index and append times, for the operations plane.
    pub fn progress(&self) -> Progress {
        self.progress.clone()
    }

    /// The proposals of this member whose entries the log has held, for
    /// the proposer.
    pub(crate) fn own_proposals(&self) -> Arc<OwnProposals> {
        self.own_proposals.clone()
    }

    /// Which entries are on disk, for the operations plane.
    pub fn durability(&self) -> Durability {
        self.durability.clone()
    }

    /// Whether an append now is this node's own, as leader of its term.
    fn appending_as_leader(&self) -> bool {
        let cache = self.cache.lock().expect("log cache lock");
        cache
            .vote
            .is_some_and(|vote| vote.is_committed() && vote.leader_id().node_id == self.me)
    }

    fn send(&self, op: WriteOp) -> std::io::Result<()> {
        self.writer
            .send(op)
            .map_err(|_| std::io::Error::other("the log writer thread has stopped"))
    }
}

/// A log write (and its fdatasync) at least this slow is logged, as etcd
/// warns of slow WAL syncs.
const SLOW_WRITE: std::time::Duration = std::time::Duration::from_millis(100);

/// The writer thread: one write and one fsync per batch of queued
/// requests.
fn write_loop(
    mut wal: Wal,
    queue: mpsc::Receiver<WriteOp>,
    durability: Durability,
    unsaved_committed: Arc<Mutex<Option<LogId>>>,
) {
    const MAX_OPS: usize = 4096;
    /// Idle this long, the writer saves a pending committed index alone.
    const IDLE: std::time::Duration = std::time::Duration::from_millis(100);
    loop {
        let first = match queue.recv_timeout(IDLE) {
            Ok(op) => op,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Synced like every write, so that no write ever starts
                // before the one before it is on disk (what tells a torn
                // write from a corrupt one on replay).
                let committed = unsaved_committed.lock().expect("committed slot lock").take();
                if let Some(c) = committed {
                    if let Err(e) = wal.write(&[Record::Committed(c)]) {
                        tracing::error!(error = %e, "raft log write failed");
                        return;
                    }
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        // Taken before the queue is drained: every entry it covers was
        // queued before it was saved, so is in this batch or an earlier one.
        let committed = unsaved_committed.lock().expect("committed slot lock").take();
        let mut batch = vec![first];
        while batch.len() < MAX_OPS {
            match queue.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let committed = if batch.len() < MAX_OPS {
            committed
        } else {
            // The queue may still hold entries it covers: next batch.
            let mut slot = unsaved_committed.lock().expect("committed slot lock");
            *slot = (*slot).max(committed);
            None
        };
        // Failpoint `leader-log-write` (the `failpoints` feature only):
        // holds back the write of appends answered early, that is the
        // leader's own, to show that nothing sees their commit before.
        #[cfg(feature = "failpoints")]
        if batch.iter().any(|op| matches!(op, WriteOp::Append(_, _, _, true))) {
            fail::fail_point!("leader-log-write");
        }
        let started = std::time::Instant::now();
        let result = write_batch(&mut wal, &batch, committed);
        let took = started.elapsed();
        if took >= SLOW_WRITE {
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                ops = batch.len(),
                "slow Raft log write (write and fdatasync)"
            );
        }
        let failure = result.as_ref().err().map(|e| e.to_string());
        match &failure {
            Some(e) => {
                tracing::error!(error = %e, "raft log write failed");
            }
            None => {
                let last_seq = batch.iter().rev().find_map(|op| match op {
                    WriteOp::Append(_, seq, _, _) => Some(*seq),
                    _ => None,
                });
                if let Some(seq) = last_seq {
                    durability.flushed_through(seq);
                }
            }
        }
        for op in batch {
            match op {
                WriteOp::Append(_, _, callback, _) => callback.io_completed(match &failure {
                    None => Ok(()),
                    Some(e) => Err(std::io::Error::other(e.clone())),
                }),
                WriteOp::Vote(_, done) => {
                    let _ = done.send(failure.clone().map_or(Ok(()), Err));
                }
                _ => {}
            }
        }
        if failure.is_some() {
            // A log that failed to write cannot be trusted any more; stop
            // accepting work so openraft sees the failure.
            return;
        }
    }
}

fn write_batch(wal: &mut Wal, batch: &[WriteOp], committed: Option<LogId>) -> std::io::Result<()> {
    let mut records = Vec::with_capacity(batch.len());
    for op in batch {
        match op {
            WriteOp::Append(entries, _, _, _) => {
                records.extend(entries.iter().map(|(index, bytes)| Record::Entry(*index, bytes)));
            }
            WriteOp::Truncate(from) => records.push(Record::Truncate(*from)),
            WriteOp::Purge(upto) => records.push(Record::Purge(*upto)),
            WriteOp::Vote(vote, _) => records.push(Record::Vote(*vote)),
        }
    }
    records.extend(committed.map(Record::Committed));
    wal.write(&records)
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> std::io::Result<Vec<Entry>> {
        let cache = self.cache.lock().expect("log cache lock");
        Ok(cache.entries.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> std::io::Result<Option<Vote>> {
        Ok(self.cache.lock().expect("log cache lock").vote)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> std::io::Result<Vec<Entry>> {
        LogReader {
            cache: self.cache.clone(),
        }
        .try_get_log_entries(range)
        .await
    }

    async fn read_vote(&mut self) -> std::io::Result<Option<Vote>> {
        Ok(self.cache.lock().expect("log cache lock").vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> std::io::Result<LogState<TypeConfig>> {
        let cache = self.cache.lock().expect("log cache lock");
        Ok(LogState {
            last_purged_log_id: cache.last_purged,
            last_log_id: cache.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            cache: self.cache.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> std::io::Result<()> {
        let (done, wait) = oneshot::channel();
        self.send(WriteOp::Vote(*vote, done))?;
        let result = wait
            .await
            .unwrap_or_else(|_| Err("the log writer thread has stopped".into()));
        result.map_err(std::io::Error::other)?;
        self.cache.lock().expect("log cache lock").vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> std::io::Result<()> {
        if let Some(c) = &committed {
            self.progress.committed(c.index);
        }
        let mut slot = self.unsaved_committed.lock().expect("committed slot lock");
        if *slot < committed {
            *slot = committed;
        }
        self.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> std::io::Result<Option<LogId>> {
        Ok(self.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> std::io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        {
            let mut cache = self.cache.lock().expect("log cache lock");
            for entry in entries {
                if let EntryPayload::Normal(WriteCommand::Tagged { tag, .. }) = &entry.payload {
                    self.own_proposals.appended(*tag);
                }
                let bytes = bincode::serialize(&entry).map_err(std::io::Error::other)?;
                encoded.push((entry.log_id.index, bytes));
                cache.entries.insert(entry.log_id.index, entry);
            }
        }
        let (Some(&(first, _)), Some(&(last, _))) = (encoded.first(), encoded.last()) else {
            callback.io_completed(Ok(()));
            return Ok(());
        };
        self.next_seq += 1;
        let seq = self.next_seq;
        self.durability.appended(first, last, seq);
        self.progress.appended(last, Instant::now());
        let as_leader = self.appending_as_leader();
        self.send(WriteOp::Append(encoded, seq, callback, as_leader))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> std::io::Result<()> {
        let from = last_log_id.map_or(0, |id| id.index + 1);
        self.cache.lock().expect("log cache lock").entries.split_off(&from);
        self.durability.truncated(from);
        self.send(WriteOp::Truncate(from))
    }

    async fn purge(&mut self, log_id: LogId) -> std::io::Result<()> {
        {
            let mut cache = self.cache.lock().expect("log cache lock");
            let keep = cache.entries.split_off(&(log_id.index + 1));
            cache.entries = keep;
            cache.last_purged = Some(log_id);
        }
        self.send(WriteOp::Purge(log_id))
    }
}

#[cfg(test)]
mod tests {
    use super::Durability;

    #[test]
    fn the_disk_is_behind_by_the_appends_still_waiting_for_their_fsync() {
        let d = Durability::default();
        assert_eq!(d.durable_through(10), 10, "nothing waiting: all on disk");
        d.appended(11, 15, 1);
        d.appended(16, 18, 2);
        assert_eq!(d.durable_through(18), 10);
        d.flushed_through(1);
        assert_eq!(d.durable_through(18), 15);
        d.flushed_through(2);
        assert_eq!(d.durable_through(18), 18);
    }

    #[test]
    fn truncation_forgets_entries_that_are_gone_and_keeps_those_rewritten() {
        let d = Durability::default();
        d.appended(1, 5, 1);
        d.appended(6, 10, 2);
        // A new leader's entries replace 4 and later; they are appended
        // again and are not on disk until their own append is.
        d.truncated(4);
        d.appended(4, 6, 3);
        d.flushed_through(2);
        assert_eq!(
            d.durable_through(6),
            3,
            "the rewritten entry 4 waits for its own append"
        );
        d.flushed_through(3);
        assert_eq!(d.durable_through(6), 6);
    }
}
