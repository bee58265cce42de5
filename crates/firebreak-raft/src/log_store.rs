//! The Raft log, durable in append-only segment files ([`crate::wal`]),
//! with group commit.
//!
//! Appends are visible to readers at once (from an in-memory copy of the
//! log's tail) and made durable by one writer thread, which gathers every
//! request waiting for it into a single write and a single fsync.
//!
//! # What memory holds
//! Memory holds the entries that may still be needed soon: those not yet
//! applied here, and, on a leader, those some member has not stored yet
//! (up to [`LAGGING_BYTES`] of applied ones for members that lag further).
//! The node releases the rest ([`LogReader::release`]); an entry released
//! is read back from its segment when asked for (a member that lagged
//! further, a new leader catching a member up), and checked as replay
//! checks it.
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
use openraft::async_runtime::WatchReceiver as _;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{EntryPayload, OptionalSend};
use tokio::sync::oneshot;

use crate::proposer::OwnProposals;
use crate::types::{Entry, LogId, NodeId, TypeConfig, Vote};
use crate::wal::{Location, Record, Wal};

/// Applied entries that a lagging member still needs stay in memory up to
/// this many bytes (the newest of them); older ones are read back from
/// disk when it gets to them.
pub const LAGGING_BYTES: usize = 64 << 20;

/// What the writer thread is asked to do, in order.
enum WriteOp {
    /// Encoded entries with their log ids, the sequence number of the
    /// append, the callback owed to openraft, and whether this member
    /// appends them as the leader (for the `leader-log-write` failpoint).
    Append(
        Vec<(LogId, Vec<u8>)>,
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

/// An entry held in memory, and the length of its encoding.
struct Cached {
    entry: Entry,
    bytes: usize,
}

/// The unpurged log, shared by the store, its readers and its writer
/// thread: its entries are those of `entries` and `on_disk`, and those
/// only `on_disk` holds (released from memory) all come before the first
/// of `entries`.
struct Cache {
    /// The entries held in memory, by index.
    entries: BTreeMap<u64, Cached>,
    /// Bytes of `entries`, encoded.
    bytes: usize,
    /// Where each entry on disk lies, with its log id (to tell it from an
    /// entry that replaced it in memory and is not on disk yet).
    on_disk: BTreeMap<u64, (LogId, Location)>,
    /// The directory of the segments.
    dir: std::path::PathBuf,
    last_purged: Option<LogId>,
    /// The vote on disk (readers check that it did not change while they
    /// read entries for a leader).
    vote: Option<Vote>,
    /// [`LAGGING_BYTES`] (smaller in tests).
    lagging_bytes: usize,
}

impl Cache {
    fn new(dir: &Path) -> Cache {
        Cache {
            entries: BTreeMap::new(),
            bytes: 0,
            on_disk: BTreeMap::new(),
            dir: dir.to_owned(),
            last_purged: None,
            vote: None,
            lagging_bytes: LAGGING_BYTES,
        }
    }

    /// The id of the last entry, or of the last purged one if none is left.
    fn last_log_id(&self) -> Option<LogId> {
        let in_memory = self.entries.values().next_back().map(|c| c.entry.log_id);
        let on_disk = self.on_disk.values().next_back().map(|&(id, _)| id);
        in_memory
            .into_iter()
            .chain(on_disk)
            .max_by_key(|id| id.index)
            .or(self.last_purged)
    }

    fn insert(&mut self, entry: Entry, bytes: usize) {
        if let Some(old) = self.entries.insert(entry.log_id.index, Cached { entry, bytes }) {
            self.bytes -= old.bytes;
        }
        self.bytes += bytes;
    }

    /// Forgets the entries from `from` on.
    fn truncate(&mut self, from: u64) {
        let gone = self.entries.split_off(&from);
        self.bytes -= gone.values().map(|c| c.bytes).sum::<usize>();
        self.on_disk.split_off(&from);
    }

    /// Forgets the entries up to and including `upto`.
    fn purge(&mut self, upto: LogId) {
        let keep = self.entries.split_off(&(upto.index + 1));
        let gone = std::mem::replace(&mut self.entries, keep);
        self.bytes -= gone.values().map(|c| c.bytes).sum::<usize>();
        self.on_disk = self.on_disk.split_off(&(upto.index + 1));
        self.last_purged = Some(upto);
    }

    /// The entry `id` is on disk at `at`, if the log still holds it.
    fn stored(&mut self, id: LogId, at: Location) {
        if self.entries.get(&id.index).is_some_and(|c| c.entry.log_id == id) {
            self.on_disk.insert(id.index, (id, at));
        }
    }

    /// Releases from memory the entries on disk that are applied here
    /// (through `applied`) and that every member holds (before
    /// `needed_from`), then the oldest applied ones past
    /// [`LAGGING_BYTES`]. Never one that is not on disk, nor one after it:
    /// memory keeps the log's tail.
    fn release(&mut self, applied: u64, needed_from: u64) {
        let held = applied.min(needed_from.saturating_sub(1));
        let lagging: usize = if held < applied {
            self.entries.range(held + 1..=applied).map(|(_, c)| c.bytes).sum()
        } else {
            0
        };
        let mut over = lagging.saturating_sub(self.lagging_bytes);
        while let Some(entry) = self.entries.first_entry() {
            let index = *entry.key();
            if index > applied || (index > held && over == 0) {
                break;
            }
            let on_disk = self
                .on_disk
                .get(&index)
                .is_some_and(|&(id, _)| id == entry.get().entry.log_id);
            if !on_disk {
                break;
            }
            let bytes = entry.remove().bytes;
            self.bytes -= bytes;
            if index > held {
                over = over.saturating_sub(bytes);
            }
        }
    }

    /// The entries in `range`: those released from memory (to be read from
    /// disk) and those in memory.
    fn range<RB: RangeBounds<u64> + Clone>(&self, range: RB) -> (Vec<(LogId, Location)>, Vec<Entry>) {
        let first_in_memory = self.entries.keys().next().copied().unwrap_or(u64::MAX);
        let released = self
            .on_disk
            .range(range.clone())
            .take_while(|(&index, _)| index < first_in_memory)
            .map(|(_, &at)| at)
            .collect();
        let in_memory = self.entries.range(range).map(|(_, c)| c.entry.clone()).collect();
        (released, in_memory)
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

impl LogReader {
    /// Releases from memory the entries this member has applied through
    /// `applied` and every member holds before `needed_from` (and the
    /// oldest applied ones past [`LAGGING_BYTES`]); they stay on disk and
    /// are read back from there when asked for.
    pub fn release(&self, applied: u64, needed_from: u64) {
        let mut cache = self.cache.lock().expect("log cache lock");
        cache.release(applied, needed_from);
        let metrics = firebreak_metrics::metrics();
        metrics.log_entries_in_memory.set(cache.entries.len() as i64);
        metrics.log_bytes_in_memory.set(cache.bytes as i64);
    }

    /// How many entries memory holds, and their bytes.
    pub fn in_memory(&self) -> (usize, usize) {
        let cache = self.cache.lock().expect("log cache lock");
        (cache.entries.len(), cache.bytes)
    }
}

impl LogStore {
    /// Opens (or creates) the log of node `me` in `dir` and loads it.
    pub fn open(dir: &Path, me: NodeId) -> std::io::Result<LogStore> {
        let (wal, recovered) = Wal::open(dir)?;
        let mut cache = Cache::new(dir);
        cache.last_purged = recovered.purged;
        cache.vote = recovered.vote;
        for (index, entry) in recovered.entries {
            let at = recovered.locations[&index];
            cache.on_disk.insert(index, (entry.log_id, at));
            // The record's body is a kind byte and the entry.
            cache.insert(entry, at.len as usize - 1);
        }
        let cache = Arc::new(Mutex::new(cache));
        let committed = recovered.committed;
        let (writer, queue) = mpsc::channel();
        let durability = Durability::default();
        let flushed = durability.clone();
        let unsaved_committed = Arc::new(Mutex::new(None));
        let committed_slot = unsaved_committed.clone();
        let written = cache.clone();
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || write_loop(wal, queue, flushed, committed_slot, written))?;
        Ok(LogStore {
            cache,
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

    /// A read handle, for the node to release what memory need not hold.
    pub fn reader(&self) -> LogReader {
        LogReader {
            cache: self.cache.clone(),
        }
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

/// How often the node releases from memory what the log need not hold.
const RELEASE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Releases from memory, every [`RELEASE_EVERY`], the entries this member
/// applied that no member still needs (on a leader, those every member it
/// replicates to stored; on a follower, all it applied), until openraft
/// stops.
pub(crate) async fn release_what_is_not_needed(
    metrics: openraft::alias::WatchReceiverOf<TypeConfig, crate::types::RaftMetrics>,
    log: LogReader,
) {
    loop {
        tokio::time::sleep(RELEASE_EVERY).await;
        let (applied, needed_from) = {
            let m = metrics.borrow_watched();
            let applied = m.last_applied.map_or(0, |id| id.index);
            // A member the leader has not heard from needs everything.
            let needed_from = m.replication.as_ref().map_or(u64::MAX, |members| {
                members
                    .iter()
                    .filter(|(&id, _)| id != m.id)
                    .map(|(_, matched)| matched.map_or(0, |id| id.index + 1))
                    .min()
                    .unwrap_or(u64::MAX)
            });
            (applied, needed_from)
        };
        log.release(applied, needed_from);
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
    cache: Arc<Mutex<Cache>>,
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
        if let Ok(locations) = &result {
            // Each entry's record, in the order written: where memory may
            // read it back from once it releases it.
            let ids = batch.iter().flat_map(|op| match op {
                WriteOp::Append(entries, _, _, _) => entries.as_slice(),
                _ => &[],
            });
            let mut cache = cache.lock().expect("log cache lock");
            for ((id, _), &(index, at)) in ids.zip(locations) {
                debug_assert_eq!(id.index, index);
                cache.stored(*id, at);
            }
        }
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

/// Writes `batch` and answers where each entry went, in order.
fn write_batch(wal: &mut Wal, batch: &[WriteOp], committed: Option<LogId>) -> std::io::Result<Vec<(u64, Location)>> {
    let mut records = Vec::with_capacity(batch.len());
    for op in batch {
        match op {
            WriteOp::Append(entries, _, _, _) => {
                records.extend(entries.iter().map(|(id, bytes)| Record::Entry(id.index, bytes)));
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
        let ((released, in_memory), dir) = {
            let cache = self.cache.lock().expect("log cache lock");
            (cache.range(range), cache.dir.clone())
        };
        if released.is_empty() {
            return Ok(in_memory);
        }
        // Read outside the lock: the entries released are applied, so
        // committed, so never truncated; a purge may remove their segment
        // meanwhile, and then the entries it purged are left out (at the
        // start of the range, as openraft allows).
        let mut entries = Vec::with_capacity(released.len() + in_memory.len());
        for (id, at) in released {
            match crate::wal::read_entry(&dir, at) {
                Ok(entry) if entry.log_id == id => entries.push(entry),
                Ok(entry) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("the Raft log holds {} where {id} was written", entry.log_id),
                    ))
                }
                Err(e) => {
                    let purged = self.cache.lock().expect("log cache lock").last_purged;
                    if purged.is_some_and(|p| p.index >= id.index) {
                        entries.clear();
                        continue;
                    }
                    return Err(e);
                }
            }
        }
        firebreak_metrics::metrics().log_disk_reads.inc_by(entries.len() as u64);
        entries.extend(in_memory);
        Ok(entries)
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
                let len = bytes.len();
                encoded.push((entry.log_id, bytes));
                cache.insert(entry, len);
            }
        }
        let (Some(&(first, _)), Some(&(last, _))) = (encoded.first(), encoded.last()) else {
            callback.io_completed(Ok(()));
            return Ok(());
        };
        let (first, last) = (first.index, last.index);
        self.next_seq += 1;
        let seq = self.next_seq;
        self.durability.appended(first, last, seq);
        self.progress.appended(last, Instant::now());
        let as_leader = self.appending_as_leader();
        self.send(WriteOp::Append(encoded, seq, callback, as_leader))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> std::io::Result<()> {
        let from = last_log_id.map_or(0, |id| id.index + 1);
        self.cache.lock().expect("log cache lock").truncate(from);
        self.durability.truncated(from);
        self.send(WriteOp::Truncate(from))
    }

    async fn purge(&mut self, log_id: LogId) -> std::io::Result<()> {
        self.cache.lock().expect("log cache lock").purge(log_id);
        self.send(WriteOp::Purge(log_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_id(term: u64, index: u64) -> LogId {
        crate::types::log_id(term, 1, index)
    }

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(WriteCommand::Put(firebreak_mvcc::PutRequest {
                key: bytes::Bytes::from(format!("key-{index}")),
                value: bytes::Bytes::from(vec![index as u8; 200]),
                ..Default::default()
            })),
        }
    }

    fn encoded(entries: &[Entry]) -> Vec<Vec<u8>> {
        entries.iter().map(|e| bincode::serialize(e).unwrap()).collect()
    }

    fn at(index: u64) -> Location {
        Location {
            segment: 1,
            offset: index * 1000,
            len: 201,
        }
    }

    /// A cache holding entries 1..=`last` of term 1, those through
    /// `stored` on disk, 200 bytes each.
    fn cache(last: u64, stored: u64) -> Cache {
        let mut cache = Cache::new(Path::new("/nonexistent"));
        for i in 1..=last {
            cache.insert(entry(1, i), 200);
        }
        for i in 1..=stored {
            cache.stored(log_id(1, i), at(i));
        }
        cache
    }

    fn first_in_memory(cache: &Cache) -> Option<u64> {
        cache.entries.keys().next().copied()
    }

    #[test]
    fn memory_releases_only_what_is_applied_stored_and_held_by_every_member() {
        let mut c = cache(100, 90);
        c.release(0, u64::MAX);
        assert_eq!(first_in_memory(&c), Some(1), "nothing applied: nothing released");
        c.release(50, 31);
        assert_eq!(first_in_memory(&c), Some(31), "a member still needs 31 on");
        assert_eq!(c.bytes, 70 * 200);
        c.release(95, u64::MAX);
        assert_eq!(first_in_memory(&c), Some(91), "91 on are not on disk yet");
        // The log's own view is unchanged: it still ends at 100 and holds
        // every entry, in memory or on disk.
        assert_eq!(c.last_log_id(), Some(log_id(1, 100)));
        let (released, in_memory) = c.range(1..=100);
        assert_eq!(released.len(), 90);
        assert_eq!(in_memory.len(), 10);
        let (released, in_memory) = c.range(85..=92);
        assert_eq!(
            released.iter().map(|(id, _)| id.index).collect::<Vec<_>>(),
            (85..=90).collect::<Vec<_>>()
        );
        assert_eq!(
            in_memory.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            vec![91, 92]
        );
    }

    #[test]
    fn a_member_that_lags_keeps_no_more_than_the_budget_in_memory() {
        let mut c = cache(100, 100);
        c.lagging_bytes = 10 * 200;
        c.release(100, 0);
        assert_eq!(
            first_in_memory(&c),
            Some(91),
            "the newest ten applied entries stay for the member that lags"
        );
        c.release(100, 95);
        assert_eq!(first_in_memory(&c), Some(95));
    }

    #[test]
    fn an_entry_replaced_in_memory_is_not_taken_for_the_one_on_disk() {
        let mut c = cache(10, 10);
        // A new leader's entry replaces 8 on; the writer then reports the
        // old 9, queued before the truncation, as written.
        c.truncate(8);
        c.insert(entry(2, 8), 200);
        c.insert(entry(2, 9), 200);
        c.stored(log_id(1, 9), at(9));
        assert_eq!(c.last_log_id(), Some(log_id(2, 9)));
        c.release(9, u64::MAX);
        assert_eq!(first_in_memory(&c), Some(8), "the new 8 and 9 are not on disk");
        c.stored(log_id(2, 8), at(18));
        c.release(9, u64::MAX);
        assert_eq!(first_in_memory(&c), Some(9));
        assert_eq!(c.on_disk[&8], (log_id(2, 8), at(18)));
        assert_eq!(c.bytes, 200);
    }

    #[tokio::test]
    async fn released_entries_are_read_back_from_disk_also_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<Entry> = (1..=100).map(|i| entry(1, i)).collect();
        {
            let mut store = LogStore::open(dir.path(), 1).unwrap();
            store.append(entries.clone(), IOFlushed::noop()).await.unwrap();
            // Written after the appends: once it returns, they are on disk.
            store.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
            let reader = store.reader();
            reader.release(60, 41);
            let kept: usize = encoded(&entries[40..]).iter().map(Vec::len).sum();
            assert_eq!(reader.in_memory(), (60, kept));
            let read = store.try_get_log_entries(1..=100).await.unwrap();
            assert_eq!(encoded(&read), encoded(&entries));
            let read = store.try_get_log_entries(30..45).await.unwrap();
            assert_eq!(encoded(&read), encoded(&entries[29..44]));
        }
        let mut store = LogStore::open(dir.path(), 1).unwrap();
        let reader = store.reader();
        assert_eq!(reader.in_memory().0, 100, "replay loads the unpurged log");
        reader.release(100, u64::MAX);
        assert_eq!(reader.in_memory(), (0, 0));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(
            state.last_log_id,
            Some(log_id(1, 100)),
            "released entries are still the log's"
        );
        let read = store.try_get_log_entries(1..=100).await.unwrap();
        assert_eq!(encoded(&read), encoded(&entries));
        // Purged entries are gone from disk reads too.
        store.purge(log_id(1, 50)).await.unwrap();
        let read = store.try_get_log_entries(1..=100).await.unwrap();
        assert_eq!(encoded(&read), encoded(&entries[50..]));
        // An append after the release ends the log, in memory.
        store.append([entry(1, 101)], IOFlushed::noop()).await.unwrap();
        let read = store.try_get_log_entries(99..).await.unwrap();
        assert_eq!(
            read.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            vec![99, 100, 101]
        );
    }

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
