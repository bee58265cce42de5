//! Importers for public histories with known verdicts, mapping them onto
//! [`HistoryEvent`]s so the same checker judges them:
//! [`jepsen`] (Jepsen etcd register logs) and [`porcupine_kv`] (porcupine
//! key-value histories).
//!
//! # Correctness
//!
//! - These formats have no timestamps, only event order. Event number `n`
//!   (0-based line) is given time `n` milliseconds, so the real-time order of
//!   the imported history is exactly the order of its lines, and no two
//!   events share a time.
//! - An invocation never completed by the end of the log has an unknown
//!   outcome (it may or may not have taken effect).
//! - Imported histories carry no revisions, so only the linearizability
//!   search (and value-origin checks) judge them.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::history::{HistoryEvent, OpResult, Operation};

pub mod jepsen;
pub mod porcupine_kv;

/// Errors while importing a foreign history.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line could not be understood.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        message: String,
    },
}

pub(crate) fn read_file(path: &std::path::Path) -> Result<String, ImportError> {
    std::fs::read_to_string(path).map_err(|source| ImportError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The time given to the event on 0-based line `line`.
pub(crate) fn line_time(line: usize) -> u64 {
    line as u64 * 1_000_000
}

/// How an imported completion line ends an operation.
pub(crate) enum Completion {
    Ok(OpResult),
    Fail,
    Info,
}

/// Pairs invocations with completions per process, in line order.
#[derive(Default)]
pub(crate) struct Recorder {
    events: Vec<HistoryEvent>,
    pending: HashMap<u64, usize>,
}

impl Recorder {
    pub(crate) fn invoke(&mut self, line: usize, process: u64, op: Operation) -> Result<(), ImportError> {
        if self.pending.contains_key(&process) {
            return Err(syntax(
                line,
                format!("process {process} invokes while its previous operation is pending"),
            ));
        }
        let id = self.events.len() as u64;
        self.pending.insert(process, self.events.len());
        self.events
            .push(HistoryEvent::invoked(id, process, None, op, line_time(line)));
        Ok(())
    }

    /// The pending operation of `process`.
    pub(crate) fn pending(&self, line: usize, process: u64) -> Result<&HistoryEvent, ImportError> {
        self.pending
            .get(&process)
            .map(|&i| &self.events[i])
            .ok_or_else(|| syntax(line, format!("process {process} completes nothing")))
    }

    pub(crate) fn complete(&mut self, line: usize, process: u64, how: Completion) -> Result<(), ImportError> {
        let index = self
            .pending
            .remove(&process)
            .ok_or_else(|| syntax(line, format!("process {process} completes nothing")))?;
        let event = self.events[index].clone();
        let t = line_time(line);
        self.events[index] = match how {
            Completion::Ok(result) => event.ok(t, result),
            Completion::Fail => event.fail(t),
            Completion::Info => event.unknown(Some(t)),
        };
        Ok(())
    }

    /// The events; operations still pending have an unknown outcome.
    pub(crate) fn finish(self) -> Vec<HistoryEvent> {
        self.events
    }
}

pub(crate) fn syntax(line: usize, message: impl Into<String>) -> ImportError {
    ImportError::Syntax {
        line: line + 1,
        message: message.into(),
    }
}
