//! Parser for porcupine's key-value histories: one EDN map per line, e.g.
//! `{:process 0, :type :invoke, :f :append, :key "0", :value "x 0 0 y"}`,
//! with `:f` one of `:get`, `:put`, `:append`.
//!
//! # Correctness
//!
//! - Porcupine's key-value model reads a missing key as the empty string, so
//!   a get returning `""` is imported as "absent", and a put of `""` as a
//!   delete whose reported count is unknown (it leaves the key empty, which
//!   reads as absent). Appends to an absent key start from the empty string,
//!   as in the checker's register model.
//! - `:info` is an unknown outcome and `:fail` had no effect, as for Jepsen.

use std::collections::BTreeMap;
use std::path::Path;

use super::{read_file, syntax, Completion, ImportError, Recorder};
use crate::history::{HistoryEvent, OpResult, Operation};

/// Reads and parses a porcupine key-value history file.
pub fn read_porcupine_kv(path: impl AsRef<Path>) -> Result<Vec<HistoryEvent>, ImportError> {
    parse_porcupine_kv(&read_file(path.as_ref())?)
}

/// An EDN scalar, as far as these files need.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Edn {
    Nil,
    Int(i64),
    Keyword(String),
    Str(String),
}

/// Parses `{:k v, :k v}` with scalar values.
fn parse_map(text: &str) -> Result<BTreeMap<String, Edn>, String> {
    let mut chars = text.trim().chars().peekable();
    if chars.next() != Some('{') {
        return Err("expected '{'".into());
    }
    let mut map = BTreeMap::new();
    let skip = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
    };
    let word = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        let mut out = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == ',' || c == '}' {
                break;
            }
            out.push(c);
            chars.next();
        }
        out
    };
    loop {
        skip(&mut chars);
        match chars.peek() {
            Some('}') => {
                chars.next();
                break;
            }
            Some(':') => {}
            Some(c) => return Err(format!("expected a keyword, found {c:?}")),
            None => return Err("unterminated map".into()),
        }
        chars.next();
        let key = word(&mut chars);
        skip(&mut chars);
        let value = match chars.peek() {
            Some('"') => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some(c) => s.push(c),
                            None => return Err("unterminated string".into()),
                        },
                        Some(c) => s.push(c),
                        None => return Err("unterminated string".into()),
                    }
                }
                Edn::Str(s)
            }
            Some(':') => {
                chars.next();
                Edn::Keyword(word(&mut chars))
            }
            Some(_) => {
                let token = word(&mut chars);
                if token == "nil" {
                    Edn::Nil
                } else {
                    Edn::Int(token.parse().map_err(|_| format!("unexpected token {token:?}"))?)
                }
            }
            None => return Err("missing value".into()),
        };
        map.insert(key, value);
    }
    if chars.any(|c| !c.is_whitespace()) {
        return Err("text after the map".into());
    }
    Ok(map)
}

/// Parses the text of a porcupine key-value history.
pub fn parse_porcupine_kv(text: &str) -> Result<Vec<HistoryEvent>, ImportError> {
    let mut recorder = Recorder::default();
    for (line, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let map = parse_map(raw).map_err(|m| syntax(line, m))?;
        let field = |name: &str| map.get(name).ok_or_else(|| syntax(line, format!("missing :{name}")));
        let Edn::Int(process) = field("process")? else {
            return Err(syntax(line, ":process is not an integer"));
        };
        let process = u64::try_from(*process).map_err(|_| syntax(line, ":process is negative"))?;
        let (Edn::Keyword(kind), Edn::Keyword(f)) = (field("type")?, field("f")?) else {
            return Err(syntax(line, ":type and :f must be keywords"));
        };
        let string = |name: &str| match field(name)? {
            Edn::Str(s) => Ok(s.clone()),
            other => Err(syntax(line, format!(":{name} is not a string: {other:?}"))),
        };
        match kind.as_str() {
            "invoke" => {
                let key = string("key")?;
                let op = match f.as_str() {
                    "get" => Operation::Get { key },
                    "put" => {
                        let value = string("value")?;
                        if value.is_empty() {
                            Operation::Delete { key }
                        } else {
                            Operation::Put { key, value }
                        }
                    }
                    "append" => Operation::Append {
                        key,
                        value: string("value")?,
                    },
                    other => return Err(syntax(line, format!("unknown function :{other}"))),
                };
                recorder.invoke(line, process, op)?;
            }
            "ok" => {
                let result = match recorder.pending(line, process)?.op {
                    Operation::Get { .. } => {
                        let seen = string("value")?;
                        OpResult {
                            value: Some((!seen.is_empty()).then_some(seen)),
                            ..OpResult::default()
                        }
                    }
                    _ => OpResult::default(),
                };
                recorder.complete(line, process, Completion::Ok(result))?;
            }
            "fail" => recorder.complete(line, process, Completion::Fail)?,
            "info" => recorder.complete(line, process, Completion::Info)?,
            other => return Err(syntax(line, format!("unknown event type :{other}"))),
        }
    }
    Ok(recorder.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;

    #[test]
    fn parses_get_put_append() {
        let text = r#"{:process 0, :type :invoke, :f :append, :key "0", :value "x 0 0 y"}
{:process 1, :type :invoke, :f :get, :key "0", :value nil}
{:process 0, :type :ok, :f :append, :key "0", :value "x 0 0 y"}
{:process 1, :type :ok, :f :get, :key "0", :value ""}
{:process 1, :type :invoke, :f :put, :key "1", :value "a \"q\""}
"#;
        let events = parse_porcupine_kv(text).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[0].op,
            Operation::Append {
                key: "0".into(),
                value: "x 0 0 y".into()
            }
        );
        assert_eq!(events[1].result.as_ref().unwrap().value, Some(None));
        assert_eq!(
            events[2].op,
            Operation::Put {
                key: "1".into(),
                value: "a \"q\"".into()
            }
        );
        assert_eq!(events[2].outcome, Outcome::Unknown);
    }

    #[test]
    fn reports_bad_lines() {
        let err = parse_porcupine_kv("{:process 0, :type :ok\n").unwrap_err();
        assert!(matches!(err, ImportError::Syntax { line: 1, .. }), "{err}");
    }
}
