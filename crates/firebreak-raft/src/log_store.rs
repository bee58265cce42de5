//! The Raft log, durable in a redb database, with group commit.
//!
//! Appends are visible to readers at once (from an in-memory copy of the
//! unpurged log) and made durable by one writer thread, which gathers every
//! request waiting for it into a single redb transaction and a single fsync.
//! openraft is told an append is flushed only after that fsync, so an entry
//! counts towards a commit quorum only once it is on disk.
//!
//! # Correctness
//! - Appends, truncations and purges reach the disk in the order openraft
//!   issued them: they go through one queue to one thread.
//! - `LogFlushed` is signalled only after the transaction holding the entry
//!   committed with `Durability::Immediate`.
//! - A vote is durable before `save_vote` returns (Raft's rule: never vote
//!   twice in one term, even across a crash).
//! - The committed index is saved without waiting; openraft tolerates it
//!   being behind after a crash.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const VOTE_KEY: &str = "vote";
const COMMITTED_KEY: &str = "committed";
const PURGED_KEY: &str = "purged";

/// What the writer thread is asked to do, in order.
enum WriteOp {
    Append(Vec<(u64, Vec<u8>)>, LogFlushed<TypeConfig>),
    /// Remove entries from this index on.
    Truncate(u64),
    /// Remove entries up to and including this log id.
    Purge(LogId),
    Vote(Vec<u8>, oneshot::Sender<Result<(), String>>),
    Committed(Vec<u8>),
}

/// The unpurged log, shared by the store and its readers.
#[derive(Default)]
struct Cache {
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
}

/// The Raft log of one node.
pub struct LogStore {
    cache: Arc<Mutex<Cache>>,
    writer: mpsc::Sender<WriteOp>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

/// A read handle on the log, for replication streams.
#[derive(Clone)]
pub struct LogReader {
    cache: Arc<Mutex<Cache>>,
}

fn io_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(&e)).into()
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    io_err(ErrorSubject::Logs, ErrorVerb::Read, e)
}

impl LogStore {
    /// Opens (or creates) the log in `dir/raft-log.redb` and loads it.
    pub fn open(dir: &Path) -> Result<LogStore, StorageError> {
        std::fs::create_dir_all(dir).map_err(read_err)?;
        let db = Database::create(dir.join("raft-log.redb")).map_err(read_err)?;
        {
            // Create the tables so that readers find them.
            let txn = db.begin_write().map_err(read_err)?;
            txn.open_table(LOG).map_err(read_err)?;
            txn.open_table(META).map_err(read_err)?;
            txn.commit().map_err(read_err)?;
        }
        let mut cache = Cache::default();
        let (vote, committed);
        {
            let txn = db.begin_read().map_err(read_err)?;
            let log = txn.open_table(LOG).map_err(read_err)?;
            for row in log.iter().map_err(read_err)? {
                let (index, bytes) = row.map_err(read_err)?;
                let entry: Entry = bincode::deserialize(bytes.value()).map_err(read_err)?;
                cache.entries.insert(index.value(), entry);
            }
            let meta = txn.open_table(META).map_err(read_err)?;
            let get = |key: &str| -> Result<Option<Vec<u8>>, StorageError> {
                Ok(meta.get(key).map_err(read_err)?.map(|v| v.value().to_vec()))
            };
            let decode = |bytes: Option<Vec<u8>>| -> Result<Option<LogId>, StorageError> {
                bytes.map(|b| bincode::deserialize(&b).map_err(read_err)).transpose()
            };
            vote = get(VOTE_KEY)?
                .map(|b| bincode::deserialize::<Vote>(&b).map_err(read_err))
                .transpose()?;
            committed = decode(get(COMMITTED_KEY)?)?;
            cache.last_purged = decode(get(PURGED_KEY)?)?;
        }
        let (writer, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || write_loop(db, queue))
            .map_err(read_err)?;
        Ok(LogStore {
            cache: Arc::new(Mutex::new(cache)),
            writer,
            vote,
            committed,
        })
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

/// The writer thread: one redb transaction and one fsync per batch of
/// queued requests.
fn write_loop(db: Database, queue: mpsc::Receiver<WriteOp>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match queue.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let result = write_batch(&db, &batch);
        let failure = result.as_ref().err().map(|e| e.to_string());
        if let Some(e) = &failure {
            tracing::error!(error = %e, "raft log write failed");
        }
        for op in batch {
            match op {
                WriteOp::Append(_, callback) => callback.log_io_completed(match &failure {
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

fn write_batch(db: &Database, batch: &[WriteOp]) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    let durable = batch.iter().any(|op| !matches!(op, WriteOp::Committed(_)));
    txn.set_durability(if durable {
        Durability::Immediate
    } else {
        Durability::None
    })
    .map_err(|e| redb::Error::from(redb::StorageError::Io(std::io::Error::other(e.to_string()))))?;
    {
        let mut log = txn.open_table(LOG)?;
        let mut meta = txn.open_table(META)?;
        for op in batch {
            match op {
                WriteOp::Append(entries, _) => {
                    for (index, bytes) in entries {
                        log.insert(*index, bytes.as_slice())?;
                    }
                }
                WriteOp::Truncate(from) => {
                    log.retain_in(*from.., |_, _| false)?;
                }
                WriteOp::Purge(upto) => {
                    log.retain_in(..=upto.index, |_, _| false)?;
                    let bytes = bincode::serialize(upto).expect("a log id serializes");
                    meta.insert(PURGED_KEY, bytes.as_slice())?;
                }
                WriteOp::Vote(bytes, _) => {
                    meta.insert(VOTE_KEY, bytes.as_slice())?;
                }
                WriteOp::Committed(bytes) => {
                    meta.insert(COMMITTED_KEY, bytes.as_slice())?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
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
        let last = cache
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(cache.last_purged);
        Ok(LogState {
            last_purged_log_id: cache.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            cache: self.cache.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let (done, wait) = oneshot::channel();
        let bytes = bincode::serialize(vote).expect("a vote serializes");
        self.send(WriteOp::Vote(bytes, done))?;
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
            self.send(WriteOp::Committed(bincode::serialize(&c).expect("a log id serializes")))?;
        }
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
                let bytes = bincode::serialize(&entry).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
                encoded.push((entry.log_id.index, bytes));
                cache.entries.insert(entry.log_id.index, entry);
            }
        }
        self.send(WriteOp::Append(encoded, callback))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.cache
            .lock()
            .expect("log cache lock")
            .entries
            .split_off(&log_id.index);
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
