//! Parser for Jepsen etcd register logs (as published with porcupine):
//! `INFO  jepsen.util - PROCESS<TAB>:TYPE<TAB>:F<TAB>VALUE`, with TYPE one of
//! `:invoke`, `:ok`, `:fail`, `:info` and F one of `:read`, `:write`,
//! `:cas` (VALUE `[expected new]`). The register becomes key [`JEPSEN_KEY`]:
//! `:read` is a get, `:write` a put, `:cas` a cas.
//!
//! # Correctness
//!
//! - `:info` is an unknown outcome (may or may not take effect, any time
//!   after invocation); `:fail` certainly had no effect; an `:ok` cas
//!   succeeded; an `:ok` read returned VALUE (`nil`: absent).
//! - The register starts absent (`nil`), as the checker's model does.
//! - Lines from non-numeric processes (e.g. the nemesis) and lines that are
//!   not `jepsen.util` operation lines are ignored.

use std::path::Path;

use super::{read_file, syntax, Completion, ImportError, Recorder};
use crate::history::{HistoryEvent, OpResult, Operation};

/// The key the imported register is stored under.
pub const JEPSEN_KEY: &str = "r";

/// Reads and parses a Jepsen log file.
pub fn read_jepsen_log(path: impl AsRef<Path>) -> Result<Vec<HistoryEvent>, ImportError> {
    parse_jepsen_log(&read_file(path.as_ref())?)
}

fn value(token: &str) -> Option<String> {
    (token != "nil").then(|| token.to_owned())
}

/// Parses the text of a Jepsen log.
pub fn parse_jepsen_log(text: &str) -> Result<Vec<HistoryEvent>, ImportError> {
    let mut recorder = Recorder::default();
    for (line, raw) in text.lines().enumerate() {
        let Some((_, rest)) = raw.split_once("jepsen.util - ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split('\t').map(str::trim).collect();
        let Ok(process) = fields[0].parse::<u64>() else {
            continue;
        };
        let [_, kind, f, arg] = fields[..] else {
            return Err(syntax(line, format!("expected 4 tab-separated fields: {raw:?}")));
        };
        let key = JEPSEN_KEY.to_owned();
        match kind {
            ":invoke" => {
                let op = match f {
                    ":read" => Operation::Get { key },
                    ":write" => Operation::Put {
                        key,
                        value: arg.to_owned(),
                    },
                    ":cas" => {
                        let (expected, new) =
                            cas_pair(arg).ok_or_else(|| syntax(line, format!("bad cas argument {arg:?}")))?;
                        Operation::Cas { key, expected, new }
                    }
                    other => return Err(syntax(line, format!("unknown function {other}"))),
                };
                recorder.invoke(line, process, op)?;
            }
            ":ok" => {
                let pending = recorder.pending(line, process)?;
                let result = match pending.op {
                    Operation::Get { .. } => OpResult {
                        value: Some(value(arg)),
                        ..OpResult::default()
                    },
                    Operation::Cas { .. } => OpResult {
                        succeeded: Some(true),
                        ..OpResult::default()
                    },
                    _ => OpResult::default(),
                };
                recorder.complete(line, process, Completion::Ok(result))?;
            }
            ":fail" => recorder.complete(line, process, Completion::Fail)?,
            ":info" => recorder.complete(line, process, Completion::Info)?,
            other => return Err(syntax(line, format!("unknown event type {other}"))),
        }
    }
    Ok(recorder.finish())
}

/// Parses `[expected new]`; `nil` expected means absent.
fn cas_pair(arg: &str) -> Option<(Option<String>, String)> {
    let inner = arg.strip_prefix('[')?.strip_suffix(']')?;
    let mut parts = inner.split_whitespace();
    let expected = value(parts.next()?);
    let new = value(parts.next()?)?;
    parts.next().is_none().then_some((expected, new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;

    #[test]
    fn parses_all_event_kinds() {
        let log = "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n\
                   INFO  jepsen.util - 1\t:invoke\t:write\t4\n\
                   INFO  jepsen.util - 2\t:invoke\t:cas\t[4 0]\n\
                   INFO  jepsen.util - 0\t:ok\t:read\tnil\n\
                   INFO  jepsen.util - 1\t:info\t:write\t:timed-out\n\
                   INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n\
                   INFO  jepsen.util - 2\t:fail\t:cas\t[4 0]\n\
                   INFO  jepsen.util - 3\t:invoke\t:cas\t[nil 1]\n\
                   INFO  jepsen.util - 3\t:ok\t:cas\t[nil 1]\n\
                   INFO  jepsen.util - 4\t:invoke\t:write\t2\n";
        let events = parse_jepsen_log(log).unwrap();
        assert_eq!(events.len(), 5);
        assert_eq!(events[0].outcome, Outcome::Ok);
        assert_eq!(events[0].result.as_ref().unwrap().value, Some(None));
        assert_eq!(events[1].outcome, Outcome::Unknown);
        assert_eq!(events[2].outcome, Outcome::Fail);
        assert_eq!(
            events[3].op,
            Operation::Cas {
                key: JEPSEN_KEY.into(),
                expected: None,
                new: "1".into()
            }
        );
        assert_eq!(events[3].result.as_ref().unwrap().succeeded, Some(true));
        assert_eq!(events[4].outcome, Outcome::Unknown);
        assert_eq!(events[4].complete_ns, None);
    }

    #[test]
    fn rejects_completion_without_invocation() {
        let err = parse_jepsen_log("INFO  jepsen.util - 0\t:ok\t:read\t1\n").unwrap_err();
        assert!(matches!(err, ImportError::Syntax { line: 1, .. }), "{err}");
    }
}
