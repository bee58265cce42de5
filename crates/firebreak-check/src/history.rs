//! The client-history data model and its JSON-lines encoding.
//!
//! This module owns the contract between whoever records a history (the
//! drill, or an importer in [`crate::import`]) and the checker: one
//! [`HistoryEvent`] per operation, serialized as one JSON object per line of
//! `history.jsonl`:
//!
//! ```text
//! {"id":17,"client":3,"dc":"dc2","op":{"type":"put","key":"k1","value":"c3-17"},"invoke_ns":123,"complete_ns":456,"outcome":"ok","result":{"revision":42}}
//! ```
//!
//! It also owns reading ([`read_history_jsonl`], [`parse_history_jsonl`]) and
//! writing ([`HistoryWriter`], [`write_history_jsonl`], [`to_jsonl_line`]).
//!
//! # Correctness
//!
//! - The JSON field names (`id`, `client`, `dc`, `op`, `type`, `key`,
//!   `value`, `expected`, `new`, `invoke_ns`, `complete_ns`, `outcome`,
//!   `result`, `revision`, `mod_revision`, `succeeded`, `deleted`) are a
//!   contract with the recorder and must not be renamed.
//! - A `get` result distinguishes "field absent" from `"value": null` (key
//!   absent): [`OpResult::value`] is `None` when the field is missing and
//!   `Some(None)` when it is `null`. Only `Some(_)` is used to judge a read.
//! - `cas.expected` of `null` means "the key is absent" and is always written
//!   out (never skipped), so that it round-trips.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::recorded::Recorded;

/// Errors while reading or writing a history file.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An I/O error on a reader or writer that has no path.
    #[error("history I/O: {0}")]
    Stream(#[from] std::io::Error),
    /// A line is not a valid [`HistoryEvent`].
    #[error("line {line}: invalid history event: {source}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// An event could not be serialized.
    #[error("cannot serialize history event {id}: {source}")]
    Serialize {
        /// The event's id.
        id: u64,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// One client operation of a register history: what was invoked, when,
/// and what came back (the response only for `ok` operations).
pub type HistoryEvent = Recorded<Operation, OpResult>;

/// An operation on a single key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Operation {
    /// Set `key` to `value`.
    Put {
        /// Key.
        key: String,
        /// Value written (unique across a recorded history).
        value: String,
    },
    /// Read `key`.
    Get {
        /// Key.
        key: String,
    },
    /// Compare-and-set: if the current value equals `expected` (`None`:
    /// the key is absent), set it to `new`.
    Cas {
        /// Key.
        key: String,
        /// Expected current value; `None` (JSON `null`) means "absent".
        expected: Option<String>,
        /// Value written on success.
        new: String,
    },
    /// Delete `key`.
    Delete {
        /// Key.
        key: String,
    },
    /// Append `value` to the current value (absent counts as empty). Only
    /// used by imported histories (porcupine key-value tests).
    Append {
        /// Key.
        key: String,
        /// Suffix appended.
        value: String,
    },
}

impl Operation {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            Operation::Put { key, .. }
            | Operation::Get { key }
            | Operation::Cas { key, .. }
            | Operation::Delete { key }
            | Operation::Append { key, .. } => key,
        }
    }

    /// The operation's name as used in the JSON `type` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::Put { .. } => "put",
            Operation::Get { .. } => "get",
            Operation::Cas { .. } => "cas",
            Operation::Delete { .. } => "delete",
            Operation::Append { .. } => "append",
        }
    }

    /// The whole value this operation would store, if it stores one
    /// (`put` value, `cas` new value). `append` stores a concatenation and
    /// `delete` stores nothing, so both return `None`.
    pub fn written_value(&self) -> Option<&str> {
        match self {
            Operation::Put { value, .. } => Some(value),
            Operation::Cas { new, .. } => Some(new),
            _ => None,
        }
    }
}

/// What is known about whether an operation took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Completed; the result is known.
    Ok,
    /// Certainly did not take effect.
    Fail,
    /// May or may not have taken effect, at any time after invocation.
    Unknown,
}

/// The response to an `ok` operation. Which fields are present depends on
/// the operation (see the constructors).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OpResult {
    /// The response header revision (the store's global revision after/at
    /// the operation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// `get` only: `Some(None)` is JSON `null` (key absent), `None` means the
    /// field was not present at all.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    pub value: Option<Option<String>>,
    /// `get` only: the mod revision of the key read, if it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mod_revision: Option<u64>,
    /// `cas` only: whether the comparison held and the write happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<bool>,
    /// `delete` only: number of keys deleted (0 or 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<u64>,
}

fn double_option<'de, D>(deserializer: D) -> Result<Option<Option<String>>, D::Error>
where
    D: Deserializer<'de>,
{
    Option::<String>::deserialize(deserializer).map(Some)
}

impl OpResult {
    /// Result of a `put` (or `append`) acknowledged at `revision`.
    pub fn put(revision: u64) -> Self {
        OpResult {
            revision: Some(revision),
            ..OpResult::default()
        }
    }

    /// Result of a `get` that saw `value` (`None`: absent) with header
    /// revision `revision` and the key's `mod_revision`.
    pub fn get(value: Option<String>, revision: u64, mod_revision: Option<u64>) -> Self {
        OpResult {
            revision: Some(revision),
            value: Some(value),
            mod_revision,
            ..OpResult::default()
        }
    }

    /// Result of a `cas`.
    pub fn cas(succeeded: bool, revision: u64) -> Self {
        OpResult {
            revision: Some(revision),
            succeeded: Some(succeeded),
            ..OpResult::default()
        }
    }

    /// Result of a `delete` that removed `deleted` keys (0 or 1).
    pub fn delete(deleted: u64, revision: u64) -> Self {
        OpResult {
            revision: Some(revision),
            deleted: Some(deleted),
            ..OpResult::default()
        }
    }
}

impl HistoryEvent {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        self.op.key()
    }

    /// The header revision, for an `ok` operation that reported one.
    pub fn revision(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Ok => self.result.as_ref().and_then(|r| r.revision),
            _ => None,
        }
    }

    /// Whether this is an acknowledged successful write: an `ok` put or
    /// append, a `cas` that reported `succeeded: true`, or a `delete` that
    /// reported `deleted >= 1`.
    pub fn is_acknowledged_write(&self) -> bool {
        if self.outcome != Outcome::Ok {
            return false;
        }
        let result = self.result.as_ref();
        match self.op {
            Operation::Put { .. } | Operation::Append { .. } => true,
            Operation::Cas { .. } => result.and_then(|r| r.succeeded) == Some(true),
            Operation::Delete { .. } => result.and_then(|r| r.deleted).is_some_and(|d| d >= 1),
            Operation::Get { .. } => false,
        }
    }
}

/// Parses a JSON-lines history from a reader. Blank lines are skipped.
pub fn parse_history_jsonl<R: BufRead>(reader: R) -> Result<Vec<HistoryEvent>, HistoryError> {
    let mut events = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(&line).map_err(|source| HistoryError::Parse {
            line: index + 1,
            source,
        })?;
        events.push(event);
    }
    Ok(events)
}

/// Reads a `history.jsonl` file.
pub fn read_history_jsonl(path: impl AsRef<Path>) -> Result<Vec<HistoryEvent>, HistoryError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| HistoryError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_history_jsonl(BufReader::new(file)).map_err(|err| match err {
        HistoryError::Stream(source) => HistoryError::Io {
            path: path.to_owned(),
            source,
        },
        other => other,
    })
}

/// Serializes one event as a single JSON line (without the newline).
pub fn to_jsonl_line(event: &HistoryEvent) -> Result<String, HistoryError> {
    serde_json::to_string(event).map_err(|source| HistoryError::Serialize { id: event.id, source })
}

/// Writes events one per line to any [`Write`]r; used by the drill while it
/// records.
#[derive(Debug)]
pub struct HistoryWriter<W: Write> {
    out: W,
}

impl HistoryWriter<BufWriter<File>> {
    /// Creates (truncating) a history file.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, HistoryError> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|source| HistoryError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(HistoryWriter::new(BufWriter::new(file)))
    }
}

impl<W: Write> HistoryWriter<W> {
    /// Wraps a writer.
    pub fn new(out: W) -> Self {
        HistoryWriter { out }
    }

    /// Appends one event as a line.
    pub fn write_event(&mut self, event: &HistoryEvent) -> Result<(), HistoryError> {
        let line = to_jsonl_line(event)?;
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    /// Flushes buffered lines.
    pub fn flush(&mut self) -> Result<(), HistoryError> {
        self.out.flush()?;
        Ok(())
    }

    /// Flushes and returns the inner writer.
    pub fn into_inner(mut self) -> Result<W, HistoryError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes a whole history to `path` (truncating it).
pub fn write_history_jsonl(path: impl AsRef<Path>, events: &[HistoryEvent]) -> Result<(), HistoryError> {
    let path = path.as_ref();
    let mut writer = HistoryWriter::create(path)?;
    for event in events {
        writer.write_event(event)?;
    }
    writer.flush().map_err(|err| match err {
        HistoryError::Stream(source) => HistoryError::Io {
            path: path.to_owned(),
            source,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_example_parses() {
        let line = r#"{"id": 17, "client": 3, "dc": "dc2", "op": {"type":"put","key":"k1","value":"c3-17"}, "invoke_ns": 123, "complete_ns": 456, "outcome": "ok", "result": {"revision": 42}}"#;
        let event: HistoryEvent = serde_json::from_str(line).unwrap();
        assert_eq!(event.id, 17);
        assert_eq!(event.dc.as_deref(), Some("dc2"));
        assert_eq!(
            event.op,
            Operation::Put {
                key: "k1".into(),
                value: "c3-17".into()
            }
        );
        assert_eq!(event.revision(), Some(42));
        assert!(event.is_acknowledged_write());
    }

    #[test]
    fn get_null_value_differs_from_missing_value() {
        let null: OpResult = serde_json::from_str(r#"{"value":null,"revision":3,"mod_revision":null}"#).unwrap();
        assert_eq!(null.value, Some(None));
        let missing: OpResult = serde_json::from_str(r#"{"revision":3}"#).unwrap();
        assert_eq!(missing.value, None);
        let text = serde_json::to_string(&OpResult::get(None, 3, None)).unwrap();
        assert_eq!(text, r#"{"revision":3,"value":null}"#);
    }

    #[test]
    fn cas_null_expected_and_unknown_outcome_round_trip() {
        let event = HistoryEvent::invoked(
            1,
            2,
            None,
            Operation::Cas {
                key: "k".into(),
                expected: None,
                new: "v".into(),
            },
            10,
        )
        .unknown(None);
        let line = to_jsonl_line(&event).unwrap();
        assert!(line.contains(r#""expected":null"#), "{line}");
        assert!(line.contains(r#""outcome":"unknown""#), "{line}");
        assert!(line.contains(r#""complete_ns":null"#), "{line}");
        let back: HistoryEvent = serde_json::from_str(&line).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn writer_and_reader_round_trip() {
        let events = vec![
            HistoryEvent::invoked(
                1,
                1,
                Some("dc1"),
                Operation::Put {
                    key: "a".into(),
                    value: "x".into(),
                },
                5,
            )
            .ok(9, OpResult::put(2)),
            HistoryEvent::invoked(2, 1, Some("dc1"), Operation::Get { key: "a".into() }, 10)
                .ok(12, OpResult::get(Some("x".into()), 2, Some(2))),
            HistoryEvent::invoked(3, 2, None, Operation::Delete { key: "a".into() }, 11).fail(13),
        ];
        let mut writer = HistoryWriter::new(Vec::new());
        for event in &events {
            writer.write_event(event).unwrap();
        }
        let bytes = writer.into_inner().unwrap();
        let back = parse_history_jsonl(&bytes[..]).unwrap();
        assert_eq!(back, events);
    }

    #[test]
    fn parse_error_names_the_line() {
        let text = "\n{\"id\":1}\n";
        let err = parse_history_jsonl(text.as_bytes()).unwrap_err();
        assert!(matches!(err, HistoryError::Parse { line: 2, .. }), "{err}");
    }
}
