//! [`LineRecorder`]: the JSON-lines file of a workload other than the
//! register one (bank, ranges, locks, watches), next to the client's
//! register history ([`workload_history_path`]: `c7.jsonl` →
//! `c7.bank.jsonl`).
//!
//! # Correctness
//!
//! The same discipline as the register history ([`super::client`]): the
//! file is opened with `O_APPEND`, and every record is one line written
//! with one `write(2)` and no user-space buffer, so a client killed at any
//! instant leaves every complete line it wrote, and at most a torn last
//! one (which readers skip). Callers write an operation's invocation
//! before sending it and its completion after. Several tasks of one
//! process may share a recorder: each line is still one `write(2)`, and
//! ids come from one counter.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use firebreak_check::recorded::Recorded;
use serde::Serialize;

use super::context::Ctx;
use crate::clock::monotonic_ns;
use crate::error::DrillError;

/// The file of one workload of one client.
pub struct LineRecorder {
    file: File,
    path: PathBuf,
    next_id: AtomicU64,
}

impl LineRecorder {
    /// Opens (creating, appending to) `path`.
    pub fn open(path: &Path) -> Result<Arc<LineRecorder>, DrillError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(DrillError::io("cannot open a workload history", path))?;
        Ok(Arc::new(LineRecorder {
            file,
            path: path.to_owned(),
            next_id: AtomicU64::new(1),
        }))
    }

    /// A fresh operation id (1, 2, …).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Records the invocation of `op` by the client of `ctx`, now, and
    /// returns the record to complete once the answer is in.
    pub fn invoke<O: Serialize, R: Serialize>(&self, ctx: &Ctx, op: O) -> Result<Recorded<O, R>, DrillError> {
        let event = Recorded::invoked(self.next_id(), ctx.client, Some(&ctx.dc), op, monotonic_ns());
        self.record(&event)?;
        Ok(event)
    }

    /// Appends `record` as one line, in one `write(2)`.
    pub fn record<T: Serialize>(&self, record: &T) -> Result<(), DrillError> {
        let mut line = serde_json::to_string(record)
            .map_err(|e| DrillError::Internal(format!("cannot serialize a workload record: {e}")))?;
        line.push('\n');
        (&self.file)
            .write_all(line.as_bytes())
            .map_err(DrillError::io("cannot record a workload history", &self.path))
    }
}

/// Where workload `name` of the client whose register history is
/// `history` records: the same name with `.name` before the extension
/// (`clients/c7.jsonl` → `clients/c7.bank.jsonl`).
pub fn workload_history_path(history: &Path, name: &str) -> PathBuf {
    let stem = history
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    history.with_file_name(format!("{stem}.{name}.jsonl"))
}

/// The client id and workload of a workload file name (`c7.bank.jsonl` →
/// `(7, "bank")`), or `None` for any other file (a register history
/// `c7.jsonl` included).
pub fn parse_workload_file_name(file_name: &str) -> Option<(u64, &str)> {
    let rest = file_name.strip_prefix('c')?.strip_suffix(".jsonl")?;
    let (id, name) = rest.split_once('.')?;
    Some((id.parse().ok()?, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_lines_append() {
        let path = workload_history_path(Path::new("/d/clients/c7.jsonl"), "bank");
        assert_eq!(path, Path::new("/d/clients/c7.bank.jsonl"));
        assert_eq!(parse_workload_file_name("c7.bank.jsonl"), Some((7, "bank")));
        assert_eq!(parse_workload_file_name("c7.jsonl"), None);
        assert_eq!(parse_workload_file_name("client-7.log"), None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c1.x.jsonl");
        let recorder = LineRecorder::open(&path).unwrap();
        assert_eq!((recorder.next_id(), recorder.next_id()), (1, 2));
        recorder.record(&serde_json::json!({"a": 1})).unwrap();
        let again = LineRecorder::open(&path).unwrap();
        again.record(&serde_json::json!({"a": 2})).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"a\":2}\n");
    }
}
