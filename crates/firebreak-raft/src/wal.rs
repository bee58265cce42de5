//! The Raft log's files: append-only segments of checksummed records, as
//! etcd's WAL keeps them.
//!
//! A record is `[len: u32][crc32: u32][body]` (little-endian; the checksum
//! covers the body), whose body is one byte of kind and then its payload:
//! an entry (as the log store encoded it), a truncation, a purge, a vote,
//! the committed log id, or a write header. A segment is a sequence of
//! writes: each `Wal::write` puts one write at the end of the open segment
//! and `fdatasync`s it before it returns, so a write starts only once every
//! write before it is on disk. A write is
//! - its header, a record whose body is `[8][len: u32][prev: u32]`: `len`
//!   is the length of the rest of the write (its records and its
//!   trailer), `prev` the chain value of the write before it in the
//!   segment;
//! - then its records, `len - 5` bytes;
//! - then its trailer, `[prev: u32][0x5a]`: `prev` again and a fixed
//!   marker byte, so that the write's last byte is never zero (see the
//!   torn rule below). (It is not a CRC-32 of the write: the CRC-32 of
//!   bytes followed by their own CRC-32 is a constant, which would make
//!   every write's chain value the same.)
//!
//! The chain value of a write is the CRC-32 of all its bytes (header and
//! trailer included), continued from the chain value of the write before
//! (`crc32fast::Hasher::new_with_initial`); the first write of a segment
//! continues from a seed derived from the segment's number. Replaying
//! every segment in order rebuilds the log.
//!
//! Released versions wrote writes with a header of kind 6, `[6][len: u32]`,
//! `len` being the length of the records alone, without `prev` and without
//! a trailer. They still replay: a kind 6 write's place in the chain is not
//! checked, but its chain value is computed, so that a kind 8 write after
//! it verifies. A kind 6 write after a kind 8 one is corruption, as this
//! version never writes one. New writes are always of kind 8.
//!
//! Segments after the first are preallocated: written full of zeros (and
//! synced) by a background thread while the one before fills up, so that a
//! write overwrites blocks the file already has and its `fdatasync` need
//! not also write the file's new size (on this project's VM, 90 against
//! 150 µs and 40 against 60 µs of CPU per `fdatasync`). Replay reads
//! nothing but zeros from a write's start on as the end of a segment.
//!
//! # Correctness
//! - A write counts only if every record in it has its length and
//!   checksum, its records (and its trailer, if it has one) fill exactly
//!   the length its header gives, its `prev` is the chain value of the
//!   write before it in its segment (or the segment's seed), and its
//!   trailer, if it has one, is `prev` and the marker. So a write copied
//!   from elsewhere in the log, or from another segment, or left by
//!   another life of the file, never counts; and replay never looks for a
//!   write anywhere but right after the one before, so a client value that
//!   holds the bytes of a write is never taken for one.
//! - A write that does not count is *torn*, the remains of a write that a
//!   crash interrupted, only if both:
//!   - it is the last thing in its segment: only zeros or the end of the
//!     file follow where its header says it ends (or the file ends inside
//!     its header, before that can be read); and
//!   - it is incomplete: it ends past the end of the file, or a 512-byte
//!     sector (aligned in the file) that it overlaps holds only zeros in
//!     the part that is this write's. Its header is checked first: if the
//!     header's own checksum fails, nothing it says is trusted and the
//!     write is torn only if the header itself is incomplete, that is if
//!     a sector the header overlaps holds only zeros from the write's
//!     start (or the sector's) to the sector's end (or the end of the
//!     file), not just in the header's part of it.
//!
//!   A sector reaches the disk whole or not at all, and what the write
//!   overwrote was zeros (preallocated) or nothing (the end of the file),
//!   as etcd's WAL assumes; so a sector the write overlaps that never
//!   reached the disk holds only zeros in the write's part. The converse
//!   is what the trailer is for. The first sector a write overlaps holds
//!   its first byte, the low byte of its header's length (9), and the
//!   last one its last byte, the trailer's marker: neither is ever zero,
//!   however the records end (a write often ends with a log id whose
//!   high bytes are zeros). Every other sector it overlaps lies wholly
//!   inside it. So in a write with a trailer, a sector whose part in the
//!   write is only zeros is either one that never reached the disk or 512
//!   bytes of records that are all zeros (a run of zeros in a value).
//!
//!   A torn write was never synced, so never acknowledged: replay drops it
//!   whole (never part of it) and cuts the file back to the writes before
//!   it (`set_len`, `sync_all`) before anything new is appended, so no
//!   stale byte of it can follow new writes. Only the last segment may end
//!   in a torn write. Any other write that does not count (a checksum
//!   mismatch in a complete write, a header whose checksum fails though
//!   all its bytes reached the disk, a broken chain, bytes other than zeros
//!   after the last write) is corruption of a write that was synced and
//!   perhaps acknowledged: the log refuses to open, naming the segment and
//!   the byte, as etcd refuses to start on a CRC mismatch. (A write whose
//!   header did not reach the disk while later sectors of it did cannot be
//!   told from damage and is refused too.)
//!
//!   Known limits: a damaged last write that happens to hold an aligned
//!   sector of nothing but zeros (512 zero bytes of a value) is taken for
//!   torn and dropped, as etcd's `isTornEntry` would. A kind 6 write, which
//!   has no trailer, is also taken for torn when it is the last of the last
//!   segment, is damaged, and its part of its last sector is only zeros;
//!   and so is one with no records whose damaged header crosses into a
//!   sector where its part (the high bytes of `len`) is only zeros.
//!   Neither can happen to a write with a trailer.
//! - What replay read of the last segment is synced before the log is
//!   used: after a process crash it may have been only in the page cache.
//! - Preallocating never holds up a write: if the zeros are not ready when
//!   the open segment is full, the next segment starts empty and small
//!   ([`FIRST_SEGMENT_BYTES`]), and the zeros are kept for a later one.
//! - A new segment starts with one write of the vote, the committed log id
//!   and the last purged log id, chained to the new segment's seed, and is
//!   on disk (file, contents and directory entry) under its final name
//!   only once that start is (a segment being prepared has a `.prep` name,
//!   which replay deletes), so before any older segment is deleted; a
//!   segment is deleted only when it is the oldest and all its entries are
//!   purged. Each segment's chain starts from its own seed, so the segments
//!   left always replay to the same state, whichever deletions a crash
//!   lost.

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
/// The previous segment's final chain value ([`Record::Link`]).
const LINK: u8 = 9;
/// Started every write of released versions: `[6][len: u32]`, the length
/// of the records that follow in it, unchained. Still read, never written.
const BATCH: u8 = 6;
/// Starts every write: `[8][len: u32][prev: u32]`, the length of the rest
/// of the write (its records and its trailer, [`TRAILER_BYTES`], which
/// ends it after its records) and the chain value of the write before.
const SEALED: u8 = 8;
/// The body of a write header of kind [`BATCH`], and of kind [`SEALED`].
const BATCH_BODY: usize = 5;
const SEALED_BODY: usize = 9;
/// A write of kind [`SEALED`] ends with `[prev: u32][TRAILER_MARK]`, `prev`
/// as in its header: the marker is never zero, so the last byte of the
/// write never is either (module documentation). (Not a CRC-32 of the
/// write: a CRC-32 followed by the CRC-32 of the bytes before it is a
/// constant, so every write's chain value would be the same.)
const TRAILER_BYTES: usize = 5;
/// Any byte but zero would do; not `0xff` either, which erased flash reads
/// as.
const TRAILER_MARK: u8 = 0x5a;
/// A sector: written whole or not at all (see the module documentation).
const SECTOR: usize = 512;

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
    /// The chain value the segment before ended with: the first write of
    /// every segment after the first carries it, so a segment cut short
    /// at a write boundary is seen, not taken for complete.
    Link(u32),
}

/// What replaying the segments found.
#[derive(Default)]
pub(crate) struct Recovered {
    /// Entries by index, after truncations and purges.
    pub(crate) entries: std::collections::BTreeMap<u64, Entry>,
    pub(crate) vote: Option<Vote>,
    pub(crate) committed: Option<LogId>,
    pub(crate) purged: Option<LogId>,
    /// The link record of the segment replayed last, if it had one.
    link: Option<u32>,
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
    /// Where the next write goes in the open segment.
    size: u64,
    /// The chain value of the open segment's last write (its seed if it
    /// has none): the `prev` of the next write.
    chain: u32,
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
        Record::Link(chain) => {
            out.push(LINK);
            out.extend_from_slice(&chain.to_le_bytes());
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
            let entry: Entry = crate::codec::decode(payload).map_err(decode_err)?;
            let index = entry.log_id.index;
            state.entries.insert(index, entry);
            return Ok(Some(index));
        }
        TRUNCATE => {
            let from = u64::from_le_bytes(payload.try_into().map_err(|_| "a truncation of the wrong size")?);
            state.entries.split_off(&from);
        }
        PURGE => {
            let upto: LogId = crate::codec::decode(payload).map_err(decode_err)?;
            state.entries = state.entries.split_off(&(upto.index + 1));
            state.purged = Some(upto);
        }
        VOTE => state.vote = Some(crate::codec::decode(payload).map_err(decode_err)?),
        COMMITTED => state.committed = Some(crate::codec::decode(payload).map_err(decode_err)?),
        LINK => {
            state.link = Some(u32::from_le_bytes(
                payload.try_into().map_err(|_| "a link of the wrong size")?,
            ))
        }
        other => return Err(format!("unknown record kind {other}")),
    }
    Ok(None)
}

/// Checks the record at `at`, which must end within `bytes` (its write):
/// its body and where the next one starts.
fn read_record(bytes: &[u8], at: usize) -> Result<(&[u8], usize), String> {
    let header = bytes
        .get(at..at + HEADER_BYTES)
        .ok_or("a record header that runs past the end of its write")?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_RECORD_BYTES {
        return Err(format!("a record length of {len}"));
    }
    let body = bytes
        .get(at + HEADER_BYTES..at + HEADER_BYTES + len)
        .ok_or("a record that runs past the end of its write")?;
    if crc32fast::hash(body) != crc {
        return Err("a checksum mismatch".into());
    }
    Ok((body, at + HEADER_BYTES + len))
}
/// Where the chain of writes of segment `number` starts: a write copied
/// from another segment never continues it.
fn chain_seed(number: u64) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(b"firebreak raft log segment ");
    hasher.update(&number.to_le_bytes());
    hasher.finalize()
}

/// The chain value of the write `write`, which follows a write of chain
/// value `prev`.
fn chain_after(prev: u32, write: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(prev);
    hasher.update(write);
    hasher.finalize()
}

/// Whether a 512-byte sector (aligned in the file) that overlaps
/// `bytes[from..to]` holds only zeros in the part that is in that range:
/// the range was being written and that sector never reached the disk.
/// Past the end of `bytes`, nothing is looked at.
fn has_unwritten_sector(bytes: &[u8], from: usize, to: usize) -> bool {
    let to = to.min(bytes.len());
    let mut start = from;
    while start < to {
        let stop = ((start / SECTOR + 1) * SECTOR).min(to);
        if bytes[start..stop].iter().all(|&b| b == 0) {
            return true;
        }
        start = stop;
    }
    false
}

/// Whether only zeros, or nothing, follow `end`.
fn nothing_after(bytes: &[u8], end: usize) -> bool {
    bytes.iter().skip(end).all(|&b| b == 0)
}

/// A write that does not count, and why.
#[derive(Debug)]
enum Bad {
    /// The remains of a write a crash interrupted: never synced.
    Torn(String),
    /// Damage to a write that was synced.
    Corrupt(String),
}

/// A whole, valid write.
struct Write<'a> {
    /// The bodies of its records.
    records: Vec<&'a [u8]>,
    /// Where it ends (the next write starts).
    end: usize,
    /// Its header's kind: [`BATCH`] or [`SEALED`].
    kind: u8,
}

/// What a write header says.
struct WriteHeader {
    kind: u8,
    /// The length of the rest of the write: its records, and its trailer
    /// if it is [`SEALED`].
    len: usize,
    /// The chain value of the write before, unless the write is a
    /// [`BATCH`].
    prev: Option<u32>,
}

fn parse_write_header(body: &[u8]) -> Result<WriteHeader, String> {
    match *body {
        [BATCH, l0, l1, l2, l3] => Ok(WriteHeader {
            kind: BATCH,
            len: u32::from_le_bytes([l0, l1, l2, l3]) as usize,
            prev: None,
        }),
        [SEALED, l0, l1, l2, l3, p0, p1, p2, p3] => Ok(WriteHeader {
            kind: SEALED,
            len: u32::from_le_bytes([l0, l1, l2, l3]) as usize,
            prev: Some(u32::from_le_bytes([p0, p1, p2, p3])),
        }),
        _ => Err("a write that does not start with a write header".into()),
    }
}

/// The trailer of a [`SEALED`] write that follows a write of chain value
/// `prev`.
fn trailer(prev: u32) -> [u8; TRAILER_BYTES] {
    let [p0, p1, p2, p3] = prev.to_le_bytes();
    [p0, p1, p2, p3, TRAILER_MARK]
}

/// Reads the write at `at`, which must follow a write of chain value
/// `chain` and of header kind `after` (0 if it is the first of its
/// segment), and tells a torn one from a corrupt one (module
/// documentation, `# Correctness`).
fn read_write(bytes: &[u8], at: usize, chain: u32, after: u8) -> Result<Write<'_>, Bad> {
    // The header, a record of its own, first: nothing it says is trusted
    // before its checksum holds. Its length field tells a kind 6 header
    // from a kind 8 one; any other value is damage, and it is taken for a
    // kind 8 one.
    let header_body = match bytes.get(at..at + 4) {
        Some(len) if len == (BATCH_BODY as u32).to_le_bytes() => BATCH_BODY,
        _ => SEALED_BODY,
    };
    let header_end = at + HEADER_BYTES + header_body;
    if header_end > bytes.len() {
        return Err(Bad::Torn("a write header cut short by the end of the file".into()));
    }
    let header = read_record(&bytes[..header_end], at).and_then(|(body, _)| parse_write_header(body));
    let WriteHeader { kind, len, prev } = match header {
        Ok(header) => header,
        Err(why) => {
            // Where the damaged header says the write ends, if only to see
            // whether anything follows it.
            let claimed = u32::from_le_bytes(bytes[at + 9..at + 13].try_into().expect("4 bytes")) as usize;
            // Each sector the header overlaps is looked at whole from the
            // write's start on, not just in the header's part: an
            // unwritten one is zeros throughout, while one that was
            // written holds a nonzero byte of the write (the header's
            // first; or, in its last sector, a record's kind, 8 bytes
            // after the header, or the trailer's marker, 4 bytes after),
            // where the header's own part of it may be only the zero high
            // bytes of `len` or `prev`.
            let sectors_end = header_end.div_ceil(SECTOR) * SECTOR;
            return Err(
                if has_unwritten_sector(bytes, at, sectors_end) && nothing_after(bytes, header_end + claimed) {
                    Bad::Torn(format!("{why} in a write header that did not all reach the disk"))
                } else {
                    Bad::Corrupt(format!("{why} in a write header"))
                },
            );
        }
    };
    let end = header_end + len;
    if end > bytes.len() {
        return Err(Bad::Torn("a write cut short by the end of the file".into()));
    }
    let check = || -> Result<Vec<&[u8]>, String> {
        let records_end = match kind {
            SEALED => end
                .checked_sub(TRAILER_BYTES)
                .filter(|&e| e >= header_end)
                .ok_or("a write too short for its trailer")?,
            _ => end,
        };
        let mut records = Vec::new();
        let mut next = header_end;
        while next < records_end {
            let (body, after) = read_record(&bytes[..records_end], next)?;
            records.push(body);
            next = after;
        }
        match prev {
            Some(prev) if prev != chain => {
                return Err("a write that does not follow the write before it (its chain value does not match)".into())
            }
            None if after > BATCH => return Err("an unchained write after a chained one".into()),
            _ => {}
        }
        if kind == SEALED && bytes[records_end..end] != trailer(chain) {
            return Err("a write whose trailer does not match it".into());
        }
        Ok(records)
    };
    match check() {
        Ok(records) => Ok(Write { records, end, kind }),
        Err(why) if has_unwritten_sector(bytes, at, end) && nothing_after(bytes, end) => {
            Err(Bad::Torn(format!("{why} in a write that did not all reach the disk")))
        }
        Err(why) => Err(Bad::Corrupt(why)),
    }
}

/// What replaying one segment found.
struct Replayed {
    /// The length of its whole writes.
    whole: u64,
    /// Why it ends before its end of file, if it does: a torn last write.
    torn: Option<String>,
    /// The highest entry index in it.
    last_index: Option<u64>,
    /// The chain value of its last whole write (its seed if it has none).
    chain: u32,
}

/// Reads the writes of segment `number` into `state`. A write that does not
/// count is an error unless it is torn (module documentation), which is
/// reported in `torn`. A write's records are applied only once all of them
/// and its place in the chain are checked.
fn replay_segment(path: &Path, number: u64, state: &mut Recovered) -> std::io::Result<Replayed> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let corrupt = |why: &str, at: usize| {
        invalid(format!(
            "the Raft log is corrupt: {why} in the write at byte {at} of {}",
            path.display()
        ))
    };
    let mut at = 0usize;
    let mut chain = chain_seed(number);
    // The kind of the last write's header: a kind 6 write never follows a
    // kind 8 one.
    let mut kind = 0;
    let mut last_index = None;
    while at < bytes.len() {
        if bytes[at..].iter().all(|&b| b == 0) {
            // The preallocated rest of the segment.
            break;
        }
        match read_write(&bytes, at, chain, kind) {
            Ok(write) => {
                for body in write.records {
                    match replay(body, state) {
                        Ok(Some(index)) => last_index = Some(index),
                        Ok(None) => {}
                        Err(why) => return Err(corrupt(&why, at)),
                    }
                }
                chain = chain_after(chain, &bytes[at..write.end]);
                kind = write.kind;
                at = write.end;
            }
            Err(Bad::Torn(why)) => {
                return Ok(Replayed {
                    whole: at as u64,
                    torn: Some(why),
                    last_index,
                    chain,
                })
            }
            Err(Bad::Corrupt(why)) => return Err(corrupt(&why, at)),
        }
    }
    Ok(Replayed {
        whole: at as u64,
        torn: None,
        last_index,
        chain,
    })
}

/// One write's bytes: its header (the length of `records` and the
/// trailer, and `prev`, the chain value of the write before), then
/// `records`, then the trailer.
fn encode_write(records: &[Record<'_>], prev: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(256);
    for record in records {
        encode(record, &mut body);
    }
    let len = u32::try_from(body.len() + TRAILER_BYTES).expect("a write is smaller than 4 GiB");
    let mut out = Vec::with_capacity(HEADER_BYTES + SEALED_BODY + body.len() + TRAILER_BYTES);
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.push(SEALED);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&prev.to_le_bytes());
    let crc = crc32fast::hash(&out[HEADER_BYTES..]);
    out[..4].copy_from_slice(&(SEALED_BODY as u32).to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&trailer(prev));
    out
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Checks that the segment just replayed (into `state`) links to the one
/// replayed before it, which ended with chain value `before` (`None`: it is
/// the first one left, whose predecessor may be deleted).
fn check_link(state: &mut Recovered, before: Option<u32>, path: &Path) -> std::io::Result<()> {
    match (state.link.take(), before) {
        (Some(link), Some(before)) if link != before => Err(invalid(format!(
            "the Raft log is corrupt: the segment before {} does not end with the write this one says it ends \
             with (cut short or replaced)",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// What the segments in `dir` replay to, read-only: nothing is cut,
/// removed or synced (for inspecting a stopped member's log). A torn tail
/// ends the log as it would on start-up; corruption is an error.
pub(crate) fn inspect(dir: &Path) -> std::io::Result<Recovered> {
    let mut numbers = Vec::new();
    for item in std::fs::read_dir(dir)? {
        let name = item?.file_name();
        let name = name.to_string_lossy();
        if let Some(hex) = name.strip_suffix(".wal") {
            let number = u64::from_str_radix(hex, 16)
                .map_err(|_| invalid(format!("unexpected file {name} in {}", dir.display())))?;
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    let mut state = Recovered::default();
    let mut before = None;
    for (i, &number) in numbers.iter().enumerate() {
        let path = dir.join(segment_name(number));
        let replayed = replay_segment(&path, number, &mut state)?;
        check_link(&mut state, before, &path)?;
        before = Some(replayed.chain);
        if let (Some(why), true) = (replayed.torn, i + 1 < numbers.len()) {
            return Err(invalid(format!(
                "the Raft log is corrupt: {why} at byte {} of {}, which is not the last segment",
                replayed.whole,
                path.display()
            )));
        }
    }
    Ok(state)
}

impl Wal {
    /// Opens the segments in `dir` (creating the first if there is none)
    /// and replays them.
    pub(crate) fn open(dir: &Path) -> std::io::Result<(Wal, Recovered)> {
        Wal::open_with(dir, SEGMENT_BYTES)
    }

    fn open_with(dir: &Path, segment_bytes: u64) -> std::io::Result<(Wal, Recovered)> {
        crate::durable_dir::create_dir_durably(dir)?;
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
        let mut last_chain = 0;
        for (i, &number) in numbers.iter().enumerate() {
            let path = dir.join(segment_name(number));
            let Replayed {
                whole,
                torn,
                last_index,
                chain,
            } = replay_segment(&path, number, &mut state)?;
            check_link(&mut state, (i > 0).then_some(last_chain), &path)?;
            last_whole = whole;
            last_chain = chain;
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
        let (file, size, chain) = match segments.last() {
            Some(last) => {
                let file = OpenOptions::new().write(true).open(&last.path)?;
                // What replay read may have been only in the page cache
                // (the process died before its fsync): make it durable
                // before anything relies on it, e.g. before this member
                // counts it towards a quorum again.
                file.sync_all()?;
                sync_dir(dir)?;
                (file, last_whole, last_chain)
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
                (file, 0, chain_seed(1))
            }
        };
        let wal = Wal {
            dir: dir.to_owned(),
            segments,
            file,
            size,
            chain,
            next: None,
            segment_bytes,
            vote: state.vote,
            committed: state.committed,
            purged: state.purged,
        };
        Ok((wal, state))
    }

    /// Writes `records` at the end of the log in one write, chained to the
    /// write before, and makes them durable (`fdatasync`) before it
    /// returns: no write starts before the one before it is on disk, which
    /// is what tells a torn write from a corrupt one on replay. Segments
    /// fully purged are deleted afterwards.
    pub(crate) fn write(&mut self, records: &[Record<'_>]) -> std::io::Result<()> {
        if self.size >= self.open_segment_limit() {
            self.rotate()?;
        }
        let buf = encode_write(records, self.chain);
        let segment = self.segments.last_mut().expect("an open segment");
        for record in records {
            match record {
                Record::Entry(index, _) => segment.last_index = Some(*index),
                Record::Vote(v) => self.vote = Some(*v),
                Record::Committed(c) => self.committed = Some(*c),
                Record::Purge(p) => self.purged = Some(*p),
                Record::Truncate(_) | Record::Link(_) => {}
            }
        }
        self.file.write_all_at(&buf, self.size)?;
        // Failpoint `ack-before-fsync` (the `failpoints` feature only): the
        // write is reported done, and so acknowledged and applied, without
        // its fsync: only a power cut shows the difference, and the
        // drill's `power-loss` scenario must catch it.
        #[cfg(feature = "failpoints")]
        let skip_sync = fail::eval("ack-before-fsync", |_| ()).is_some();
        #[cfg(not(feature = "failpoints"))]
        let skip_sync = false;
        if !skip_sync {
            let started = std::time::Instant::now();
            self.file.sync_data()?;
            firebreak_metrics::metrics()
                .wal_fsync_duration
                .observe(started.elapsed().as_secs_f64());
        }
        self.size += buf.len() as u64;
        self.chain = chain_after(self.chain, &buf);
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
        state.push(Record::Link(self.chain));
        // The segment's first write: its chain starts from its own seed.
        let seed = chain_seed(number);
        let buf = encode_write(&state, seed);
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
        self.chain = chain_after(seed, &buf);
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
    use std::io::Write as _;

    use bytes::Bytes;
    use firebreak_mvcc::{PutRequest, WriteCommand};
    use openraft::EntryPayload;

    use super::*;

    fn log_id(term: u64, index: u64) -> LogId {
        crate::types::log_id(term, 0, index)
    }

    fn entry(term: u64, index: u64) -> Vec<u8> {
        let entry = Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Blank,
        };
        bincode::serialize(&entry).unwrap()
    }

    /// An entry that puts `value`, as a client would.
    fn put(term: u64, index: u64, value: &[u8]) -> Vec<u8> {
        let entry = Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(WriteCommand::Put(PutRequest {
                key: Bytes::from_static(b"key"),
                value: Bytes::copy_from_slice(value),
                ..Default::default()
            })),
        };
        bincode::serialize(&entry).unwrap()
    }

    /// Fuzz-style: segments damaged at random (bytes flipped, runs of bytes
    /// zeroed or replaced, files cut short or grown with noise). Opening
    /// never panics and never hangs; it either replays a prefix of what was
    /// written (every entry it returns is one that was written, at its
    /// index) or refuses with an error. A fixed seed in CI;
    /// `FIREBREAK_FUZZ_ITERATIONS` runs longer by hand.
    #[test]
    fn damaged_segments_replay_a_prefix_or_refuse() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let iterations: usize = std::env::var("FIREBREAK_FUZZ_ITERATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(400);
        let pristine = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open_with(pristine.path(), 600).unwrap();
            wal.write(&[Record::Vote(Vote::new_committed(1, 0))]).unwrap();
            for i in 1..=40 {
                append(&mut wal, 1, i..=i);
            }
        }
        let files: Vec<(std::ffi::OsString, Vec<u8>)> = std::fs::read_dir(pristine.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name(), std::fs::read(e.path()).unwrap())
            })
            .filter(|(name, _)| name.to_string_lossy().ends_with(".wal"))
            .collect();
        let mut rng = StdRng::seed_from_u64(0x5e9_3e47);
        let (mut opened, mut refused) = (0, 0);
        for _ in 0..iterations {
            let dir = tempfile::tempdir().unwrap();
            for (name, bytes) in &files {
                std::fs::write(dir.path().join(name), bytes).unwrap();
            }
            let (victim, original) = &files[rng.gen_range(0..files.len())];
            let mut bytes = original.clone();
            match rng.gen_range(0..4) {
                0 => {
                    for _ in 0..rng.gen_range(1..4) {
                        let at = rng.gen_range(0..bytes.len());
                        bytes[at] ^= 1 << rng.gen_range(0..8);
                    }
                }
                1 => {
                    let at = rng.gen_range(0..bytes.len());
                    let end = (at + rng.gen_range(1..700)).min(bytes.len());
                    let zero = rng.gen_bool(0.5);
                    for b in &mut bytes[at..end] {
                        *b = if zero { 0 } else { rng.gen() };
                    }
                }
                2 => bytes.truncate(rng.gen_range(0..bytes.len())),
                _ => bytes.extend((0..rng.gen_range(1..300)).map(|_| rng.gen::<u8>())),
            }
            std::fs::write(dir.path().join(victim), &bytes).unwrap();
            match Wal::open_with(dir.path(), 600) {
                Ok((_, state)) => {
                    opened += 1;
                    for (index, e) in &state.entries {
                        assert_eq!(e.log_id, log_id(1, *index), "an entry that was never written");
                    }
                    let indexes: Vec<u64> = state.entries.keys().copied().collect();
                    let expected: Vec<u64> = (1..=indexes.len() as u64).collect();
                    assert_eq!(indexes, expected, "replay returned a hole, not a prefix");
                }
                Err(e) => {
                    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
                    refused += 1;
                }
            }
        }
        eprintln!("{iterations} damaged logs: {opened} opened to a prefix, {refused} refused");
        assert!(opened > 0 && refused > 0, "the damage was too uniform to test anything");
    }

    fn append(wal: &mut Wal, term: u64, indexes: std::ops::RangeInclusive<u64>) {
        let bytes: Vec<(u64, Vec<u8>)> = indexes.map(|i| (i, entry(term, i))).collect();
        let records: Vec<Record<'_>> = bytes.iter().map(|(i, b)| Record::Entry(*i, b)).collect();
        wal.write(&records).unwrap();
    }

    /// The log's entries as `(index, term)`.
    fn terms(state: &Recovered) -> Vec<(u64, u64)> {
        state
            .entries
            .values()
            .map(|e| (e.log_id.index, e.log_id.leader_id.term))
            .collect()
    }

    /// The values the log's entries put, by index.
    fn values(state: &Recovered) -> Vec<(u64, Vec<u8>)> {
        state
            .entries
            .values()
            .filter_map(|e| match &e.payload {
                EntryPayload::Normal(WriteCommand::Put(p)) => Some((e.log_id.index, p.value.to_vec())),
                _ => None,
            })
            .collect()
    }

    fn segment_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|f| f.as_ref().unwrap().file_name().to_string_lossy().ends_with(".wal"))
            .count()
    }

    /// Where each write of a segment ends, read from the headers alone.
    fn write_ends(bytes: &[u8]) -> Vec<usize> {
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let mut ends = Vec::new();
        let mut at = 0;
        while at < bytes.len() && bytes[at..].iter().any(|&b| b != 0) {
            at += HEADER_BYTES + u32_at(at) + u32_at(at + 9);
            ends.push(at);
        }
        ends
    }

    /// A write as released versions wrote it: header kind 6.
    fn old_write(records: &[Record<'_>]) -> Vec<u8> {
        let mut body = Vec::new();
        for record in records {
            encode(record, &mut body);
        }
        let mut header = vec![BATCH];
        header.extend_from_slice(&(body.len() as u32).to_le_bytes());
        let mut out = Vec::new();
        out.extend_from_slice(&5u32.to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&header).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&body);
        out
    }

    /// Segment 1 holding entries 1 to 3 and then one last write, of a put
    /// at index 4 and then the committed log id (whose last bytes, the
    /// index's high ones, are zeros), whose records end `offset` bytes
    /// into a sector; and where that last write starts and ends.
    fn last_write_with_records_ending_at(offset: usize) -> (Vec<u8>, usize, usize) {
        let build = |value_len: usize| {
            let dir = tempfile::tempdir().unwrap();
            {
                let (mut wal, _) = Wal::open(dir.path()).unwrap();
                append(&mut wal, 1, 1..=3);
                let long = put(1, 4, &vec![0xa5; value_len]);
                wal.write(&[Record::Entry(4, &long), Record::Committed(log_id(1, 4))])
                    .unwrap();
            }
            let bytes = std::fs::read(dir.path().join(segment_name(1))).unwrap();
            let ends = write_ends(&bytes);
            assert_eq!(ends.len(), 2);
            (bytes, ends[0], ends[1])
        };
        let (_, _, end) = build(1000);
        let shift = (SECTOR + offset - (end - TRAILER_BYTES) % SECTOR) % SECTOR;
        let (bytes, start, end) = build(1000 + shift);
        assert_eq!((end - TRAILER_BYTES) % SECTOR, offset);
        assert!(end - start > 2 * SECTOR);
        (bytes, start, end)
    }

    fn open_err(dir: &Path) -> String {
        match Wal::open(dir) {
            Ok(_) => panic!("the log opened"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn replay_rebuilds_entries_vote_committed_truncations_and_purges() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, state) = Wal::open(dir.path()).unwrap();
            assert!(state.entries.is_empty() && state.vote.is_none());
            append(&mut wal, 1, 1..=10);
            wal.write(&[Record::Vote(Vote::new_committed(2, 3))]).unwrap();
            wal.write(&[Record::Truncate(8)]).unwrap();
            append(&mut wal, 2, 8..=9);
            wal.write(&[Record::Committed(log_id(2, 9)), Record::Purge(log_id(1, 3))])
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
    fn the_committed_index_written_alone_is_synced_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            append(&mut wal, 1, 1..=2);
            // What the writer does when idle; `write` has no unsynced mode.
            wal.write(&[Record::Committed(log_id(1, 2))]).unwrap();
        }
        let (_, state) = Wal::open(dir.path()).unwrap();
        assert_eq!(state.committed, Some(log_id(1, 2)));
        assert_eq!(terms(&state), vec![(1, 1), (2, 1)]);
    }

    #[test]
    fn a_last_write_cut_short_by_the_end_of_the_file_is_cut_off_and_the_log_goes_on() {
        let template = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(template.path()).unwrap();
            append(&mut wal, 1, 1..=3);
            append(&mut wal, 1, 4..=5);
        }
        let original = std::fs::read(template.path().join(segment_name(1))).unwrap();
        let ends = write_ends(&original);
        let whole = ends[0];
        assert_eq!(ends[1], original.len());
        let header = HEADER_BYTES + SEALED_BODY;
        for cut in [
            whole + 1,                          // inside the write header's length
            whole + 11,                         // inside the write header's body
            whole + header,                     // right after the write header
            whole + header + 5,                 // inside a record header
            whole + header + HEADER_BYTES + 10, // inside a record
            original.len() - 1,                 // all but its last byte
        ] {
            let dir = tempfile::tempdir().unwrap();
            let segment = dir.path().join(segment_name(1));
            std::fs::write(&segment, &original[..cut]).unwrap();
            {
                let (mut wal, state) = Wal::open(dir.path()).unwrap();
                assert_eq!(terms(&state), vec![(1, 1), (2, 1), (3, 1)], "cut at {cut}");
                assert_eq!(
                    std::fs::metadata(&segment).unwrap().len(),
                    whole as u64,
                    "the torn write is cut off (cut at {cut})"
                );
                append(&mut wal, 2, 4..=5);
            }
            let (_, state) = Wal::open(dir.path()).unwrap();
            assert_eq!(
                terms(&state),
                vec![(1, 1), (2, 1), (3, 1), (4, 2), (5, 2)],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_flipped_bit_in_the_last_write_refuses_to_open() {
        let template = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(template.path()).unwrap();
            append(&mut wal, 1, 1..=3);
            append(&mut wal, 1, 4..=4);
        }
        let original = std::fs::read(template.path().join(segment_name(1))).unwrap();
        assert!(
            original.len() < SECTOR,
            "one sector, so that no part of it is unwritten"
        );
        let last = write_ends(&original)[0];
        for at in [
            last + 2,       // the write header's own length
            last + 9,       // the write's length
            last + 12,      // the write's length, now past the end of the file
            last + 14,      // the chain value of the write before
            last + 17 + 5,  // a record's checksum
            last + 17 + 20, // a record's body
            original.len() - 1,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut bytes = original.clone();
            bytes[at] ^= 0x40;
            std::fs::write(dir.path().join(segment_name(1)), &bytes).unwrap();
            let err = open_err(dir.path());
            assert!(
                err.contains("corrupt") && err.contains(&format!("at byte {last} of")),
                "{at}: {err}"
            );
            assert_eq!(
                std::fs::read(dir.path().join(segment_name(1))).unwrap(),
                bytes,
                "nothing is cut"
            );
        }
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
        // Inside the first write's first record, well before the last write.
        bytes[HEADER_BYTES + SEALED_BODY + HEADER_BYTES + 20] ^= 0x40;
        std::fs::write(&segment, bytes).unwrap();
        let err = open_err(dir.path());
        assert!(err.contains("corrupt") && err.contains("at byte 0 of"), "{err}");
    }

    #[test]
    fn a_last_write_whose_later_sectors_are_zeros_is_torn() {
        let template = tempfile::tempdir().unwrap();
        let value = vec![0xa5u8; 1500];
        {
            let (mut wal, _) = Wal::open(template.path()).unwrap();
            append(&mut wal, 1, 1..=3);
            let long = put(1, 4, &value);
            wal.write(&[Record::Entry(4, &long)]).unwrap();
        }
        let mut original = std::fs::read(template.path().join(segment_name(1))).unwrap();
        let ends = write_ends(&original);
        let (start, end) = (ends[0], ends[1]);
        assert!(end - start > 1024);
        // Preallocated: zeros after it.
        original.resize(8192, 0);
        let second_sector = (start / SECTOR + 1) * SECTOR;
        let damages: [(&str, std::ops::Range<usize>, bool); 3] = [
            ("every sector after its first one unwritten", second_sector..end, true),
            (
                "one sector in its middle unwritten",
                second_sector..second_sector + SECTOR,
                true,
            ),
            (
                "a flipped bit in its middle",
                second_sector + 1..second_sector + 2,
                false,
            ),
        ];
        for (what, range, torn) in damages {
            let dir = tempfile::tempdir().unwrap();
            let segment = dir.path().join(segment_name(1));
            let mut bytes = original.clone();
            for b in &mut bytes[range] {
                *b = if torn { 0 } else { *b ^ 0x40 };
            }
            std::fs::write(&segment, &bytes).unwrap();
            if !torn {
                let err = open_err(dir.path());
                assert!(err.contains("corrupt"), "{what}: {err}");
                continue;
            }
            {
                let (mut wal, state) = Wal::open(dir.path()).unwrap();
                assert_eq!(terms(&state), vec![(1, 1), (2, 1), (3, 1)], "{what}");
                assert_eq!(std::fs::metadata(&segment).unwrap().len(), start as u64, "{what}");
                append(&mut wal, 2, 4..=4);
            }
            let (_, state) = Wal::open(dir.path()).unwrap();
            assert_eq!(terms(&state), vec![(1, 1), (2, 1), (3, 1), (4, 2)], "{what}");
        }
    }

    #[test]
    fn a_flipped_bit_in_a_last_write_whose_records_end_in_zeros_refuses_to_open() {
        // The records end 3 bytes into a sector, and those 3 bytes are
        // zeros: without the trailer, that sector's part of the write
        // would look unwritten and the damaged write would be taken for
        // torn and dropped.
        let (mut original, start, end) = last_write_with_records_ending_at(3);
        let records_end = end - TRAILER_BYTES;
        let last_sector = records_end / SECTOR * SECTOR;
        assert_eq!(original[last_sector..records_end], [0, 0, 0]);
        assert_eq!(original[end - 1], TRAILER_MARK);
        // Preallocated: zeros after it.
        original.resize(8192, 0);
        for at in [
            start + SECTOR,    // the put's value
            (start + end) / 2, // the put's value, in another sector
            records_end - 20,  // the committed log id's record
            last_sector,       // one of its zeros
            end - 2,           // the trailer's copy of `prev`
            end - 1,           // the trailer's marker
        ] {
            let dir = tempfile::tempdir().unwrap();
            let segment = dir.path().join(segment_name(1));
            let mut bytes = original.clone();
            bytes[at] ^= 0x40;
            std::fs::write(&segment, &bytes).unwrap();
            let err = open_err(dir.path());
            assert!(
                err.contains("corrupt") && err.contains(&format!("at byte {start} of")),
                "{at}: {err}"
            );
            assert_eq!(std::fs::read(&segment).unwrap(), bytes, "nothing is cut");
        }
    }

    #[test]
    fn a_last_write_whose_trailer_never_reached_the_disk_is_torn() {
        // The trailer alone in the last sector, across a sector boundary,
        // and after zeros of the records in the same sector.
        for offset in [0, SECTOR - 2, 3] {
            let (mut bytes, start, end) = last_write_with_records_ending_at(offset);
            // The last sector the write overlaps never written; zeros
            // after it (preallocated).
            let last_sector = (end - 1) / SECTOR * SECTOR;
            bytes[last_sector..end].fill(0);
            bytes.resize(8192, 0);
            let dir = tempfile::tempdir().unwrap();
            let segment = dir.path().join(segment_name(1));
            std::fs::write(&segment, &bytes).unwrap();
            {
                let (mut wal, state) = Wal::open(dir.path()).unwrap();
                assert_eq!(terms(&state), vec![(1, 1), (2, 1), (3, 1)], "{offset}");
                assert_eq!(state.committed, None, "{offset}");
                assert_eq!(
                    std::fs::metadata(&segment).unwrap().len(),
                    start as u64,
                    "the torn write is cut off ({offset})"
                );
                append(&mut wal, 2, 4..=4);
            }
            let (_, state) = Wal::open(dir.path()).unwrap();
            assert_eq!(terms(&state), vec![(1, 1), (2, 1), (3, 1), (4, 2)], "{offset}");
        }
    }

    #[test]
    fn a_value_of_zeros_that_fills_sectors_is_data() {
        let dir = tempfile::tempdir().unwrap();
        let zeros = vec![0u8; 2048];
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            append(&mut wal, 1, 1..=3);
            let long = put(1, 4, &zeros);
            wal.write(&[Record::Entry(4, &long)]).unwrap();
        }
        let segment = dir.path().join(segment_name(1));
        // Preallocated: zeros after it.
        let len = std::fs::metadata(&segment).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&segment)
            .unwrap()
            .set_len(8192)
            .unwrap();
        {
            let (mut wal, state) = Wal::open(dir.path()).unwrap();
            assert_eq!(values(&state), vec![(4, zeros.clone())]);
            assert_eq!(std::fs::metadata(&segment).unwrap().len(), 8192, "nothing is cut");
            let short = put(1, 5, b"after");
            wal.write(&[Record::Entry(5, &short)]).unwrap();
            assert_eq!(
                wal.size,
                len + (HEADER_BYTES + SEALED_BODY + HEADER_BYTES + 1 + short.len() + TRAILER_BYTES) as u64
            );
        }
        let (_, state) = Wal::open(dir.path()).unwrap();
        assert_eq!(values(&state), vec![(4, zeros), (5, b"after".to_vec())]);
    }

    #[test]
    fn a_value_that_holds_a_write_is_never_taken_for_one() {
        // A whole valid write, as the first of segment 1 would be, inside
        // a client's value.
        let inner = entry(1, 9);
        let embedded = encode_write(&[Record::Entry(9, &inner)], chain_seed(1));
        let mut value = b"prefix".to_vec();
        value.extend_from_slice(&embedded);
        value.extend_from_slice(b"suffix");
        let template = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(template.path()).unwrap();
            append(&mut wal, 1, 1..=2);
            for index in 3..=4 {
                let bytes = put(1, index, &value);
                wal.write(&[Record::Entry(index, &bytes)]).unwrap();
            }
        }
        let original = std::fs::read(template.path().join(segment_name(1))).unwrap();
        let ends = write_ends(&original);
        let (_, state) = Wal::open(template.path()).unwrap();
        assert_eq!(values(&state), vec![(3, value.clone()), (4, value.clone())]);
        assert_eq!(terms(&state), vec![(1, 1), (2, 1), (3, 1), (4, 1)]);

        // Damage before the embedded write, in the last write and in the
        // one before it: corruption, never a skip to the embedded write.
        for at in [
            ends[1] + HEADER_BYTES + SEALED_BODY + 5,
            ends[0] + HEADER_BYTES + SEALED_BODY + 5,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut bytes = original.clone();
            bytes[at] ^= 0x01;
            std::fs::write(dir.path().join(segment_name(1)), &bytes).unwrap();
            let err = open_err(dir.path());
            assert!(err.contains("corrupt"), "{at}: {err}");
        }

        // A crash in the last write after the embedded one was written:
        // torn, cut off, whatever its value holds.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(segment_name(1)), &original[..original.len() - 3]).unwrap();
        let (_, state) = Wal::open(dir.path()).unwrap();
        assert_eq!(terms(&state), vec![(1, 1), (2, 1), (3, 1)]);
        assert_eq!(
            std::fs::metadata(dir.path().join(segment_name(1))).unwrap().len(),
            ends[1] as u64
        );
    }

    #[test]
    fn a_write_copied_from_elsewhere_does_not_continue_the_chain() {
        let template = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open_with(template.path(), 300).unwrap();
            let mut i = 1;
            while wal.segments.len() < 2 {
                append(&mut wal, 1, i..=i);
                i += 1;
            }
            append(&mut wal, 1, i..=i);
        }
        assert_eq!(segment_files(template.path()), 2);
        let first = std::fs::read(template.path().join(segment_name(1))).unwrap();
        let second = std::fs::read(template.path().join(segment_name(2))).unwrap();
        let (first_ends, second_ends) = (write_ends(&first), write_ends(&second));
        let whole = *second_ends.last().unwrap();
        let copies = [
            // A write of segment 1 spliced at the end of segment 2.
            &first[first_ends[0]..first_ends[1]],
            // Segment 2's last write, again after itself.
            &second[second_ends[second_ends.len() - 2]..whole],
        ];
        for copy in copies {
            assert!(whole + copy.len() < SECTOR, "within one sector");
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(segment_name(1)), &first).unwrap();
            let mut bytes = second[..whole].to_vec();
            bytes.extend_from_slice(copy);
            std::fs::write(dir.path().join(segment_name(2)), &bytes).unwrap();
            let err = open_err(dir.path());
            assert!(err.contains("corrupt") && err.contains("chain value"), "{err}");
        }
        // Untouched, both replay.
        let (_, state) = Wal::open(template.path()).unwrap();
        assert!(!terms(&state).is_empty());
    }

    #[test]
    fn bytes_other_than_zeros_after_the_last_write_are_corruption() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            append(&mut wal, 1, 1..=3);
        }
        let segment = dir.path().join(segment_name(1));
        OpenOptions::new()
            .append(true)
            .open(&segment)
            .unwrap()
            .write_all(&[0xa5; 40])
            .unwrap();
        let err = open_err(dir.path());
        assert!(err.contains("corrupt"), "{err}");
    }

    #[test]
    fn writes_of_earlier_versions_replay_and_new_writes_chain_onto_them() {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join(segment_name(1));
        let (e1, e2) = (entry(1, 1), entry(1, 2));
        let mut old = old_write(&[Record::Vote(Vote::new_committed(1, 0))]);
        old.extend(old_write(&[Record::Entry(1, &e1), Record::Entry(2, &e2)]));
        std::fs::write(&segment, &old).unwrap();
        {
            let (mut wal, state) = Wal::open(dir.path()).unwrap();
            assert_eq!(terms(&state), vec![(1, 1), (2, 1)]);
            assert_eq!(state.vote, Some(Vote::new_committed(1, 0)));
            append(&mut wal, 1, 3..=4);
            wal.write(&[Record::Committed(log_id(1, 4))]).unwrap();
        }
        {
            let (_, state) = Wal::open(dir.path()).unwrap();
            assert_eq!(terms(&state), (1..=4).map(|i| (i, 1)).collect::<Vec<_>>());
            assert_eq!(state.committed, Some(log_id(1, 4)));
        }
        // The old writes are untouched, and the first new write chains
        // onto them: its `prev` is the CRC-32 of all their bytes,
        // continued from the segment's seed.
        let bytes = std::fs::read(&segment).unwrap();
        assert_eq!(bytes[..old.len()], old);
        let mut chain = crc32fast::Hasher::new_with_initial(chain_seed(1));
        chain.update(&old);
        let prev = old.len() + HEADER_BYTES + 5;
        assert_eq!(bytes[prev..prev + 4], chain.finalize().to_le_bytes());
        // The new writes are of kind 8, with a trailer.
        let ends = write_ends(&bytes);
        assert_eq!(ends.len(), 4);
        for (start, end) in [(ends[1], ends[2]), (ends[2], ends[3])] {
            assert_eq!(bytes[start + HEADER_BYTES], SEALED);
            let prev = &bytes[start + HEADER_BYTES + 5..start + HEADER_BYTES + 9];
            assert_eq!(bytes[end - TRAILER_BYTES..end - 1], *prev);
            assert_eq!(bytes[end - 1], TRAILER_MARK);
        }
        // An unchained write after chained ones is not one this version
        // wrote.
        let e5 = entry(1, 5);
        OpenOptions::new()
            .append(true)
            .open(&segment)
            .unwrap()
            .write_all(&old_write(&[Record::Entry(5, &e5)]))
            .unwrap();
        let err = open_err(dir.path());
        assert!(err.contains("corrupt") && err.contains("unchained"), "{err}");
    }

    #[test]
    fn a_write_header_of_an_unknown_kind_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            append(&mut wal, 1, 1..=3);
            append(&mut wal, 1, 4..=5);
        }
        let segment = dir.path().join(segment_name(1));
        let mut bytes = std::fs::read(&segment).unwrap();
        // The last write's header, made of kind 7 with a valid checksum.
        let at = write_ends(&bytes)[0];
        let body = at + HEADER_BYTES..at + HEADER_BYTES + SEALED_BODY;
        bytes[body.start] = 7;
        let crc = crc32fast::hash(&bytes[body]);
        bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&segment, &bytes).unwrap();
        let err = open_err(dir.path());
        assert!(err.contains("corrupt") && err.contains("write header"), "{err}");
    }

    #[test]
    fn segments_rotate_carry_the_state_and_go_once_purged() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open_with(dir.path(), 200).unwrap();
            wal.write(&[Record::Vote(Vote::new_committed(1, 0))]).unwrap();
            for i in 1..=20 {
                append(&mut wal, 1, i..=i);
            }
            assert!(segment_files(dir.path()) > 3, "small segments rotate");
            wal.write(&[Record::Purge(log_id(1, 15))]).unwrap();
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
        let original = std::fs::read(&first).unwrap();
        let mut bytes = original.clone();
        bytes[HEADER_BYTES + 2] ^= 1;
        std::fs::write(&first, bytes).unwrap();
        let err = Wal::open(dir.path()).err().expect("a corrupt log does not open");
        assert!(err.to_string().contains("corrupt"), "{err}");
        // A torn write is one only at the end of the last segment.
        std::fs::write(&first, &original[..original.len() - 1]).unwrap();
        let err = open_err(dir.path());
        assert!(err.contains("corrupt") && err.contains("not the last segment"), "{err}");
    }

    #[test]
    fn an_old_redb_log_is_refused_with_a_way_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("raft-log.redb"), b"old").unwrap();
        let err = Wal::open(dir.path()).err().expect("the old format is refused");
        assert!(err.to_string().contains("firebreak restore"), "{err}");
    }
}
