//! Storage-engine measurement for Firebreak's Raft log (docs/storage-choice.md).
//!
//! Workload: Raft-log appends of 256-byte payloads plus a 16-byte header
//! (index, term), in batches of 1, 16 and 64 entries, each batch durable
//! (fsync'd) before the next one starts — what a log writer does per group
//! commit. Then: reopen a 100k-entry log and iterate it, as on restart.
//!
//! Engines: a plain append-only file with `sync_data` per batch (the floor),
//! redb, fjall and raft-engine, each with the durable commit its docs name,
//! plus the raw device flush (4 KiB overwritten in place + fdatasync).
//! Because the machine is shared and its disk's flush latency swings from one
//! second to the next, appends interleave the contenders batch by batch
//! (A B C D E, B C D E A, ...) so they all see the same disk; read-back
//! alternates engines within each round. Tables give the median over rounds
//! and every round's value, so the spread is visible.
//!
//! Knobs (environment): BENCH_DIR (default <crate>/target/bench-data, must
//! be on a real disk), BENCH_ROUNDS (5), BENCH_SECS (seconds per contender
//! per round, 1.2), BENCH_READ_ENTRIES (100000), BENCH_ONLY (comma-separated
//! subset of file,redb,fjall,raft-engine).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const PAYLOAD: usize = 256;
const HEADER: usize = 16; // index u64 LE + term u64 LE
const TERM: u64 = 7;
const BATCH_SIZES: [usize; 3] = [1, 16, 64];
const WARMUP_BATCHES: usize = 10;

// ---------------------------------------------------------------- entries

/// A deterministic, incompressible payload (xorshift), so compression in an
/// engine gains nothing it would not gain on real, mostly random values.
fn entry(index: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + PAYLOAD);
    v.extend_from_slice(&index.to_le_bytes());
    v.extend_from_slice(&TERM.to_le_bytes());
    let mut x = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while v.len() < HEADER + PAYLOAD {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(HEADER + PAYLOAD);
    v
}

fn index_of(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().expect("header"))
}

/// raft-engine stores protobuf messages; a BytesValue holding our header +
/// payload is the thinnest one, and the index is read from the header.
struct PbEntry;
impl raft_engine::MessageExt for PbEntry {
    type Entry = protobuf::well_known_types::BytesValue;
    fn index(e: &Self::Entry) -> u64 {
        index_of(&e.value)
    }
}

fn pb(bytes: Vec<u8>) -> protobuf::well_known_types::BytesValue {
    let mut m = protobuf::well_known_types::BytesValue::new();
    m.value = bytes;
    m
}

// ---------------------------------------------------------------- engines

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    File,
    Redb,
    Fjall,
    RaftEngine,
}

const KINDS: [Kind; 4] = [Kind::File, Kind::Redb, Kind::Fjall, Kind::RaftEngine];

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Redb => "redb",
            Kind::Fjall => "fjall",
            Kind::RaftEngine => "raft-engine",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::File => "file + sync_data (floor)",
            Kind::Redb => "redb 4.6.0",
            Kind::Fjall => "fjall 3.1.13",
            Kind::RaftEngine => "raft-engine 0.4.2",
        }
    }
}

const REDB_LOG: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("log");
const RAFT_GROUP: u64 = 1;

/// The batch as each engine wants it, built before the clock starts.
enum Batch {
    Raw(Vec<(u64, Vec<u8>)>),
    Pb(Vec<protobuf::well_known_types::BytesValue>),
}

enum Log {
    /// Records are `u32 length LE` + entry bytes.
    File(File, Vec<u8>),
    Redb(redb::Database),
    Fjall(fjall::Database, fjall::Keyspace),
    RaftEngine(Box<raft_engine::Engine>),
}

fn raft_engine_config(dir: &Path) -> raft_engine::Config {
    raft_engine::Config {
        dir: dir.to_str().expect("utf-8 path").to_owned(),
        ..Default::default()
    }
}

impl Log {
    fn open(kind: Kind, dir: &Path) -> Res<Log> {
        fs::create_dir_all(dir)?;
        Ok(match kind {
            Kind::File => {
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .read(true)
                    .open(dir.join("log.bin"))?;
                Log::File(f, Vec::with_capacity(64 * 1024))
            }
            Kind::Redb => {
                let db = redb::Database::create(dir.join("log.redb"))?;
                let txn = db.begin_write()?;
                txn.open_table(REDB_LOG)?;
                txn.commit()?;
                Log::Redb(db)
            }
            Kind::Fjall => {
                let db = fjall::Database::builder(dir).open()?;
                let ks = db.keyspace("log", fjall::KeyspaceCreateOptions::default)?;
                Log::Fjall(db, ks)
            }
            Kind::RaftEngine => Log::RaftEngine(Box::new(raft_engine::Engine::open(raft_engine_config(dir))?)),
        })
    }

    fn make_batch(kind: Kind, first: u64, n: usize) -> Batch {
        let entries = (first..first + n as u64).map(|i| (i, entry(i)));
        match kind {
            Kind::RaftEngine => Batch::Pb(entries.map(|(_, e)| pb(e)).collect()),
            _ => Batch::Raw(entries.collect()),
        }
    }

    /// Appends the batch; durable on disk when this returns.
    fn append_durable(&mut self, batch: &Batch) -> Res<()> {
        match (self, batch) {
            (Log::File(f, buf), Batch::Raw(entries)) => {
                buf.clear();
                for (_, e) in entries {
                    buf.extend_from_slice(&(e.len() as u32).to_le_bytes());
                    buf.extend_from_slice(e);
                }
                f.write_all(buf)?;
                f.sync_data()?;
            }
            (Log::Redb(db), Batch::Raw(entries)) => {
                let mut txn = db.begin_write()?;
                txn.set_durability(redb::Durability::Immediate)?;
                {
                    let mut t = txn.open_table(REDB_LOG)?;
                    for (i, e) in entries {
                        t.insert(*i, e.as_slice())?;
                    }
                }
                txn.commit()?;
            }
            (Log::Fjall(db, ks), Batch::Raw(entries)) => {
                // A write batch is one journal record; with a durability mode
                // set, commit() persists the journal (fdatasync) before
                // returning, under the journal lock.
                let mut b = db.batch().durability(Some(fjall::PersistMode::SyncData));
                for (i, e) in entries {
                    b.insert(ks, i.to_be_bytes(), e.as_slice());
                }
                b.commit()?;
            }
            (Log::RaftEngine(engine), Batch::Pb(entries)) => {
                let mut lb = raft_engine::LogBatch::with_capacity(entries.len());
                lb.add_entries::<PbEntry>(RAFT_GROUP, entries)?;
                engine.write(&mut lb, true)?; // sync = true: fdatasync before return
            }
            _ => unreachable!("batch built for another engine"),
        }
        Ok(())
    }

    /// Removes entries `..=upto`, durably (log compaction after a snapshot).
    fn purge_durable(&mut self, upto: u64) -> Res<()> {
        match self {
            Log::File(..) => {}
            Log::Redb(db) => {
                let mut txn = db.begin_write()?;
                txn.set_durability(redb::Durability::Immediate)?;
                txn.open_table(REDB_LOG)?.retain_in(..=upto, |_, _| false)?;
                txn.commit()?;
            }
            Log::Fjall(db, ks) => {
                // No range delete in fjall 3: one tombstone per entry.
                let mut b = db.batch().durability(Some(fjall::PersistMode::SyncData));
                for (k, _) in ks
                    .range(..=upto.to_be_bytes())
                    .map(|g| g.into_inner())
                    .collect::<Result<Vec<_>, _>>()?
                {
                    b.remove(ks, k);
                }
                b.commit()?;
            }
            Log::RaftEngine(engine) => {
                let mut lb = raft_engine::LogBatch::default();
                lb.add_command(RAFT_GROUP, raft_engine::Command::Compact { index: upto + 1 });
                engine.write(&mut lb, true)?;
                engine.purge_expired_files()?;
            }
        }
        Ok(())
    }

    /// Opens the log in `dir` as after a restart and reads every entry.
    /// Returns (entries, first index, last index).
    fn open_and_scan(kind: Kind, dir: &Path) -> Res<(u64, u64, u64)> {
        let mut n = 0u64;
        let mut first = u64::MAX;
        let mut last = 0u64;
        let mut see = |bytes: &[u8]| {
            let i = index_of(bytes);
            if n > 0 {
                assert_eq!(i, last + 1, "log not contiguous");
            }
            first = first.min(i);
            last = i;
            n += 1;
        };
        match kind {
            Kind::File => {
                let mut data = Vec::new();
                File::open(dir.join("log.bin"))?.read_to_end(&mut data)?;
                let mut at = 0;
                while at + 4 <= data.len() {
                    let len = u32::from_le_bytes(data[at..at + 4].try_into()?) as usize;
                    see(&data[at + 4..at + 4 + len]);
                    at += 4 + len;
                }
            }
            Kind::Redb => {
                use redb::{ReadableDatabase, ReadableTable};
                let db = redb::Database::open(dir.join("log.redb"))?;
                let txn = db.begin_read()?;
                let t = txn.open_table(REDB_LOG)?;
                for row in t.iter()? {
                    let (_, v) = row?;
                    see(v.value());
                }
            }
            Kind::Fjall => {
                let db = fjall::Database::builder(dir).open()?;
                let ks = db.keyspace("log", fjall::KeyspaceCreateOptions::default)?;
                for g in ks.iter() {
                    let (_, v) = g.into_inner()?;
                    see(&v);
                }
            }
            Kind::RaftEngine => {
                let engine = raft_engine::Engine::open(raft_engine_config(dir))?;
                let (lo, hi) = match (engine.first_index(RAFT_GROUP), engine.last_index(RAFT_GROUP)) {
                    (Some(lo), Some(hi)) => (lo, hi),
                    _ => (1, 0),
                };
                // Read in chunks, as a log reader serving replication would.
                let mut at = lo;
                let mut buf = Vec::with_capacity(4096);
                while at <= hi {
                    let end = (at + 4096).min(hi + 1);
                    buf.clear();
                    engine.fetch_entries_to::<PbEntry>(RAFT_GROUP, at, end, None, &mut buf)?;
                    for e in &buf {
                        see(&e.value);
                    }
                    at = end;
                }
            }
        }
        Ok((n, first, last))
    }
}

// ---------------------------------------------------------------- helpers

fn secs_env(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if s.is_empty() {
        return f64::NAN;
    }
    if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    }
}

/// User + system CPU time of the whole process (all threads, so engines'
/// background workers count).
fn cpu_time() -> Duration {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Bytes this process has caused to be written to storage (`write_bytes` in
/// /proc/self/io: pages dirtied, counted again once cleaned by a sync), i.e.
/// roughly what each fsync had to push to the device, filesystem journal
/// excluded.
fn written_bytes() -> u64 {
    fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("write_bytes: ").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Flushes and drops every file under `dir` from the page cache, so the next
/// read comes from the disk (POSIX_FADV_DONTNEED on these files only).
fn evict(dir: &Path) -> Res<()> {
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            evict(&p)?;
        } else {
            let f = File::open(&p)?;
            f.sync_all()?;
            unsafe {
                libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
            }
        }
    }
    Ok(())
}

fn fs_type(dir: &Path) -> Res<String> {
    let c = std::ffi::CString::new(dir.to_str().ok_or("path")?)?;
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(match s.f_type as i64 {
        0xEF53 => "ext4".into(),
        0x0102_1994 => "tmpfs".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x794c_7630 => "overlayfs".into(),
        t => format!("fs magic {t:#x}"),
    })
}

// ---------------------------------------------------------------- measurements

/// One contender in the append measurement: an engine, or the raw device
/// flush (overwrite 4 KiB in place + fdatasync; the batch size is ignored).
enum Contender {
    Engine(Kind, Log, u64),
    RawFsync(File, Vec<u8>),
}

impl Contender {
    fn name(&self) -> &'static str {
        match self {
            Contender::Engine(k, ..) => k.name(),
            Contender::RawFsync(..) => "raw device flush (4 KiB in place)",
        }
    }

    /// One durable batch; returns (latency, CPU time, bytes written).
    fn step(&mut self, batch: usize) -> Res<(Duration, Duration, u64)> {
        // Entries are built before the clock starts; only the
        // append-until-durable is timed.
        let prepared = match self {
            Contender::Engine(kind, _, next) => Some(Log::make_batch(*kind, *next, batch)),
            Contender::RawFsync(..) => None,
        };
        let w0 = written_bytes();
        let c0 = cpu_time();
        let t = Instant::now();
        match (&mut *self, &prepared) {
            (Contender::Engine(_, log, next), Some(b)) => {
                log.append_durable(b)?;
                *next += batch as u64;
            }
            (Contender::RawFsync(f, block), _) => {
                block[0] = block[0].wrapping_add(1);
                f.write_all_at(block, 0)?;
                f.sync_data()?;
            }
            _ => unreachable!(),
        }
        let d = t.elapsed();
        let c = cpu_time() - c0;
        Ok((d, c, written_bytes() - w0))
    }
}

#[derive(Default)]
struct Samples {
    /// Per round: (batches, busy time).
    rounds: Vec<(usize, Duration)>,
    lat: Vec<Duration>,
    cpu: Duration,
    written: u64,
}

/// Appends with every contender open at once, one batch each in turn
/// (rotating who goes first every cycle), so all of them see the same disk
/// and the same neighbours: on a shared machine the device's flush latency
/// changes from one second to the next, and a contender measured alone in a
/// slice of time would be measuring its slice, not itself.
fn run_append_interleaved(
    kinds: &[Kind],
    base: &Path,
    batch: usize,
    rounds: usize,
    secs: f64,
) -> Res<Vec<(String, Samples)>> {
    let mut cs = Vec::new();
    for (i, &k) in kinds.iter().enumerate() {
        let dir = base.join(format!("append-{i}"));
        let _ = fs::remove_dir_all(&dir);
        cs.push(Contender::Engine(k, Log::open(k, &dir)?, 1));
    }
    {
        fs::create_dir_all(base)?;
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(base.join("fsync.bin"))?;
        let block = vec![0xA5u8; 4096];
        f.write_all_at(&block, 0)?;
        f.sync_all()?;
        cs.push(Contender::RawFsync(f, block));
    }
    for _ in 0..WARMUP_BATCHES {
        for c in cs.iter_mut() {
            c.step(batch)?;
        }
    }
    let mut out: Vec<Samples> = cs.iter().map(|_| Samples::default()).collect();
    let budget = Duration::from_secs_f64(secs * cs.len() as f64);
    let mut cycle = 0usize;
    for round in 0..rounds {
        let mut per: Vec<(usize, Duration)> = vec![(0, Duration::ZERO); cs.len()];
        let wall = Instant::now();
        while wall.elapsed() < budget {
            for j in 0..cs.len() {
                let i = (j + cycle) % cs.len();
                let (d, c, w) = cs[i].step(batch)?;
                per[i].0 += 1;
                per[i].1 += d;
                out[i].lat.push(d);
                out[i].cpu += c;
                out[i].written += w;
            }
            cycle += 1;
        }
        for (i, p) in per.into_iter().enumerate() {
            eprintln!(
                "batch {batch:>2} round {round} {:<34} {:>7.0} batches/s",
                cs[i].name(),
                p.0 as f64 / p.1.as_secs_f64()
            );
            out[i].rounds.push(p);
        }
    }
    let names: Vec<String> = cs.iter().map(|c| c.name().to_string()).collect();
    drop(cs);
    for i in 0..kinds.len() {
        let _ = fs::remove_dir_all(base.join(format!("append-{i}")));
    }
    let _ = fs::remove_file(base.join("fsync.bin"));
    for s in out.iter_mut() {
        s.lat.sort();
    }
    Ok(names.into_iter().zip(out).collect())
}

struct ReadRun {
    cold: Duration,
    warm: Duration,
    purge: Option<Duration>,
    bytes_on_disk: u64,
}

fn du(dir: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                n += du(&p);
            } else if let Ok(m) = e.metadata() {
                // Allocated, not apparent, size: journals are preallocated sparse.
                n += std::os::unix::fs::MetadataExt::blocks(&m) * 512;
            }
        }
    }
    n
}

fn run_read(kind: Kind, dir: &Path, entries: u64) -> Res<ReadRun> {
    let _ = fs::remove_dir_all(dir);
    {
        // Fill: batches of 1000, durable. Not timed.
        let mut log = Log::open(kind, dir)?;
        let mut next = 1;
        while next <= entries {
            let n = 1000.min(entries + 1 - next) as usize;
            log.append_durable(&Log::make_batch(kind, next, n))?;
            next += n as u64;
        }
    }
    let bytes_on_disk = du(dir);
    evict(dir)?;
    let t = Instant::now();
    let got = Log::open_and_scan(kind, dir)?;
    let cold = t.elapsed();
    assert_eq!(got, (entries, 1, entries), "{kind:?} read back a different log");
    let t = Instant::now();
    let got = Log::open_and_scan(kind, dir)?;
    let warm = t.elapsed();
    assert_eq!(got, (entries, 1, entries));
    let purge = if kind == Kind::File {
        None
    } else {
        let mut log = Log::open(kind, dir)?;
        let t = Instant::now();
        log.purge_durable(entries / 2)?;
        let d = t.elapsed();
        drop(log);
        let got = Log::open_and_scan(kind, dir)?;
        assert_eq!(got, (entries - entries / 2, entries / 2 + 1, entries), "{kind:?} purge");
        Some(d)
    };
    let _ = fs::remove_dir_all(dir);
    Ok(ReadRun {
        cold,
        warm,
        purge,
        bytes_on_disk,
    })
}

// ---------------------------------------------------------------- main

fn main() -> Res<()> {
    let base: PathBuf = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data"));
    let rounds = secs_env("BENCH_ROUNDS", 5.0) as usize;
    let secs = secs_env("BENCH_SECS", 1.2);
    let read_entries = secs_env("BENCH_READ_ENTRIES", 100_000.0) as u64;
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let kinds: Vec<Kind> = KINDS
        .into_iter()
        .filter(|k| only.is_empty() || only.split(',').any(|o| o.trim() == k.key()))
        .collect();
    fs::create_dir_all(&base)?;
    let fst = fs_type(&base)?;
    if fst == "tmpfs" {
        return Err(format!(
            "{} is on tmpfs; fsync would cost nothing. Set BENCH_DIR.",
            base.display()
        )
        .into());
    }
    let started = Instant::now();
    eprintln!(
        "bench dir {} ({fst}), {rounds} rounds, ~{secs} s per contender per round",
        base.display()
    );

    let fmt_runs = |v: &[f64], digits: usize| {
        v.iter()
            .map(|x| format!("{x:.digits$}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };

    // Appends: contenders interleaved batch by batch.
    let mut append = Vec::new();
    for &bs in BATCH_SIZES.iter() {
        append.push((bs, run_append_interleaved(&kinds, &base, bs, rounds, secs)?));
    }

    // Restart read-back: engines alternated within each round.
    let mut reads: Vec<Vec<ReadRun>> = kinds.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for k in 0..kinds.len() {
            let ki = (k + round) % kinds.len();
            let r = run_read(kinds[ki], &base.join(format!("read-{ki}")), read_entries)?;
            eprintln!(
                "read round {round} {:<26} {read_entries} entries: cold {:.0} ms warm {:.0} ms",
                kinds[ki].name(),
                ms(r.cold),
                ms(r.warm)
            );
            reads[ki].push(r);
        }
    }

    println!("Bench dir `{}` ({fst}).\n", base.display());
    println!(
        "### Raft-log append, fsync per batch ({}+{} B entries)\n",
        HEADER, PAYLOAD
    );
    println!(
        "All contenders open at once and interleaved batch by batch, {rounds} rounds of ~{secs} s each per contender. \
         batches/s = median over rounds (`runs` lists each round); p50/p99 over all batches; \
         CPU = process user+sys during the call (background threads included); \
         KiB written = page-cache bytes the call dirtied (write_bytes in /proc/self/io; fs journal excluded).\n"
    );
    println!("| engine | batch | batches/s | entries/s | p50 ms | p99 ms | CPU µs/batch | KiB written/batch | runs (batches/s) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for (bs, results) in &append {
        for (name, s) in results {
            let bps: Vec<f64> = s.rounds.iter().map(|(n, d)| *n as f64 / d.as_secs_f64()).collect();
            let m = median(&bps);
            let n = s.lat.len() as f64;
            let raw = name.starts_with("raw");
            println!(
                "| {name} | {} | {m:.0} | {} | {:.2} | {:.2} | {:.0} | {:.1} | {} |",
                if raw { "–".to_string() } else { bs.to_string() },
                if raw {
                    "–".to_string()
                } else {
                    format!("{:.0}", m * *bs as f64)
                },
                ms(pct(&s.lat, 0.50)),
                ms(pct(&s.lat, 0.99)),
                s.cpu.as_secs_f64() * 1e6 / n,
                s.written as f64 / 1024.0 / n,
                fmt_runs(&bps, 0)
            );
        }
    }

    println!("\n### Restart: open + iterate {read_entries} entries\n");
    println!("cold = the log's files evicted from the page cache first; warm = again right after. Purge = durably drop the first half.\n");
    println!(
        "| engine | on disk MiB | cold ms | warm ms | purge {} ms | runs (cold ms) |",
        read_entries / 2
    );
    println!("|---|---:|---:|---:|---:|---|");
    for (ki, kind) in kinds.iter().enumerate() {
        let runs = &reads[ki];
        let cold: Vec<f64> = runs.iter().map(|r| ms(r.cold)).collect();
        let purge: Vec<f64> = runs.iter().filter_map(|r| r.purge.map(ms)).collect();
        println!(
            "| {} | {:.1} | {:.0} | {:.0} | {} | {} |",
            kind.name(),
            median(
                &runs
                    .iter()
                    .map(|r| r.bytes_on_disk as f64 / (1 << 20) as f64)
                    .collect::<Vec<_>>()
            ),
            median(&cold),
            median(&runs.iter().map(|r| ms(r.warm)).collect::<Vec<_>>()),
            if purge.is_empty() {
                "n/a".to_string()
            } else {
                format!("{:.1}", median(&purge))
            },
            fmt_runs(&cold, 0)
        );
    }
    println!("\nTotal benchmark time: {:.0} s", started.elapsed().as_secs_f64());
    let _ = fs::remove_dir_all(&base);
    Ok(())
}
