//! The Raft log, durable in append-only segment files ([`crate::wal`]),
//! with group commit.
//!
//! Appends are visible to readers at once (from an in-memory copy of the
//! unpurged log) and made durable by one writer thread, which gathers every
//! request waiting for it into a single write and a single fsync.
//!
//! # The leader writes in parallel with replication
//! openraft 0.9 runs nothing else until the leader's own append is flushed,
//! so a leader that waited for its fsync before replicating would pay two
//! fsyncs in series per write (its own, then the followers'). A store
//! opened with [`LogStore::open`]`(dir, Some(id))` instead tells openraft
//! that an append it makes *as the leader of its current term* is flushed
//! at once, and writes it in the background while openraft replicates it,
//! as etcd's leader does. A follower's append is acknowledged only after
//! its fsync, as before.
//!
//! openraft then counts the leader in a commit quorum before its copy is on
//! disk, so nothing may learn of such a commit until it is. The
//! [`Durability`] handle enforces this at the only two places a commit
//! leaves the leader:
//! - the state machine applies an entry (and so answers the client, serves
//!   reads, builds snapshots) only once the leader's log is on disk up to
//!   it ([`crate::state_machine::StateMachine::apply`]);
//! - an AppendEntries carries a commit index only once the leader's log is
//!   on disk up to it ([`crate::network`]).
//!
//! An entry acknowledged by a quorum of followers but not yet on the
//! leader's disk when the leader dies was therefore seen by no one: no
//! client got an answer for it, no replica applied it, no follower was told
//! it is committed. A new leader may keep it or drop it, as with any entry
//! that was never committed. Every entry that anyone *did* see as committed
//! is on the disks of a quorum (the leader's and those of the followers
//! that acknowledged it), which is Raft's durability rule.
//!
//! The one thing the early answer changes for openraft is that a leader
//! can come back from a crash without entries that its followers hold.
//! So a member that led never resumes that term after a restart
//! ([`resume_without_leadership`]): it would reuse log ids its followers
//! hold with other contents.
//!
//! # Correctness
//! - Appends, truncations and purges reach the disk in the order openraft
//!   issued them: they go through one queue to one thread.
//! - A follower's `LogFlushed` is signalled only after the `fdatasync` that
//!   follows the write of the entry; a leader's appends are covered by
//!   [`Durability`], as above.
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
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend};
use tokio::sync::{oneshot, watch};

use crate::proposer::OwnProposals;
use crate::types::{Entry, LogId, NodeId, StorageError, TypeConfig, Vote};
use crate::wal::{Record, Wal};

/// What the writer thread is asked to do, in order.
enum WriteOp {
    /// Encoded entries by index, the sequence number of the append, and the
    /// callback still owed to openraft (none if it was answered early).
    Append(Vec<(u64, Vec<u8>)>, u64, Option<LogFlushed<TypeConfig>>),
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
}

impl Cache {
    /// The id of the last entry, or of the last purged one if none is left.
    fn last_log_id(&self) -> Option<LogId> {
        self.entries.values().next_back().map(|e| e.log_id).or(self.last_purged)
    }
}

/// Appends handed to the writer and not yet on disk.
#[derive(Default)]
struct Unflushed {
    /// `(first index, last index, sequence number)` of each append, in the
    /// order made; ranges are cut back when the log is truncated, so they
    /// describe entries the log holds now.
    appends: VecDeque<(u64, u64, u64)>,
    /// Set when a write failed: nothing after it will reach the disk.
    failed: Option<String>,
}

/// Which entries of the log are on disk: what the leader waits for before
/// it lets anyone learn of a commit (see the module documentation).
#[derive(Clone)]
pub struct Durability {
    state: Arc<watch::Sender<Unflushed>>,
}

impl Durability {
    fn new() -> Durability {
        Durability {
            state: Arc::new(watch::Sender::new(Unflushed::default())),
        }
    }

    /// Waits until every entry up to `index`, as the log holds them now,
    /// is on disk. Fails if the log can no longer be written.
    pub async fn wait_through(&self, index: u64) -> Result<(), String> {
        let mut changes = self.state.subscribe();
        let state = changes
            .wait_for(|s| s.failed.is_some() || s.appends.iter().all(|&(first, _, _)| first > index))
            .await
            .map_err(|_| "the log is closed".to_string())?;
        match &state.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn appended(&self, first: u64, last: u64, seq: u64) {
        self.state.send_modify(|s| s.appends.push_back((first, last, seq)));
    }

    /// Entries from `from` on are gone from the log: they are no longer
    /// waited for.
    fn truncated(&self, from: u64) {
        self.state.send_modify(|s| {
            s.appends.retain_mut(|(first, last, _)| {
                *last = (*last).min(from.saturating_sub(1));
                *first < from
            })
        });
    }

    /// Every append up to sequence number `seq` is on disk.
    fn flushed_through(&self, seq: u64) {
        self.state
            .send_modify(|s| s.appends.retain(|&(_, _, append)| append > seq));
    }

    fn failed(&self, error: String) {
        self.state.send_modify(|s| s.failed = Some(error));
    }

    /// The last index on disk, given that the log ends at `last_index`:
    /// everything before the first append still waiting for its fsync.
    pub fn durable_through(&self, last_index: u64) -> u64 {
        let state = self.state.borrow();
        match state.appends.front() {
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
    vote: Option<Vote>,
    committed: Option<LogId>,
    /// The committed log id not yet handed to the writer.
    unsaved_committed: Arc<Mutex<Option<LogId>>>,
    /// This node's id, if it answers its own appends as leader at once.
    early_as_leader: Option<NodeId>,
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
    /// The id of the log's last entry (appended, not necessarily on disk).
    pub fn last_log_id(&self) -> Option<LogId> {
        self.cache.lock().expect("log cache lock").last_log_id()
    }
}

fn io_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Read, e)
}

impl LogStore {
    /// Opens (or creates) the log in `dir` and loads it.
    ///
    /// With `Some(id)`, the node `id` answers the appends it makes as
    /// leader before they are on disk, and whatever makes a commit visible
    /// must wait for [`LogStore::durability`] (see the module
    /// documentation). With `None`, every append is answered after its
    /// fsync.
    pub fn open(dir: &Path, early_as_leader: Option<NodeId>) -> Result<LogStore, StorageError> {
        let (wal, recovered) = Wal::open(dir).map_err(read_err)?;
        let cache = Cache {
            entries: recovered.entries,
            last_purged: recovered.purged,
        };
        // Failpoint `restart-resumes-leadership` (the `failpoints` feature
        // only): the fast-restart hole of issue 9 again, for the drill to
        // catch (with `leader-log-write=sleep(..)` to widen the window).
        #[cfg(feature = "failpoints")]
        let resumes = fail::eval("restart-resumes-leadership", |_| ()).is_some();
        #[cfg(not(feature = "failpoints"))]
        let resumes = false;
        let vote = recovered.vote.map(|v| {
            if resumes {
                v
            } else {
                resume_without_leadership(v, early_as_leader)
            }
        });
        let committed = recovered.committed;
        let (writer, queue) = mpsc::channel();
        let durability = Durability::new();
        let flushed = durability.clone();
        let unsaved_committed = Arc::new(Mutex::new(None));
        let committed_slot = unsaved_committed.clone();
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || write_loop(wal, queue, flushed, committed_slot))
            .map_err(read_err)?;
        Ok(LogStore {
            cache: Arc::new(Mutex::new(cache)),
            writer,
            vote,
            committed,
            unsaved_committed,
            early_as_leader,
            durability,
            progress: {
                let progress = Progress::default();
                if let Some(c) = committed {
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

    /// A handle on the log's last entry, for the election timer's pre-vote.
    pub fn reader(&self) -> LogReader {
        LogReader {
            cache: self.cache.clone(),
        }
    }

    /// Which entries are on disk, for the state machine and the network.
    pub fn durability(&self) -> Durability {
        self.durability.clone()
    }

    /// Whether an append now is this node's own, as leader of its term.
    fn appending_as_leader(&self) -> bool {
        let (Some(id), Some(vote)) = (self.early_as_leader, self.vote) else {
            return false;
        };
        vote.is_committed() && vote.leader_id().voted_for() == Some(id)
    }

    fn send(&self, op: WriteOp) -> Result<(), StorageError> {
        self.writer.send(op).map_err(|_| {
            io_err(
                ErrorSubject::Logs,
                ErrorVerb::Write,
                std::io::Error::other("the log writer thread has stopped"),
            )
        })
    }
}

/// The vote a restarted member starts from: the saved one, except that a
/// member that answered its own appends early never resumes leading the
/// term it led before the restart.
///
/// # Correctness
/// A leader's appends are acknowledged to openraft before they are on disk,
/// so a crash can take entries that the followers already hold. openraft
/// 0.9 restores a member whose saved vote is committed and names itself as
/// leader of that same term; restored so, it would append new entries under
/// log ids (term, index) that its followers hold with other contents, and
/// they, trusting log ids, would keep theirs (Raft's log matching property
/// gone, acknowledged writes lost on the members that disagree). Saved as
/// not committed, the vote still counts as this member's vote in that term
/// (it grants no other candidate that term), but the member starts as a
/// follower and can lead again only by winning an election in a later term,
/// whose entries never reuse a log id of the old term.
fn resume_without_leadership(vote: Vote, early_as_leader: Option<NodeId>) -> Vote {
    match (early_as_leader, vote.leader_id().voted_for()) {
        (Some(me), Some(leader)) if vote.is_committed() && leader == me => {
            tracing::info!(
                term = vote.leader_id().term,
                "this member led before it stopped; it rejoins as a follower and leads again only in a new term"
            );
            Vote::new(vote.leader_id().term, me)
        }
        _ => vote,
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
    // However the thread ends (a write failed, the store was dropped, a
    // panic), whoever waits for durability learns it will not come.
    struct Stopped(Durability);
    impl Drop for Stopped {
        fn drop(&mut self) {
            self.0.failed("the Raft log writer has stopped".into());
        }
    }
    let _stopped = Stopped(durability.clone());
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
        if batch.iter().any(|op| matches!(op, WriteOp::Append(_, _, None))) {
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
                durability.failed(e.clone());
            }
            None => {
                let last_seq = batch.iter().rev().find_map(|op| match op {
                    WriteOp::Append(_, seq, _) => Some(*seq),
                    _ => None,
                });
                if let Some(seq) = last_seq {
                    durability.flushed_through(seq);
                }
            }
        }
        for op in batch {
            match op {
                WriteOp::Append(_, _, Some(callback)) => callback.log_io_completed(match &failure {
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
            WriteOp::Append(entries, _, _) => {
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
    ) -> Result<Vec<Entry>, StorageError> {
        let cache = self.cache.lock().expect("log cache lock");
        Ok(cache.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        LogReader {
            cache: self.cache.clone(),
        }
        .try_get_log_entries(range)
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
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

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let (done, wait) = oneshot::channel();
        self.send(WriteOp::Vote(*vote, done))?;
        let result = wait
            .await
            .unwrap_or_else(|_| Err("the log writer thread has stopped".into()));
        result.map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, std::io::Error::other(e)))?;
        self.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.committed = committed;
        if let Some(c) = committed {
            self.progress.committed(c.index);
        }
        let mut slot = self.unsaved_committed.lock().expect("committed slot lock");
        *slot = (*slot).max(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
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
                let bytes = bincode::serialize(&entry).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
                encoded.push((entry.log_id.index, bytes));
                cache.entries.insert(entry.log_id.index, entry);
            }
        }
        let (Some(&(first, _)), Some(&(last, _))) = (encoded.first(), encoded.last()) else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        self.next_seq += 1;
        let seq = self.next_seq;
        self.durability.appended(first, last, seq);
        self.progress.appended(last, Instant::now());
        let callback = if self.appending_as_leader() {
            // On disk soon; until then `Durability` keeps the commit from
            // being seen (module documentation).
            callback.log_io_completed(Ok(()));
            None
        } else {
            Some(callback)
        };
        self.send(WriteOp::Append(encoded, seq, callback))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.cache
            .lock()
            .expect("log cache lock")
            .entries
            .split_off(&log_id.index);
        self.durability.truncated(log_id.index);
        self.send(WriteOp::Truncate(log_id.index))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
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
    use std::time::Duration;

    use super::{resume_without_leadership, Durability};
    use crate::types::Vote;

    #[test]
    fn a_member_that_led_never_resumes_that_term_after_a_restart() {
        let led = Vote::new_committed(7, 1);
        assert_eq!(resume_without_leadership(led, Some(1)), Vote::new(7, 1));
        assert!(!resume_without_leadership(led, Some(1)).is_committed());
        // Another member's leadership, an uncommitted vote, or a log that
        // never answers early: unchanged.
        assert_eq!(
            resume_without_leadership(Vote::new_committed(7, 2), Some(1)),
            Vote::new_committed(7, 2)
        );
        assert_eq!(resume_without_leadership(Vote::new(7, 1), Some(1)), Vote::new(7, 1));
        assert_eq!(resume_without_leadership(led, None), led);
    }

    /// Whether `wait_through(index)` returns within a short while, and with what.
    async fn settles(d: &Durability, index: u64) -> Option<Result<(), String>> {
        tokio::time::timeout(Duration::from_millis(50), d.wait_through(index))
            .await
            .ok()
    }

    #[tokio::test]
    async fn waits_for_the_appends_that_hold_entries_up_to_the_index() {
        let d = Durability::new();
        assert_eq!(settles(&d, 10).await, Some(Ok(())), "an empty queue is on disk");
        d.appended(1, 5, 1);
        d.appended(6, 8, 2);
        assert_eq!(settles(&d, 1).await, None);
        d.flushed_through(1);
        assert_eq!(settles(&d, 5).await, Some(Ok(())));
        assert_eq!(settles(&d, 6).await, None, "entries 6..=8 are not on disk yet");
        d.flushed_through(2);
        assert_eq!(settles(&d, 8).await, Some(Ok(())));
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_the_flush_lands() {
        let d = Durability::new();
        d.appended(1, 3, 1);
        let waiter = tokio::spawn({
            let d = d.clone();
            async move { d.wait_through(3).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        d.flushed_through(1);
        assert_eq!(waiter.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn truncation_forgets_entries_that_are_gone_and_keeps_those_rewritten() {
        let d = Durability::new();
        d.appended(1, 5, 1);
        d.appended(6, 10, 2);
        // A new leader's entries replace 4 and later; they are appended
        // again and are not on disk until their own append is.
        d.truncated(4);
        d.appended(4, 6, 3);
        d.flushed_through(2);
        assert_eq!(settles(&d, 3).await, Some(Ok(())));
        assert_eq!(
            settles(&d, 4).await,
            None,
            "the rewritten entry 4 waits for its own append"
        );
        d.flushed_through(3);
        assert_eq!(settles(&d, 6).await, Some(Ok(())));
    }

    #[tokio::test]
    async fn a_failed_write_fails_the_waiters() {
        let d = Durability::new();
        d.appended(1, 1, 1);
        d.failed("disk full".into());
        assert_eq!(settles(&d, 1).await, Some(Err("disk full".into())));
    }
}
