//! The Raft log's files: append-only segments of checksummed records, as
//! etcd's WAL keeps them.
//!
//! A segment is a sequence of records, each `[len: u32][crc32: u32][body]`
//! (little-endian; the checksum covers the body), whose body is one byte of
//! kind and then its payload: an entry (as the log store encoded it), a
//! truncation, a purge, a vote or the committed log id. Replaying every
//! segment in order rebuilds the log. A batch of records is one `write` and
//! at most one `fdatasync`.
//!
//! Segments after the first are preallocated: written full of zeros (and
//! synced) by a background thread while the one before fills up, so that a
//! batch overwrites blocks the file already has and its `fdatasync` need
//! not also write the file's new size (on this project's VM, 90 against
//! 150 µs and 40 against 60 µs of CPU per `fdatasync`). Replay reads a
//! zero record header followed by nothing but zeros as the end of a
//! segment.
//!
//! # Correctness
//! - Every write (one batch) starts with a record holding its length, and
//!   a record counts only if its length and checksum hold. A crash may
//!   leave the last write of the last segment torn; replay drops that
//!   whole write (never part of it) and the file is cut back to the writes
//!   before it before anything new is appended (so no stale bytes of the
//!   lost write can ever follow new records and be read as records). A bad
//!   write followed by a good one is corruption, not a torn tail (the next
//!   write starts only after the one before was synced), and the log
//!   refuses to open rather than drop acknowledged entries.
//! - What replay read of the last segment is synced before the log is
//!   used: after a process crash it may have been only in the page cache.
//! - Preallocating never holds up a write: if the zeros are not ready when
//!   the open segment is full, the next segment starts empty and small
//!   ([`FIRST_SEGMENT_BYTES`]), and the zeros are kept for a later one. Records after a torn one were never covered
//!   by an `fdatasync` (it would have covered the torn one too), so nothing
//!   acknowledged is dropped. A bad record anywhere else is corruption, and
//!   the log refuses to open.
//! - A new segment starts with the vote, the committed log id and the last
//!   purged log id, and is on disk (file, contents and directory entry)
//!   under its final name only once that start is (a segment being
//!   prepared has a `.prep` name, which replay deletes), so before any
//!   older segment is deleted; a segment is deleted only when
//!   it is the oldest and all its entries are purged. So the segments left
//!   always replay to the same state, whichever deletions a crash lost.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::types::{Entry, LogId, Vote};

/// A segment is closed and a new one started past this size.
const SEGMENT_BYTES: u64 = 64 << 20;
/// The first segment is not preallocated and closes early, so that a
/// member that writes little never preallocates anything.
const FIRST_SEGMENT_BYTES: u64 = 1 << 20;
/// No record is larger (a log entry is at most a few MiB).
const MAX_RECORD_BYTES: usize = 256 << 20;
const HEADER_BYTES: usize = 8;

const ENTRY: u8 = 1;
const TRUNCATE: u8 = 2;
const PURGE: u8 = 3;
const VOTE: u8 = 4;
const COMMITTED: u8 = 5;
/// Starts every write: the length of the records that follow in it.
const BATCH: u8 = 6;

/// One change to the log, as written.
pub(crate) enum Record<'a> {
    /// An entry at `index`, encoded by the caller.
    Entry(u64, &'a [u8]),
    /// Entries from this index on are gone.
    Truncate(u64),
    /// Entries up to and including this log id are gone.
    Purge(LogId),
    Vote(Vote),
    Committed(LogId),
}

/// What replaying the segments found.
#[derive(Default)]
pub(crate) struct Recovered {
    /// Entries by index, after truncations and purges.
    pub(crate) entries: std::collections::BTreeMap<u64, Entry>,
    pub(crate) vote: Option<Vote>,
    pub(crate) committed: Option<LogId>,
    pub(crate) purged: Option<LogId>,
}

struct Segment {
    number: u64,
    path: PathBuf,
    /// Past this size it is closed: the full size if it was preallocated,
    /// [`FIRST_SEGMENT_BYTES`] if not (so that the log soon moves on to a
    /// preallocated one).
    limit: u64,
    /// The highest entry index written to it, if any.
    last_index: Option<u64>,
}

/// The segments of one log; used by its writer thread only.
pub(crate) struct Wal {
    dir: PathBuf,
    /// Oldest first; the last one is open for appending.
    segments: Vec<Segment>,
    file: File,
    /// Where the next record goes in the open segment.
    size: u64,
    /// The next preallocated segment, being written as [`PREPARED`]: a
    /// flag that cancels it, and the thread (which returns whether it
    /// finished).
    next: Option<(Arc<AtomicBool>, JoinHandle<std::io::Result<bool>>)>,
    /// Past this size, the open segment is closed.
    segment_bytes: u64,
    /// What a new segment starts with.
    vote: Option<Vote>,
    committed: Option<LogId>,
    purged: Option<LogId>,
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

fn segment_name(number: u64) -> String {
    format!("{number:016x}.wal")
}

/// A segment being started, before it is renamed into place.
fn prepared_name(number: u64) -> String {
    format!("{number:016x}.wal.prep")
}

/// The next preallocated segment, while the zeros are written.
const PREPARED: &str = "next.wal.prep";

/// Zeros are written and synced this much at a time while preallocating...
const PREALLOCATE_CHUNK: u64 = 256 << 10;
/// ...with this pause between chunks: the device never holds more than one
/// chunk of zeros ahead of the log's own `fdatasync` (a whole segment
/// flushed at once stalled the log's syncs by 20-40 ms), and a 64 MiB
/// segment takes about a second, while filling the one before takes at
/// least several.
const PREALLOCATE_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// Writes `path` full of zeros, `len` bytes, and syncs it, gently.
/// Returns false, having removed the file, if `cancel` was set first.
fn preallocate(path: &Path, len: u64, cancel: &AtomicBool) -> std::io::Result<bool> {
    let file = OpenOptions::new().create(true).write(true).truncate(true).open(path)?;
    let zeros = vec![0u8; PREALLOCATE_CHUNK as usize];
    let mut at = 0;
    while at < len {
        if cancel.load(Ordering::Relaxed) {
            drop(file);
            std::fs::remove_file(path)?;
            return Ok(false);
        }
        let n = (len - at).min(PREALLOCATE_CHUNK);
        file.write_all_at(&zeros[..n as usize], at)?;
        file.sync_data()?;
        at += n;
        std::thread::sleep(PREALLOCATE_PAUSE);
    }
    file.sync_all()?;
    Ok(true)
}

fn encode(record: &Record<'_>, out: &mut Vec<u8>) {
    fn serialize(out: &mut Vec<u8>, value: &impl serde::Serialize) {
        bincode::serialize_into(out, value).expect("a log id or vote serializes");
    }
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    match record {
        Record::Entry(_, bytes) => {
            out.push(ENTRY);
            out.extend_from_slice(bytes);
        }
        Record::Truncate(from) => {
            out.push(TRUNCATE);
            out.extend_from_slice(&from.to_le_bytes());
        }
        Record::Purge(log_id) => {
            out.push(PURGE);
            serialize(out, log_id);
        }
        Record::Vote(vote) => {
            out.push(VOTE);
            serialize(out, vote);
        }
        Record::Committed(log_id) => {
            out.push(COMMITTED);
            serialize(out, log_id);
        }
    }
    let body = &out[start + HEADER_BYTES..];
    let len = u32::try_from(body.len()).expect("a record is smaller than 4 GiB");
    let crc = crc32fast::hash(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Applies one record's body to `state`; returns the entry index it wrote.
fn replay(body: &[u8], state: &mut Recovered) -> Result<Option<u64>, String> {
    let (&kind, payload) = body.split_first().ok_or("an empty record")?;
    let decode_err = |e: bincode::Error| e.to_string();
    match kind {
        ENTRY => {
            let entry: Entry = bincode::deserialize(payload).map_err(decode_err)?;
            let index = entry.log_id.index;
            state.entries.insert(index, entry);
            return Ok(Some(index));
        }
        TRUNCATE => {
            let from = u64::from_le_bytes(payload.try_into().map_err(|_| "a truncation of the wrong size")?);
            state.entries.split_off(&from);
        }
        PURGE => {
            let upto: LogId = bincode::deserialize(payload).map_err(decode_err)?;
            state.entries = state.entries.split_off(&(upto.index + 1));
            state.purged = Some(upto);
        }
        VOTE => state.vote = Some(bincode::deserialize(payload).map_err(decode_err)?),
        COMMITTED => state.committed = Some(bincode::deserialize(payload).map_err(decode_err)?),
        other => return Err(format!("unknown record kind {other}")),
    }
    Ok(None)
}

/// Checks the record at `at`: its body and where the next one starts.
fn read_record(bytes: &[u8], at: usize) -> Result<(&[u8], usize), String> {
    let header = bytes.get(at..at + HEADER_BYTES).ok_or("a torn record header")?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_RECORD_BYTES {
        return Err(format!("a record length of {len}"));
    }
    let body = bytes
        .get(at + HEADER_BYTES..at + HEADER_BYTES + len)
        .ok_or("a torn record")?;
    if crc32fast::hash(body) != crc {
        return Err("a checksum mismatch".into());
    }
    Ok((body, at + HEADER_BYTES + len))
}

/// The records of the batch (one write) at `at`, and where it ends.
fn read_batch(bytes: &[u8], at: usize) -> Result<(Vec<&[u8]>, usize), String> {
    let (head, first) = read_record(bytes, at)?;
    let [BATCH, l0, l1, l2, l3] = *head else {
        return Err("a write that does not start with its length".into());
    };
    let end = first + u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    if end > bytes.len() {
        return Err("a torn write".into());
    }
    let mut records = Vec::new();
    let mut next = first;
    while next < end {
        let (body, after) = read_record(bytes, next)?;
        records.push(body);
        next = after;
    }
    if next != end {
        return Err("records that overrun their write".into());
    }
    Ok((records, end))
}

/// Whether a whole, valid write starts anywhere from `from` on.
fn later_write_exists(bytes: &[u8], from: usize) -> bool {
    (from..bytes.len()).any(|at| {
        bytes.get(at..at + 4) == Some(&5u32.to_le_bytes()[..])
            && read_record(bytes, at).is_ok_and(|(body, _)| body[0] == BATCH)
    })
}

/// What replaying one segment found.
struct Replayed {
    /// The length of its whole writes.
    whole: u64,
    /// Why it ends before its end of file, if it does: a torn last write.
    torn: Option<String>,
    /// The highest entry index in it.
    last_index: Option<u64>,
}

/// Reads one segment's writes into `state`. A bad write followed by a good
/// one is corruption (the writer writes the next only after syncing the
/// one before) and an error; a bad last write is a torn tail, reported in
/// `torn`. A write's records are applied only once all of them are good.
fn replay_segment(path: &Path, state: &mut Recovered) -> std::io::Result<Replayed> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut at = 0usize;
    let mut last_index = None;
    while at < bytes.len() {
        if bytes[at..].iter().all(|&b| b == 0) {
            // The preallocated rest of the segment.
            break;
        }
        match read_batch(&bytes, at) {
            Ok((records, end)) => {
                for body in records {
                    match replay(body, state) {
                        Ok(Some(index)) => last_index = Some(index),
                        Ok(None) => {}
                        Err(why) => {
                            return Err(invalid(format!(
                                "the Raft log is corrupt: {why} in the write at byte {at} of {}",
                                path.display()
                            )))
                        }
                    }
                }
                at = end;
            }
            Err(why) if later_write_exists(&bytes, at + 1) => {
                return Err(invalid(format!(
                    "the Raft log is corrupt: {why} in the write at byte {at} of {}, and later writes follow it",
                    path.display()
                )));
            }
            Err(why) => {
                return Ok(Replayed {
                    whole: at as u64,
                    torn: Some(why),
                    last_index,
                })
            }
        }
    }
    Ok(Replayed {
        whole: at as u64,
        torn: None,
        last_index,
    })
}

/// One write's bytes: its length, then `records`.
fn encode_write(records: &[Record<'_>]) -> Vec<u8> {
    let mut body = Vec::with_capacity(256);
    for record in records {
        encode(record, &mut body);
    }
    let len = u32::try_from(body.len()).expect("a write is smaller than 4 GiB");
    let mut out = Vec::with_capacity(body.len() + HEADER_BYTES + 5);
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.push(BATCH);
    out.extend_from_slice(&len.to_le_bytes());
    let crc = crc32fast::hash(&out[HEADER_BYTES..]);
    out[..4].copy_from_slice(&5u32.to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Wal {
    /// Opens the segments in `dir` (creating the first if there is none)
    /// and replays them.
    pub(crate) fn open(dir: &Path) -> std::io::Result<(Wal, Recovered)> {
        Wal::open_with(dir, SEGMENT_BYTES)
    }

    fn open_with(dir: &Path, segment_bytes: u64) -> std::io::Result<(Wal, Recovered)> {
        std::fs::create_dir_all(dir)?;
        if dir.join("raft-log.redb").exists() {
            return Err(invalid(format!(
                "{} holds a Raft log in the redb format of earlier Firebreak versions, which this version \
                 does not read; start this member from a snapshot (`firebreak restore`) in a new data directory",
                dir.display()
            )));
        }
        let mut numbers = Vec::new();
        for item in std::fs::read_dir(dir)? {
            let name = item?.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".wal.prep") {
                // Never a segment: it became one only by being renamed.
                std::fs::remove_file(dir.join(&*name))?;
                continue;
            }
            if let Some(hex) = name.strip_suffix(".wal") {
                let number = u64::from_str_radix(hex, 16)
                    .map_err(|_| invalid(format!("unexpected file {name} in {}", dir.display())))?;
                numbers.push(number);
            }
        }
        numbers.sort_unstable();
        let mut state = Recovered::default();
        let mut segments = Vec::new();
        let mut last_whole = 0;
        for (i, &number) in numbers.iter().enumerate() {
            let path = dir.join(segment_name(number));
            let Replayed {
                whole,
                torn,
                last_index,
            } = replay_segment(&path, &mut state)?;
            last_whole = whole;
            if let Some(why) = torn {
                if i + 1 < numbers.len() {
                    return Err(invalid(format!(
                        "the Raft log is corrupt: {why} at byte {whole} of {}, which is not the last segment",
                        path.display()
                    )));
                }
                tracing::warn!(segment = %path.display(), at = whole, %why, "cutting a torn tail off the Raft log");
                let file = OpenOptions::new().write(true).open(&path)?;
                file.set_len(whole)?;
                file.sync_all()?;
            }
            let preallocated = std::fs::metadata(&path)?.len() >= segment_bytes;
            segments.push(Segment {
                number,
                path,
                limit: if preallocated {
                    segment_bytes
                } else {
                    segment_bytes.min(FIRST_SEGMENT_BYTES)
                },
                last_index,
            });
        }
        let (file, size) = match segments.last() {
            Some(last) => {
                let file = OpenOptions::new().write(true).open(&last.path)?;
                // What replay read may have been only in the page cache
                // (the process died before its fsync): make it durable
                // before anything relies on it, e.g. before this member
                // counts it towards a quorum again.
                file.sync_all()?;
                sync_dir(dir)?;
                (file, last_whole)
            }
            None => {
                let path = dir.join(segment_name(1));
                let file = OpenOptions::new().create_new(true).write(true).open(&path)?;
                sync_dir(dir)?;
                segments.push(Segment {
                    number: 1,
                    path,
                    limit: segment_bytes.min(FIRST_SEGMENT_BYTES),
                    last_index: None,
                });
                (file, 0)
            }
        };
        let wal = Wal {
            dir: dir.to_owned(),
            segments,
            file,
            size,
            next: None,
            segment_bytes,
            vote: state.vote,
            committed: state.committed,
            purged: state.purged,
        };
        Ok((wal, state))
    }

    /// Writes `records` at the end of the log in one write, then makes them
    /// durable if `sync`. Segments fully purged are deleted afterwards.
    pub(crate) fn write(&mut self, records: &[Record<'_>], sync: bool) -> std::io::Result<()> {
        let mut rotated = false;
        if self.size >= self.open_segment_limit() {
            self.rotate()?;
            rotated = true;
        }
        let buf = encode_write(records);
        let segment = self.segments.last_mut().expect("an open segment");
        for record in records {
            match record {
                Record::Entry(index, _) => segment.last_index = Some(*index),
                Record::Vote(v) => self.vote = Some(*v),
                Record::Committed(c) => self.committed = Some(*c),
                Record::Purge(p) => self.purged = Some(*p),
                Record::Truncate(_) => {}
            }
        }
        self.file.write_all_at(&buf, self.size)?;
        self.size += buf.len() as u64;
        if sync || rotated {
            self.file.sync_data()?;
        }
        // The first segment waits until it is half full, so that a member
        // that writes little never preallocates anything.
        let first = self.segments.len() == 1 && self.segments[0].number == 1;
        if self.next.is_none() && (!first || self.size >= self.open_segment_limit() / 2) {
            self.prepare_next()?;
        }
        if records.iter().any(|r| matches!(r, Record::Purge(_))) {
            self.remove_purged_segments()?;
        }
        Ok(())
    }

    /// The size past which the open segment is closed.
    fn open_segment_limit(&self) -> u64 {
        self.segments.last().map_or(self.segment_bytes, |s| s.limit)
    }

    /// Starts preallocating the next segment.
    fn prepare_next(&mut self) -> std::io::Result<()> {
        let path = self.dir.join(PREPARED);
        let len = self.segment_bytes;
        let cancel = Arc::new(AtomicBool::new(false));
        let cancelled = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("raft-log-prealloc".into())
            .spawn(move || preallocate(&path, len, &cancelled))?;
        self.next = Some((cancel, thread));
        Ok(())
    }

    /// Closes the open segment and starts the next with the log's state.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.sync_data()?;
        let number = self.segments.last().map_or(1, |s| s.number + 1);
        // Never wait for the zeros (the writer would stall every member's
        // log for a second or more): unless they are ready, the next
        // segment starts empty and small, and they stay for a later one.
        let ready = match &self.next {
            Some((_, thread)) if thread.is_finished() => {
                let (_, thread) = self.next.take().expect("checked above");
                match thread.join() {
                    Ok(Ok(finished)) => finished,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "preallocating a Raft log segment failed");
                        false
                    }
                    Err(_) => false,
                }
            }
            _ => false,
        };
        let prepared = if ready {
            self.dir.join(PREPARED)
        } else {
            let fresh = self.dir.join(prepared_name(number));
            File::create(&fresh)?;
            fresh
        };
        let file = OpenOptions::new().write(true).open(&prepared)?;
        let mut state = Vec::new();
        state.extend(self.vote.map(Record::Vote));
        state.extend(self.committed.map(Record::Committed));
        state.extend(self.purged.map(Record::Purge));
        let buf = encode_write(&state);
        file.write_all_at(&buf, 0)?;
        file.sync_data()?;
        let path = self.dir.join(segment_name(number));
        std::fs::rename(&prepared, &path)?;
        sync_dir(&self.dir)?;
        self.segments.push(Segment {
            number,
            path,
            limit: if ready {
                self.segment_bytes
            } else {
                self.segment_bytes.min(FIRST_SEGMENT_BYTES)
            },
            last_index: None,
        });
        self.file = file;
        self.size = buf.len() as u64;
        Ok(())
    }

    /// Deletes the oldest segments while none of their entries is kept.
    /// Only segments older than the open one go; the open one's start was
    /// made durable when it was started ([`Wal::rotate`]).
    fn remove_purged_segments(&mut self) -> std::io::Result<()> {
        let Some(purged) = self.purged else { return Ok(()) };
        while self.segments.len() > 1 {
            let oldest = &self.segments[0];
            if oldest.last_index.is_some_and(|i| i > purged.index) {
                break;
            }
            // The purge is durable already; a segment that cannot be
            // deleted only wastes space (and replays harmlessly).
            if let Err(e) = std::fs::remove_file(&oldest.path) {
                tracing::warn!(segment = %oldest.path.display(), error = %e, "cannot delete a purged Raft log segment");
                break;
            }
            self.segments.remove(0);
        }
        Ok(())
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        if let Some((cancel, _)) = &self.next {
            cancel.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 0), index)
    }

    fn entry(term: u64, index: u64) -> Vec<u8> {
        let entry = Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Blank,
        };
        bincode::serialize(&entry).unwrap()
    }

    fn append(wal: &mut Wal, term: u64, indexes: std::ops::RangeInclusive<u64>) {
        let bytes: Vec<(u64, Vec<u8>)> = indexes.map(|i| (i, entry(term, i))).collect();
        let records: Vec<Record<'_>> = bytes.iter().map(|(i, b)| Record::Entry(*i, b)).collect();
        wal.write(&records, true).unwrap();
    }

    /// The log's entries as `(index, term)`.
    fn terms(state: &Recovered) -> Vec<(u64, u64)> {
        state
            .entries
            .values()
            .map(|e| (e.log_id.index, e.log_id.leader_id.term))
            .collect()
    }

    fn segment_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|f| f.as_ref().unwrap().file_name().to_string_lossy().ends_with(".wal"))
            .count()
    }

    #[test]
    fn replay_rebuilds_entries_vote_committed_truncations_and_purges() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, state) = Wal::open(dir.path()).unwrap();
            assert!(state.entries.is_empty() && state.vote.is_none());
            append(&mut wal, 1, 1..=10);
            wal.write(&[Record::Vote(Vote::new_committed(2, 3))], true).unwrap();
            wal.write(&[Record::Truncate(8)], true).unwrap();
            append(&mut wal, 2, 8..=9);
            wal.write(&[Record::Committed(log_id(2, 9)), Record::Purge(log_id(1, 3))], false)
                .unwrap();
        }
        let (_, state) = Wal::open(dir.path()).unwrap();
        let expected: Vec<(u64, u64)> = (4..=7).map(|i| (i, 1)).chain([(8, 2), (9, 2)]).collect();
        assert_eq!(terms(&state), expected);
        assert_eq!(state.vote, Some(Vote::new_committed(2, 3)));
        assert_eq!(state.committed, Some(log_id(2, 9)));
        assert_eq!(state.purged, Some(log_id(1, 3)));
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_the_log_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            append(&mut wal, 1, 1..=3);
        }
        let segment = dir.path().join(segment_name(1));
        let whole = std::fs::metadata(&segment).unwrap().len();
        // Half of a fourth record, as a crash during its write leaves it.
        let mut torn = Vec::new();
        encode(&Record::Entry(4, &entry(1, 4)), &mut torn);
        torn.truncate(torn.len() / 2);
        OpenOptions::new()
            .append(true)
            .open(&segment)
            .unwrap()
            .write_all(&torn)
            .unwrap();
        {
            let (mut wal, state) = Wal::open(dir.path()).unwrap();
            assert_eq!(terms(&state), vec![(1, 1), (2, 1), (3, 1)]);
            assert_eq!(
                std::fs::metadata(&segment).unwrap().len(),
                whole,
                "the torn record is cut off"
            );
            append(&mut wal, 1, 4..=5);
        }
        let (_, state) = Wal::open(dir.path()).unwrap();
        assert_eq!(terms(&state).len(), 5, "records after the cut replay");
    }

    #[test]
    fn a_flipped_bit_in_a_record_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            append(&mut wal, 1, 1..=3);
        }
        let segment = dir.path().join(segment_name(1));
        let mut bytes = std::fs::read(&segment).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&segment, bytes).unwrap();
        // In the last write it is taken for a torn tail: the whole write
        // goes, never part of it.
        let (_, state) = Wal::open(dir.path()).unwrap();
        assert!(terms(&state).is_empty());
    }

    #[test]
    fn a_flipped_bit_before_the_last_write_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            append(&mut wal, 1, 1..=3);
            append(&mut wal, 1, 4..=4);
        }
        let segment = dir.path().join(segment_name(1));
        let mut bytes = std::fs::read(&segment).unwrap();
        // Inside the first write's second record, well before the last write.
        bytes[2 * HEADER_BYTES + 5 + 20] ^= 0x40;
        std::fs::write(&segment, bytes).unwrap();
        let err = Wal::open(dir.path())
            .err()
            .expect("an acknowledged write is never dropped silently");
        assert!(err.to_string().contains("later writes follow it"), "{err}");
    }

    #[test]
    fn segments_rotate_carry_the_state_and_go_once_purged() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open_with(dir.path(), 200).unwrap();
            wal.write(&[Record::Vote(Vote::new_committed(1, 0))], true).unwrap();
            for i in 1..=20 {
                append(&mut wal, 1, i..=i);
            }
            assert!(segment_files(dir.path()) > 3, "small segments rotate");
            wal.write(&[Record::Purge(log_id(1, 15))], true).unwrap();
            assert!(segment_files(dir.path()) <= 3, "purged segments are deleted");
        }
        let (_, state) = Wal::open(dir.path()).unwrap();
        assert_eq!(terms(&state), (16..=20).map(|i| (i, 1)).collect::<Vec<_>>());
        assert_eq!(
            state.vote,
            Some(Vote::new_committed(1, 0)),
            "the vote survives its segment"
        );
        assert_eq!(state.purged, Some(log_id(1, 15)));
    }

    #[test]
    fn preallocated_segments_end_at_their_zeros_and_the_log_goes_on_there() {
        let dir = tempfile::tempdir().unwrap();
        let segment_bytes = 512;
        {
            let (mut wal, _) = Wal::open_with(dir.path(), segment_bytes).unwrap();
            for i in 1..=60 {
                append(&mut wal, 1, i..=i);
                // Time for the zeros of the next segment.
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            assert!(wal.segments.len() >= 3, "the log rotated into preallocated segments");
        }
        // Segments started while zeros were ready are as long as the
        // limit, however few records the last one holds.
        let preallocated = (2..=segment_files(dir.path()) as u64)
            .filter(|&n| std::fs::metadata(dir.path().join(segment_name(n))).unwrap().len() >= segment_bytes)
            .count();
        assert!(preallocated > 0, "no segment was preallocated");
        {
            let (mut wal, state) = Wal::open_with(dir.path(), segment_bytes).unwrap();
            assert_eq!(terms(&state).len(), 60);
            // The next record goes right after the last one, not after
            // the zeros.
            append(&mut wal, 1, 61..=61);
        }
        let (_, state) = Wal::open_with(dir.path(), segment_bytes).unwrap();
        assert_eq!(terms(&state), (1..=61).map(|i| (i, 1)).collect::<Vec<_>>());
    }

    #[test]
    fn a_half_prepared_segment_is_not_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            append(&mut wal, 1, 1..=3);
        }
        // A crash while the next segment was being preallocated.
        std::fs::write(dir.path().join(prepared_name(2)), [0u8; 100]).unwrap();
        std::fs::write(dir.path().join(PREPARED), [0u8; 100]).unwrap();
        let (_, state) = Wal::open(dir.path()).unwrap();
        assert_eq!(terms(&state).len(), 3);
        assert!(!dir.path().join(prepared_name(2)).exists(), "the leftover is removed");
        assert!(!dir.path().join(PREPARED).exists(), "the leftover is removed");
    }

    #[test]
    fn corruption_before_the_last_segment_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open_with(dir.path(), 100).unwrap();
            for i in 1..=10 {
                append(&mut wal, 1, i..=i);
            }
        }
        let first = dir.path().join(segment_name(1));
        let mut bytes = std::fs::read(&first).unwrap();
        bytes[HEADER_BYTES + 2] ^= 1;
        std::fs::write(&first, bytes).unwrap();
        let err = Wal::open(dir.path()).err().expect("a corrupt log does not open");
        assert!(err.to_string().contains("corrupt"), "{err}");
    }

    #[test]
    fn an_old_redb_log_is_refused_with_a_way_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("raft-log.redb"), b"old").unwrap();
        let err = Wal::open(dir.path()).err().expect("the old format is refused");
        assert!(err.to_string().contains("firebreak restore"), "{err}");
    }
}
