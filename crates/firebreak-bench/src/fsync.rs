//! `--fsync-probe`: how long the disk takes to make a small append durable.
//!
//! Every acknowledged write of Firebreak and of etcd waits for at least one
//! such flush (on a quorum of members), so this latency is part of the
//! floor under single-client put latency. The probe does what a
//! write-ahead log does: append a block to a preallocated file and
//! `fdatasync` it, many times, and reports the percentiles.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::error::BenchError;
use crate::report::{new_histogram, Latency};

#[derive(Debug, Clone, Serialize)]
pub struct FsyncReport {
    pub dir: String,
    pub writes: u32,
    pub bytes_per_write: usize,
    /// Latency of one write plus `fdatasync`, in µs.
    pub latency_us: Latency,
}

impl FsyncReport {
    pub fn to_text(&self) -> String {
        let l = &self.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "fsync probe in {}: {} writes of {} bytes, each followed by fdatasync\n  latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}\n",
            self.dir,
            self.writes,
            self.bytes_per_write,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
            l.mean / 1000.0
        )
    }
}

/// Appends `count` blocks of `bytes` to a fresh file in `dir`, each
/// followed by `fdatasync`, and removes the file.
pub fn probe(dir: &Path, count: u32, bytes: usize) -> Result<FsyncReport, BenchError> {
    let err = |source| BenchError::Fsync {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let path = dir.join(format!(".firebreak-fsync-probe-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)?;
        // Preallocate, as a write-ahead log segment is, so that the flushes
        // measure data, not file growth.
        let size = (count as u64) * (bytes as u64);
        file.set_len(size)?;
        file.sync_all()?;
        file.seek(SeekFrom::Start(0))?;
        let block = vec![0x5au8; bytes];
        let mut histogram = new_histogram();
        for _ in 0..count {
            let start = Instant::now();
            file.write_all(&block)?;
            file.sync_data()?;
            histogram.saturating_record((start.elapsed().as_micros() as u64).max(1));
        }
        Ok(histogram)
    })();
    let _ = std::fs::remove_file(&path);
    let histogram = result.map_err(err)?;
    Ok(FsyncReport {
        dir: dir.display().to_string(),
        writes: count,
        bytes_per_write: bytes,
        latency_us: Latency::of(&histogram),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_measures_every_write_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let report = probe(dir.path(), 20, 512).unwrap();
        assert_eq!(report.latency_us.count, 20);
        assert!(report.latency_us.p50 >= 1);
        assert!(report.latency_us.max >= report.latency_us.p50);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
